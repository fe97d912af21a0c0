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
//!
//! Sparse packing (n < N/2 slots, the message in the subring X^(N/2n)): the slot vector repeats
//! with period n, so the factors are built on an n-slot ring and lifted to the full one
//! ([`DiagonalMap::periodic`]). CoeffToSlot's last factor also multiplies the upper n of every
//! 2n slots by −i, so that adding the conjugate leaves Re w and Im w side by side in 2n real
//! slots (one EvalMod); SlotToCoeff starts on that 2n-periodic vector and ends with the packing
//! stage that folds the halves back into Re + i·Im.

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

    /// The identity on `slots` slots.
    fn identity(slots: usize) -> Self {
        let mut id = DiagonalMap::new(slots);
        *id.entry(0) = vec![ONE; slots];
        id
    }

    /// The same map on a ring of `big` slots (a multiple of `self.slots`), for inputs that
    /// repeat with period `self.slots`: every diagonal repeated, every offset taken as its
    /// centred representative, so the output repeats with the same period and a baby-step
    /// giant-step layout sees offsets in (−slots/2, slots/2].
    pub(crate) fn periodic(&self, big: usize) -> DiagonalMap {
        let r = self.slots;
        if big == r {
            return self.clone();
        }
        let mut out = DiagonalMap::new(big);
        for (&d, u) in &self.diags {
            let lifted = if 2 * d > r { big - (r - d) } else { d };
            let rep: Vec<Complex64> = u.iter().copied().cycle().take(big).collect();
            out.add(lifted, &rep);
        }
        out
    }

    /// Multiplies output row i by `mask[i]` (`mask` has one entry per slot).
    fn mask_rows(&mut self, mask: &[Complex64]) {
        for d in self.diags.values_mut() {
            d.iter_mut().zip(mask).for_each(|(z, &m)| *z = *z * m);
        }
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

/// Splits `stages` stages into `levels` groups as evenly as possible, larger groups first
/// (empty groups when there are fewer stages than levels).
fn group_sizes(stages: usize, levels: usize) -> Vec<usize> {
    let levels = levels.max(1);
    let (q, r) = (stages / levels, stages % levels);
    (0..levels).map(|i| q + usize::from(i < r)).collect()
}

/// CoeffToSlot as `levels` factors in application order on `slots` slots: z ↦ bitrev(U⁻¹ z),
/// U the encoder's slots-from-coefficient-halves map of an N = 2·slots ring.
pub(crate) fn coeff_to_slot(fft: &SpecialFft, slots: usize, levels: usize) -> Vec<DiagonalMap> {
    let sizes = group_sizes(slots.trailing_zeros() as usize, levels);
    coeff_to_slot_grouped(fft, slots, &sizes)
}

/// [`coeff_to_slot`] with the stages grouped by `sizes` (top stages first).
fn coeff_to_slot_grouped(fft: &SpecialFft, slots: usize, sizes: &[usize]) -> Vec<DiagonalMap> {
    // The encoder's inverse runs stages from the largest half-length down, then divides by the
    // slot count; each stage takes its factor 1/2 of that division, so every factor keeps
    // entries of magnitude about one and encodes at full precision.
    let stages = (0..slots.trailing_zeros())
        .rev()
        .map(|k| {
            let mut s = inverse_stage(fft, slots, 1 << k);
            s.scale(Complex64::new(0.5, 0.0));
            s
        })
        .collect();
    merge(slots, stages, sizes)
}

/// SlotToCoeff as `levels` factors in application order: the inverse of [`coeff_to_slot`]
/// (bit-reversed coefficient halves ↦ slots).
pub(crate) fn slot_to_coeff(fft: &SpecialFft, slots: usize, levels: usize) -> Vec<DiagonalMap> {
    let stages = (0..slots.trailing_zeros()).map(|k| forward_stage(fft, slots, 1 << k)).collect();
    merge(slots, stages, &group_sizes(slots.trailing_zeros() as usize, levels))
}

/// CoeffToSlot for `slots` (n) slots of a ring with `full` = N/2 slots, every factor on the full
/// ring. Full slots: [`coeff_to_slot`]. Sparse: the n-slot inverse DFT of the n-periodic input,
/// its last factor leaving w in the lower and −i·w in the upper n of every 2n slots.
pub(crate) fn bootstrap_coeff_to_slot(
    fft: &SpecialFft,
    slots: usize,
    full: usize,
    levels: usize,
) -> Vec<DiagonalMap> {
    if slots == full {
        return coeff_to_slot(fft, slots, levels);
    }
    // The mirror of SlotToCoeff's grouping (without its packing stage), so both transforms use
    // the same offsets and share most rotation keys.
    let mut sizes = group_sizes(slots.trailing_zeros() as usize + 1, levels);
    sizes.reverse();
    if let Some(with_packing) = sizes.iter_mut().find(|s| **s > 0) {
        *with_packing -= 1;
    }
    let mut maps = coeff_to_slot_grouped(fft, slots, &sizes);
    if let Some(last) = maps.last_mut() {
        let mut wide = last.periodic(2 * slots);
        let minus_i = Complex64::new(0.0, -1.0);
        let mask: Vec<Complex64> =
            (0..2 * slots).map(|i| if i < slots { ONE } else { minus_i }).collect();
        wide.mask_rows(&mask);
        *last = wide;
    }
    maps.iter().map(|m| m.periodic(full)).collect()
}

/// SlotToCoeff for `slots` (n) slots of a ring with `full` = N/2 slots, every factor on the full
/// ring. Full slots: [`slot_to_coeff`]. Sparse: the input repeats with period 2n, holding a in
/// the lower and b in the upper n slots; the n-slot forward DFT runs on both halves at once
/// (its butterflies never cross a half), then the packing stage returns U(a + i·b), n-periodic.
pub(crate) fn bootstrap_slot_to_coeff(
    fft: &SpecialFft,
    slots: usize,
    full: usize,
    levels: usize,
) -> Vec<DiagonalMap> {
    if slots == full {
        return slot_to_coeff(fft, slots, levels);
    }
    let wide = 2 * slots;
    let mut stages: Vec<DiagonalMap> =
        (0..slots.trailing_zeros()).map(|k| forward_stage(fft, wide, 1 << k)).collect();
    stages.push(packing_stage(slots));
    let sizes = group_sizes(stages.len(), levels);
    merge(wide, stages, &sizes).iter().map(|m| m.periodic(full)).collect()
}

/// On 2n slots holding (a, b): a + i·b in both halves (offsets 0 and n, like a butterfly of
/// half-length n).
fn packing_stage(n: usize) -> DiagonalMap {
    let i = Complex64::new(0.0, 1.0);
    let mut m = DiagonalMap::new(2 * n);
    let d0: Vec<Complex64> = (0..2 * n).map(|r| if r < n { ONE } else { i }).collect();
    let dn: Vec<Complex64> = (0..2 * n).map(|r| if r < n { i } else { ONE }).collect();
    m.add(0, &d0);
    m.add(n, &dn);
    m
}

/// Groups `stages` (in application order) into one merged factor per entry of `sizes`; a group
/// with no stage is the identity, so the circuit's depth never depends on the slot count.
fn merge(slots: usize, stages: Vec<DiagonalMap>, sizes: &[usize]) -> Vec<DiagonalMap> {
    let mut next = stages.into_iter();
    sizes
        .iter()
        .map(|&size| {
            let m = next.by_ref().take(size).reduce(|prev, s| prev.then(&s));
            m.unwrap_or_else(|| DiagonalMap::identity(slots))
        })
        .collect()
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
    fn sparse_factors_pack_both_parts_into_real_slots_and_come_back() {
        let full = 128;
        let fft = SpecialFft::new(2 * full);
        for n in [1, 2, 8, 32, 64] {
            let z = random(n, 3 + n as u64);
            let periodic: Vec<Complex64> = z.iter().copied().cycle().take(full).collect();
            let mut w = z.clone();
            fft.inverse(&mut w);
            let w = bitrev_copy(&w);
            for levels in [1, 2, 3, 4] {
                let cts = bootstrap_coeff_to_slot(&fft, n, full, levels);
                assert_eq!(cts.len(), levels);
                let v = cts.iter().fold(periodic.clone(), |x, m| m.apply(&x));
                // Half the sum with the conjugate is (Re w, Im w), repeating with period 2n.
                let half = Complex64::new(0.5, 0.0);
                let y: Vec<Complex64> = v.iter().map(|a| (*a + a.conj()) * half).collect();
                for (i, got) in y.iter().enumerate() {
                    let k = i % (2 * n);
                    let want = if k < n { w[k].re } else { w[k - n].im };
                    let err = (*got - Complex64::new(want, 0.0)).abs();
                    assert!(err < 1e-12, "n {n}, levels {levels}, slot {i}: {got:?} vs {want}");
                }
                let stc = bootstrap_slot_to_coeff(&fft, n, full, levels);
                assert_eq!(stc.len(), levels);
                let back = stc.iter().fold(y, |x, m| m.apply(&x));
                for (a, b) in back.iter().zip(&periodic) {
                    assert!((*a - *b).abs() < 1e-12, "n {n}, levels {levels}: {a:?} vs {b:?}");
                }
            }
        }
    }

    #[test]
    fn sparse_factors_are_smaller_than_full_ones() {
        let full = 1 << 10;
        let fft = SpecialFft::new(2 * full);
        let count = |maps: Vec<DiagonalMap>| maps.iter().map(|m| m.diags.len()).sum::<usize>();
        let full_cts = count(bootstrap_coeff_to_slot(&fft, full, full, 3));
        let full_stc = count(bootstrap_slot_to_coeff(&fft, full, full, 3));
        let sparse_cts = count(bootstrap_coeff_to_slot(&fft, 1 << 4, full, 3));
        let sparse_stc = count(bootstrap_slot_to_coeff(&fft, 1 << 4, full, 3));
        assert!(sparse_cts < full_cts / 2, "{sparse_cts} vs {full_cts} diagonals");
        assert!(sparse_stc < full_stc / 2, "{sparse_stc} vs {full_stc} diagonals");
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
