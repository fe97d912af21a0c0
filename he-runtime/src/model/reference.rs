//! The float64 forward pass of a validated model: the plaintext twin every encrypted run is
//! compared with (it reproduces the reference logits stored in the test sets).

use std::collections::HashMap;

use super::{LayerKind, Model};
use crate::error::{Error, Result};

impl Model {
    /// Runs the network on one prepared input (see [`Model::prepare_input`]) and returns the
    /// output of every layer, in layer order (the last one is the logits).
    pub fn forward_all(&self, x: &[f64]) -> Result<Vec<Vec<f64>>> {
        let want: usize = self.desc().input.shape.iter().product();
        if x.len() != want {
            return Err(Error::ModelInput { expected: want, found: x.len() });
        }
        let mut values: HashMap<&str, usize> = HashMap::new();
        let mut outs: Vec<Vec<f64>> = Vec::with_capacity(self.layers().len());
        for (li, l) in self.layers().iter().enumerate() {
            let get = |name: &str| -> &[f64] {
                match values.get(name) {
                    Some(&i) => &outs[i],
                    None => x,
                }
            };
            let a = get(&l.inputs[0]);
            let y = match &l.kind {
                LayerKind::Dense { in_features, out_features, weight, bias } => {
                    let w = &self.tensor(weight)?.data;
                    let b = match bias {
                        Some(b) => Some(&self.tensor(b)?.data),
                        None => None,
                    };
                    (0..*out_features)
                        .map(|i| {
                            let row = &w[i * in_features..(i + 1) * in_features];
                            let dot: f64 = row.iter().zip(a).map(|(w, v)| w * v).sum();
                            dot + b.map_or(0.0, |b| b[i])
                        })
                        .collect()
                }
                LayerKind::Conv2d { kernel, stride, padding, groups, weight, bias, .. } => {
                    let w = &self.tensor(weight)?.data;
                    let b = match bias {
                        Some(b) => Some(&self.tensor(b)?.data),
                        None => None,
                    };
                    conv2d(
                        a,
                        &l.in_shape,
                        &l.out_shape,
                        w,
                        b.map(|v| v.as_slice()),
                        *kernel,
                        *stride,
                        *padding,
                        *groups,
                    )
                }
                LayerKind::Activation(act) => a.iter().map(|&v| act.eval(v)).collect(),
                LayerKind::AvgPool { kernel, stride, padding } => {
                    avgpool(a, &l.in_shape, &l.out_shape, *kernel, *stride, *padding)
                }
                LayerKind::Flatten => a.to_vec(),
                LayerKind::Add => {
                    let b = get(&l.inputs[1]);
                    a.iter().zip(b).map(|(x, y)| x + y).collect()
                }
            };
            outs.push(y);
            values.insert(l.name.as_str(), li);
        }
        Ok(outs)
    }

    /// The logits for one prepared input.
    pub fn forward(&self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(self.forward_all(x)?.pop().unwrap_or_default())
    }
}

/// PyTorch-style grouped cross-correlation with zero padding (top, bottom, left, right).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d(
    x: &[f64],
    in_shape: &[usize],
    out_shape: &[usize],
    w: &[f64],
    bias: Option<&[f64]>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 4],
    groups: usize,
) -> Vec<f64> {
    let (c, h, wd) = (in_shape[0], in_shape[1], in_shape[2]);
    let (oc, oh, ow) = (out_shape[0], out_shape[1], out_shape[2]);
    let (cin_g, cout_g) = (c / groups, oc / groups);
    let mut y = vec![0.0; oc * oh * ow];
    for o in 0..oc {
        let g = o / cout_g;
        for r in 0..oh {
            for s in 0..ow {
                let mut acc = bias.map_or(0.0, |b| b[o]);
                for ci in 0..cin_g {
                    let cc = g * cin_g + ci;
                    for ky in 0..kernel[0] {
                        let yy = (r * stride[0] + ky) as isize - padding[0] as isize;
                        if yy < 0 || yy >= h as isize {
                            continue;
                        }
                        for kx in 0..kernel[1] {
                            let xx = (s * stride[1] + kx) as isize - padding[2] as isize;
                            if xx < 0 || xx >= wd as isize {
                                continue;
                            }
                            let wi = ((o * cin_g + ci) * kernel[0] + ky) * kernel[1] + kx;
                            acc += w[wi] * x[(cc * h + yy as usize) * wd + xx as usize];
                        }
                    }
                }
                y[(o * oh + r) * ow + s] = acc;
            }
        }
    }
    y
}

/// Mean over each window with zero padding counted in the mean.
pub(crate) fn avgpool(
    x: &[f64],
    in_shape: &[usize],
    out_shape: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 4],
) -> Vec<f64> {
    let (c, h, wd) = (in_shape[0], in_shape[1], in_shape[2]);
    let (oh, ow) = (out_shape[1], out_shape[2]);
    let inv = 1.0 / (kernel[0] * kernel[1]) as f64;
    let mut y = vec![0.0; c * oh * ow];
    for cc in 0..c {
        for r in 0..oh {
            for s in 0..ow {
                let mut acc = 0.0;
                for ky in 0..kernel[0] {
                    let yy = (r * stride[0] + ky) as isize - padding[0] as isize;
                    for kx in 0..kernel[1] {
                        let xx = (s * stride[1] + kx) as isize - padding[2] as isize;
                        if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < wd {
                            acc += x[(cc * h + yy as usize) * wd + xx as usize];
                        }
                    }
                }
                y[(cc * oh + r) * ow + s] = acc * inv;
            }
        }
    }
    y
}
