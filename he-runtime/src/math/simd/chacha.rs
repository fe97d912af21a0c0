//! AVX-512 ChaCha12 keystream: sixteen 64-byte blocks at once, one block per 32-bit lane.
//!
//! The block layout is the original (Bernstein) one that `rand_chacha` uses: words 0–3 the
//! constants, 4–11 the key, 12–13 a 64-bit block counter, 14–15 a 64-bit stream id. The
//! portable twin is `rand_chacha::ChaCha12Rng` itself (`ckks::keystream` falls back to it and
//! its tests check that the two give the same bytes).

use std::arch::x86_64::*;

/// "expand 32-byte k", the ChaCha constants.
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// ChaCha12's six double rounds.
const DOUBLE_ROUNDS: usize = 6;

#[inline]
#[target_feature(enable = "avx512f")]
fn quarter_round(x: &mut [__m512i; 16], a: usize, b: usize, c: usize, d: usize) {
    x[a] = _mm512_add_epi32(x[a], x[b]);
    x[d] = _mm512_rol_epi32::<16>(_mm512_xor_si512(x[d], x[a]));
    x[c] = _mm512_add_epi32(x[c], x[d]);
    x[b] = _mm512_rol_epi32::<12>(_mm512_xor_si512(x[b], x[c]));
    x[a] = _mm512_add_epi32(x[a], x[b]);
    x[d] = _mm512_rol_epi32::<8>(_mm512_xor_si512(x[d], x[a]));
    x[c] = _mm512_add_epi32(x[c], x[d]);
    x[b] = _mm512_rol_epi32::<7>(_mm512_xor_si512(x[b], x[c]));
}

/// Writes the keystream blocks `block..block + 16` of (`key`, `stream`) to `out`, in order.
///
/// # Safety
/// avx512f is available.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn blocks16(key: &[u32; 8], block: u64, stream: u64, out: &mut [u8; 1024]) {
    let lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    let lo = _mm512_set1_epi32(block as u32 as i32);
    let ctr_lo = _mm512_add_epi32(lo, lanes);
    // A lane whose low word wrapped carries into the high word.
    let wrapped = _mm512_cmplt_epu32_mask(ctr_lo, lo);
    let hi = _mm512_set1_epi32((block >> 32) as u32 as i32);
    let ctr_hi = _mm512_mask_add_epi32(hi, wrapped, hi, _mm512_set1_epi32(1));

    let mut init = [_mm512_setzero_si512(); 16];
    for (w, &s) in SIGMA.iter().enumerate() {
        init[w] = _mm512_set1_epi32(s as i32);
    }
    for (w, &k) in key.iter().enumerate() {
        init[4 + w] = _mm512_set1_epi32(k as i32);
    }
    init[12] = ctr_lo;
    init[13] = ctr_hi;
    init[14] = _mm512_set1_epi32(stream as u32 as i32);
    init[15] = _mm512_set1_epi32((stream >> 32) as u32 as i32);

    let mut x = init;
    for _ in 0..DOUBLE_ROUNDS {
        quarter_round(&mut x, 0, 4, 8, 12);
        quarter_round(&mut x, 1, 5, 9, 13);
        quarter_round(&mut x, 2, 6, 10, 14);
        quarter_round(&mut x, 3, 7, 11, 15);
        quarter_round(&mut x, 0, 5, 10, 15);
        quarter_round(&mut x, 1, 6, 11, 12);
        quarter_round(&mut x, 2, 7, 8, 13);
        quarter_round(&mut x, 3, 4, 9, 14);
    }
    for (v, i) in x.iter_mut().zip(init) {
        *v = _mm512_add_epi32(*v, i);
    }

    // x[w] holds word w of the 16 blocks; transpose so each block's 16 words are contiguous.
    // Within 128-bit lane L: after the 32- and 64-bit interleaves, b[4g + j] holds words
    // 4g..4g+4 of block 4L + j.
    let mut a = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        a[2 * i] = _mm512_unpacklo_epi32(x[2 * i], x[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_epi32(x[2 * i], x[2 * i + 1]);
    }
    let mut b = [_mm512_setzero_si512(); 16];
    for g in 0..4 {
        let (a0, a1, a2, a3) = (a[4 * g], a[4 * g + 1], a[4 * g + 2], a[4 * g + 3]);
        b[4 * g] = _mm512_unpacklo_epi64(a0, a2);
        b[4 * g + 1] = _mm512_unpackhi_epi64(a0, a2);
        b[4 * g + 2] = _mm512_unpacklo_epi64(a1, a3);
        b[4 * g + 3] = _mm512_unpackhi_epi64(a1, a3);
    }
    // For each j, a 4 × 4 transpose of 128-bit lanes across b[j], b[4 + j], b[8 + j], b[12 + j]
    // gives blocks j, 4 + j, 8 + j and 12 + j whole.
    let dst = out.as_mut_ptr();
    for j in 0..4 {
        let (r0, r1, r2, r3) = (b[j], b[4 + j], b[8 + j], b[12 + j]);
        let t0 = _mm512_shuffle_i32x4::<0x44>(r0, r1);
        let t1 = _mm512_shuffle_i32x4::<0xEE>(r0, r1);
        let t2 = _mm512_shuffle_i32x4::<0x44>(r2, r3);
        let t3 = _mm512_shuffle_i32x4::<0xEE>(r2, r3);
        let whole = [
            _mm512_shuffle_i32x4::<0x88>(t0, t2),
            _mm512_shuffle_i32x4::<0xDD>(t0, t2),
            _mm512_shuffle_i32x4::<0x88>(t1, t3),
            _mm512_shuffle_i32x4::<0xDD>(t1, t3),
        ];
        for (l, v) in whole.into_iter().enumerate() {
            // SAFETY: block 4l + j < 16 starts at byte (4l + j)·64 and its 64 bytes end within
            // the 1024-byte `out`; storeu has no alignment requirement.
            unsafe { _mm512_storeu_si512(dst.add((4 * l + j) * 64).cast(), v) };
        }
    }
}
