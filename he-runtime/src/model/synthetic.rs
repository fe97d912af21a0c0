//! The builder of the code-defined architectures ([`super::zoo`], [`super::imagenet`]): layers
//! with their shapes, and deterministic synthetic weights.

use std::collections::BTreeMap;

use super::desc::{Activation, Layer, LayerKind, MaxAbs};
use super::weights::Tensor;

/// Non-zero pseudo-random weights in ±[0.05, 0.5] (a zero weight would drop a term and change
/// the op sequence).
pub(super) fn synthetic(seed: u64, n: usize) -> Vec<f64> {
    xorshift(seed)
        .take(n)
        .map(|s| {
            let m = 0.05 + 0.45 * unit(s);
            if s & 1 == 0 {
                m
            } else {
                -m
            }
        })
        .collect()
}

/// A xorshift64 stream, deterministic per seed (test data and synthetic weights, not security).
fn xorshift(seed: u64) -> impl Iterator<Item = u64> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    std::iter::repeat_with(move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    })
}

/// The top 53 bits of `s` as a value in [0, 1).
fn unit(s: u64) -> f64 {
    (s >> 11) as f64 / (1u64 << 53) as f64
}

/// Pseudo-random values uniform in [−1, 1) (xorshift; deterministic per seed).
pub(crate) fn uniform(seed: u64, n: usize) -> Vec<f64> {
    xorshift(seed).take(n).map(|s| unit(s) * 2.0 - 1.0).collect()
}

pub(super) struct Builder {
    pub(super) layers: Vec<Layer>,
    pub(super) tensors: BTreeMap<String, Tensor>,
    pub(super) activation: Activation,
}

impl Builder {
    pub(super) fn push(
        &mut self,
        name: &str,
        kind: LayerKind,
        inputs: &[&str],
        ins: Vec<usize>,
        outs: Vec<usize>,
    ) {
        self.layers.push(Layer {
            name: name.into(),
            kind,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            in_shape: ins,
            out_shape: outs,
            max_abs: Some(MaxAbs { train: 1.0, test: 1.0 }),
        });
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv(
        &mut self,
        name: &str,
        input: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        hw: usize,
    ) {
        let seed = self.tensors.len() as u64 + 1;
        let w = format!("{name}.weight");
        let b = format!("{name}.bias");
        self.tensors.insert(
            w.clone(),
            Tensor { shape: vec![cout, cin, k, k], data: synthetic(seed, cout * cin * k * k) },
        );
        self.tensors
            .insert(b.clone(), Tensor { shape: vec![cout], data: synthetic(seed + 1000, cout) });
        let p = k / 2;
        let kind = LayerKind::Conv2d {
            in_channels: cin,
            out_channels: cout,
            kernel: [k, k],
            stride: [stride, stride],
            padding: [p; 4],
            groups: 1,
            weight: w,
            bias: Some(b),
        };
        self.push(name, kind, &[input], vec![cin, hw, hw], vec![cout, hw / stride, hw / stride]);
    }

    pub(super) fn act(&mut self, name: &str, input: &str, shape: &[usize]) {
        let kind = LayerKind::Activation(self.activation.clone());
        self.push(name, kind, &[input], shape.to_vec(), shape.to_vec());
    }
}
