//! AVX-512 F/DQ NTT stages for primes too wide for IFMA (up to 2^62): 8 lanes of 64-bit Shoup
//! butterflies; and the element-wise Shoup products by a constant for the same primes.
//!
//! Shoup multiplication needs hi64(y·w') for the quotient estimate; AVX-512 has no 64×64→128
//! multiply, so it is assembled from four 32×32→64 products (`mul_epu32`). The two low products
//! y·w and est·q are `mullo_epi64` (DQ). The arithmetic is the portable path's, word for word:
//! the same estimates, the same lazy ranges, so outputs are bit-identical.
//!
//! Stages whose butterfly distance is at least 8 broadcast one twiddle per group; the forward
//! transform's last three (t = 4, 2, 1) and the inverse's first three (t = 1, 2, 4) gather
//! their operands across two vectors with `permutex2var`.

use std::arch::x86_64::*;

use super::ifma_slice::{lane_blocks, reduce_once};
use super::kernel_args::Correction;

/// hi64(a·b) for lanes a, b; `b_hi` = b >> 32 (the twiddle companion, broadcast once per group).
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn mul_hi(a: __m512i, b: __m512i, b_hi: __m512i) -> __m512i {
    // The low word is dead here and compiled away.
    mul_columns(a, b, b_hi).0
}

/// The 128-bit products of lanes a and b as (high, low) words, from four 32×32→64 products;
/// `b_hi` = b >> 32.
#[inline]
#[target_feature(enable = "avx512f")]
fn mul_columns(a: __m512i, b: __m512i, b_hi: __m512i) -> (__m512i, __m512i) {
    let lo32 = _mm512_set1_epi64(0xffff_ffff);
    let a_hi = _mm512_srli_epi64::<32>(a);
    let ll = _mm512_mul_epu32(a, b);
    let lh = _mm512_mul_epu32(a, b_hi);
    let hl = _mm512_mul_epu32(a_hi, b);
    let hh = _mm512_mul_epu32(a_hi, b_hi);
    // The middle column: three 32-bit terms, so it cannot overflow 64 bits.
    let mid = _mm512_add_epi64(
        _mm512_add_epi64(_mm512_srli_epi64::<32>(ll), _mm512_and_si512(lh, lo32)),
        _mm512_and_si512(hl, lo32),
    );
    let lo = _mm512_or_si512(_mm512_slli_epi64::<32>(mid), _mm512_and_si512(ll, lo32));
    let hi = _mm512_add_epi64(
        _mm512_add_epi64(hh, _mm512_srli_epi64::<32>(lh)),
        _mm512_add_epi64(_mm512_srli_epi64::<32>(hl), _mm512_srli_epi64::<32>(mid)),
    );
    (hi, lo)
}

/// Eight words of `s` from `j`.
#[inline]
#[target_feature(enable = "avx512f")]
fn load(s: &[u64], j: usize) -> __m512i {
    assert!(j + 8 <= s.len());
    // SAFETY: the eight words s[j..j + 8] are in bounds (asserted); loadu has no alignment need.
    unsafe { _mm512_loadu_si512(s.as_ptr().add(j).cast()) }
}

/// Stores eight words to `s` from `j`.
#[inline]
#[target_feature(enable = "avx512f")]
fn store(s: &mut [u64], j: usize, v: __m512i) {
    assert!(j + 8 <= s.len());
    // SAFETY: as in `load`, for a unique borrow.
    unsafe { _mm512_storeu_si512(s.as_mut_ptr().add(j).cast(), v) }
}

/// A twiddle and its Shoup companion, broadcast.
#[derive(Clone, Copy)]
struct Twiddle {
    w: __m512i,
    ws: __m512i,
    ws_hi: __m512i,
}

#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn twiddle(w: u64, ws: u64) -> Twiddle {
    Twiddle {
        w: _mm512_set1_epi64(w as i64),
        ws: _mm512_set1_epi64(ws as i64),
        ws_hi: _mm512_set1_epi64((ws >> 32) as i64),
    }
}

/// y·w mod q in [0, 2q) for any 64-bit lanes y (`Modulus::mul_shoup_lazy`).
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn mul_shoup_lazy(y: __m512i, tw: Twiddle, q: __m512i) -> __m512i {
    let est = mul_hi(y, tw.ws, tw.ws_hi);
    _mm512_sub_epi64(_mm512_mullo_epi64(y, tw.w), _mm512_mullo_epi64(est, q))
}

/// The forward transform's stages with butterfly distance t >= 8, in place; returns the
/// (m, t) the scalar path continues from (m groups of distance t done so far).
///
/// # Safety
/// The CPU must have avx512f and avx512dq; `a`, `roots` and `roots_shoup` have the same
/// power-of-two length >= 16; q < 2^62; inputs in [0, 4q).
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn forward_stages(
    q: u64,
    roots: &[u64],
    roots_shoup: &[u64],
    a: &mut [u64],
) -> (usize, usize) {
    let n = a.len();
    let qv = _mm512_set1_epi64(q as i64);
    let two_q = _mm512_set1_epi64((2 * q) as i64);
    let (mut m, mut t) = (1usize, n);
    while m < n / 2 && t / 2 >= 8 {
        t >>= 1;
        for g in 0..m {
            let tw = twiddle(roots[m + g], roots_shoup[m + g]);
            let (lo, hi) = a[2 * g * t..2 * (g + 1) * t].split_at_mut(t);
            for j in (0..t).step_by(8) {
                let x = load(lo, j);
                let u = _mm512_min_epu64(x, _mm512_sub_epi64(x, two_q));
                let v = mul_shoup_lazy(load(hi, j), tw, qv);
                store(lo, j, _mm512_add_epi64(u, v));
                store(hi, j, _mm512_sub_epi64(_mm512_add_epi64(u, two_q), v));
            }
        }
        m <<= 1;
    }
    (m, t)
}

/// Lane indices for a stage of butterfly distance t < 8 over a 16-word block held in two
/// vectors (a = words 0..8, b = words 8..16), for `permutex2var`: where each X and Y operand
/// comes from, and where each output word of a and b comes from in (X', Y').
fn small_stage_indices(t: usize) -> ([u64; 8], [u64; 8], [u64; 8], [u64; 8]) {
    let (mut gx, mut gy, mut sa, mut sb) = ([0u64; 8], [0u64; 8], [0u64; 8], [0u64; 8]);
    for l in 0..8 {
        let w = (l / t) * 2 * t + l % t;
        gx[l] = w as u64;
        gy[l] = (w + t) as u64;
    }
    for w in 0..16 {
        let (g, o) = (w / (2 * t), w % (2 * t));
        let src = if o < t { (g * t + o) as u64 } else { 8 + (g * t + o - t) as u64 };
        if w < 8 {
            sa[w] = src;
        } else {
            sb[w - 8] = src;
        }
    }
    (gx, gy, sa, sb)
}

/// A stage of butterfly distance t < 8 over 16-word blocks: where each lane's X and Y operand
/// comes from in the block's two vectors, where each output word goes back, and which of the
/// block's consecutive twiddles each lane takes.
#[derive(Clone, Copy)]
struct SmallStage {
    gx: __m512i,
    gy: __m512i,
    sa: __m512i,
    sb: __m512i,
    spread: __m512i,
    groups: usize,
}

impl SmallStage {
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn new(t: usize) -> Self {
        let (gx, gy, sa, sb) = small_stage_indices(t);
        let mut spread = [0u64; 8];
        for (l, s) in spread.iter_mut().enumerate() {
            *s = (l / t) as u64;
        }
        let v = |a: &[u64; 8]| load(a, 0);
        Self { gx: v(&gx), gy: v(&gy), sa: v(&sa), sb: v(&sb), spread: v(&spread), groups: 8 / t }
    }

    /// The butterfly operands (X, Y) of a 16-word block.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn gather(&self, chunk: &[u64]) -> (__m512i, __m512i) {
        let (va, vb) = (load(chunk, 0), load(chunk, 8));
        let x = _mm512_permutex2var_epi64(va, self.gx, vb);
        (x, _mm512_permutex2var_epi64(va, self.gy, vb))
    }

    /// Writes the butterfly outputs (X', Y') back to their words of the block.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn scatter(&self, chunk: &mut [u64], x: __m512i, y: __m512i) {
        store(chunk, 0, _mm512_permutex2var_epi64(x, self.sa, y));
        store(chunk, 8, _mm512_permutex2var_epi64(x, self.sb, y));
    }

    /// Block `blk`'s twiddles at a stage of `m` groups: lane l takes the (l / t)-th of the
    /// eight consecutive table entries from m + blk·8/t (inside the table at every stage).
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn twiddles(&self, roots: &[u64], roots_shoup: &[u64], m: usize, blk: usize) -> Twiddle {
        let g = m + blk * self.groups;
        let w = _mm512_permutexvar_epi64(self.spread, load(roots, g));
        let ws = _mm512_permutexvar_epi64(self.spread, load(roots_shoup, g));
        Twiddle { w, ws, ws_hi: _mm512_srli_epi64::<32>(ws) }
    }
}

/// The forward transform's last three stages (t = 4, 2, 1), starting from m = N/8 groups of
/// distance 8 done, the last fused with the final reduction to [0, q): per 16-word block the
/// butterfly operands are gathered across two vectors and scattered back.
///
/// # Safety
/// As [`forward_stages`], which must have run every stage before (`a.len()` >= 16).
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn forward_tail(q: u64, roots: &[u64], roots_shoup: &[u64], a: &mut [u64]) {
    let n = a.len();
    let qv = _mm512_set1_epi64(q as i64);
    let two_q = _mm512_set1_epi64((2 * q) as i64);
    let mut m = n / 8;
    for t in [4usize, 2, 1] {
        let stage = SmallStage::new(t);
        for (blk, chunk) in a.chunks_exact_mut(16).enumerate() {
            let tw = stage.twiddles(roots, roots_shoup, m, blk);
            let (x, y) = stage.gather(chunk);
            let u = _mm512_min_epu64(x, _mm512_sub_epi64(x, two_q));
            let v = mul_shoup_lazy(y, tw, qv);
            let mut x2 = _mm512_add_epi64(u, v);
            let mut y2 = _mm512_sub_epi64(_mm512_add_epi64(u, two_q), v);
            if t == 1 {
                for r in [&mut x2, &mut y2] {
                    let v = _mm512_min_epu64(*r, _mm512_sub_epi64(*r, two_q));
                    *r = _mm512_min_epu64(v, _mm512_sub_epi64(v, qv));
                }
            }
            stage.scatter(chunk, x2, y2);
        }
        m <<= 1;
    }
}

/// The inverse transform's first three stages (t = 1, 2, 4), from m = N/2 groups, each 16-word
/// block's butterfly operands gathered across two vectors as in [`forward_tail`]; the stages of
/// distance >= 8 continue from (N/16, 8).
///
/// # Safety
/// As [`forward_stages`], with inputs in [0, 2q).
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn inverse_head(
    q: u64,
    inv_roots: &[u64],
    inv_roots_shoup: &[u64],
    a: &mut [u64],
) {
    let n = a.len();
    let qv = _mm512_set1_epi64(q as i64);
    let two_q = _mm512_set1_epi64((2 * q) as i64);
    let mut m = n / 2;
    for t in [1usize, 2, 4] {
        let stage = SmallStage::new(t);
        for (blk, chunk) in a.chunks_exact_mut(16).enumerate() {
            let tw = stage.twiddles(inv_roots, inv_roots_shoup, m, blk);
            let (u, v) = stage.gather(chunk);
            let s = _mm512_add_epi64(u, v);
            let x = _mm512_min_epu64(s, _mm512_sub_epi64(s, two_q));
            let y = mul_shoup_lazy(_mm512_sub_epi64(_mm512_add_epi64(u, two_q), v), tw, qv);
            stage.scatter(chunk, x, y);
        }
        m >>= 1;
    }
}

/// The inverse transform's stages with butterfly distance t >= 8, continuing from
/// [`inverse_head`] at (m, t), up to but excluding the last (t = n/2) stage; returns the (m, t)
/// reached.
///
/// # Safety
/// As [`forward_stages`], with inputs in [0, 2q) and t >= 8 a power of two.
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn inverse_stages(
    q: u64,
    inv_roots: &[u64],
    inv_roots_shoup: &[u64],
    a: &mut [u64],
    (mut m, mut t): (usize, usize),
) -> (usize, usize) {
    let qv = _mm512_set1_epi64(q as i64);
    let two_q = _mm512_set1_epi64((2 * q) as i64);
    while m > 1 {
        for g in 0..m {
            let tw = twiddle(inv_roots[m + g], inv_roots_shoup[m + g]);
            let (lo, hi) = a[2 * g * t..2 * (g + 1) * t].split_at_mut(t);
            for j in (0..t).step_by(8) {
                let (u, v) = (load(lo, j), load(hi, j));
                let s = _mm512_add_epi64(u, v);
                let d = _mm512_sub_epi64(_mm512_add_epi64(u, two_q), v);
                store(lo, j, _mm512_min_epu64(s, _mm512_sub_epi64(s, two_q)));
                store(hi, j, mul_shoup_lazy(d, tw, qv));
            }
        }
        t <<= 1;
        m >>= 1;
    }
    (m, t)
}

/// The inverse transform's last stage fused with the N^{-1} scaling, fully reduced:
/// x = (u + v)·n_inv, y = (u + 2q − v)·last, for the two halves of `a`.
///
/// # Safety
/// The CPU must have avx512f and avx512dq; `a.len()` is a multiple of 16; q < 2^62; inputs
/// in [0, 2q); the constants are below q with their Shoup companions.
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn inverse_last(q: u64, n_inv: (u64, u64), last: (u64, u64), a: &mut [u64]) {
    let half = a.len() / 2;
    let qv = _mm512_set1_epi64(q as i64);
    let two_q = _mm512_set1_epi64((2 * q) as i64);
    let (ni, li) = (twiddle(n_inv.0, n_inv.1), twiddle(last.0, last.1));
    let (lo, hi) = a.split_at_mut(half);
    for j in (0..half).step_by(8) {
        let (u, v) = (load(lo, j), load(hi, j));
        let x = mul_shoup_lazy(_mm512_add_epi64(u, v), ni, qv);
        let y = mul_shoup_lazy(_mm512_sub_epi64(_mm512_add_epi64(u, two_q), v), li, qv);
        store(lo, j, _mm512_min_epu64(x, _mm512_sub_epi64(x, qv)));
        store(hi, j, _mm512_min_epu64(y, _mm512_sub_epi64(y, qv)));
    }
}

/// out[j] = Σ_i y[i·stride + start + j]·row[i] mod p (minus counts[j]·(Q mod p) with a
/// correction), fully reduced: the basis extension's accumulation for primes too wide for IFMA,
/// one Shoup product per term (`row_shoup` are the row's companions) kept in [0, 2p).
///
/// # Safety
/// The CPU must have avx512f and avx512dq; p < 2^62; every row entry and `q_mod_p` below p
/// with its companion; `out.len()` a multiple of 8; the block `start..start + out.len()` inside
/// each of the `row.len()` limbs of `stride` words in `y`; `counts` as long as `out`.
#[target_feature(enable = "avx512f,avx512dq")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn extend_block(
    y: &[u64],
    stride: usize,
    start: usize,
    row: &[u64],
    row_shoup: &[u64],
    p: u64,
    corr: Option<Correction<'_>>,
    out: &mut [u64],
) {
    let pv = _mm512_set1_epi64(p as i64);
    let two_p = _mm512_set1_epi64((2 * p) as i64);
    let q_mod_p = corr.map(|c| twiddle(c.q_mod_p, c.q_mod_p_shoup));
    for j in (0..out.len()).step_by(8) {
        let mut acc = _mm512_setzero_si512();
        for (i, (&w, &ws)) in row.iter().zip(row_shoup).enumerate() {
            let r = mul_shoup_lazy(load(y, i * stride + start + j), twiddle(w, ws), pv);
            let s = _mm512_add_epi64(acc, r);
            acc = _mm512_min_epu64(s, _mm512_sub_epi64(s, two_p));
        }
        acc = _mm512_min_epu64(acc, _mm512_sub_epi64(acc, pv));
        if let (Some(c), Some(qm)) = (corr, q_mod_p) {
            let s = mul_shoup_lazy(load(c.counts, j), qm, pv);
            let s = _mm512_min_epu64(s, _mm512_sub_epi64(s, pv));
            let d = _mm512_sub_epi64(_mm512_add_epi64(acc, pv), s);
            acc = _mm512_min_epu64(d, _mm512_sub_epi64(d, pv));
        }
        store(out, j, acc);
    }
}

/// a[i] = a[i]·w mod q (canonical) for a constant w < q with Shoup companion `ws`
/// (`Modulus::mul_shoup`, word for word).
///
/// # Safety
/// The CPU must have avx512f and avx512dq; q < 2^62; w < q and ws = floor(w·2^64 / q).
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn mul_scalar_assign(q: u64, a: &mut [u64], w: u64, ws: u64) {
    let (tw, qv) = (twiddle(w, ws), _mm512_set1_epi64(q as i64));
    let len = a.len();
    let ap = a.as_mut_ptr();
    for (i, k) in lane_blocks(len) {
        // SAFETY: the mask enables only lanes i..min(i + 8, len), inside the slice.
        unsafe {
            let x = _mm512_maskz_loadu_epi64(k, ap.add(i) as *const _);
            let r = reduce_once(mul_shoup_lazy(x, tw, qv), qv);
            _mm512_mask_storeu_epi64(ap.add(i) as *mut _, k, r);
        }
    }
}

/// acc[i] = (acc[i] + a[i]·w) mod q for a constant w < q with Shoup companion `ws`.
///
/// # Safety
/// As [`mul_scalar_assign`], with `acc.len() == a.len()` and every word of `acc` below q.
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn mul_scalar_add_assign(q: u64, acc: &mut [u64], a: &[u64], w: u64, ws: u64) {
    let (tw, qv) = (twiddle(w, ws), _mm512_set1_epi64(q as i64));
    let len = acc.len();
    let (rp, ap) = (acc.as_mut_ptr(), a.as_ptr());
    for (i, k) in lane_blocks(len) {
        // SAFETY: the mask enables only lanes i..min(i + 8, len), inside both slices.
        unsafe {
            let r = _mm512_maskz_loadu_epi64(k, rp.add(i) as *const _);
            let x = _mm512_maskz_loadu_epi64(k, ap.add(i) as *const _);
            let p = reduce_once(mul_shoup_lazy(x, tw, qv), qv);
            let s = reduce_once(_mm512_add_epi64(r, p), qv);
            _mm512_mask_storeu_epi64(rp.add(i) as *mut _, k, s);
        }
    }
}

/// The 128-bit products of lanes a and b, as (high, low) words.
#[inline]
#[target_feature(enable = "avx512f")]
fn mul_full(a: __m512i, b: __m512i) -> (__m512i, __m512i) {
    mul_columns(a, b, _mm512_srli_epi64::<32>(b))
}

/// (hi·2^64 + lo) + x for 128-bit lanes (hi, lo) and words x, the carry out of the low word
/// going to the high one; the caller keeps the sum below 2^128.
#[inline]
#[target_feature(enable = "avx512f")]
fn add_word(hi: __m512i, lo: __m512i, x: __m512i) -> (__m512i, __m512i) {
    let sum = _mm512_add_epi64(lo, x);
    let carry = _mm512_cmplt_epu64_mask(sum, x);
    (_mm512_mask_add_epi64(hi, carry, hi, _mm512_set1_epi64(1)), sum)
}

/// Barrett reduction of sums of products of reduced words, the modulus's constants broadcast:
/// `bits` of q, `room` extra bits of input, and μ = floor(2^(2·bits + room) / q) (below
/// 2^(bits + 1 + room)).
#[derive(Clone, Copy)]
struct SquareBarrett {
    q: __m512i,
    mu: __m512i,
    /// Shift counts bits − 1, 65 − bits, bits + 1 + room and 63 − bits − room (low lanes of
    /// each).
    shifts: [__m128i; 4],
}

impl SquareBarrett {
    /// For single products (values below 2^(2·bits)).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn new(q: u64) -> Self {
        Self::with_room(q, 0)
    }

    /// For values below 2^(2·bits + room); needs bits + 1 + room ≤ 64, so that μ and the
    /// top bits of the value fit a word.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn with_room(q: u64, room: u32) -> Self {
        let bits = u64::from(64 - q.leading_zeros());
        let room = u64::from(room);
        debug_assert!(bits + 1 + room <= 64);
        let mu = ((1u128 << (2 * bits + room)) / u128::from(q)) as u64;
        let count = |c: u64| _mm_set_epi64x(0, c as i64);
        Self {
            q: _mm512_set1_epi64(q as i64),
            mu: _mm512_set1_epi64(mu as i64),
            shifts: [
                count(bits - 1),
                count(65 - bits),
                count(bits + 1 + room),
                count(63 - bits - room),
            ],
        }
    }

    /// (hi·2^64 + lo) mod q for a value below 2^(2·bits + room) (HAC 14.42: the estimate is at
    /// most two below the quotient, so two conditional subtractions finish it; the bound's
    /// two error terms stay below one each with the room added to both exponents).
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn reduce(&self, hi: __m512i, lo: __m512i) -> __m512i {
        let [down, up, est_down, est_up] = self.shifts;
        let top = _mm512_or_si512(_mm512_srl_epi64(lo, down), _mm512_sll_epi64(hi, up));
        let (p_hi, p_lo) = mul_full(top, self.mu);
        let est = _mm512_or_si512(_mm512_srl_epi64(p_lo, est_down), _mm512_sll_epi64(p_hi, est_up));
        let r = _mm512_sub_epi64(lo, _mm512_mullo_epi64(est, self.q));
        let r = _mm512_min_epu64(r, _mm512_sub_epi64(r, self.q));
        _mm512_min_epu64(r, _mm512_sub_epi64(r, self.q))
    }
}

/// acc[i] = (acc[i] + a[i]·b[i]) mod q, canonical (`Modulus::mul_add_assign_slice`'s words).
///
/// # Safety
/// The CPU must have avx512f and avx512dq; 3 ≤ q < 2^62 odd; the three slices have one length
/// and every word is below q.
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn mul_add_assign(q: u64, acc: &mut [u64], a: &[u64], b: &[u64]) {
    let barrett = SquareBarrett::new(q);
    let len = acc.len();
    let (rp, ap, bp) = (acc.as_mut_ptr(), a.as_ptr(), b.as_ptr());
    for (i, k) in lane_blocks(len) {
        // SAFETY: the mask enables only lanes i..min(i + 8, len), inside all three slices.
        unsafe {
            let r = _mm512_maskz_loadu_epi64(k, rp.add(i) as *const _);
            let x = _mm512_maskz_loadu_epi64(k, ap.add(i) as *const _);
            let y = _mm512_maskz_loadu_epi64(k, bp.add(i) as *const _);
            let (hi, lo) = mul_full(x, y);
            // a·b + acc < q^2.
            let (hi, sum) = add_word(hi, lo, r);
            _mm512_mask_storeu_epi64(rp.add(i) as *mut _, k, barrett.reduce(hi, sum));
        }
    }
}

/// a[i] = a[i]·b[i] mod q, canonical (`Modulus::mul_assign_slice`'s words).
///
/// # Safety
/// As [`mul_add_assign`], for two slices.
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn mul_assign(q: u64, a: &mut [u64], b: &[u64]) {
    let barrett = SquareBarrett::new(q);
    let len = a.len();
    let (ap, bp) = (a.as_mut_ptr(), b.as_ptr());
    for (i, k) in lane_blocks(len) {
        // SAFETY: the mask enables only lanes i..min(i + 8, len), inside both slices.
        unsafe {
            let x = _mm512_maskz_loadu_epi64(k, ap.add(i) as *const _);
            let y = _mm512_maskz_loadu_epi64(k, bp.add(i) as *const _);
            let (hi, lo) = mul_full(x, y);
            _mm512_mask_storeu_epi64(ap.add(i) as *mut _, k, barrett.reduce(hi, lo));
        }
    }
}

/// `out[i] = (hi[i]·2^64 + lo[i]) mod q` by [`SquareBarrett::with_room`], for tests of the
/// reduction at the edge of its range.
///
/// # Safety
/// avx512f and avx512dq available; 3 ≤ q < 2^62 odd, bits(q) + 1 + room ≤ 64; the three slices
/// have one length, a multiple of 8; every value below 2^(2·bits(q) + room).
#[cfg(test)]
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn reduce_with_room(q: u64, room: u32, hi: &[u64], lo: &[u64], out: &mut [u64]) {
    let barrett = SquareBarrett::with_room(q, room);
    for i in (0..out.len()).step_by(8) {
        store(out, i, barrett.reduce(load(hi, i), load(lo, i)));
    }
}

/// The most products of reduced words a 128-bit sum may take beside one reduced word and still
/// be reduced by [`SquareBarrett::with_room`] with `room` extra bits: 2^room − 1, with room =
/// 63 − bits (μ and the value's top bits must fit a word), capped at 2^20 − 1 terms. One for
/// 62-bit q, seven for 60-bit.
fn dot_fold(bits: u32) -> (u32, usize) {
    let room = 63 - bits;
    (room, ((1u64 << room.min(20)) - 1) as usize)
}

/// `out[k][c] = Σ_j a[j][c]·b[k·J + j][c] mod q` for K outputs sharing the a-operands (the
/// key-switching inner product), canonical: the u128 loop's words. The products are summed as
/// 128-bit words and reduced once per [`dot_fold`] terms.
///
/// # Safety
/// avx512f and avx512dq available; 3 ≤ q < 2^62 odd; every slice in `a`, `b` and `out` has
/// length n, a multiple of 8; `b.len() = K·a.len()`. (Correctness also needs every word below
/// q; a larger one gives a wrong value.)
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn dot<const K: usize>(q: u64, a: &[&[u64]], b: &[&[u64]], out: [&mut [u64]; K]) {
    let (room, fold) = dot_fold(64 - q.leading_zeros());
    let barrett = SquareBarrett::with_room(q, room);
    let n = out[0].len();
    let digits = a.len();
    let zero = _mm512_setzero_si512();
    for base in (0..n).step_by(8) {
        let mut r = [zero; K];
        for j0 in (0..digits).step_by(fold) {
            // The sum starts from the reduced value so far: below q + fold·(q − 1)^2.
            let mut lo = r;
            let mut hi = [zero; K];
            for j in j0..(j0 + fold).min(digits) {
                let x = load(a[j], base);
                let x_hi = _mm512_srli_epi64::<32>(x);
                for k in 0..K {
                    let (p_hi, p_lo) = mul_columns(load(b[k * digits + j], base), x, x_hi);
                    (hi[k], lo[k]) = add_word(_mm512_add_epi64(hi[k], p_hi), lo[k], p_lo);
                }
            }
            for k in 0..K {
                r[k] = barrett.reduce(hi[k], lo[k]);
            }
        }
        for k in 0..K {
            store(out[k], base, r[k]);
        }
    }
}
