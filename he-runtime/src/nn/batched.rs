//! Batch-major packing (the CryptoNets layout): slot b of every ciphertext belongs to sample b,
//! and every tensor element is its own ciphertext. Dense and convolution layers become sums of
//! constant products — no rotation and no Galois key — and activations apply per element, so a
//! batch of N/2 samples costs exactly what one sample costs: the throughput layout, where the
//! slot-packed [`crate::nn::layout`] is the latency layout.
//!
//! Each output element is accumulated one product at a time (product, add, drop the product), so
//! at most three scratch ciphertexts per output are alive, then rescaled once; weights are
//! constants encoded at q_level·out_scale/in_scale (no plaintext objects).

use crate::ckks::Params;
use crate::error::{Error, Result};
use crate::nn::builder::ProgramBuilder;
use crate::nn::layers::{AvgPool2d, Conv2d, Dense, Residual};
use crate::nn::model::{ct_name, layer_output_scale, Layer, Model, INPUT, OUTPUT};
use crate::nn::program::{ObjId, Program};

/// A batch-major tensor: one ciphertext per element (flat C·H·W order), shape (C, H, W).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchTensor {
    /// One ciphertext per element.
    pub cts: Vec<ObjId>,
    /// (channels, height, width).
    pub shape: (usize, usize, usize),
}

/// Σ w·x over `terms` (same level and scale) + `bias`, at `out_scale`, one level lower.
fn lin_comb(
    b: &mut ProgramBuilder,
    layer: &str,
    terms: &[(ObjId, f64)],
    bias: f64,
    out_scale: f64,
) -> Result<ObjId> {
    let (x0, _) = *terms
        .first()
        .ok_or(Error::LayerShape { layer: layer.into(), reason: "output with no input".into() })?;
    let level = b.level(x0)?;
    if level == 0 {
        return Err(Error::DepthExceeded { layer: layer.into(), needed: 1, available: 0 });
    }
    let pt_scale = b.prime(level)? * out_scale / b.scale(x0)?;
    let mut acc: Option<ObjId> = None;
    for &(x, w) in terms.iter().filter(|t| t.1 != 0.0) {
        let p = b.mul_const(x, w, pt_scale)?;
        acc = Some(match acc {
            Some(a) => b.add(a, p)?,
            None => p,
        });
    }
    let acc = match acc {
        Some(a) => a,
        None => b.mul_const(x0, 0.0, pt_scale)?,
    };
    let y = b.rescale(acc)?;
    if bias != 0.0 {
        b.add_const(y, bias)
    } else {
        Ok(y)
    }
}

fn check_len(layer: &str, x: &BatchTensor, want: usize) -> Result<()> {
    if x.cts.len() == want {
        Ok(())
    } else {
        Err(Error::LayerShape {
            layer: layer.into(),
            reason: format!("input has {} elements, layer expects {want}", x.cts.len()),
        })
    }
}

impl Dense {
    /// Batch-major form: each output is a constant-weighted sum of the input ciphertexts.
    pub fn compile_batched(
        &self,
        b: &mut ProgramBuilder,
        x: &BatchTensor,
        out_scale: f64,
    ) -> Result<BatchTensor> {
        self.check()?;
        check_len(&self.name, x, self.in_features)?;
        let mut cts = Vec::with_capacity(self.out_features);
        for i in 0..self.out_features {
            let row = &self.weights[i * self.in_features..(i + 1) * self.in_features];
            let terms: Vec<(ObjId, f64)> = x.cts.iter().copied().zip(row.iter().copied()).collect();
            let bias = self.bias.as_ref().map_or(0.0, |v| v[i]);
            cts.push(lin_comb(b, &self.name, &terms, bias, out_scale)?);
        }
        Ok(BatchTensor { cts, shape: (self.out_features, 1, 1) })
    }
}

impl Conv2d {
    /// Batch-major form: each output pixel is a constant-weighted sum of its receptive field.
    pub fn compile_batched(
        &self,
        b: &mut ProgramBuilder,
        x: &BatchTensor,
        out_scale: f64,
    ) -> Result<BatchTensor> {
        let (c, h, w) = x.shape;
        if c != self.in_channels {
            return Err(Error::LayerShape {
                layer: self.name.clone(),
                reason: format!("input has {c} channels, layer expects {}", self.in_channels),
            });
        }
        check_len(&self.name, x, c * h * w)?;
        let (ho, wo) = self.output_size(h, w)?;
        let (k, t, p) = (self.kernel as isize, self.stride as isize, self.padding as isize);
        let mut cts = Vec::with_capacity(self.out_channels * ho * wo);
        for o in 0..self.out_channels {
            for r in 0..ho as isize {
                for s in 0..wo as isize {
                    let mut terms = Vec::new();
                    for ci in 0..c {
                        for dy in 0..k {
                            for dx in 0..k {
                                let (ir, is) = (r * t + dy - p, s * t + dx - p);
                                if ir < 0 || is < 0 || ir >= h as isize || is >= w as isize {
                                    continue;
                                }
                                let kidx = ((o * c + ci) * self.kernel + dy as usize) * self.kernel
                                    + dx as usize;
                                let f = (ci * h + ir as usize) * w + is as usize;
                                terms.push((x.cts[f], self.weights[kidx]));
                            }
                        }
                    }
                    let bias = self.bias.as_ref().map_or(0.0, |v| v[o]);
                    cts.push(lin_comb(b, &self.name, &terms, bias, out_scale)?);
                }
            }
        }
        Ok(BatchTensor { cts, shape: (self.out_channels, ho, wo) })
    }
}

impl AvgPool2d {
    /// Batch-major form: each output is the mean of its window.
    pub fn compile_batched(&self, b: &mut ProgramBuilder, x: &BatchTensor) -> Result<BatchTensor> {
        let (c, h, w) = x.shape;
        check_len(&self.name, x, c * h * w)?;
        let (ho, wo) = self.out_size(h, w)?;
        let inv = 1.0 / (self.kh * self.kw) as f64;
        let mut cts = Vec::with_capacity(c * ho * wo);
        for ch in 0..c {
            for r in 0..ho {
                for s in 0..wo {
                    let mut terms = Vec::new();
                    for dy in 0..self.kh {
                        for dx in 0..self.kw {
                            let f = (ch * h + r * self.stride + dy) * w + s * self.stride + dx;
                            terms.push((x.cts[f], inv));
                        }
                    }
                    let s0 = b.scale(terms[0].0)?;
                    cts.push(lin_comb(b, &self.name, &terms, 0.0, s0)?);
                }
            }
        }
        Ok(BatchTensor { cts, shape: (c, ho, wo) })
    }
}

impl Model {
    /// Compiles the model in batch-major packing: input element f is ciphertext
    /// `x.f` (slot b = sample b), outputs `y.i`; returns the program and the output shape.
    pub fn compile_batched(&self, params: &Params) -> Result<(Program, (usize, usize, usize))> {
        let mut b = ProgramBuilder::new(params);
        let n = self.input.len();
        let cts = (0..n)
            .map(|i| b.input(&ct_name(INPUT, i, n), params.max_level(), params.scale()))
            .collect::<Result<Vec<_>>>()?;
        let shape = (self.input.channels, self.input.height, self.input.width);
        let y = batched_seq(&mut b, &self.layers, BatchTensor { cts, shape })?;
        for (i, &c) in y.cts.iter().enumerate() {
            b.output(&ct_name(OUTPUT, i, y.cts.len()), c)?;
        }
        Ok((b.finish(), y.shape))
    }
}

fn batched_seq(
    b: &mut ProgramBuilder,
    layers: &[Layer],
    mut x: BatchTensor,
) -> Result<BatchTensor> {
    for (i, layer) in layers.iter().enumerate() {
        b.begin_layer(layer.name());
        let out_scale = layer_output_scale(b, layers, i, &x.cts)?;
        x = match layer {
            Layer::Dense(l) => l.compile_batched(b, &x, out_scale)?,
            Layer::Conv2d(l) => l.compile_batched(b, &x, out_scale)?,
            Layer::AvgPool(l) => l.compile_batched(b, &x)?,
            Layer::Square(l) => {
                let mut cts = Vec::with_capacity(x.cts.len());
                for &c in &x.cts {
                    if b.level(c)? == 0 {
                        return Err(Error::DepthExceeded {
                            layer: l.name.clone(),
                            needed: 1,
                            available: 0,
                        });
                    }
                    let y = b.mul_relin(c, c)?;
                    cts.push(b.rescale(y)?);
                }
                BatchTensor { cts, shape: x.shape }
            }
            Layer::Activation(l) => {
                let cts = x.cts.iter().map(|&c| l.compile_ct(b, c)).collect::<Result<Vec<_>>>()?;
                BatchTensor { cts, shape: x.shape }
            }
            Layer::Residual { name, body } => {
                let y = batched_seq(b, body, x.clone())?;
                b.begin_layer(name);
                if y.shape != x.shape {
                    return Err(Error::LayerShape {
                        layer: name.clone(),
                        reason: format!("branch shapes differ: {:?} vs {:?}", y.shape, x.shape),
                    });
                }
                let res = Residual::new(name);
                let cts = y
                    .cts
                    .iter()
                    .zip(&x.cts)
                    .map(|(&m, &s)| res.add_ct(b, m, s))
                    .collect::<Result<Vec<_>>>()?;
                BatchTensor { cts, shape: x.shape }
            }
        };
    }
    Ok(x)
}
