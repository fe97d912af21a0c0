//! The baby-step giant-step engine shared by the dense and convolution layers.
//!
//! A linear map on a layout with period n is written as Σ_t d_t ⊙ rot(x, g_t + b_t) with
//! plaintext "diagonals" d_t (period n). Grouping the terms by giant step g:
//! `Σ_g rot( Σ_b rot(d_{g,b}, −g) ⊙ rot(x, b), g )` — the baby rotations rot(x, b) are computed
//! once and hoisted (one decomposition of x), each giant rotation is one key switch, and the
//! pre-rotated diagonals rot(d, −g) are the weight plaintexts. Keys: one per distinct non-zero
//! baby step plus one per distinct non-zero giant step.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::Result;
use crate::nn::builder::ProgramBuilder;
use crate::nn::program::{ObjId, PlainSource};

/// A sparse diagonal: (slot within the period, value) pairs.
pub(crate) type SparseDiag = Vec<(usize, f64)>;

/// One term of a BSGS linear map: rotation = giant + baby, plaintext = `diag` (period n).
#[derive(Debug, Clone)]
pub(crate) struct Term {
    pub giant: i64,
    pub baby: i64,
    pub diag: Arc<SparseDiag>,
}

/// The period-n vector `diag` rotated right by `giant`, repeated over `slots`.
fn expand(diag: &SparseDiag, giant: i64, n: usize, slots: usize) -> Vec<f64> {
    let mut one = vec![0.0; n];
    for &(j, v) in diag {
        one[(j as i64 + giant).rem_euclid(n as i64) as usize] += v;
    }
    one.iter().copied().cycle().take(slots).collect()
}

/// Emits Σ_t d_t ⊙ rot(x, g_t + b_t) with weights encoded at `pt_scale`, not yet rescaled.
/// Returns None when there are no terms.
pub(crate) fn bsgs(
    b: &mut ProgramBuilder,
    x: ObjId,
    n: usize,
    terms: Vec<Term>,
    pt_scale: f64,
) -> Result<Option<ObjId>> {
    let slots = b.slots();
    let mut babies: Vec<i64> = terms.iter().map(|t| t.baby).collect();
    babies.sort_unstable();
    babies.dedup();
    let rotated = b.rotate_hoisted(x, &babies)?;
    let baby_ct: BTreeMap<i64, ObjId> = babies.iter().copied().zip(rotated).collect();
    let mut by_giant: BTreeMap<i64, Vec<Term>> = BTreeMap::new();
    for t in terms {
        by_giant.entry(t.giant).or_default().push(t);
    }
    let mut outer = Vec::new();
    for (giant, ts) in by_giant {
        let mut inner = Vec::with_capacity(ts.len());
        for t in ts {
            let diag = Arc::clone(&t.diag);
            let src = PlainSource::new(move || expand(&diag, giant, n, slots));
            inner.push(b.mul_values(baby_ct[&t.baby], src, pt_scale)?);
        }
        if let Some(s) = b.sum(&inner)? {
            outer.push(b.rotate(s, giant)?);
        }
    }
    b.sum(&outer)
}
