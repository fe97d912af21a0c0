//! AVX-512 IFMA constant linear combinations `acc_k[c] += Σ_j w[k·J + j]·x_j[c] mod q`: the
//! batch-major dense and convolution layers, where every weight is one integer per RNS limb.
//! Products are summed unreduced in 52-bit lo/hi lanes and folded once per chunk of terms, so
//! a term costs two IFMA instructions; the x-vectors of a tile are reused from cache by every
//! output.

use std::arch::x86_64::*;

use super::kernel_args::ExtendFold;

/// Words of each input processed before moving on to the next tile (keeps J tiles in L2).
const TILE: usize = 512;

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

/// Lane constants of the fold.
#[derive(Clone, Copy)]
struct Consts {
    q: __m512i,
    two_q: __m512i,
    neg_q: __m512i,
    mask: __m512i,
    one: __m512i,
    one52: __m512i,
    c52: __m512i,
    c52s: __m512i,
}

/// `B` outputs `k0..k0+B` over the words `t0..t1` (multiples of 8).
///
/// # Safety
/// As [`lincomb`], with `k0 + B <= acc.len()` and `t1 <= n`.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
#[allow(clippy::too_many_arguments)]
unsafe fn block<const B: usize>(
    k: Consts,
    chunk: usize,
    x: &[&[u64]],
    w: &[u64],
    acc: &mut [&mut [u64]],
    k0: usize,
    t0: usize,
    t1: usize,
) {
    let zero = _mm512_setzero_si512();
    let terms = x.len();
    let mut c = t0;
    while c < t1 {
        let mut r = [zero; B];
        for (b, rb) in r.iter_mut().enumerate() {
            // SAFETY: acc[k0 + b] has n words and c + 8 <= t1 <= n.
            *rb = unsafe { _mm512_loadu_si512(acc[k0 + b].as_ptr().add(c) as *const _) };
        }
        let mut j0 = 0;
        while j0 < terms {
            let j1 = (j0 + chunk).min(terms);
            let mut lo = [zero; B];
            let mut hi = [zero; B];
            // An index loop: iterator adaptors are not inlined into this target_feature function.
            #[allow(clippy::needless_range_loop)]
            for j in j0..j1 {
                // SAFETY: j < terms = x.len(); x[j] has n words and c + 8 <= n.
                let xv =
                    unsafe { _mm512_loadu_si512(x.get_unchecked(j).as_ptr().add(c) as *const _) };
                for b in 0..B {
                    // SAFETY: w has acc.len()·terms words and (k0 + b)·terms + j is below that.
                    let wv =
                        _mm512_set1_epi64(unsafe { *w.get_unchecked((k0 + b) * terms + j) } as i64);
                    lo[b] = _mm512_madd52lo_epu64(lo[b], xv, wv);
                    hi[b] = _mm512_madd52hi_epu64(hi[b], xv, wv);
                }
            }
            for b in 0..B {
                let lo0 = _mm512_and_si512(lo[b], k.mask);
                let h = _mm512_add_epi64(_mm512_srli_epi64::<52>(lo[b]), hi[b]);
                let s = _mm512_add_epi64(
                    shoup_lazy(lo0, k.one, k.one52, k.neg_q, k.mask),
                    shoup_lazy(h, k.c52, k.c52s, k.neg_q, k.mask),
                );
                let s = reduce_once(reduce_once(s, k.two_q), k.q);
                r[b] = reduce_once(_mm512_add_epi64(r[b], s), k.q);
            }
            j0 = j1;
        }
        for (b, rb) in r.iter().enumerate() {
            // SAFETY: acc[k0 + b] has n words and c + 8 <= n.
            unsafe { _mm512_storeu_si512(acc[k0 + b].as_mut_ptr().add(c) as *mut _, *rb) };
        }
        c += 8;
    }
}

/// `acc[k][c] = (acc[k][c] + Σ_j w[k·J + j]·x[j][c]) mod p` with J = `x.len()`, folding the
/// unreduced sums every `chunk` terms.
///
/// # Safety
/// avx512f+avx512ifma available; every slice of `x` and `acc` has the same length n, a multiple
/// of 8; `w.len() == acc.len()·x.len()`. (Correctness also needs p < 2^50, all words below p
/// and `chunk` small enough that `chunk·(1 + 2^max(2·bits(p) − 52, 0)) < 2^52`.)
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) unsafe fn lincomb(
    fold: ExtendFold,
    chunk: usize,
    x: &[&[u64]],
    w: &[u64],
    acc: &mut [&mut [u64]],
) {
    let Some(n) = acc.first().map(|a| a.len()) else { return };
    let k = Consts {
        q: _mm512_set1_epi64(fold.p as i64),
        two_q: _mm512_set1_epi64((2 * fold.p) as i64),
        neg_q: _mm512_set1_epi64(((1u64 << 52) - fold.p) as i64),
        mask: _mm512_set1_epi64(((1u64 << 52) - 1) as i64),
        one: _mm512_set1_epi64(1),
        one52: _mm512_set1_epi64(fold.one_shoup as i64),
        c52: _mm512_set1_epi64(fold.c52 as i64),
        c52s: _mm512_set1_epi64(fold.c52_shoup as i64),
    };
    let outs = acc.len();
    let mut t0 = 0;
    while t0 < n {
        let t1 = (t0 + TILE).min(n);
        let mut k0 = 0;
        while k0 + 4 <= outs {
            // SAFETY: the caller's contract, with k0 + 4 <= outs and t1 <= n.
            unsafe { block::<4>(k, chunk, x, w, acc, k0, t0, t1) };
            k0 += 4;
        }
        while k0 < outs {
            // SAFETY: as above with one output.
            unsafe { block::<1>(k, chunk, x, w, acc, k0, t0, t1) };
            k0 += 1;
        }
        t0 = t1;
    }
}
