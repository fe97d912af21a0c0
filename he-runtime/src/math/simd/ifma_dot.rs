//! AVX-512 IFMA sums of products Σ_j a_j[c]·b_{k,j}[c] mod p for K outputs sharing the
//! a-operands (the key-switching inner product).

use std::arch::x86_64::*;

use super::kernel_args::ExtendFold;

/// 52-bit Shoup and reduction helpers, duplicated from `ifma` to keep each kernel file whole.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn shoup_lazy(y: __m512i, w: __m512i, w52: __m512i, neg_q: __m512i, mask: __m512i) -> __m512i {
    let zero = _mm512_setzero_si512();
    let est = _mm512_madd52hi_epu64(zero, y, w52);
    let r = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(zero, y, w), est, neg_q);
    _mm512_and_si512(r, mask)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn reduce_once(x: __m512i, m: __m512i) -> __m512i {
    _mm512_min_epu64(x, _mm512_sub_epi64(x, m))
}

/// `out[k][c] = Σ_j a[j][c]·b[k·J + j][c] mod p`.
///
/// # Safety
/// avx512f+avx512ifma available; every slice in `a`, `b` and `out` has length n, a multiple
/// of 8; `b.len() = K·a.len()`. (Correctness also needs all words < p < 2^50.)
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) unsafe fn dot<const K: usize>(
    fold: ExtendFold,
    a: &[&[u64]],
    b: &[&[u64]],
    out: [&mut [u64]; K],
) {
    const CHUNK: usize = 15;
    let n = out[0].len();
    let digits = a.len();
    let q = _mm512_set1_epi64(fold.p as i64);
    let two_q = _mm512_add_epi64(q, q);
    let neg_q = _mm512_set1_epi64(((1u64 << 52) - fold.p) as i64);
    let mask = _mm512_set1_epi64(((1u64 << 52) - 1) as i64);
    let one = _mm512_set1_epi64(1);
    let one52 = _mm512_set1_epi64(fold.one_shoup as i64);
    let c52 = _mm512_set1_epi64(fold.c52 as i64);
    let c52s = _mm512_set1_epi64(fold.c52_shoup as i64);
    let zero = _mm512_setzero_si512();
    let mut base = 0;
    while base < n {
        let mut r = [zero; K];
        let mut j0 = 0;
        while j0 < digits {
            let j1 = (j0 + CHUNK).min(digits);
            let mut lo = [zero; K];
            let mut hi = [zero; K];
            for j in j0..j1 {
                // SAFETY: base + 8 <= n = a[j].len().
                let x = unsafe { _mm512_loadu_si512(a[j].as_ptr().add(base) as *const _) };
                for k in 0..K {
                    // SAFETY: b[k·J + j] has n words and base + 8 <= n.
                    let y = unsafe {
                        _mm512_loadu_si512(b[k * digits + j].as_ptr().add(base) as *const _)
                    };
                    lo[k] = _mm512_madd52lo_epu64(lo[k], x, y);
                    hi[k] = _mm512_madd52hi_epu64(hi[k], x, y);
                }
            }
            for k in 0..K {
                let lo0 = _mm512_and_si512(lo[k], mask);
                let h = _mm512_add_epi64(_mm512_srli_epi64::<52>(lo[k]), hi[k]);
                let s = _mm512_add_epi64(
                    shoup_lazy(lo0, one, one52, neg_q, mask),
                    shoup_lazy(h, c52, c52s, neg_q, mask),
                );
                let s = reduce_once(reduce_once(s, two_q), q);
                r[k] = reduce_once(_mm512_add_epi64(r[k], s), q);
            }
            j0 = j1;
        }
        for k in 0..K {
            // SAFETY: out[k] has n words and base + 8 <= n.
            unsafe { _mm512_storeu_si512(out[k].as_mut_ptr().add(base) as *mut _, r[k]) };
        }
        base += 8;
    }
}
