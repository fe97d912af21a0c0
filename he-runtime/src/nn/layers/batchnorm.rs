//! Batch normalisation folded into the preceding convolution or dense layer, so it costs no
//! level and no op: y = γ·(z − μ)/√(σ² + ε) + β with z = W·x + b becomes
//! W' = W·γ/√(σ² + ε) (per output channel) and b' = (b − μ)·γ/√(σ² + ε) + β.

use super::conv::Conv2d;
use super::dense::Dense;
use crate::error::{Error, Result};

/// Batch-norm parameters per channel (inference form).
#[derive(Debug, Clone)]
pub struct BatchNorm {
    /// Layer name.
    pub name: String,
    /// Scale γ.
    pub gamma: Vec<f64>,
    /// Shift β.
    pub beta: Vec<f64>,
    /// Running mean μ.
    pub mean: Vec<f64>,
    /// Running variance σ².
    pub var: Vec<f64>,
    /// ε added to the variance.
    pub eps: f64,
}

impl BatchNorm {
    /// Batch-norm parameters; all vectors must have one entry per channel and σ² + ε > 0.
    pub fn new(
        name: &str,
        gamma: Vec<f64>,
        beta: Vec<f64>,
        mean: Vec<f64>,
        var: Vec<f64>,
        eps: f64,
    ) -> Result<Self> {
        let n = gamma.len();
        if beta.len() != n || mean.len() != n || var.len() != n {
            return Err(Error::LayerShape {
                layer: name.into(),
                reason: format!(
                    "γ, β, μ, σ² lengths {n}, {}, {}, {} differ",
                    beta.len(),
                    mean.len(),
                    var.len()
                ),
            });
        }
        if let Some(v) =
            var.iter().find(|&&v| (v + eps).partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater))
        {
            return Err(Error::LayerShape {
                layer: name.into(),
                reason: format!("variance {v} + ε {eps} is not positive"),
            });
        }
        Ok(Self { name: name.into(), gamma, beta, mean, var, eps })
    }

    /// Per-channel (multiplier, offset) with y = multiplier·z + offset.
    pub fn affine(&self) -> Vec<(f64, f64)> {
        (0..self.gamma.len())
            .map(|c| {
                let m = self.gamma[c] / (self.var[c] + self.eps).sqrt();
                (m, self.beta[c] - self.mean[c] * m)
            })
            .collect()
    }

    /// Applies the normalisation in f64 to `[C][len]` values.
    pub fn reference(&self, z: &[f64], per_channel: usize) -> Vec<f64> {
        let a = self.affine();
        z.iter()
            .enumerate()
            .map(|(i, &v)| a[i / per_channel].0 * v + a[i / per_channel].1)
            .collect()
    }

    fn check(&self, layer: &str, channels: usize) -> Result<()> {
        let n = self.gamma.len();
        if self.beta.len() != n || self.mean.len() != n || self.var.len() != n {
            return Err(Error::LayerShape {
                layer: self.name.clone(),
                reason: "γ, β, μ, σ² lengths differ".into(),
            });
        }
        if self.gamma.len() != channels {
            return Err(Error::LayerShape {
                layer: layer.into(),
                reason: format!(
                    "batch norm `{}` has {} channels, layer has {channels}",
                    self.name,
                    self.gamma.len()
                ),
            });
        }
        Ok(())
    }

    /// Folds the normalisation into a convolution's weights and bias.
    pub fn fold_into_conv(&self, conv: &mut Conv2d) -> Result<()> {
        conv.check()?;
        self.check(&conv.name, conv.out_channels)?;
        let per_out = conv.in_channels * conv.kernel * conv.kernel;
        let bias = conv.bias.get_or_insert_with(|| vec![0.0; conv.out_channels]);
        for (o, (m, off)) in self.affine().into_iter().enumerate() {
            conv.weights[o * per_out..(o + 1) * per_out].iter_mut().for_each(|w| *w *= m);
            bias[o] = bias[o] * m + off;
        }
        Ok(())
    }

    /// Folds the normalisation into a dense layer's weights and bias (one channel per output).
    pub fn fold_into_dense(&self, dense: &mut Dense) -> Result<()> {
        dense.check()?;
        self.check(&dense.name, dense.out_features)?;
        let n = dense.in_features;
        let bias = dense.bias.get_or_insert_with(|| vec![0.0; dense.out_features]);
        for (o, (m, off)) in self.affine().into_iter().enumerate() {
            dense.weights[o * n..(o + 1) * n].iter_mut().for_each(|w| *w *= m);
            bias[o] = bias[o] * m + off;
        }
        Ok(())
    }
}
