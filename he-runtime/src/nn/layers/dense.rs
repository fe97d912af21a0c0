//! Encrypted matrix–vector product y = W·x + b (the diagonal method with baby-step giant-step
//! and hoisted baby rotations).
//!
//! Layout: the input is any [`Layout`] with period p (so element f sits at slot pos(f) < p and
//! repeats every p slots); a tensor split over several ciphertexts contributes the diagonals
//! of each ciphertext's columns, summed before the giant rotations. Let m' = next_pow2(out) and n = max(p, m'). Scatter W into an
//! m'×n matrix M with `M[i][pos(f)] = W[i][f]`; then the "extended diagonals"
//! `d_k[j] = M[j mod m'][(j + k) mod n]`, k < m', j < n give `z = Σ_k d_k ⊙ rot(x, k)` with
//! `z[j] = Σ_c M[j mod m'][c]·x[c]` over the columns c ≡ j + k — a partial sum of row j mod m'.
//! When n > m', log2(n/m') rotate-and-add steps (by m', 2m', …, n/2) fold the n/m' partial
//! sums, leaving y repeated with period m' (the output layout is a vector with period m').
//! With n = n1·n2 diagonals grouped as k = n1·g + b the map needs n1 − 1 baby keys (hoisted)
//! and n2 − 1 giant keys: n1 + n2 − 2 for a square matrix, plus one per fold step otherwise.
//! Weights are encoded at the scale q_level, so the output keeps the input's scale after the
//! one rescale the layer costs.

use std::collections::BTreeMap;

use super::linear::{babies, bsgs, SparseDiag, Term};
use crate::error::{Error, Result};
use crate::nn::builder::ProgramBuilder;
use crate::nn::layout::single;
use crate::nn::layout::{Layout, Tensor};
use crate::nn::program::{ObjId, PlainSource};

/// A fully connected layer with `out × in` weights (row-major) and an optional bias.
#[derive(Debug, Clone)]
pub struct Dense {
    /// Layer name (used in errors and traces).
    pub name: String,
    /// Output features.
    pub out_features: usize,
    /// Input features.
    pub in_features: usize,
    /// Weights, row-major `out × in`.
    pub weights: Vec<f64>,
    /// Bias of length `out` (none: zero).
    pub bias: Option<Vec<f64>>,
}

impl Dense {
    /// Levels the layer consumes.
    pub const DEPTH: usize = 1;

    /// A dense layer; a typed error if the weight or bias length does not match the shape.
    pub fn new(
        name: &str,
        out_features: usize,
        in_features: usize,
        weights: Vec<f64>,
        bias: Option<Vec<f64>>,
    ) -> Result<Self> {
        let d = Self { name: name.into(), out_features, in_features, weights, bias };
        d.check()?;
        Ok(d)
    }

    /// Checks that the (public) fields are consistent.
    pub fn check(&self) -> Result<()> {
        let shape_err = |reason: String| Error::LayerShape { layer: self.name.clone(), reason };
        let (out_features, in_features) = (self.out_features, self.in_features);
        if out_features == 0 || in_features == 0 {
            return Err(shape_err("zero-sized layer".into()));
        }
        if self.weights.len() != out_features * in_features {
            return Err(shape_err(format!(
                "{} weights for {out_features}×{in_features}",
                self.weights.len()
            )));
        }
        if let Some(b) = &self.bias {
            if b.len() != out_features {
                return Err(shape_err(format!("{} biases for {out_features} outputs", b.len())));
            }
        }
        Ok(())
    }

    /// y = W·x + b in f64.
    pub fn reference(&self, x: &[f64]) -> Vec<f64> {
        (0..self.out_features)
            .map(|i| {
                let row = &self.weights[i * self.in_features..(i + 1) * self.in_features];
                let dot: f64 = row.iter().zip(x).map(|(w, v)| w * v).sum();
                dot + self.bias.as_ref().map_or(0.0, |b| b[i])
            })
            .collect()
    }

    /// The output layout for an input in `input`.
    pub fn output_layout(&self) -> Layout {
        Layout::vector(self.out_features)
    }

    /// (n1, n2) of the baby-step giant-step split of `m` diagonals (n1 ≥ n2, both powers of 2).
    pub fn bsgs_split(m: usize) -> (usize, usize) {
        let log = m.trailing_zeros();
        let n1 = 1usize << log.div_ceil(2);
        (n1, m / n1)
    }

    /// Emits the layer for tensor `x`; the output (one ciphertext) keeps the input's scale.
    pub fn compile_tensor(&self, b: &mut ProgramBuilder, x: &Tensor) -> Result<Tensor> {
        let s = b.scale(x.cts[0])?;
        self.compile_tensor_scaled(b, x, s)
    }

    /// As [`Dense::compile_tensor`], with the output at `out_scale` (weights encoded at
    /// q_level·out_scale/input scale), e.g. the scale a following activation prefers.
    pub fn compile_tensor_scaled(
        &self,
        b: &mut ProgramBuilder,
        x: &Tensor,
        out_scale: f64,
    ) -> Result<Tensor> {
        self.check()?;
        let slots = b.slots();
        let input = &x.layout;
        input.validate(&self.name, slots)?;
        if input.len() != self.in_features {
            return Err(Error::LayerShape {
                layer: self.name.clone(),
                reason: format!(
                    "input has {} elements, layer expects {}",
                    input.len(),
                    self.in_features
                ),
            });
        }
        let x0 = *x.cts.first().ok_or(Error::LayerShape {
            layer: self.name.clone(),
            reason: "input tensor has no ciphertext".into(),
        })?;
        let level = b.level(x0)?;
        if level < Self::DEPTH {
            return Err(Error::DepthExceeded {
                layer: self.name.clone(),
                needed: Self::DEPTH,
                available: level,
            });
        }
        let m = self.out_features.next_power_of_two();
        let n = input.period.max(m);
        if n > slots {
            return Err(Error::LayoutTooLarge { layer: self.name.clone(), needed: n, slots });
        }
        // Entry (i, c) of M lands on diagonal k = (c − i) mod m' at position j = (c − k) mod n.
        let mut diags: BTreeMap<(usize, usize), SparseDiag> = BTreeMap::new();
        for i in 0..self.out_features {
            for f in 0..self.in_features {
                let w = self.weights[i * self.in_features + f];
                if w == 0.0 {
                    continue;
                }
                let (ct, c) = input.locate(f);
                let k = (c + m - i % m) % m;
                let j = (c + n - k) % n;
                diags.entry((ct, k)).or_default().push((j, w));
            }
        }
        let (n1, _) = Self::bsgs_split(m);
        let terms: Vec<Term> = diags
            .into_iter()
            .map(|((ct, k), d)| Term::fixed(ct, (k - k % n1) as i64, (k % n1) as i64, d))
            .collect();
        let pt_scale = b.prime(level)? * out_scale / b.scale(x0)?;
        let bab = babies(b, &x.cts, &terms)?;
        let mut y = match bsgs(b, &bab, n, terms, pt_scale)? {
            Some(y) => b.rescale(y)?,
            // All-zero weights: x·0 keeps the data flow (and the level) uniform.
            None => {
                let z = b.mul_const(x0, 0.0, pt_scale)?;
                b.rescale(z)?
            }
        };
        let mut step = m;
        while step < n {
            let r = b.rotate(y, step as i64)?;
            y = b.add(y, r)?;
            step *= 2;
        }
        if let Some(bias) = &self.bias {
            let mut one = vec![0.0; m];
            one[..bias.len()].copy_from_slice(bias);
            let src = PlainSource::new(move || one.iter().copied().cycle().take(slots).collect());
            y = b.add_values(y, src)?;
        }
        Ok(Tensor::single(y, self.output_layout()))
    }

    /// Single-ciphertext form of [`Dense::compile_tensor`]: `x` in `layout`, one output
    /// ciphertext (a typed error if the output would need several).
    pub fn compile(
        &self,
        b: &mut ProgramBuilder,
        x: ObjId,
        layout: &Layout,
    ) -> Result<(ObjId, Layout)> {
        single(&self.name, self.compile_tensor(b, &Tensor::single(x, *layout))?)
    }

    /// Single-ciphertext form of [`Dense::compile_tensor_scaled`].
    pub fn compile_scaled(
        &self,
        b: &mut ProgramBuilder,
        x: ObjId,
        layout: &Layout,
        out_scale: f64,
    ) -> Result<(ObjId, Layout)> {
        single(&self.name, self.compile_tensor_scaled(b, &Tensor::single(x, *layout), out_scale)?)
    }
}
