//! The baby-step giant-step engine shared by the dense and convolution layers.
//!
//! A linear map on a layout with period n is written as Σ_t d_t ⊙ rot(x, g_t + b_t) with
//! plaintext "diagonals" d_t (period n). Grouping the terms by giant step g:
//! `Σ_g rot( Σ_b rot(d_{g,b}, −g) ⊙ rot(x, b), g )` — the baby rotations rot(x, b) are computed
//! once and hoisted (one decomposition of x), each giant rotation is one key switch, and the
//! pre-rotated diagonals rot(d, −g) are the weight plaintexts. Keys: one per distinct non-zero
//! baby step plus one per distinct non-zero giant step — or a single giant key when the giant
//! steps are u, 2u, …, Du (a convolution's channel shifts, a dense layer's BSGS blocks): the
//! giant rotations are then nested, Horner-style, each by u. A tensor split over several
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
pub(crate) fn expand(diag: &SparseDiag, giant: i64, n: usize, slots: usize) -> Vec<f64> {
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
    let horner = horner_step(by_giant.keys().copied(), n);
    let mut outer = Vec::new();
    let mut inners: BTreeMap<i64, ObjId> = BTreeMap::new();
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
            if horner.is_some() {
                inners.insert(giant, s);
            } else {
                outer.push(b.rotate(s, giant)?);
            }
        }
    }
    if let Some(u) = horner {
        // Σ_δ rot(y_δ, δ·u) = y_0 + rot(y_1 + rot(y_2 + …, u), u): as many rotations as
        // giant steps, all by one key.
        let mut acc: Option<ObjId> = None;
        for (&giant, &y) in inners.iter().rev() {
            let next_down = inners.range(..giant).next_back().map_or(0, |(&g, _)| g);
            let with = match acc {
                Some(a) => b.add(a, y)?,
                None => y,
            };
            acc = Some(if giant > next_down { b.rotate(with, u)? } else { with });
            debug_assert!(giant == next_down || giant - next_down == u);
        }
        return Ok(acc);
    }
    b.sum(&outer)
}

/// The common step `u` when the non-zero giant steps are exactly u, 2u, …, Du (normalised
/// into 0..n): the giant rotations can then be nested (Horner) and all use the key of `u`
/// instead of one key each. `None` otherwise, or with fewer than two non-zero giants.
fn horner_step(giants: impl Iterator<Item = i64>, n: usize) -> Option<i64> {
    let all: Vec<i64> = giants.collect();
    if all.iter().any(|&g| g < 0 || g >= n as i64) {
        return None;
    }
    let mut nz: Vec<i64> = all.into_iter().filter(|&g| g != 0).collect();
    nz.sort_unstable();
    nz.dedup();
    let u = *nz.first()?;
    let progression = nz.len() >= 2 && nz.iter().enumerate().all(|(i, &g)| g == (i as i64 + 1) * u);
    progression.then_some(u)
}
