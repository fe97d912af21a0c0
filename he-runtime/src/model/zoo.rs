//! Architectures built in code, with deterministic synthetic weights: what plan mode compiles
//! when it needs a network's exact op sequence (which depends on shapes, not on weight values)
//! but has no trained weights for it, e.g. ResNet-20 on 3-channel CIFAR images.

use std::collections::BTreeMap;

use super::desc::{Activation, InputDesc, LayerKind, MaxAbs, ModelDesc};
use super::synthetic::{synthetic, uniform, Builder};
use super::validated::Model;
use super::weights::Tensor;
use crate::error::Result;

pub use super::imagenet::{mobilenetv2, resnet50, space_to_depth, space_to_depth_kernel};

/// ResNet-20 in its CIFAR form (3 stages × 3 basic blocks of 16, 32, 64 channels, stride-2
/// blocks with a 1×1 convolution shortcut, global average pooling, dense 64 → 10) on
/// `in_channels`×32×32 inputs, with `activation` after every block convolution and add.
pub fn resnet20(in_channels: usize, activation: Activation) -> Result<Model> {
    let mut b = Builder { layers: Vec::new(), tensors: BTreeMap::new(), activation };
    b.conv("stem", "input", in_channels, 16, 3, 1, 32);
    b.act("stem.act", "stem", &[16, 32, 32]);
    let mut prev = "stem.act".to_owned();
    let (mut c, mut hw) = (16, 32);
    for (stage, width) in [16usize, 32, 64].into_iter().enumerate() {
        for block in 0..3 {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let n = format!("layer{}.{block}", stage + 1);
            let out_hw = hw / stride;
            b.conv(&format!("{n}.conv1"), &prev, c, width, 3, stride, hw);
            b.act(&format!("{n}.act1"), &format!("{n}.conv1"), &[width, out_hw, out_hw]);
            b.conv(&format!("{n}.conv2"), &format!("{n}.act1"), width, width, 3, 1, out_hw);
            let skip = if stride != 1 || c != width {
                b.conv(&format!("{n}.shortcut"), &prev, c, width, 1, stride, hw);
                format!("{n}.shortcut")
            } else {
                prev.clone()
            };
            let shape = vec![width, out_hw, out_hw];
            b.push(
                &format!("{n}.add"),
                LayerKind::Add,
                &[&format!("{n}.conv2"), &skip],
                shape.clone(),
                shape.clone(),
            );
            b.act(&format!("{n}.act2"), &format!("{n}.add"), &shape);
            prev = format!("{n}.act2");
            (c, hw) = (width, out_hw);
        }
    }
    let pool = LayerKind::AvgPool { kernel: [8, 8], stride: [8, 8], padding: [0; 4] };
    b.push("pool", pool, &[&prev], vec![64, 8, 8], vec![64, 1, 1]);
    b.push("flatten", LayerKind::Flatten, &["pool"], vec![64, 1, 1], vec![64]);
    b.tensors.insert("fc.weight".into(), Tensor { shape: vec![10, 64], data: synthetic(777, 640) });
    b.tensors.insert("fc.bias".into(), Tensor { shape: vec![10], data: synthetic(778, 10) });
    let fc = LayerKind::Dense {
        in_features: 64,
        out_features: 10,
        weight: "fc.weight".into(),
        bias: Some("fc.bias".into()),
    };
    b.push("fc", fc, &["flatten"], vec![64], vec![10]);
    let desc = ModelDesc {
        name: format!("resnet20_{in_channels}ch_synthetic"),
        description: "ResNet-20 (CIFAR form) with synthetic weights, for planning".into(),
        input: InputDesc {
            shape: vec![in_channels, 32, 32],
            dtype: "uint8".into(),
            scale: 1.0 / 255.0,
            offset: 0.0,
            layout: format!("{in_channels}x32x32"),
        },
        classes: 10,
        layers: b.layers,
        weights: "synthetic.safetensors".into(),
        test_set: None,
    };
    Model::from_tensors(desc, b.tensors)
}

/// A reduced ResNet on 8×8 single-channel images, deeper than one bootstrap's worth of levels
/// at small N: a 4-channel stem, a basic block, a strided block (4 → 8 channels) with a 1×1
/// shortcut, average pooling and a dense 8 → 10 layer, with the activation 0.05 + 0.5x + 0.1x²
/// after every convolution and add. Weights are deterministic (uniform, scaled by the fan-in)
/// and every layer's range is recorded from the reference pass over eight inputs, as the
/// trainer records them: the network tests and small-N demos of bootstrapped inference use.
pub fn reduced_resnet() -> Result<Model> {
    let activation = Activation::Poly { coeffs: vec![0.05, 0.5, 0.1] };
    let mut b = Builder { layers: Vec::new(), tensors: BTreeMap::new(), activation };
    b.conv("conv0", "input", 1, 4, 3, 1, 8);
    b.act("act0", "conv0", &[4, 8, 8]);
    b.conv("b1c1", "act0", 4, 4, 3, 1, 8);
    b.act("b1a1", "b1c1", &[4, 8, 8]);
    b.conv("b1c2", "b1a1", 4, 4, 3, 1, 8);
    b.push("b1add", LayerKind::Add, &["b1c2", "act0"], vec![4, 8, 8], vec![4, 8, 8]);
    b.act("b1a2", "b1add", &[4, 8, 8]);
    b.conv("b2c1", "b1a2", 4, 8, 3, 2, 8);
    b.act("b2a1", "b2c1", &[8, 4, 4]);
    b.conv("b2c2", "b2a1", 8, 8, 3, 1, 4);
    b.conv("b2sc", "b1a2", 4, 8, 1, 2, 8);
    b.push("b2add", LayerKind::Add, &["b2c2", "b2sc"], vec![8, 4, 4], vec![8, 4, 4]);
    b.act("b2a2", "b2add", &[8, 4, 4]);
    let pool = LayerKind::AvgPool { kernel: [4, 4], stride: [4, 4], padding: [0; 4] };
    b.push("pool", pool, &["b2a2"], vec![8, 4, 4], vec![8, 1, 1]);
    b.push("flat", LayerKind::Flatten, &["pool"], vec![8, 1, 1], vec![8]);
    let fc = LayerKind::Dense {
        in_features: 8,
        out_features: 10,
        weight: "fc.weight".into(),
        bias: Some("fc.bias".into()),
    };
    b.push("fc", fc, &["flat"], vec![8], vec![10]);
    let shapes: [(&str, Vec<usize>); 7] = [
        ("conv0", vec![4, 1, 3, 3]),
        ("b1c1", vec![4, 4, 3, 3]),
        ("b1c2", vec![4, 4, 3, 3]),
        ("b2c1", vec![8, 4, 3, 3]),
        ("b2c2", vec![8, 8, 3, 3]),
        ("b2sc", vec![8, 4, 1, 1]),
        ("fc", vec![10, 8]),
    ];
    // Weights scaled by the fan-in keep every layer's values moderate, so the recorded ranges
    // leave the encrypted run its precision.
    let mut tensors = BTreeMap::new();
    for (i, (name, shape)) in shapes.iter().enumerate() {
        let fan_in: usize = shape[1..].iter().product();
        let scale = 1.2 / (fan_in as f64).sqrt();
        let w = uniform(i as u64 + 1, shape.iter().product()).into_iter().map(|v| v * scale);
        let w = Tensor { shape: shape.clone(), data: w.collect() };
        tensors.insert(format!("{name}.weight"), w);
        let bias = uniform(i as u64 + 50, shape[0]).into_iter().map(|v| 0.1 * v).collect();
        tensors.insert(format!("{name}.bias"), Tensor { shape: vec![shape[0]], data: bias });
    }
    let mut desc = ModelDesc {
        name: "reduced_resnet".into(),
        description: "a reduced ResNet (two basic blocks) with deterministic weights".into(),
        input: InputDesc {
            shape: vec![1, 8, 8],
            dtype: "uint8".into(),
            scale: 1.0 / 255.0,
            offset: 0.0,
            layout: "8x8".into(),
        },
        classes: 10,
        layers: b.layers,
        weights: "reduced_resnet.safetensors".into(),
        test_set: None,
    };
    let m = Model::from_tensors(desc.clone(), tensors.clone())?;
    let mut ranges = vec![0.0f64; desc.layers.len()];
    for s in 0..8 {
        let x: Vec<f64> = uniform(100 + s, 64).into_iter().map(|v| 0.5 + 0.5 * v).collect();
        for (r, y) in ranges.iter_mut().zip(m.forward_all(&x)?) {
            *r = y.iter().fold(*r, |a, v| a.max(v.abs()));
        }
    }
    for (l, r) in desc.layers.iter_mut().zip(ranges) {
        l.max_abs = Some(MaxAbs { train: r, test: r });
    }
    Model::from_tensors(desc, tensors)
}
