//! AVX-512 IFMA negacyclic NTT kernels (8 lanes of 52-bit multiply-add).
//!
//! Shoup multiplication in 52-bit lanes: with w' = floor(w·2^52/q) (the 64-bit companion shifted
//! right by 12), `est = hi52(y·w')` and `r = lo52(y·w) + lo52(est·(2^52 - q)) mod 2^52` lies in
//! [0, 2q) for any y < 2^52. Lazy values stay below 4q < 2^52, hence q < 2^50.
//!
//! Stages with butterfly distance t >= 8 broadcast one twiddle per group; the three with
//! t = 4, 2, 1 run fused per 16-word block, gathering X/Y operands with `permutex2var` (each
//! stage's scatter composed with the next stage's gather) and expanding the twiddles with
//! `permutexvar`.

use std::arch::x86_64::*;

use super::kernel_args::{Correction, ExtendFold, InverseScale};

const MASK52: u64 = (1 << 52) - 1;

/// Lane constants shared by all butterflies of one transform.
#[derive(Clone, Copy)]
struct Consts {
    q: __m512i,
    two_q: __m512i,
    neg_q: __m512i,
    mask: __m512i,
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn consts(q: u64) -> Consts {
    Consts {
        q: _mm512_set1_epi64(q as i64),
        two_q: _mm512_set1_epi64((2 * q) as i64),
        neg_q: _mm512_set1_epi64(((1u64 << 52) - q) as i64),
        mask: _mm512_set1_epi64(MASK52 as i64),
    }
}

/// y·w mod q in [0, 2q) for lanes y < 2^52, w < q, `w52` = floor(w·2^52/q).
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn mul_shoup_lazy(c: Consts, y: __m512i, w: __m512i, w52: __m512i) -> __m512i {
    let zero = _mm512_setzero_si512();
    let est = _mm512_madd52hi_epu64(zero, y, w52);
    let lo = _mm512_madd52lo_epu64(zero, y, w);
    let r = _mm512_madd52lo_epu64(lo, est, c.neg_q);
    _mm512_and_si512(r, c.mask)
}

/// Lanes in [0, 2m) to [0, m).
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn reduce_once(x: __m512i, m: __m512i) -> __m512i {
    _mm512_min_epu64(x, _mm512_sub_epi64(x, m))
}

/// Cooley–Tukey butterfly on lazy values in [0, 4q); outputs in [0, 4q).
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn ct(c: Consts, x: __m512i, y: __m512i, w: __m512i, w52: __m512i) -> (__m512i, __m512i) {
    let x = reduce_once(x, c.two_q);
    let t = mul_shoup_lazy(c, y, w, w52);
    (_mm512_add_epi64(x, t), _mm512_add_epi64(x, _mm512_sub_epi64(c.two_q, t)))
}

/// Gentleman–Sande butterfly on values in [0, 2q); outputs in [0, 2q).
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn gs(c: Consts, x: __m512i, y: __m512i, w: __m512i, w52: __m512i) -> (__m512i, __m512i) {
    let s = reduce_once(_mm512_add_epi64(x, y), c.two_q);
    let d = _mm512_sub_epi64(_mm512_add_epi64(x, c.two_q), y);
    (s, mul_shoup_lazy(c, d, w, w52))
}

/// Index tables (gather X, gather Y, scatter low, scatter high) over a 16-word block for
/// butterfly distance t < 8: X/Y gather the two halves of every butterfly, the scatters put
/// them back (indices 0–7 name the first operand of `permutex2var`, 8–15 the second).
fn shuffle_table(t: usize) -> [[i64; 8]; 4] {
    match t {
        4 => [
            [0, 1, 2, 3, 8, 9, 10, 11],
            [4, 5, 6, 7, 12, 13, 14, 15],
            [0, 1, 2, 3, 8, 9, 10, 11],
            [4, 5, 6, 7, 12, 13, 14, 15],
        ],
        2 => [
            [0, 1, 4, 5, 8, 9, 12, 13],
            [2, 3, 6, 7, 10, 11, 14, 15],
            [0, 1, 8, 9, 2, 3, 10, 11],
            [4, 5, 12, 13, 6, 7, 14, 15],
        ],
        _ => [
            [0, 2, 4, 6, 8, 10, 12, 14],
            [1, 3, 5, 7, 9, 11, 13, 15],
            [0, 8, 1, 9, 2, 10, 3, 11],
            [4, 12, 5, 13, 6, 14, 7, 15],
        ],
    }
}

/// The gather of the next stage applied directly to the (X, Y) pair of the previous one:
/// block position p came from pool index scatter[p], so lane l of the next gather reads
/// scatter[gather[l]].
fn compose(scatter_lo: [i64; 8], scatter_hi: [i64; 8], gather: [i64; 8]) -> [i64; 8] {
    gather.map(|g| if g < 8 { scatter_lo[g as usize] } else { scatter_hi[g as usize - 8] })
}

#[inline]
#[target_feature(enable = "avx512f")]
fn idx(a: [i64; 8]) -> __m512i {
    _mm512_setr_epi64(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7])
}

/// Twiddle expansion for distance t < 8: each of the 16/(2t) groups in a 16-word block owns t
/// lanes of the 8-lane twiddle vector.
#[target_feature(enable = "avx512f")]
fn twiddle_spread(t: usize) -> __m512i {
    match t {
        4 => _mm512_setr_epi64(0, 0, 0, 0, 1, 1, 1, 1),
        2 => _mm512_setr_epi64(0, 0, 1, 1, 2, 2, 3, 3),
        _ => _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7),
    }
}

/// Broadcast one twiddle and its 52-bit Shoup companion.
#[inline]
#[target_feature(enable = "avx512f")]
fn splat_twiddle(w: u64, w_shoup64: u64) -> (__m512i, __m512i) {
    (_mm512_set1_epi64(w as i64), _mm512_set1_epi64((w_shoup64 >> 12) as i64))
}

/// Twiddles of block `b` (16 words) at distance t < 8: groups b·8/t.. of stage m = n/(2t).
///
/// # Safety
/// avx512f available; `m + b·8/t + 8 <= roots.len() = roots_shoup.len()` (true for every block
/// when n >= 16, see `small_stages`).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn block_twiddles(
    roots: &[u64],
    roots_shoup: &[u64],
    n: usize,
    t: usize,
    b: usize,
    spread: __m512i,
) -> (__m512i, __m512i) {
    let at = n / (2 * t) + b * (8 / t);
    // SAFETY: the caller guarantees at + 8 <= len for both twiddle tables.
    unsafe {
        let wr = _mm512_loadu_si512(roots.as_ptr().add(at) as *const _);
        let ws = _mm512_loadu_si512(roots_shoup.as_ptr().add(at) as *const _);
        (
            _mm512_permutexvar_epi64(spread, wr),
            _mm512_srli_epi64::<12>(_mm512_permutexvar_epi64(spread, ws)),
        )
    }
}

/// The three stages with distance t < 8 (forward: t = 4, 2, 1 with the final reduction;
/// inverse: t = 1, 2, 4) fused per 16-word block: one load and one store per block, and the
/// scatter of each stage composed with the gather of the next into one permutation.
///
/// # Safety
/// avx512f+avx512ifma available; `a.len() == roots.len() == roots_shoup.len() = n`, n >= 16 a
/// power of two. Twiddle loads stay in bounds: at distance t the block b reads 8 words at
/// n/(2t) + b·8/t <= n/(2t) + (n/16 − 1)·8/t, which plus 8 is at most n for every t in {1, 2, 4}.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
unsafe fn small_stages<const FORWARD: bool>(
    c: Consts,
    a: &mut [u64],
    roots: &[u64],
    roots_shoup: &[u64],
) {
    let n = a.len();
    let ts: [usize; 3] = if FORWARD { [4, 2, 1] } else { [1, 2, 4] };
    let tab = ts.map(shuffle_table);
    let (gx0, gy0) = (idx(tab[0][0]), idx(tab[0][1]));
    let (gx1, gy1) = (
        idx(compose(tab[0][2], tab[0][3], tab[1][0])),
        idx(compose(tab[0][2], tab[0][3], tab[1][1])),
    );
    let (gx2, gy2) = (
        idx(compose(tab[1][2], tab[1][3], tab[2][0])),
        idx(compose(tab[1][2], tab[1][3], tab[2][1])),
    );
    let (s0, s1) = (idx(tab[2][2]), idx(tab[2][3]));
    #[allow(clippy::redundant_closure)] // target-feature fn items do not implement Fn.
    let spreads = ts.map(|t| twiddle_spread(t));
    let bfly = |x, y, w, w52| if FORWARD { ct(c, x, y, w, w52) } else { gs(c, x, y, w, w52) };
    let ap = a.as_mut_ptr();
    for b in 0..n / 16 {
        // SAFETY: block b covers words 16b..16b + 16 <= n; twiddle loads per the contract.
        unsafe {
            let p = ap.add(16 * b);
            let v0 = _mm512_loadu_si512(p as *const _);
            let v1 = _mm512_loadu_si512(p.add(8) as *const _);
            let (w, w52) = block_twiddles(roots, roots_shoup, n, ts[0], b, spreads[0]);
            let (x, y) = bfly(
                _mm512_permutex2var_epi64(v0, gx0, v1),
                _mm512_permutex2var_epi64(v0, gy0, v1),
                w,
                w52,
            );
            let (w, w52) = block_twiddles(roots, roots_shoup, n, ts[1], b, spreads[1]);
            let (x, y) = bfly(
                _mm512_permutex2var_epi64(x, gx1, y),
                _mm512_permutex2var_epi64(x, gy1, y),
                w,
                w52,
            );
            let (w, w52) = block_twiddles(roots, roots_shoup, n, ts[2], b, spreads[2]);
            let (mut x, mut y) = bfly(
                _mm512_permutex2var_epi64(x, gx2, y),
                _mm512_permutex2var_epi64(x, gy2, y),
                w,
                w52,
            );
            if FORWARD {
                x = reduce_once(reduce_once(x, c.two_q), c.q);
                y = reduce_once(reduce_once(y, c.two_q), c.q);
            }
            _mm512_storeu_si512(p as *mut _, _mm512_permutex2var_epi64(x, s0, y));
            _mm512_storeu_si512(p.add(8) as *mut _, _mm512_permutex2var_epi64(x, s1, y));
        }
    }
}

/// One stage with distance t >= 8: a broadcast twiddle per group of 2t words.
///
/// # Safety
/// avx512f+avx512ifma available; `a.len() = n` a power of two, t >= 8, m = n/(2t), and the
/// twiddle slices hold at least 2m entries.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
unsafe fn wide_stage<const FORWARD: bool>(
    c: Consts,
    a: &mut [u64],
    roots: &[u64],
    roots_shoup: &[u64],
    t: usize,
) {
    let m = a.len() / (2 * t);
    let ap = a.as_mut_ptr();
    for i in 0..m {
        let (w, w52) = splat_twiddle(roots[m + i], roots_shoup[m + i]);
        let base = 2 * t * i;
        let mut j = 0;
        while j < t {
            // SAFETY: base + t + j + 8 <= base + 2t <= n since j < t, t a multiple of 8.
            unsafe {
                let px = ap.add(base + j);
                let py = ap.add(base + t + j);
                let x = _mm512_loadu_si512(px as *const _);
                let y = _mm512_loadu_si512(py as *const _);
                let (x, y) = if FORWARD { ct(c, x, y, w, w52) } else { gs(c, x, y, w, w52) };
                _mm512_storeu_si512(px as *mut _, x);
                _mm512_storeu_si512(py as *mut _, y);
            }
            j += 8;
        }
    }
}

/// Forward negacyclic NTT, natural order in, bit-reversed order out, fully reduced.
///
/// # Safety
/// The CPU supports avx512f and avx512ifma; q < 2^50 is odd; `roots`, `roots_shoup` and `a`
/// have the same power-of-two length n >= 16 (twiddles as built by `NttTable`).
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) unsafe fn forward(q: u64, roots: &[u64], roots_shoup: &[u64], a: &mut [u64]) {
    let c = consts(q);
    let n = a.len();
    let mut t = n / 2;
    while t >= 8 {
        // SAFETY: t >= 8 and the lengths are as the contract states.
        unsafe { wide_stage::<true>(c, a, roots, roots_shoup, t) };
        t /= 2;
    }
    // SAFETY: n >= 16 and equal lengths, as `small_stages` requires.
    unsafe { small_stages::<true>(c, a, roots, roots_shoup) };
}

/// Inverse negacyclic NTT including N^{-1}, bit-reversed order in (values < 2q), natural order
/// out, fully reduced.
///
/// # Safety
/// As for [`forward`], with the inverse twiddles.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) unsafe fn inverse(
    q: u64,
    inv_roots: &[u64],
    inv_roots_shoup: &[u64],
    scale: InverseScale,
    a: &mut [u64],
) {
    let c = consts(q);
    let n = a.len();
    // SAFETY: n >= 16 and equal lengths, as `small_stages` requires.
    unsafe { small_stages::<false>(c, a, inv_roots, inv_roots_shoup) };
    let mut t = 8;
    while t < n / 2 {
        // SAFETY: t >= 8 and the lengths are as the contract states.
        unsafe { wide_stage::<false>(c, a, inv_roots, inv_roots_shoup, t) };
        t *= 2;
    }
    // Last stage (t = n/2) folds in N^{-1}: x' = (x+y)/N, y' = (x-y)·ψ^{-brv(1)}/N.
    let (ni, ni52) = splat_twiddle(scale.n_inv, scale.n_inv_shoup);
    let (li, li52) = splat_twiddle(scale.last, scale.last_shoup);
    let half = n / 2;
    let ap = a.as_mut_ptr();
    let mut j = 0;
    while j < half {
        // SAFETY: j + 8 <= half and half + j + 8 <= n.
        unsafe {
            let px = ap.add(j);
            let py = ap.add(half + j);
            let x = _mm512_loadu_si512(px as *const _);
            let y = _mm512_loadu_si512(py as *const _);
            let s = mul_shoup_lazy(c, _mm512_add_epi64(x, y), ni, ni52);
            let d = _mm512_sub_epi64(_mm512_add_epi64(x, c.two_q), y);
            let d = mul_shoup_lazy(c, d, li, li52);
            _mm512_storeu_si512(px as *mut _, reduce_once(s, c.q));
            _mm512_storeu_si512(py as *mut _, reduce_once(d, c.q));
        }
        j += 8;
    }
}

/// Fold constants of one target prime as lane vectors.
#[derive(Clone, Copy)]
struct FoldConsts {
    c: Consts,
    one: __m512i,
    one52: __m512i,
    c52: __m512i,
    c52s: __m512i,
}

/// Σ_i y[i·stride + at + lane]·row[i] mod p for V consecutive 8-word vectors at `at`, with V
/// independent accumulator chains so the 4-cycle IFMA latency is hidden.
///
/// # Safety
/// avx512f+avx512ifma available; `at + 8·V <= stride`; `yp` points to `row.len()` limbs of
/// `stride` words.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
unsafe fn extend_vectors<const V: usize>(
    f: FoldConsts,
    yp: *const u64,
    stride: usize,
    at: usize,
    row: &[u64],
) -> [__m512i; V] {
    const CHUNK: usize = 15;
    let zero = _mm512_setzero_si512();
    let mut r = [zero; V];
    for (ci, chunk) in row.chunks(CHUNK).enumerate() {
        let mut lo = [zero; V];
        let mut hi = [zero; V];
        for (k, &w) in chunk.iter().enumerate() {
            let i = ci * CHUNK + k;
            let wv = _mm512_set1_epi64(w as i64);
            for v in 0..V {
                // SAFETY: i < row.len() and at + 8·v + 8 <= stride: inside limb i of y.
                let x = unsafe { _mm512_loadu_si512(yp.add(i * stride + at + 8 * v) as *const _) };
                lo[v] = _mm512_madd52lo_epu64(lo[v], x, wv);
                hi[v] = _mm512_madd52hi_epu64(hi[v], x, wv);
            }
        }
        for v in 0..V {
            let lo0 = _mm512_and_si512(lo[v], f.c.mask);
            let h = _mm512_add_epi64(_mm512_srli_epi64::<52>(lo[v]), hi[v]);
            let a = mul_shoup_lazy(f.c, lo0, f.one, f.one52);
            let b = mul_shoup_lazy(f.c, h, f.c52, f.c52s);
            let s = reduce_once(reduce_once(_mm512_add_epi64(a, b), f.c.two_q), f.c.q);
            r[v] = reduce_once(_mm512_add_epi64(r[v], s), f.c.q);
        }
    }
    r
}

/// Basis-extension accumulation for one target prime p < 2^50 over one coefficient block (see
/// `super::extend_block`).
///
/// Products y·w < 2^100 are split by madd52lo/madd52hi into two accumulators; up to 15 terms
/// keep (lo >> 52) + hi below 2^52, after which the pair is folded to [0, p) as
/// lo52 · 1 + (lo >> 52 + hi) · (2^52 mod p) with two 52-bit Shoup products.
///
/// # Safety
/// avx512f+avx512ifma available; `out.len()` a multiple of 8; `y.len() = row.len()·stride`;
/// `start + out.len() <= stride`; `corr.counts` (if any) is `out.len()` long. (Correctness
/// also needs y words < 2^52 and row words < p.)
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) unsafe fn extend_block(
    y: &[u64],
    stride: usize,
    start: usize,
    row: &[u64],
    fold: ExtendFold,
    corr: Option<Correction<'_>>,
    out: &mut [u64],
) {
    let len = out.len();
    let c = consts(fold.p);
    let f = FoldConsts {
        c,
        one: _mm512_set1_epi64(1),
        one52: _mm512_set1_epi64(fold.one_shoup as i64),
        c52: _mm512_set1_epi64(fold.c52 as i64),
        c52s: _mm512_set1_epi64(fold.c52_shoup as i64),
    };
    let corr = corr.map(|k| {
        (
            k.counts.as_ptr(),
            _mm512_set1_epi64(k.q_mod_p as i64),
            _mm512_set1_epi64((k.q_mod_p_shoup >> 12) as i64),
        )
    });
    let finish = |r: __m512i, base: usize| -> __m512i {
        match corr {
            None => r,
            Some((cp, qv, qs)) => {
                // SAFETY: counts has `len` words and base + 8 <= len.
                let cnt = unsafe { _mm512_loadu_si512(cp.add(base) as *const _) };
                let sub = reduce_once(mul_shoup_lazy(c, cnt, qv, qs), c.q);
                reduce_once(_mm512_sub_epi64(_mm512_add_epi64(r, c.q), sub), c.q)
            }
        }
    };
    let yp = y.as_ptr();
    let op = out.as_mut_ptr();
    let mut base = 0;
    while base + 32 <= len {
        // SAFETY: start + base + 32 <= start + len <= stride.
        let r = unsafe { extend_vectors::<4>(f, yp, stride, start + base, row) };
        for (v, rv) in r.into_iter().enumerate() {
            let o = finish(rv, base + 8 * v);
            // SAFETY: base + 8·v + 8 <= len = out.len().
            unsafe { _mm512_storeu_si512(op.add(base + 8 * v) as *mut _, o) };
        }
        base += 32;
    }
    while base < len {
        // SAFETY: start + base + 8 <= stride since len is a multiple of 8.
        let [r] = unsafe { extend_vectors::<1>(f, yp, stride, start + base, row) };
        let o = finish(r, base);
        // SAFETY: base + 8 <= len = out.len().
        unsafe { _mm512_storeu_si512(op.add(base) as *mut _, o) };
        base += 8;
    }
}

/// r[j] = round_ties_even(Σ_i (y[i·stride + start + j] as f64) · inv_q[i]) for j < r.len(),
/// summed in the same order with the same (unfused) roundings as the portable loop, so results
/// are identical.
///
/// # Safety
/// avx512f+avx512dq available; `r.len()` a multiple of 8; `start + r.len() <= stride`;
/// `y.len() >= inv_q.len()·stride`.
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn rounding_counts(
    y: &[u64],
    stride: usize,
    start: usize,
    inv_q: &[f64],
    r: &mut [u64],
) {
    let n = r.len();
    let yp = y.as_ptr();
    let rp = r.as_mut_ptr();
    let mut base = 0;
    while base < n {
        let mut acc = [_mm512_setzero_pd(); 4];
        let v_count = if base + 32 <= n { 4 } else { 1 };
        for (i, &inv) in inv_q.iter().enumerate() {
            let w = _mm512_set1_pd(inv);
            for (v, a) in acc.iter_mut().enumerate().take(v_count) {
                // SAFETY: i < inv_q.len() and start + base + 8·v + 8 <= stride: inside limb i.
                let x = unsafe {
                    _mm512_loadu_si512(yp.add(i * stride + start + base + 8 * v) as *const _)
                };
                *a = _mm512_add_pd(*a, _mm512_mul_pd(_mm512_cvtepu64_pd(x), w));
            }
        }
        for (v, a) in acc.iter().enumerate().take(v_count) {
            let rounded =
                _mm512_cvt_roundpd_epu64::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(*a);
            // SAFETY: base + 8·v + 8 <= n = r.len().
            unsafe { _mm512_storeu_si512(rp.add(base + 8 * v) as *mut _, rounded) };
        }
        base += 8 * v_count;
    }
}
