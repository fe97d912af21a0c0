//! Architectures built in code, with deterministic synthetic weights: what plan mode compiles
//! when it needs a network's exact op sequence (which depends on shapes, not on weight values)
//! but has no trained weights for it, e.g. ResNet-20 on 3-channel CIFAR images.

use std::collections::BTreeMap;

use super::desc::{Activation, InputDesc, LayerKind, ModelDesc};
use super::synthetic::{synthetic, Builder};
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
