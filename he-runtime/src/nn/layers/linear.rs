//! The baby-step giant-step engine shared by the dense and convolution layers.
//!
//! A linear map on a layout with period n is written as Σ_t d_t ⊙ rot(x, g_t + b_t) with
//! plaintext "diagonals" d_t (period n). Grouping the terms by giant step g:
//! `Σ_g rot( Σ_b rot(d_{g,b}, −g) ⊙ rot(x, b), g )` — the baby rotations rot(x, b) are computed
//! once and hoisted (one decomposition of x), each giant rotation is one key switch, and the
//! pre-rotated diagonals rot(d, −g) are the weight plaintexts. Keys: one per distinct non-zero
//! baby step plus one per distinct non-zero giant step. A tensor split over several
//! ciphertexts contributes terms from each; their products are summed per giant step before
//! the one giant rotation.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::nn::builder::ProgramBuilder;
use crate::nn::program::{ObjId, PlainSource};

/// A sparse diagonal: (slot within the period, value) pairs.
pub(crate) type SparseDiag = Vec<(usize, f64)>;

/// Produces a diagonal on demand, so a full-size plan never materialises its weights.
pub(crate) type DiagFn = Arc<dyn Fn() -> SparseDiag + Send + Sync>;

/// One term of a BSGS linear map on input ciphertext `input`: rotation = giant + baby,
/// plaintext = `diag()` (period n).
#[derive(Clone)]
pub(crate) struct Term {
    pub input: usize,
    pub giant: i64,
    pub baby: i64,
    pub diag: DiagFn,
}

impl Term {
    /// A term whose diagonal is already computed.
    pub fn fixed(input: usize, giant: i64, baby: i64, diag: SparseDiag) -> Self {
        let d = Arc::new(diag);
        Self { input, giant, baby, diag: Arc::new(move || d.as_ref().clone()) }
    }
}

/// The period-n vector `diag` rotated right by `giant`, repeated over `slots`.
fn expand(diag: &SparseDiag, giant: i64, n: usize, slots: usize) -> Vec<f64> {
    let mut one = vec![0.0; n];
    for &(j, v) in diag {
        one[(j as i64 + giant).rem_euclid(n as i64) as usize] += v;
    }
    one.iter().copied().cycle().take(slots).collect()
}

/// Baby-step rotations of each input, keyed by (input, step): one hoisted decomposition per
/// input ciphertext, shared by every output that uses it.
pub(crate) type Babies = BTreeMap<(usize, i64), ObjId>;

/// Emits the hoisted baby rotations the `terms` need.
pub(crate) fn babies(b: &mut ProgramBuilder, inputs: &[ObjId], terms: &[Term]) -> Result<Babies> {
    let mut out = Babies::new();
    for (i, &x) in inputs.iter().enumerate() {
        let mut steps: Vec<i64> = terms.iter().filter(|t| t.input == i).map(|t| t.baby).collect();
        steps.sort_unstable();
        steps.dedup();
        if steps.is_empty() {
            continue;
        }
        let rotated = b.rotate_hoisted(x, &steps)?;
        out.extend(steps.into_iter().zip(rotated).map(|(s, r)| ((i, s), r)));
    }
    Ok(out)
}

/// Emits Σ_t d_t ⊙ rot(x_t, g_t + b_t) with weights encoded at `pt_scale`, not yet rescaled,
/// from precomputed baby rotations. Returns None when there are no terms.
pub(crate) fn bsgs(
    b: &mut ProgramBuilder,
    babies: &Babies,
    n: usize,
    terms: Vec<Term>,
    pt_scale: f64,
) -> Result<Option<ObjId>> {
    let slots = b.slots();
    let mut by_giant: BTreeMap<i64, Vec<Term>> = BTreeMap::new();
    for t in terms {
        by_giant.entry(t.giant).or_default().push(t);
    }
    let mut outer = Vec::new();
    for (giant, ts) in by_giant {
        let mut inner = Vec::with_capacity(ts.len());
        for t in ts {
            let diag = Arc::clone(&t.diag);
            let src = PlainSource::new(move || expand(&diag(), giant, n, slots));
            let x = babies.get(&(t.input, t.baby)).copied().ok_or(Error::MissingObject {
                id: u32::MAX,
                reason: "baby rotation not prepared",
            })?;
            inner.push(b.mul_values(x, src, pt_scale)?);
        }
        if let Some(s) = b.sum(&inner)? {
            outer.push(b.rotate(s, giant)?);
        }
    }
    b.sum(&outer)
}
