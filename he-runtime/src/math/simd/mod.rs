//! SIMD kernels: the AVX-512 IFMA NTT, element-wise and basis-extension kernels, and AVX-512 F/DQ
//! NTT stages for primes too wide for IFMA. This module is the only place in the crate with
//! `unsafe`.
//!
//! The safe wrappers here re-check every precondition of the kernels (CPU features, lengths,
//! modulus size), so no caller can reach an intrinsic on an unsupported CPU or out of bounds.

#[cfg(target_arch = "x86_64")]
mod aes_ctr;
#[cfg(target_arch = "x86_64")]
mod avx512_wide;
#[cfg(target_arch = "x86_64")]
mod bit_fields;
#[cfg(target_arch = "x86_64")]
mod ifma;
#[cfg(target_arch = "x86_64")]
mod ifma_dot;
#[cfg(target_arch = "x86_64")]
mod ifma_lincomb;
mod kernel_args;

pub(crate) use kernel_args::{Correction, ExtendFold, InverseScale};

/// IFMA kernels keep lazy values below 4q inside 52-bit lanes, so q must be below 2^50.
pub(crate) const IFMA_MAX_MODULUS_BITS: u32 = 50;

/// Whether this CPU can run the IFMA kernels (detected once by std, then a cached load).
#[inline]
pub(crate) fn ifma_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512ifma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has AVX-512 DQ (64-bit integer ↔ double conversions).
#[inline]
pub(crate) fn dq_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has AVX-512 F and VAES, which the AES-256 counter-mode kernel needs.
#[inline]
pub(crate) fn aes_ctr_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("vaes")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Writes the AES-256 encryptions of counter blocks `block..block + 64` of `stream` (16 bytes
/// each: the counter, then the stream id, both u64 little-endian) under `round_keys` to `out`;
/// `false`, with nothing written, when the CPU lacks AVX-512 F or VAES.
pub(crate) fn aes256_ctr_blocks64(
    round_keys: &[[u8; 16]; 15],
    block: u64,
    stream: u64,
    out: &mut [u8; 1024],
) -> bool {
    if !aes_ctr_available() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: avx512f and vaes are present; the kernel writes exactly the 1024 bytes of `out`.
    unsafe {
        aes_ctr::blocks64(round_keys, block, stream, out)
    }
    true
}

/// The centering counts of a basis extension on AVX-512 DQ for the coefficients
/// `start..start + r.len()` of limbs of `stride` words in `y`; `false` if the CPU or the
/// length (a multiple of 8 is needed) rules it out, in which case nothing was written.
pub(crate) fn rounding_counts(
    y: &[u64],
    stride: usize,
    start: usize,
    inv_q: &[f64],
    r: &mut [u64],
) -> bool {
    if !dq_available() || !r.len().is_multiple_of(8) {
        return false;
    }
    assert!(
        start + r.len() <= stride && y.len() == inv_q.len() * stride,
        "rounding counts lengths"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: avx512f+avx512dq are present, r.len() % 8 == 0, start + r.len() <= stride and y
    // holds inv_q.len() limbs of stride words.
    unsafe {
        ifma::rounding_counts(y, stride, start, inv_q, r)
    }
    true
}

/// Primes up to this many bits run on the AVX-512 F/DQ NTT stages (the portable path's bound).
pub(crate) const WIDE_MAX_MODULUS_BITS: u32 = 62;

/// Whether a table for modulus `q` and 2^log_n points can use the AVX-512 F/DQ stages.
pub(crate) fn wide_eligible(q: u64, log_n: u32) -> bool {
    dq_available() && q >> WIDE_MAX_MODULUS_BITS == 0 && log_n >= 4
}

fn check_wide(q: u64, roots: &[u64], roots_shoup: &[u64], a: &[u64]) {
    let n = a.len();
    assert!(
        dq_available()
            && q >> WIDE_MAX_MODULUS_BITS == 0
            && n >= 16
            && n.is_power_of_two()
            && roots.len() == n
            && roots_shoup.len() == n,
        "AVX-512 wide NTT preconditions"
    );
}

/// The whole forward NTT on AVX-512 F/DQ for any q < 2^62, fully reduced; the same words as the
/// portable path.
///
/// # Panics
/// If the CPU lacks avx512f/avx512dq, q >= 2^62, or the lengths disagree.
pub(crate) fn ntt_forward_wide(q: u64, roots: &[u64], roots_shoup: &[u64], a: &mut [u64]) {
    check_wide(q, roots, roots_shoup, a);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `check_wide` verified avx512f+avx512dq, q < 2^62 and equal power-of-two lengths
    // >= 16; the tail runs after every stage of distance >= 8, as it requires.
    unsafe {
        let (m, t) = avx512_wide::forward_stages(q, roots, roots_shoup, a);
        debug_assert_eq!((m, t), (a.len() / 8, 8));
        avx512_wide::forward_tail(q, roots, roots_shoup, a);
    }
}

/// The whole inverse NTT on AVX-512 F/DQ for any q < 2^62, with its last stage fused with the
/// N^{-1} scaling (`n_inv`, `last`: constants with their Shoup companions), fully reduced; the
/// same words as the portable path.
///
/// # Panics
/// As [`ntt_forward_wide`].
pub(crate) fn ntt_inverse_wide(
    q: u64,
    inv_roots: &[u64],
    inv_roots_shoup: &[u64],
    n_inv: (u64, u64),
    last: (u64, u64),
    a: &mut [u64],
) {
    check_wide(q, inv_roots, inv_roots_shoup, a);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `check_wide` verified the CPU, q and equal power-of-two lengths >= 16; the stages
    // run in order (head to (N/16, 8), then distance >= 8, then the last), and the scaling
    // constants are the table's, below q.
    unsafe {
        avx512_wide::inverse_head(q, inv_roots, inv_roots_shoup, a);
        let (m, t) =
            avx512_wide::inverse_stages(q, inv_roots, inv_roots_shoup, a, (a.len() / 16, 8));
        debug_assert_eq!(2 * m * t, a.len());
        avx512_wide::inverse_last(q, n_inv, last, a);
    }
}

/// Whether a table for modulus `q` and 2^log_n points can use the IFMA kernels.
pub(crate) fn ifma_eligible(q: u64, log_n: u32) -> bool {
    ifma_available() && q >> IFMA_MAX_MODULUS_BITS == 0 && log_n >= 4
}

fn check(q: u64, roots: &[u64], roots_shoup: &[u64], a: &[u64]) {
    let n = a.len();
    assert!(
        ifma_available()
            && q >> IFMA_MAX_MODULUS_BITS == 0
            && n >= 16
            && n.is_power_of_two()
            && roots.len() == n
            && roots_shoup.len() == n,
        "IFMA NTT preconditions"
    );
}

/// Forward NTT with the IFMA kernels; same contract and bit-identical output as the portable
/// `NttTable::forward_portable`.
///
/// # Panics
/// If the CPU lacks IFMA, q >= 2^50, or the lengths disagree (the table never lets that happen).
pub(crate) fn ntt_forward(q: u64, roots: &[u64], roots_shoup: &[u64], a: &mut [u64]) {
    check(q, roots, roots_shoup, a);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `check` verified avx512f+avx512ifma support, q < 2^50, and that `roots`,
    // `roots_shoup` and `a` all have the same power-of-two length >= 16.
    unsafe {
        ifma::forward(q, roots, roots_shoup, a)
    }
}

/// Inverse NTT (with N^{-1}) with the IFMA kernels; bit-identical to the portable path.
///
/// # Panics
/// Under the same conditions as [`ntt_forward`].
pub(crate) fn ntt_inverse(
    q: u64,
    inv_roots: &[u64],
    inv_roots_shoup: &[u64],
    scale: InverseScale,
    a: &mut [u64],
) {
    check(q, inv_roots, inv_roots_shoup, a);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `ntt_forward`, all preconditions of the kernel were checked just above.
    unsafe {
        ifma::inverse(q, inv_roots, inv_roots_shoup, scale, a)
    }
}

/// out[j] = Σ_i y[i·stride + start + j]·row[i] mod p (minus counts[j]·Q mod p with a
/// correction), fully reduced; bit-identical to the portable `BasisConverter` kernel.
///
/// # Panics
/// If the CPU lacks IFMA, p >= 2^50, `out.len()` is not a multiple of 8, or the block
/// `start..start + out.len()` does not fit the `row.len()` limbs of `stride` words in `y`.
pub(crate) fn extend_block(
    y: &[u64],
    stride: usize,
    start: usize,
    row: &[u64],
    fold: ExtendFold,
    corr: Option<Correction<'_>>,
    out: &mut [u64],
) {
    let len = out.len();
    assert!(
        ifma_available()
            && fold.p >> IFMA_MAX_MODULUS_BITS == 0
            && len.is_multiple_of(8)
            && start + len <= stride
            && y.len() == row.len() * stride
            && row.iter().all(|&w| w < fold.p)
            && corr.is_none_or(|c| c.counts.len() == len && c.q_mod_p < fold.p),
        "IFMA basis extension preconditions"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the assertion above checked CPU support, p < 2^50, the block bounds and lengths.
    unsafe {
        ifma::extend_block(y, stride, start, row, fold, corr, out)
    }
}

/// [`extend_block`] for primes too wide for IFMA (or sources that are): the same words as the
/// portable accumulation, on AVX-512 F/DQ. `row_shoup` holds the Shoup companions of `row`
/// modulo `p`.
///
/// # Panics
/// If the CPU lacks avx512dq, p >= 2^62, `out.len()` is not a multiple of 8, or the block does
/// not fit the limbs of `y`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn extend_block_wide(
    y: &[u64],
    stride: usize,
    start: usize,
    row: &[u64],
    row_shoup: &[u64],
    p: u64,
    corr: Option<Correction<'_>>,
    out: &mut [u64],
) {
    let len = out.len();
    assert!(
        dq_available()
            && p >> WIDE_MAX_MODULUS_BITS == 0
            && len.is_multiple_of(8)
            && start + len <= stride
            && y.len() == row.len() * stride
            && row_shoup.len() == row.len()
            && row.iter().all(|&w| w < p)
            && corr.is_none_or(|c| c.counts.len() == len && c.q_mod_p < p),
        "AVX-512 wide basis extension preconditions"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the assertion above checked CPU support, p < 2^62, the block bounds and lengths;
    // the companions come with their entries from the caller's tables.
    unsafe {
        avx512_wide::extend_block(y, stride, start, row, row_shoup, p, corr, out)
    }
}

#[cfg(target_arch = "x86_64")]
mod ifma_slice;

/// Whether the element-wise IFMA kernels serve modulus `m`.
#[inline]
pub(crate) fn slice_eligible(m: &crate::math::zq::Modulus) -> bool {
    m.bits() <= IFMA_MAX_MODULUS_BITS && ifma_available()
}

/// Whether the AVX-512 F/DQ products by a constant serve modulus `m` (primes too wide for
/// IFMA; [`slices::mul_scalar_assign_wide`]).
#[inline]
pub(crate) fn wide_slice_eligible(m: &crate::math::zq::Modulus) -> bool {
    m.bits() <= WIDE_MAX_MODULUS_BITS && dq_available()
}

/// Element-wise operations for [`crate::math::zq::Modulus`]'s slice helpers; callers check
/// [`slice_eligible`] (or [`wide_slice_eligible`] for the `_wide` ones) first, and lengths are
/// asserted here so the kernels stay in bounds.
#[cfg(target_arch = "x86_64")]
pub(crate) mod slices {
    use super::ifma_slice::{self as k, LaneModulus};
    use super::slice_eligible;
    use crate::math::zq::Modulus;

    fn lanes(m: &Modulus) -> LaneModulus {
        assert!(slice_eligible(m), "IFMA slice kernels need avx512ifma and q < 2^50");
        LaneModulus::new(m.value())
    }

    /// a += b mod q.
    pub(crate) fn add_assign(m: &Modulus, a: &mut [u64], b: &[u64]) {
        assert_eq!(a.len(), b.len());
        let l = lanes(m);
        // SAFETY: `lanes` checked CPU support and q < 2^50; lengths are equal.
        unsafe { k::add_assign(l, a, b) }
    }

    /// a −= b mod q.
    pub(crate) fn sub_assign(m: &Modulus, a: &mut [u64], b: &[u64]) {
        assert_eq!(a.len(), b.len());
        let l = lanes(m);
        // SAFETY: as in `add_assign`.
        unsafe { k::sub_assign(l, a, b) }
    }

    /// a *= b mod q.
    pub(crate) fn mul_assign(m: &Modulus, a: &mut [u64], b: &[u64]) {
        assert_eq!(a.len(), b.len());
        let l = lanes(m);
        // SAFETY: as in `add_assign`.
        unsafe { k::mul_assign(l, a, b) }
    }

    /// acc += a·b mod q.
    pub(crate) fn mul_add_assign(m: &Modulus, acc: &mut [u64], a: &[u64], b: &[u64]) {
        assert!(acc.len() == a.len() && acc.len() == b.len());
        let l = lanes(m);
        // SAFETY: as in `add_assign`, with all three lengths equal.
        unsafe { k::mul_add_assign(l, acc, a, b) }
    }

    /// acc += a·w mod q (w < q, Shoup companion `ws`).
    pub(crate) fn mul_scalar_add_assign(m: &Modulus, acc: &mut [u64], a: &[u64], w: u64, ws: u64) {
        assert_eq!(acc.len(), a.len());
        let l = lanes(m);
        // SAFETY: `lanes` checked CPU support and q < 2^50; lengths are equal.
        unsafe { k::mul_scalar_add_assign(l, acc, a, w, ws) }
    }

    /// a = (a − b)·w mod q (w < q, Shoup companion `ws`).
    pub(crate) fn sub_mul_scalar_assign(m: &Modulus, a: &mut [u64], b: &[u64], w: u64, ws: u64) {
        assert_eq!(a.len(), b.len());
        let l = lanes(m);
        // SAFETY: `lanes` checked CPU support and q < 2^50; lengths are equal.
        unsafe { k::sub_mul_scalar_assign(l, a, b, w, ws) }
    }

    /// dst = centered_p(src) mod q for src words below p < 2^52.
    pub(crate) fn lift_centered(m: &Modulus, src: &[u64], dst: &mut [u64], p: &Modulus) {
        assert!(src.len() == dst.len() && p.bits() <= 52);
        let l = lanes(m);
        let p_mod = m.reduce(p.value());
        // SAFETY: `lanes` checked CPU support and q < 2^50; lengths are equal; src words are
        // below p < 2^52 by the caller's contract (a wrong word gives a wrong value, not UB).
        unsafe { k::lift_centered(l, src, dst, p.value() >> 1, p_mod, m.shoup(1)) }
    }

    /// x mod q for each value, by the wide kernels' Barrett reduction with `room` extra bits of
    /// input (what their sums of products use), for tests at the edge of its range.
    #[cfg(test)]
    pub(crate) fn reduce_wide_with_room(m: &Modulus, room: u32, values: &[u128]) -> Vec<u64> {
        assert!(super::wide_slice_eligible(m), "AVX-512 DQ and q < 2^62");
        assert!(m.bits() + 1 + room <= 64, "μ and the top bits fit a word");
        assert!(values.iter().all(|&x| x >> (2 * m.bits() + room) == 0), "values in range");
        let len = values.len().next_multiple_of(8);
        let word = |i: usize, shift: u32| values.get(i).map_or(0, |&x| (x >> shift) as u64);
        let hi: Vec<u64> = (0..len).map(|i| word(i, 64)).collect();
        let lo: Vec<u64> = (0..len).map(|i| word(i, 0)).collect();
        let mut out = vec![0; len];
        // SAFETY: checked CPU support, q < 2^62 (a Modulus is odd and ≥ 3), the room and every
        // value's range; the three vectors have one length, a multiple of 8.
        unsafe { super::avx512_wide::reduce_with_room(m.value(), room, &hi, &lo, &mut out) };
        out.truncate(values.len());
        out
    }

    /// acc += a·b mod q for q < 2^62, every word below q.
    pub(crate) fn mul_add_assign_wide(m: &Modulus, acc: &mut [u64], a: &[u64], b: &[u64]) {
        assert!(super::wide_slice_eligible(m), "AVX-512 DQ and q < 2^62");
        assert!(acc.len() == a.len() && acc.len() == b.len());
        // SAFETY: checked CPU support and q < 2^62 (a Modulus is odd and ≥ 3); lengths are
        // equal; words below q are the caller's contract (a wrong word gives a wrong value).
        unsafe { super::avx512_wide::mul_add_assign(m.value(), acc, a, b) }
    }

    /// a *= b mod q for q < 2^62, every word below q.
    pub(crate) fn mul_assign_wide(m: &Modulus, a: &mut [u64], b: &[u64]) {
        assert!(super::wide_slice_eligible(m), "AVX-512 DQ and q < 2^62");
        assert_eq!(a.len(), b.len());
        // SAFETY: as in `mul_add_assign_wide`, for two slices.
        unsafe { super::avx512_wide::mul_assign(m.value(), a, b) }
    }

    /// a *= w mod q (w < q, Shoup companion `ws`) for q < 2^62.
    pub(crate) fn mul_scalar_assign_wide(m: &Modulus, a: &mut [u64], w: u64, ws: u64) {
        assert!(super::wide_slice_eligible(m) && w < m.value(), "AVX-512 DQ and q < 2^62");
        // SAFETY: checked CPU support, q < 2^62 and w < q; ws is w's companion (caller).
        unsafe { super::avx512_wide::mul_scalar_assign(m.value(), a, w, ws) }
    }

    /// acc += a·w mod q (w < q, Shoup companion `ws`) for q < 2^62.
    pub(crate) fn mul_scalar_add_assign_wide(
        m: &Modulus,
        acc: &mut [u64],
        a: &[u64],
        w: u64,
        ws: u64,
    ) {
        assert!(super::wide_slice_eligible(m) && w < m.value(), "AVX-512 DQ and q < 2^62");
        assert_eq!(acc.len(), a.len());
        // SAFETY: as in `mul_scalar_assign_wide`, with equal lengths.
        unsafe { super::avx512_wide::mul_scalar_add_assign(m.value(), acc, a, w, ws) }
    }

    /// a *= w mod q (w < q, Shoup companion `ws`).
    pub(crate) fn mul_scalar_assign(m: &Modulus, a: &mut [u64], w: u64, ws: u64) {
        let l = lanes(m);
        // SAFETY: `lanes` checked CPU support and q < 2^50; the kernel only touches `a`.
        unsafe { k::mul_scalar_assign(l, a, w, ws) }
    }
}

/// Whether [`dot`] serves modulus `m`, slices of `n` words and `outs` outputs.
pub(crate) fn dot_supported(m: &crate::math::zq::Modulus, n: usize, outs: usize) -> bool {
    (slice_eligible(m) || wide_slice_eligible(m)) && n.is_multiple_of(8) && (1..=2).contains(&outs)
}

/// Sums of products `out[k][c] = Σ_j a[j][c]·b[k·J + j][c] mod q` for one or two outputs
/// (see `math::dot`): on IFMA for q < 2^50, else on AVX-512 F/DQ for q < 2^62; returns `false`
/// without writing when [`dot_supported`] fails.
///
/// # Panics
/// If the slice lengths disagree.
pub(crate) fn dot(
    m: &crate::math::zq::Modulus,
    a: &[&[u64]],
    b: &[&[u64]],
    out: &mut [&mut [u64]],
) -> bool {
    let n = out.first().map_or(0, |o| o.len());
    if !dot_supported(m, n, out.len()) {
        return false;
    }
    assert!(
        a.iter().all(|s| s.len() == n)
            && b.iter().all(|s| s.len() == n)
            && out.iter().all(|s| s.len() == n)
            && b.len() == out.len() * a.len(),
        "dot product shapes"
    );
    #[cfg(target_arch = "x86_64")]
    if !slice_eligible(m) {
        match out {
            // SAFETY: CPU support and q < 2^62 (dot_supported, wide_slice_eligible), equal
            // lengths (assert); `Modulus` holds an odd q ≥ 3.
            [o] => unsafe { avx512_wide::dot::<1>(m.value(), a, b, [&mut **o]) },
            // SAFETY: as above.
            [o0, o1] => unsafe { avx512_wide::dot::<2>(m.value(), a, b, [&mut **o0, &mut **o1]) },
            _ => return false,
        }
    } else {
        let fold = ExtendFold::new(m);
        match out {
            // SAFETY: CPU support and q < 2^50 (dot_supported) and equal lengths (assert).
            [o] => unsafe { ifma_dot::dot::<1>(fold, a, b, [&mut **o]) },
            // SAFETY: as above.
            [o0, o1] => unsafe { ifma_dot::dot::<2>(fold, a, b, [&mut **o0, &mut **o1]) },
            _ => return false,
        }
    }
    true
}

/// Terms the IFMA linear combination may sum before folding, for moduli of `bits` bits: the
/// high halves (each below 2^max(2·bits − 52, 0)) plus the carries out of the low halves must
/// stay below 2^52, and the low halves below 2^64.
pub(crate) fn lincomb_chunk(bits: u32) -> usize {
    let hi = 1u64 << (2 * bits).saturating_sub(52).min(51);
    (((1u64 << 52) - 1) / (1 + hi)).min(4095) as usize
}

/// IFMA constant linear combinations `acc[k][c] += Σ_j w[k·J + j]·x[j][c] mod q` (see
/// `math::lincomb`); returns `false` without writing when the CPU, the modulus or the length
/// (a multiple of 8) rules the kernel out.
///
/// # Panics
/// If the slice lengths disagree or a weight is not below q.
pub(crate) fn lincomb(
    m: &crate::math::zq::Modulus,
    x: &[&[u64]],
    w: &[u64],
    acc: &mut [&mut [u64]],
) -> bool {
    let n = acc.first().map_or(0, |o| o.len());
    if !slice_eligible(m) || !n.is_multiple_of(8) {
        return false;
    }
    assert!(
        x.iter().all(|s| s.len() == n)
            && acc.iter().all(|s| s.len() == n)
            && w.len() == x.len() * acc.len()
            && w.iter().all(|&v| v < m.value()),
        "linear combination shapes"
    );
    #[cfg(target_arch = "x86_64")]
    {
        let fold = ExtendFold::new(m);
        // SAFETY: CPU support and q < 2^50 (slice_eligible), n % 8 == 0 and the lengths
        // (assert); the chunk bound comes from lincomb_chunk.
        unsafe { ifma_lincomb::lincomb(fold, lincomb_chunk(m.bits()), x, w, acc) };
    }
    true
}

/// Whether this CPU can run the bit-field kernels (AVX-512 VBMI byte gathers, BW byte masks,
/// popcnt for the count of kept fields).
#[inline]
pub(crate) fn bit_fields_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vbmi")
            && std::arch::is_x86_feature_detected!("popcnt")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out[k]` = bits `[k·width, (k+1)·width)` of the little-endian bit string `src`, on
/// AVX-512 VBMI; returns the largest field (0 for none), or `None` without writing when the
/// CPU lacks the features.
///
/// # Panics
/// If `width` is not in 1..=64 or `src` is shorter than the `out.len()` fields.
pub(crate) fn unpack_fields(src: &[u8], width: u32, out: &mut [u64]) -> Option<u64> {
    if !bit_fields_available() {
        return None;
    }
    assert!(
        (1..=64).contains(&width) && src.len() >= (out.len() * width as usize).div_ceil(8),
        "bit-field unpack: width {width}, {} bytes for {} fields",
        src.len(),
        out.len()
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: avx512f+bw+vbmi are present, 1 <= width <= 64 and `src` holds every field.
    unsafe {
        Some(bit_fields::unpack_fields(src, width, out))
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// `field mod q` for each field of `src` below `bound`, appended to `out` in order until it is
/// full or `src` has no whole field left, on AVX-512 VBMI: (written, fields read), or `None`
/// without writing when the CPU lacks the features. `bound` is `multiple·q`, as
/// `bit_fields::take_below` computed and checked it (a wrong one gives wrong words, nothing
/// out of bounds).
///
/// # Panics
/// If `width` is not in 1..=64.
pub(crate) fn take_below(
    src: &[u8],
    width: u32,
    bound: u64,
    q: u64,
    multiple: u64,
    out: &mut [u64],
) -> Option<(usize, usize)> {
    if !bit_fields_available() {
        return None;
    }
    assert!((1..=64).contains(&width), "bit-field width {width}");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: avx512f+bw+vbmi and popcnt are present and 1 <= width <= 64; `bound` is the
    // caller's checked multiple·q; the kernel reads whole fields of `src` only and writes at
    // most `out.len()` words.
    unsafe {
        Some(bit_fields::take_below(src, width, bound, q, multiple, out))
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// Asks the CPU to bring `bytes` into L2 ahead of a read, one hint per 64-byte line; a hint
/// only, so the bytes read later are the same with or without it (and nothing happens off
/// x86-64). For data the hardware prefetcher does not see coming: a key's packed `b` limb
/// read a piece at a time between keystream work, its lines on 4 KiB pages freshly written by
/// the store's reads.
pub(crate) fn prefetch_l2(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: a prefetch hint never faults and writes nothing; the address is inside
        // `bytes`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}
