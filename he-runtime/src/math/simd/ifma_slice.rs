//! AVX-512 IFMA element-wise kernels modulo q < 2^50 (add, sub, Barrett multiply, multiply-add,
//! Shoup scalar multiply and multiply-add); a masked tail handles lengths that are not multiples of 8.
//!
//! Barrett in 52-bit lanes: for a, b < q with s = bits(q), the product P = hi·2^52 + lo is
//! shifted to z = P >> (s − 2) < 2^52 and multiplied by μ = floor(2^(s+50)/q) < 2^52;
//! est = hi52(z·μ) undershoots P/q by less than 4, so P − est·q lies in [0, 4q) and two
//! conditional subtractions give the canonical residue.

use std::arch::x86_64::*;

/// Per-modulus lane constants.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LaneModulus {
    pub(crate) q: u64,
    /// s − 2 for s = bits(q).
    pub(crate) shift: u64,
    /// floor(2^(s+50) / q).
    pub(crate) mu: u64,
}

impl LaneModulus {
    pub(crate) fn new(q: u64) -> Self {
        let s = 64 - q.leading_zeros() as u64;
        Self { q, shift: s - 2, mu: ((1u128 << (s + 50)) / q as u128) as u64 }
    }
}

/// The canonical residue of lanes in [0, 2m).
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn reduce_once(x: __m512i, m: __m512i) -> __m512i {
    _mm512_min_epu64(x, _mm512_sub_epi64(x, m))
}

/// The start and lane mask of each block of up to eight words of a slice of `len` words.
#[inline]
pub(super) fn lane_blocks(len: usize) -> impl Iterator<Item = (usize, __mmask8)> {
    (0..len).step_by(8).map(move |i| (i, lane_mask(i, len)))
}

/// Lane mask for the `len` words starting at `i` (all ones except in the tail).
#[inline]
fn lane_mask(i: usize, len: usize) -> __mmask8 {
    let rem = len - i;
    if rem >= 8 {
        0xff
    } else {
        ((1u32 << rem) - 1) as __mmask8
    }
}

#[derive(Clone, Copy)]
struct MulConsts {
    q: __m512i,
    neg_q: __m512i,
    mask: __m512i,
    up: __m512i,
    down: __m512i,
    mu: __m512i,
}

#[target_feature(enable = "avx512f")]
fn mul_consts(m: LaneModulus) -> MulConsts {
    MulConsts {
        q: _mm512_set1_epi64(m.q as i64),
        neg_q: _mm512_set1_epi64(((1u64 << 52) - m.q) as i64),
        mask: _mm512_set1_epi64(((1u64 << 52) - 1) as i64),
        up: _mm512_set1_epi64((52 - m.shift) as i64),
        down: _mm512_set1_epi64(m.shift as i64),
        mu: _mm512_set1_epi64(m.mu as i64),
    }
}

/// A constant w < q and its Shoup companion, broadcast for 52-bit lanes.
#[derive(Clone, Copy)]
struct ShoupConst {
    w: __m512i,
    /// The companion floor(w·2^64 / q) >> 12: the quotient estimate's factor in 52 bits.
    ws: __m512i,
}

#[target_feature(enable = "avx512f")]
fn shoup_const(w: u64, w_shoup: u64) -> ShoupConst {
    ShoupConst { w: _mm512_set1_epi64(w as i64), ws: _mm512_set1_epi64((w_shoup >> 12) as i64) }
}

/// x·w mod q, canonical, for lanes x < 2^52 and q < 2^50.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn mul_shoup(c: MulConsts, x: __m512i, w: ShoupConst) -> __m512i {
    let zero = _mm512_setzero_si512();
    let est = _mm512_madd52hi_epu64(zero, x, w.ws);
    let r = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(zero, x, w.w), est, c.neg_q);
    reduce_once(_mm512_and_si512(r, c.mask), c.q)
}

/// a·b mod q, canonical, for lanes a, b < q < 2^50.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn mul_mod(c: MulConsts, a: __m512i, b: __m512i) -> __m512i {
    let zero = _mm512_setzero_si512();
    let lo = _mm512_madd52lo_epu64(zero, a, b);
    let hi = _mm512_madd52hi_epu64(zero, a, b);
    let z = _mm512_or_si512(_mm512_sllv_epi64(hi, c.up), _mm512_srlv_epi64(lo, c.down));
    let est = _mm512_madd52hi_epu64(zero, z, c.mu);
    let r = _mm512_and_si512(_mm512_madd52lo_epu64(lo, est, c.neg_q), c.mask);
    reduce_once(reduce_once(r, _mm512_add_epi64(c.q, c.q)), c.q)
}

macro_rules! binary_kernel {
    ($(#[$doc:meta])* $name:ident, $features:literal, |$c:ident, $x:ident, $y:ident| $body:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU supports the enabled features; `a.len() == b.len()`; all words < q < 2^50.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $name(m: LaneModulus, a: &mut [u64], b: &[u64]) {
            let $c = mul_consts(m);
            let len = a.len();
            let (ap, bp) = (a.as_mut_ptr(), b.as_ptr());
            for (i, k) in lane_blocks(len) {
                // SAFETY: the mask enables only lanes i..min(i + 8, len), inside both slices.
                unsafe {
                    let $x = _mm512_maskz_loadu_epi64(k, ap.add(i) as *const _);
                    let $y = _mm512_maskz_loadu_epi64(k, bp.add(i) as *const _);
                    _mm512_mask_storeu_epi64(ap.add(i) as *mut _, k, $body);
                }
            }
        }
    };
}

binary_kernel!(
    /// a[i] = (a[i] + b[i]) mod q.
    add_assign, "avx512f", |c, x, y| reduce_once(_mm512_add_epi64(x, y), c.q)
);
binary_kernel!(
    /// a[i] = (a[i] − b[i]) mod q.
    sub_assign, "avx512f", |c, x, y| reduce_once(_mm512_sub_epi64(_mm512_add_epi64(x, c.q), y), c.q)
);
binary_kernel!(
    /// a[i] = a[i]·b[i] mod q.
    mul_assign, "avx512f,avx512ifma", |c, x, y| mul_mod(c, x, y)
);

/// acc[i] = (acc[i] + a[i]·b[i]) mod q.
///
/// # Safety
/// avx512f+avx512ifma available; the three slices have equal length; all words < q < 2^50.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(crate) unsafe fn mul_add_assign(m: LaneModulus, acc: &mut [u64], a: &[u64], b: &[u64]) {
    let c = mul_consts(m);
    let len = acc.len();
    let (rp, ap, bp) = (acc.as_mut_ptr(), a.as_ptr(), b.as_ptr());
    for (i, k) in lane_blocks(len) {
        // SAFETY: the mask enables only lanes i..min(i + 8, len), inside all three slices.
        unsafe {
            let r = _mm512_maskz_loadu_epi64(k, rp.add(i) as *const _);
            let x = _mm512_maskz_loadu_epi64(k, ap.add(i) as *const _);
            let y = _mm512_maskz_loadu_epi64(k, bp.add(i) as *const _);
            let s = reduce_once(_mm512_add_epi64(r, mul_mod(c, x, y)), c.q);
            _mm512_mask_storeu_epi64(rp.add(i) as *mut _, k, s);
        }
    }
}

/// a[i] = a[i]·w mod q with w < q and its 64-bit Shoup companion `w_shoup`.
///
/// # Safety
/// avx512f+avx512ifma available; all words of `a` < 2^52; q < 2^50.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(crate) unsafe fn mul_scalar_assign(m: LaneModulus, a: &mut [u64], w: u64, w_shoup: u64) {
    let (c, w) = (mul_consts(m), shoup_const(w, w_shoup));
    let len = a.len();
    let ap = a.as_mut_ptr();
    for (i, k) in lane_blocks(len) {
        // SAFETY: the mask enables only lanes i..min(i + 8, len), inside the slice.
        unsafe {
            let x = _mm512_maskz_loadu_epi64(k, ap.add(i) as *const _);
            _mm512_mask_storeu_epi64(ap.add(i) as *mut _, k, mul_shoup(c, x, w));
        }
    }
}

/// acc[i] = (acc[i] + a[i]·w) mod q with w < q and its 64-bit Shoup companion `w_shoup`.
///
/// # Safety
/// avx512f+avx512ifma available; `acc.len() == a.len()`; all words < q < 2^50.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(crate) unsafe fn mul_scalar_add_assign(
    m: LaneModulus,
    acc: &mut [u64],
    a: &[u64],
    w: u64,
    w_shoup: u64,
) {
    let (c, w) = (mul_consts(m), shoup_const(w, w_shoup));
    let len = acc.len();
    let (rp, ap) = (acc.as_mut_ptr(), a.as_ptr());
    for (i, k) in lane_blocks(len) {
        // SAFETY: the mask enables only lanes i..min(i + 8, len), inside both slices.
        unsafe {
            let r = _mm512_maskz_loadu_epi64(k, rp.add(i) as *const _);
            let x = _mm512_maskz_loadu_epi64(k, ap.add(i) as *const _);
            let s = reduce_once(_mm512_add_epi64(r, mul_shoup(c, x, w)), c.q);
            _mm512_mask_storeu_epi64(rp.add(i) as *mut _, k, s);
        }
    }
}

/// a[i] = (a[i] − b[i])·w mod q with w < q and its 64-bit Shoup companion.
///
/// # Safety
/// avx512f+avx512ifma available; `a.len() == b.len()`; all words < q < 2^50.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(crate) unsafe fn sub_mul_scalar_assign(
    m: LaneModulus,
    a: &mut [u64],
    b: &[u64],
    w: u64,
    w_shoup: u64,
) {
    let (c, w) = (mul_consts(m), shoup_const(w, w_shoup));
    let len = a.len();
    let (ap, bp) = (a.as_mut_ptr(), b.as_ptr());
    for (i, k) in lane_blocks(len) {
        // SAFETY: the mask enables only lanes i..min(i + 8, len), inside both slices.
        unsafe {
            let x = _mm512_maskz_loadu_epi64(k, ap.add(i) as *const _);
            let y = _mm512_maskz_loadu_epi64(k, bp.add(i) as *const _);
            let d = _mm512_sub_epi64(_mm512_add_epi64(x, c.q), y);
            _mm512_mask_storeu_epi64(ap.add(i) as *mut _, k, mul_shoup(c, d, w));
        }
    }
}

/// dst[i] = centered(src[i]) mod q, where centered maps v < p to v − p when v > p/2
/// (`half` = floor(p/2), `p_mod` = p mod q, `one_shoup` = Shoup companion of 1 mod q).
///
/// # Safety
/// avx512f+avx512ifma available; `src.len() == dst.len()`; src words < 2^52; q < 2^50.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(crate) unsafe fn lift_centered(
    m: LaneModulus,
    src: &[u64],
    dst: &mut [u64],
    half: u64,
    p_mod: u64,
    one_shoup: u64,
) {
    let (c, one) = (mul_consts(m), shoup_const(1, one_shoup));
    let halfv = _mm512_set1_epi64(half as i64);
    let fix = _mm512_set1_epi64((m.q - p_mod) as i64);
    let len = src.len();
    let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
    for (i, k) in lane_blocks(len) {
        // SAFETY: the mask enables only lanes i..min(i + 8, len), inside both slices.
        unsafe {
            let v = _mm512_maskz_loadu_epi64(k, sp.add(i) as *const _);
            let r = mul_shoup(c, v, one);
            let neg = _mm512_cmpgt_epu64_mask(v, halfv);
            let shifted = reduce_once(_mm512_add_epi64(r, fix), c.q);
            let out = _mm512_mask_blend_epi64(neg, r, shifted);
            _mm512_mask_storeu_epi64(dp.add(i) as *mut _, k, out);
        }
    }
}
