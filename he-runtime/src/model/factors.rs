//! Value factors for bootstrapped models: every value (the input and each layer's output) is
//! carried encrypted as `f·v` for a per-value factor `f`, chosen so that `|f·v| ≤ 1/margin`
//! over the recorded activation ranges. Bootstrapping's EvalMod is accurate only for slots in
//! [−1, 1], so this is what lets any value be refreshed where its levels run out.
//!
//! The factors cost no level: a linear layer takes `f_out/f_in` into its weights and `f_out`
//! into its bias; an activation p becomes `u ↦ f_out·p(u/f_in)` (for a monomial polynomial the
//! coefficients scale by `f_out/f_in^k`, for a Chebyshev series the interval scales by
//! `f_in` and the coefficients by `f_out`). Values joined by a residual add (and the input
//! and output of a flatten or pooling, which have no weights to absorb a change) must share one
//! factor, so factors are chosen per class of joined values, from the largest range in the
//! class. The client multiplies its input by the input factor, and divides the logits by the
//! output factor.

use std::collections::HashMap;

use super::desc::{Activation, LayerKind};
use super::validated::Model;
use crate::error::{Error, Result};

/// The factor of every value of a model (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct ValueFactors {
    by_value: HashMap<String, f64>,
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

impl ValueFactors {
    /// Factors for `model` such that every recorded value range, times `margin`, maps into
    /// [−1, 1]. A typed error names a layer without a recorded range (`max_abs`).
    pub fn new(model: &Model, margin: f64) -> Result<Self> {
        if !(margin.is_finite() && margin >= 1.0) {
            return Err(Error::InvalidParameter {
                name: "margin",
                reason: format!("{margin} (must be at least 1)"),
            });
        }
        let layers = model.layers();
        let mut names: Vec<&str> = vec!["input"];
        names.extend(layers.iter().map(|l| l.name.as_str()));
        let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut bound = vec![input_bound(model); names.len()];
        for (i, l) in layers.iter().enumerate() {
            let m = l.max_abs.as_ref().ok_or_else(|| Error::ModelLayer {
                layer: l.name.clone(),
                reason: "no recorded output range (max_abs): a bootstrapped run scales every \
                         value into [-1, 1] by it"
                    .into(),
            })?;
            bound[i + 1] = m.train.max(m.test).max(f64::MIN_POSITIVE);
        }
        let mut parent: Vec<usize> = (0..names.len()).collect();
        for (i, l) in layers.iter().enumerate() {
            let joined =
                matches!(l.kind, LayerKind::Add | LayerKind::Flatten | LayerKind::AvgPool { .. });
            if !joined {
                continue;
            }
            for input in &l.inputs {
                let j = *index.get(input.as_str()).ok_or_else(|| Error::ModelLayer {
                    layer: l.name.clone(),
                    reason: format!("reads unknown value {input}"),
                })?;
                let (a, b) = (find(&mut parent, j), find(&mut parent, i + 1));
                parent[a] = b;
            }
        }
        let mut class_bound: HashMap<usize, f64> = HashMap::new();
        for (i, &b) in bound.iter().enumerate() {
            let root = find(&mut parent, i);
            let e = class_bound.entry(root).or_insert(0.0);
            *e = e.max(b);
        }
        let mut by_value = HashMap::new();
        for (i, n) in names.iter().enumerate() {
            let root = find(&mut parent, i);
            by_value.insert((*n).to_owned(), 1.0 / (margin * class_bound[&root]));
        }
        Ok(Self { by_value })
    }

    /// The factor of value `name` (`"input"` or a layer's name).
    pub fn of(&self, name: &str) -> Result<f64> {
        self.by_value.get(name).copied().ok_or_else(|| Error::ModelLayer {
            layer: name.to_owned(),
            reason: "no value of this name".into(),
        })
    }
}

/// The largest magnitude of a prepared input (`raw·scale + offset` over raw bytes 0..=255).
fn input_bound(model: &Model) -> f64 {
    let i = &model.desc().input;
    let ends = [i.offset, 255.0 * i.scale + i.offset];
    ends.iter().map(|v| v.abs()).fold(f64::MIN_POSITIVE, f64::max)
}

/// The activation `u ↦ f_out·p(u/f_in)` of activation `p` (see the module docs).
pub fn scaled_activation(a: &Activation, f_in: f64, f_out: f64) -> Activation {
    match a {
        Activation::Square => Activation::Poly { coeffs: vec![0.0, 0.0, f_out / (f_in * f_in)] },
        Activation::Poly { coeffs } => Activation::Poly {
            coeffs: coeffs
                .iter()
                .enumerate()
                .map(|(k, &c)| f_out * c / f_in.powi(k as i32))
                .collect(),
        },
        Activation::Chebyshev { func, range, degree, coeffs } => Activation::Chebyshev {
            func: func.clone(),
            range: [range[0] * f_in, range[1] * f_in],
            degree: *degree,
            coeffs: coeffs.iter().map(|&c| f_out * c).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_activations_compute_the_scaled_function() {
        let cases = [
            Activation::Square,
            Activation::Poly { coeffs: vec![0.3, -0.7, 0.25] },
            Activation::Chebyshev {
                func: "relu".into(),
                range: [-4.0, 6.0],
                degree: 3,
                coeffs: vec![0.5, 1.0, -0.25, 0.125],
            },
        ];
        let (f_in, f_out) = (0.05, 0.2);
        for a in &cases {
            let s = scaled_activation(a, f_in, f_out);
            for x in [-3.0, -0.5, 0.0, 1.5, 4.0] {
                let want = f_out * a.eval(x);
                let got = s.eval(f_in * x);
                assert!((got - want).abs() < 1e-12 * (1.0 + want.abs()), "{a:?} at {x}");
            }
        }
    }
}
