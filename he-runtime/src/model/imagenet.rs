//! MobileNetV2 1.0 and ResNet-50 v1.5 at 224×224, built in code with synthetic weights for
//! plan mode ([`super::zoo`]), in the form the multiplexed packing compiles:
//!
//! * **Input**: the client applies a space-to-depth by 2 ([`space_to_depth`]): a 3×224×224
//!   image becomes 12 polyphase channels of 112×112 (channel 4c + 2i + j holds pixels
//!   (2r + i, 2s + j) of channel c), which fit 2^15 slots as 6 ciphertexts. The stride-2 stem
//!   is rewritten exactly as a stride-1 convolution on the polyphase channels
//!   ([`space_to_depth_kernel`]: 3×3 → 3×3, 7×7 → 5×5 with the unused taps zero).
//! * **Activations**: ReLU / ReLU6 are the given low-degree polynomial (as for ResNet-20);
//!   batch norms are folded into the convolutions' biases; ResNet-50's 3×3 stride-2 max pool
//!   is a 3×3 stride-2 average pool (padding 1, counted in the mean).
//! * Everything else is the standard architecture: MobileNetV2's inverted residuals
//!   (1×1 expansion ×6, depthwise 3×3, linear 1×1 projection, residual when the stride is 1
//!   and the widths match), ResNet-50's bottlenecks (1×1, 3×3 with the stride, 1×1 ×4, 1×1
//!   projection shortcut), global average pooling and the 1000-way dense layer.

use std::collections::BTreeMap;

use super::desc::{Activation, InputDesc, LayerKind, ModelDesc};
use super::synthetic::{synthetic, Builder};
use super::validated::Model;
use super::weights::Tensor;
use crate::error::{Error, Result};

/// The space-to-depth by 2 of a flat `[C][H][W]` image (H, W even): `[4C][H/2][W/2]` with
/// channel 4c + 2i + j holding pixels (2r + i, 2s + j) of channel c.
pub fn space_to_depth(x: &[f64], c: usize, h: usize, w: usize) -> Result<Vec<f64>> {
    if x.len() != c * h * w {
        return Err(Error::ModelInput { expected: c * h * w, found: x.len() });
    }
    if !h.is_multiple_of(2) || !w.is_multiple_of(2) {
        return Err(Error::LayerShape {
            layer: "space_to_depth".into(),
            reason: format!("{h}×{w} image: both sides must be even"),
        });
    }
    let (ho, wo) = (h / 2, w / 2);
    let mut y = vec![0.0; x.len()];
    for cc in 0..c {
        for i in 0..2 {
            for j in 0..2 {
                let ch = 4 * cc + 2 * i + j;
                for r in 0..ho {
                    for s in 0..wo {
                        y[(ch * ho + r) * wo + s] = x[(cc * h + 2 * r + i) * w + 2 * s + j];
                    }
                }
            }
        }
    }
    Ok(y)
}

/// A stride-2 k×k convolution (padding p, k = 2p + 1, weights `[out][cin][k][k]`) as the
/// equivalent stride-1 convolution on the [`space_to_depth`] of its input: returns the
/// weights `[out][4·cin][k'][k']`, k' and its padding p' = ⌈p/2⌉ (k' = 2p' + 1).
pub fn space_to_depth_kernel(
    w: &[f64],
    out: usize,
    cin: usize,
    k: usize,
    p: usize,
) -> Result<(Vec<f64>, usize, usize)> {
    if k != 2 * p + 1 || w.len() != out * cin * k * k {
        return Err(Error::LayerShape {
            layer: "stem".into(),
            reason: format!("{} weights for a {k}×{k} kernel with padding {p}", w.len()),
        });
    }
    let p2 = p.div_ceil(2);
    let k2 = 2 * p2 + 1;
    let mut v = vec![0.0; out * 4 * cin * k2 * k2];
    for o in 0..out {
        for c in 0..cin {
            for dy in 0..k {
                for dx in 0..k {
                    let (ey, ex) = (dy as isize - p as isize, dx as isize - p as isize);
                    let (i, j) = (ey.rem_euclid(2) as usize, ex.rem_euclid(2) as usize);
                    let ny = (ey.div_euclid(2) + p2 as isize) as usize;
                    let nx = (ex.div_euclid(2) + p2 as isize) as usize;
                    let ch = 4 * c + 2 * i + j;
                    v[((o * 4 * cin + ch) * k2 + ny) * k2 + nx] =
                        w[((o * cin + c) * k + dy) * k + dx];
                }
            }
        }
    }
    Ok((v, k2, p2))
}

impl Builder {
    /// A convolution with synthetic weights (`groups` 1 or depthwise) on an `hw`×`hw` input.
    #[allow(clippy::too_many_arguments)]
    fn conv_g(
        &mut self,
        name: &str,
        input: &str,
        (cin, cout): (usize, usize),
        k: usize,
        stride: usize,
        groups: usize,
        hw: usize,
    ) {
        let seed = self.tensors.len() as u64 + 1;
        let per = cin / groups;
        let n = cout * per * k * k;
        self.tensors.insert(
            format!("{name}.weight"),
            Tensor { shape: vec![cout, per, k, k], data: synthetic(seed, n) },
        );
        self.tensors.insert(
            format!("{name}.bias"),
            Tensor { shape: vec![cout], data: synthetic(seed + 1000, cout) },
        );
        let p = k / 2;
        let kind = LayerKind::Conv2d {
            in_channels: cin,
            out_channels: cout,
            kernel: [k, k],
            stride: [stride, stride],
            padding: [p; 4],
            groups,
            weight: format!("{name}.weight"),
            bias: Some(format!("{name}.bias")),
        };
        let o = (hw + 2 * p - k) / stride + 1;
        self.push(name, kind, &[input], vec![cin, hw, hw], vec![cout, o, o]);
    }

    /// The stride-2 k×k stem on the space-to-depth input of `hw`×`hw` polyphase channels (see
    /// the module docs).
    fn stem(&mut self, cout: usize, k: usize, hw: usize) -> Result<()> {
        let p = k / 2;
        let (w, k2, p2) = space_to_depth_kernel(&synthetic(1, cout * 3 * k * k), cout, 3, k, p)?;
        self.tensors
            .insert("stem.weight".into(), Tensor { shape: vec![cout, 12, k2, k2], data: w });
        self.tensors
            .insert("stem.bias".into(), Tensor { shape: vec![cout], data: synthetic(1001, cout) });
        let kind = LayerKind::Conv2d {
            in_channels: 12,
            out_channels: cout,
            kernel: [k2, k2],
            stride: [1, 1],
            padding: [p2; 4],
            groups: 1,
            weight: "stem.weight".into(),
            bias: Some("stem.bias".into()),
        };
        self.push("stem", kind, &["input"], vec![12, hw, hw], vec![cout, hw, hw]);
        Ok(())
    }

    fn add(&mut self, name: &str, a: &str, b: &str, shape: Vec<usize>) {
        self.push(name, LayerKind::Add, &[a, b], shape.clone(), shape);
    }

    /// Global average pool of `c`×`hw`×`hw`, flatten, dense `c` → `classes`.
    fn head(&mut self, input: &str, c: usize, hw: usize, classes: usize) {
        let pool = LayerKind::AvgPool { kernel: [hw, hw], stride: [hw, hw], padding: [0; 4] };
        self.push("pool", pool, &[input], vec![c, hw, hw], vec![c, 1, 1]);
        self.push("flatten", LayerKind::Flatten, &["pool"], vec![c, 1, 1], vec![c]);
        self.tensors.insert(
            "fc.weight".into(),
            Tensor { shape: vec![classes, c], data: synthetic(777, classes * c) },
        );
        self.tensors.insert(
            "fc.bias".into(),
            Tensor { shape: vec![classes], data: synthetic(778, classes) },
        );
        let fc = LayerKind::Dense {
            in_features: c,
            out_features: classes,
            weight: "fc.weight".into(),
            bias: Some("fc.bias".into()),
        };
        self.push("fc", fc, &["flatten"], vec![c], vec![classes]);
    }

    /// The model on 12×`hw`×`hw` space-to-depth inputs.
    fn finish(self, name: &str, description: &str, hw: usize, classes: usize) -> Result<Model> {
        let desc = ModelDesc {
            name: name.into(),
            description: description.into(),
            input: InputDesc {
                shape: vec![12, hw, hw],
                dtype: "float32".into(),
                scale: 1.0,
                offset: 0.0,
                layout: "space-to-depth by 2 of 3x224x224: channel 4c+2i+j = pixels (2r+i, 2s+j) \
                         of channel c"
                    .into(),
            },
            classes,
            layers: self.layers,
            weights: "synthetic.safetensors".into(),
            test_set: None,
        };
        Model::from_tensors(desc, self.tensors)
    }
}

/// MobileNetV2 1.0 at 224×224 (see the module docs) with `activation` for ReLU6.
pub fn mobilenetv2(activation: Activation) -> Result<Model> {
    let mut b = Builder { layers: Vec::new(), tensors: BTreeMap::new(), activation };
    b.stem(32, 3, 112)?;
    b.act("stem.act", "stem", &[32, 112, 112]);
    let mut prev = "stem.act".to_owned();
    let (mut c, mut hw) = (32, 112);
    let settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1)];
    let settings = settings.into_iter().chain([(6, 160, 3, 2), (6, 320, 1, 1)]);
    let mut idx = 0;
    for (t, width, n, s) in settings {
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let name = format!("block{idx}");
            let hidden = c * t;
            let mut x = prev.clone();
            if t != 1 {
                b.conv_g(&format!("{name}.expand"), &x, (c, hidden), 1, 1, 1, hw);
                b.act(&format!("{name}.act1"), &format!("{name}.expand"), &[hidden, hw, hw]);
                x = format!("{name}.act1");
            }
            let out_hw = hw / stride;
            b.conv_g(&format!("{name}.dw"), &x, (hidden, hidden), 3, stride, hidden, hw);
            b.act(&format!("{name}.act2"), &format!("{name}.dw"), &[hidden, out_hw, out_hw]);
            let proj = format!("{name}.project");
            b.conv_g(&proj, &format!("{name}.act2"), (hidden, width), 1, 1, 1, out_hw);
            prev = if stride == 1 && c == width {
                b.add(&format!("{name}.add"), &proj, &prev, vec![width, out_hw, out_hw]);
                format!("{name}.add")
            } else {
                proj
            };
            (c, hw) = (width, out_hw);
            idx += 1;
        }
    }
    b.conv_g("last", &prev, (c, 1280), 1, 1, 1, hw);
    b.act("last.act", "last", &[1280, 7, 7]);
    b.head("last.act", 1280, 7, 1000);
    b.finish(
        "mobilenetv2_224_synthetic",
        "MobileNetV2 1.0 at 224x224 (space-to-depth input, polynomial ReLU6), synthetic weights",
        112,
        1000,
    )
}

/// ResNet-50 v1.5 at 224×224 (see the module docs) with `activation` for ReLU.
pub fn resnet50(activation: Activation) -> Result<Model> {
    let mut b = Builder { layers: Vec::new(), tensors: BTreeMap::new(), activation };
    b.stem(64, 7, 112)?;
    b.act("stem.act", "stem", &[64, 112, 112]);
    let pool = LayerKind::AvgPool { kernel: [3, 3], stride: [2, 2], padding: [1; 4] };
    b.push("stem.pool", pool, &["stem.act"], vec![64, 112, 112], vec![64, 56, 56]);
    let mut prev = "stem.pool".to_owned();
    let (mut c, mut hw) = (64, 56);
    for (stage, (width, blocks)) in [(64, 3), (128, 4), (256, 6), (512, 3)].into_iter().enumerate()
    {
        for block in 0..blocks {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let n = format!("layer{}.{block}", stage + 1);
            let (out_c, out_hw) = (4 * width, hw / stride);
            b.conv_g(&format!("{n}.conv1"), &prev, (c, width), 1, 1, 1, hw);
            b.act(&format!("{n}.act1"), &format!("{n}.conv1"), &[width, hw, hw]);
            b.conv_g(&format!("{n}.conv2"), &format!("{n}.act1"), (width, width), 3, stride, 1, hw);
            b.act(&format!("{n}.act2"), &format!("{n}.conv2"), &[width, out_hw, out_hw]);
            b.conv_g(&format!("{n}.conv3"), &format!("{n}.act2"), (width, out_c), 1, 1, 1, out_hw);
            let skip = if stride != 1 || c != out_c {
                b.conv_g(&format!("{n}.shortcut"), &prev, (c, out_c), 1, stride, 1, hw);
                format!("{n}.shortcut")
            } else {
                prev.clone()
            };
            let shape = vec![out_c, out_hw, out_hw];
            b.add(&format!("{n}.add"), &format!("{n}.conv3"), &skip, shape.clone());
            b.act(&format!("{n}.act3"), &format!("{n}.add"), &shape);
            prev = format!("{n}.act3");
            (c, hw) = (out_c, out_hw);
        }
    }
    b.head(&prev, 2048, 7, 1000);
    b.finish(
        "resnet50_224_synthetic",
        "ResNet-50 v1.5 at 224x224 (space-to-depth input, polynomial ReLU, 3x3 average pool \
         for the max pool), synthetic weights",
        112,
        1000,
    )
}

/// A reduced MobileNet for tests: a space-to-depth stem on 3×32×32 images (12×16×16),
/// a padded 3×3 average pool, an inverted residual with a stride-2 depthwise convolution, one
/// with a stride-1 depthwise convolution and a residual add, global pooling and a dense layer;
/// every layer's range recorded from reference passes (as a trainer records them).
#[cfg(test)]
pub(crate) fn mini_mobilenet() -> Result<Model> {
    use super::desc::MaxAbs;
    let act = Activation::Poly { coeffs: vec![0.05, 0.5, 0.1] };
    let mut b = Builder { layers: Vec::new(), tensors: BTreeMap::new(), activation: act };
    b.stem(8, 3, 16)?;
    b.act("stem.act", "stem", &[8, 16, 16]);
    let pool = LayerKind::AvgPool { kernel: [3, 3], stride: [1, 1], padding: [1; 4] };
    b.push("stem.pool", pool, &["stem.act"], vec![8, 16, 16], vec![8, 16, 16]);
    b.conv_g("b0.expand", "stem.pool", (8, 16), 1, 1, 1, 16);
    b.act("b0.act1", "b0.expand", &[16, 16, 16]);
    b.conv_g("b0.dw", "b0.act1", (16, 16), 3, 2, 16, 16);
    b.act("b0.act2", "b0.dw", &[16, 8, 8]);
    b.conv_g("b0.project", "b0.act2", (16, 8), 1, 1, 1, 8);
    b.conv_g("b1.expand", "b0.project", (8, 16), 1, 1, 1, 8);
    b.act("b1.act1", "b1.expand", &[16, 8, 8]);
    b.conv_g("b1.dw", "b1.act1", (16, 16), 3, 1, 16, 8);
    b.act("b1.act2", "b1.dw", &[16, 8, 8]);
    b.conv_g("b1.project", "b1.act2", (16, 8), 1, 1, 1, 8);
    b.add("b1.add", "b1.project", "b0.project", vec![8, 8, 8]);
    b.head("b1.add", 8, 8, 10);
    // Synthetic weights in ±[0.05, 0.5] grow the values layer by layer: shrink them by the
    // fan-in so the recorded ranges stay moderate.
    for (name, t) in b.tensors.iter_mut() {
        if name.ends_with(".weight") && t.shape.len() > 1 {
            let fan_in: usize = t.shape[1..].iter().product();
            t.data.iter_mut().for_each(|v| *v *= 1.5 / (fan_in as f64).sqrt());
        }
    }
    let m = b.finish("mini_mobilenet", "test", 16, 10)?;
    let mut desc = m.desc().clone();
    let mut ranges = vec![0.0f64; desc.layers.len()];
    for s in 0..6 {
        let x = space_to_depth(&synthetic(300 + s, 3 * 32 * 32), 3, 32, 32)?;
        for (r, y) in ranges.iter_mut().zip(m.forward_all(&x)?) {
            *r = y.iter().fold(*r, |a, v| a.max(v.abs()));
        }
    }
    for (l, r) in desc.layers.iter_mut().zip(ranges) {
        l.max_abs = Some(MaxAbs { train: r, test: r });
    }
    Model::from_tensors(desc, m.tensors().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::MuxConv;

    #[test]
    fn the_space_to_depth_stem_equals_the_strided_stem() {
        for (k, p) in [(3, 1), (7, 3)] {
            let (cin, cout, hw) = (3, 4, 12);
            let w = synthetic(5, cout * cin * k * k);
            let x = synthetic(6, cin * hw * hw);
            let strided = MuxConv::new("s", cin, cout, k, 2, p, false, w.clone(), None).unwrap();
            let want = strided.reference(&x, hw, hw).unwrap();
            let (w2, k2, p2) = space_to_depth_kernel(&w, cout, cin, k, p).unwrap();
            let flat = MuxConv::new("f", 4 * cin, cout, k2, 1, p2, false, w2, None).unwrap();
            let got = flat.reference(&space_to_depth(&x, cin, hw, hw).unwrap(), 6, 6).unwrap();
            let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(err < 1e-12, "k = {k}: {err}");
        }
        assert!(space_to_depth(&[0.0; 9], 1, 3, 3).is_err());
        assert!(space_to_depth_kernel(&[0.0; 8], 1, 1, 3, 1).is_err());
    }

    #[test]
    fn the_imagenet_zoo_has_the_standard_shapes() {
        let act = Activation::Poly { coeffs: vec![0.0, 1.0, 0.1] };
        let m = mobilenetv2(act.clone()).unwrap();
        let dw = m
            .layers()
            .iter()
            .filter(|l| matches!(l.kind, LayerKind::Conv2d { groups, .. } if groups > 1))
            .count();
        assert_eq!(dw, 17);
        let params: usize = m.tensors().values().map(|t| t.data.len()).sum();
        // 3.50 M parameters with the batch norms folded (3.4 M weights + biases).
        assert!((3_400_000..3_600_000).contains(&params), "{params}");
        let r = resnet50(act).unwrap();
        let convs =
            r.layers().iter().filter(|l| matches!(l.kind, LayerKind::Conv2d { .. })).count();
        assert_eq!(convs, 53);
        let params: usize = r.tensors().values().map(|t| t.data.len()).sum();
        assert!((25_400_000..25_700_000).contains(&params), "{params}");
    }
}
