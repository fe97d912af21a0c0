//! AES-256 in counter mode on AVX-512 VAES: sixty-four 16-byte blocks per call, four to a
//! register, sixteen registers in flight so that every `vaesenc` has independent work while
//! the ones before it finish.
//!
//! Block `i` of stream `s` encrypts the 16 bytes `i` (u64, little-endian) ‖ `s` (u64,
//! little-endian). The portable twin is the `aes` crate encrypting the same counter blocks
//! (`ckks::keystream` falls back to it, and its tests check that the two give the same bytes).

use std::arch::x86_64::*;

/// AES-256's rounds after the initial key addition.
const ROUNDS: usize = 14;

/// Encrypts counter blocks `block..block + 64` of `stream` under the expanded key
/// `round_keys` (FIPS-197 order, round 0 first) into `out`, in order. Counters wrap modulo
/// 2^64, as the portable path's do.
///
/// # Safety
/// avx512f and vaes are available.
#[target_feature(enable = "avx512f,vaes")]
pub(super) unsafe fn blocks64(
    round_keys: &[[u8; 16]; ROUNDS + 1],
    block: u64,
    stream: u64,
    out: &mut [u8; 1024],
) {
    let keys: [__m512i; ROUNDS + 1] = std::array::from_fn(|r| {
        // SAFETY: each round key is 16 readable bytes; loadu has no alignment requirement.
        let k = unsafe { _mm_loadu_si128(round_keys[r].as_ptr().cast()) };
        _mm512_broadcast_i32x4(k)
    });
    let s = stream as i64;
    let at = |k: u64| block.wrapping_add(k) as i64;
    // Lanes are (counter, stream) pairs: blocks block .. block + 4 of the first register.
    let mut counters = _mm512_set_epi64(s, at(3), s, at(2), s, at(1), s, at(0));
    let four = _mm512_set_epi64(0, 4, 0, 4, 0, 4, 0, 4);
    let mut x = [_mm512_setzero_si512(); 16];
    for v in &mut x {
        *v = _mm512_xor_si512(counters, keys[0]);
        counters = _mm512_add_epi64(counters, four);
    }
    for key in &keys[1..ROUNDS] {
        for v in &mut x {
            *v = _mm512_aesenc_epi128(*v, *key);
        }
    }
    let dst = out.as_mut_ptr();
    for (i, v) in x.into_iter().enumerate() {
        let v = _mm512_aesenclast_epi128(v, keys[ROUNDS]);
        // SAFETY: register i holds blocks 4i..4i + 4, bytes 64i..64i + 64 of the 1024-byte
        // `out`; storeu has no alignment requirement.
        unsafe { _mm512_storeu_si512(dst.add(64 * i).cast(), v) };
    }
}
