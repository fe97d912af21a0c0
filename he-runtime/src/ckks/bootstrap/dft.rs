//! The homomorphic special DFT in diagonal form: the encoder's FFT butterflies written as sparse
//! slot-linear maps, merged into a configurable number of factors (the "level budget").
//!
//! A slot-linear map is `M x = Σ_d diag(u_d) · R^d x` over the offsets `d` it uses, where
//! `(R^d x)_i = x_{i+d}` is a left rotation by `d` slots. Each butterfly stage of the special FFT
//! touches offsets {0, ±len/2}; merging k consecutive stages gives at most 2^(k+1) − 1 offsets,
//! all multiples of the smallest stage's half-length.
//!
//! SlotToCoeff is the encoder's forward transform without its bit reversal, CoeffToSlot its
//! inverse: coefficients travel in bit-reversed order between the two, which the slot-wise
//! EvalMod between them does not care about.

use std::collections::BTreeMap;

use super::super::fft::{Complex64, SpecialFft};

/// A slot-linear map as diagonals keyed by left-rotation offset in `0..slots`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DiagonalMap {
    pub(crate) slots: usize,
    pub(crate) diags: BTreeMap<usize, Vec<Complex64>>,
}

impl DiagonalMap {
    fn new(slots: usize) -> Self {
        Self { slots, diags: BTreeMap::new() }
    }

    fn entry(&mut self, offset: usize) -> &mut Vec<Complex64> {
        let slots = self.slots;
        self.diags.entry(offset % slots).or_insert_with(|| vec![Complex64::default(); slots])
    }

    fn add(&mut self, offset: usize, d: &[Complex64]) {
        for (o, &x) in self.entry(offset).iter_mut().zip(d) {
            *o = *o + x;
        }
    }

    /// `after ∘ self` (self applied first): diag(v_b)·R^b·diag(u_a)·R^a = diag(v_b ⊙ R^b u_a)·R^(a+b).
    pub(crate) fn then(&self, after: &DiagonalMap) -> DiagonalMap {
        let n = self.slots;
        let mut out = DiagonalMap::new(n);
        for (&b, v) in &after.diags {
            for (&a, u) in &self.diags {
                let o = out.entry(a + b);
                for (i, oi) in o.iter_mut().enumerate() {
                    *oi = *oi + v[i] * u[(i + b) % n];
                }
            }
        }
        out.diags.retain(|_, d| d.iter().any(|z| z.re != 0.0 || z.im != 0.0));
        out
    }

    /// Multiplies every entry by `c`.
    pub(crate) fn scale(&mut self, c: Complex64) {
        for d in self.diags.values_mut() {
            d.iter_mut().for_each(|z| *z = *z * c);
        }
    }

    /// `M x` in the clear (the plaintext reference of the transforms).
    #[cfg(test)]
    pub(crate) fn apply(&self, x: &[Complex64]) -> Vec<Complex64> {
        let n = self.slots;
        let mut out = vec![Complex64::default(); n];
        for (&d, u) in &self.diags {
            for (i, o) in out.iter_mut().enumerate() {
                *o = *o + u[i] * x[(i + d) % n];
            }
        }
        out
    }
}

/// A butterfly stage of half-length `h` (stage length 2h) in diagonal form. For offset `j < h`
/// within its block, `lower(j)` gives the lower output's coefficients (on x_i, on x_{i+h}) and
/// `upper(j)` the upper output's (on x_{i−h}, on x_i).
fn stage(
    slots: usize,
    h: usize,
    lower: impl Fn(usize) -> (Complex64, Complex64),
    upper: impl Fn(usize) -> (Complex64, Complex64),
) -> DiagonalMap {
    let mut m = DiagonalMap::new(slots);
    let len = 2 * h;
    let mut d0 = vec![Complex64::default(); slots];
    let mut dp = vec![Complex64::default(); slots];
    let mut dm = vec![Complex64::default(); slots];
    for i in 0..slots {
        let j = i % len;
        if j < h {
            (d0[i], dp[i]) = lower(j);
        } else {
            (dm[i], d0[i]) = upper(j - h);
        }
    }
    m.add(0, &d0);
    m.add(h, &dp);
    // At h = slots/2 the offsets +h and −h coincide; their supports (lower and upper half)
    // do not, so the two add up.
    m.add(slots - h, &dm);
    m
}

const ONE: Complex64 = Complex64::new(1.0, 0.0);

fn neg(z: Complex64) -> Complex64 {
    Complex64::new(-z.re, -z.im)
}

/// One forward butterfly stage: lower half `x_i + ω·x_{i+h}`, upper half `x_{i−h} − ω·x_i`.
fn forward_stage(fft: &SpecialFft, slots: usize, h: usize) -> DiagonalMap {
    let w = |j| fft.twiddle(2 * h, j);
    stage(slots, h, |j| (ONE, w(j)), |j| (ONE, neg(w(j))))
}

/// One inverse butterfly stage: lower half `x_i + x_{i+h}`, upper half `(x_{i−h} − x_i)·ω̄`.
fn inverse_stage(fft: &SpecialFft, slots: usize, h: usize) -> DiagonalMap {
    let w = |j| fft.twiddle(2 * h, j).conj();
    stage(slots, h, |_| (ONE, ONE), |j| (w(j), neg(w(j))))
}

/// Splits `stages` stages into `levels` groups as evenly as possible, larger groups first.
fn group_sizes(stages: usize, levels: usize) -> Vec<usize> {
    let levels = levels.clamp(1, stages.max(1));
    let (q, r) = (stages / levels, stages % levels);
    (0..levels).map(|i| q + usize::from(i < r)).collect()
}

/// CoeffToSlot as `levels` factors in application order: slots z ↦ bitrev(U⁻¹ z), U the
/// encoder's slots-from-coefficient-halves map.
pub(crate) fn coeff_to_slot(fft: &SpecialFft, slots: usize, levels: usize) -> Vec<DiagonalMap> {
    // The encoder's inverse runs stages from the largest half-length down, then divides by the
    // slot count; each stage takes its factor 1/2 of that division, so every factor keeps
    // entries of magnitude about one and encodes at full precision.
    let halves: Vec<usize> =
        (0..slots.trailing_zeros()).rev().map(|k| 1usize << k).collect::<Vec<_>>();
    merge(slots, &halves, levels, |h| {
        let mut s = inverse_stage(fft, slots, h);
        s.scale(Complex64::new(0.5, 0.0));
        s
    })
}

/// SlotToCoeff as `levels` factors in application order: the inverse of [`coeff_to_slot`]
/// (bit-reversed coefficient halves ↦ slots).
pub(crate) fn slot_to_coeff(fft: &SpecialFft, slots: usize, levels: usize) -> Vec<DiagonalMap> {
    let halves: Vec<usize> = (0..slots.trailing_zeros()).map(|k| 1usize << k).collect();
    merge(slots, &halves, levels, |h| forward_stage(fft, slots, h))
}

fn merge(
    slots: usize,
    halves: &[usize],
    levels: usize,
    stage: impl Fn(usize) -> DiagonalMap,
) -> Vec<DiagonalMap> {
    let mut out = Vec::new();
    let mut next = halves.iter();
    for size in group_sizes(halves.len(), levels) {
        let mut m: Option<DiagonalMap> = None;
        for &h in next.by_ref().take(size) {
            let s = stage(h);
            m = Some(match m {
                None => s,
                Some(prev) => prev.then(&s),
            });
        }
        if let Some(m) = m {
            out.push(m);
        }
    }
    if out.is_empty() {
        // One slot: the transform is the identity.
        let mut id = DiagonalMap::new(slots);
        *id.entry(0) = vec![Complex64::new(1.0, 0.0); slots];
        out.push(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(slots: usize, seed: u64) -> Vec<Complex64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..slots)
            .map(|_| Complex64::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
            .collect()
    }

    fn bitrev_copy(v: &[Complex64]) -> Vec<Complex64> {
        let bits = v.len().trailing_zeros();
        (0..v.len())
            .map(|i| if bits == 0 { v[i] } else { v[i.reverse_bits() >> (usize::BITS - bits)] })
            .collect()
    }

    #[test]
    fn factors_reproduce_the_encoder_fft_at_every_level_budget() {
        let n = 256;
        let slots = n / 2;
        let fft = SpecialFft::new(n);
        let z = random(slots, 1);
        let mut want = z.clone();
        fft.inverse(&mut want);
        let want = bitrev_copy(&want);
        for levels in 1..=7 {
            let cts = coeff_to_slot(&fft, slots, levels);
            assert_eq!(cts.len(), levels);
            let got = cts.iter().fold(z.clone(), |x, m| m.apply(&x));
            for (a, b) in got.iter().zip(&want) {
                assert!((*a - *b).abs() < 1e-12, "levels {levels}: {a:?} vs {b:?}");
            }
            let stc = slot_to_coeff(&fft, slots, levels);
            let back = stc.iter().fold(got, |x, m| m.apply(&x));
            for (a, b) in back.iter().zip(&z) {
                assert!((*a - *b).abs() < 1e-12, "levels {levels}");
            }
        }
    }

    #[test]
    fn merged_factors_use_few_offsets() {
        let slots = 1 << 10;
        let fft = SpecialFft::new(2 * slots);
        for levels in [2, 3, 4] {
            for m in coeff_to_slot(&fft, slots, levels) {
                let k = 10usize.div_ceil(levels);
                assert!(m.diags.len() < 1 << (k + 1), "{} offsets", m.diags.len());
            }
        }
    }

    #[test]
    fn composition_matches_sequential_application() {
        let slots = 32;
        let fft = SpecialFft::new(2 * slots);
        let a = forward_stage(&fft, slots, 4);
        let b = inverse_stage(&fft, slots, 8);
        let x = random(slots, 2);
        let seq = b.apply(&a.apply(&x));
        let fused = a.then(&b).apply(&x);
        for (p, q) in seq.iter().zip(&fused) {
            assert!((*p - *q).abs() < 1e-12);
        }
    }
}
