//! Slot-linear transforms on ciphertexts by baby-step giant-step over pre-rotated diagonals:
//! `M x = Σ_G R^G ( Σ_J diag(R^-G u_{G+J}) · R^J x )`, the baby rotations R^J x sharing one
//! hoisted decomposition of x, one key switch per giant step.

use std::collections::BTreeMap;

use super::super::ciphertext::Ciphertext;
use super::super::encoder::Encoder;
use super::super::evaluator::Evaluator;
use super::super::fft::Complex64;
use super::super::keyswitch::Scratch;
use super::dft::DiagonalMap;
use super::key_source::KeySource;
use crate::error::Error;

/// One giant step: its rotation and the (baby rotation, pre-rotated diagonal) terms under it.
#[derive(Debug, Clone)]
struct Giant {
    step: i64,
    terms: Vec<(i64, Vec<Complex64>)>,
}

/// A slot-linear map laid out for baby-step giant-step evaluation.
#[derive(Debug, Clone)]
pub(crate) struct LinearTransform {
    giants: Vec<Giant>,
    /// Baby rotation steps in use (0 included when used).
    babies: Vec<i64>,
}

impl LinearTransform {
    /// Lays out `map` with about √(offsets) baby steps.
    pub(crate) fn new(map: &DiagonalMap) -> Self {
        let n = map.slots;
        let signed = |d: usize| if d > n / 2 { d as i64 - n as i64 } else { d as i64 };
        // Every offset is a multiple of the stride (the smallest merged butterfly half-length).
        let stride =
            map.diags.keys().filter(|&&d| d != 0).map(|&d| 1i64 << d.trailing_zeros()).min();
        let stride = stride.unwrap_or(1).max(1);
        let ks: Vec<i64> = map.diags.keys().map(|&d| signed(d) / stride).collect();
        let span = (ks.iter().max().unwrap_or(&0) - ks.iter().min().unwrap_or(&0) + 1) as usize;
        let baby = ((span as f64).sqrt().ceil() as usize).next_power_of_two().max(1) as i64;
        let mut giants: BTreeMap<i64, Vec<(i64, Vec<Complex64>)>> = BTreeMap::new();
        for (&d, u) in &map.diags {
            let k = signed(d) / stride;
            let j = k.rem_euclid(baby);
            let g = (k - j) * stride;
            // diag(u)·R^(G+J) = R^G · diag(R^-G u) · R^J.
            let shift = g.rem_euclid(n as i64) as usize;
            let rotated: Vec<Complex64> = (0..n).map(|i| u[(i + n - shift) % n]).collect();
            giants.entry(g).or_default().push((j * stride, rotated));
        }
        let mut babies: Vec<i64> =
            giants.values().flat_map(|t| t.iter().map(|(j, _)| *j)).collect();
        babies.sort_unstable();
        babies.dedup();
        let giants = giants.into_iter().map(|(step, terms)| Giant { step, terms }).collect();
        Self { giants, babies }
    }

    /// Every rotation step the transform needs a key for.
    pub(crate) fn steps(&self) -> Vec<i64> {
        let mut s: Vec<i64> = self.babies.iter().copied().filter(|&j| j != 0).collect();
        s.extend(self.giants.iter().map(|g| g.step).filter(|&g| g != 0));
        s.sort_unstable();
        s.dedup();
        s
    }

    /// The rotation steps of one application, in the order [`Self::apply`] uses their keys.
    pub(crate) fn steps_in_order(&self) -> Vec<i64> {
        let babies = self.babies.iter().copied().filter(|&j| j != 0);
        babies.chain(self.giants.iter().map(|g| g.step).filter(|&g| g != 0)).collect()
    }

    /// Number of key switches one application costs.
    pub(crate) fn key_switches(&self) -> usize {
        self.babies.iter().filter(|&&j| j != 0).count()
            + self.giants.iter().filter(|g| g.step != 0).count()
    }

    /// `M x` on a ciphertext, consuming one level; the result has scale `out_scale` (the
    /// diagonals are encoded at q_level · out_scale / scale(x), so the rescale lands on it).
    pub(crate) fn apply<K: KeySource, C: AsRef<[u64]>>(
        &self,
        eval: &Evaluator,
        enc: &Encoder,
        x: &Ciphertext<C>,
        keys: &K,
        scratch: &mut Scratch,
        out_scale: f64,
    ) -> std::result::Result<Ciphertext, K::Error> {
        let ctx = eval.context();
        let level = x.level();
        if level == 0 {
            return Err(Error::LevelExhausted { level: 0, needed: 1 }.into());
        }
        let q = ctx.prime(level).q as f64;
        let pt_scale = q * out_scale / x.scale();
        let key = |step: i64| {
            let g = ctx.galois_element_for_step(step);
            keys.galois(g)
        };
        let hoisted = eval.hoist(x, scratch)?;
        let mut rotated: BTreeMap<i64, Ciphertext> = BTreeMap::new();
        for &j in &self.babies {
            let ct = if j == 0 {
                x.to_owned_ct()
            } else {
                eval.rotate_hoisted(&hoisted, j, &key(j)?, scratch)?
            };
            rotated.insert(j, ct);
        }
        drop(hoisted);
        let mut acc: Option<Ciphertext> = None;
        for giant in &self.giants {
            let mut inner: Option<Ciphertext> = None;
            for (j, diag) in &giant.terms {
                let pt = enc.encode(diag, level, pt_scale)?;
                let baby = rotated.get(j).ok_or(Error::MissingObject {
                    id: 0,
                    reason: "baby-step rotation of a linear transform",
                })?;
                match inner.as_mut() {
                    None => inner = Some(eval.mul_plain(baby, &pt)?),
                    Some(acc) => {
                        let t = eval.mul_plain(baby, &pt)?;
                        eval.add_assign(acc, &t)?;
                    }
                }
            }
            let Some(mut inner) = inner else { continue };
            if giant.step != 0 {
                inner = eval.rotate(&inner, giant.step, &key(giant.step)?, scratch)?;
            }
            match acc.as_mut() {
                None => acc = Some(inner),
                Some(a) => eval.add_assign(a, &inner)?,
            }
        }
        let acc = acc.ok_or(Error::InvalidParameter {
            name: "linear transform",
            reason: "a transform without diagonals".into(),
        })?;
        let mut out = eval.rescale(&acc)?;
        out.set_scale(out_scale);
        Ok(out)
    }
}
