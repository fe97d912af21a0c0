//! A fused copy + crc32c (Castagnoli): the bytes are checksummed as they are copied, so a
//! checksummed get reads its source once instead of twice and runs at close to memcpy speed.
//!
//! Two kernels, chosen at run time. With AVX-512 + VPCLMULQDQ, 256-byte blocks are streamed
//! through four 512-bit registers and *folded* by carry-less multiplication: each 128-bit lane is
//! replaced by a value congruent to it modulo the CRC polynomial, moved 2048 bits forward, so the
//! message's CRC never changes; the last 256 folded bytes are finished by the `crc32c` crate.
//! This keeps up with memory bandwidth. Otherwise the SSE4.2 `crc32` instruction checksums every
//! 8-byte word on three interleaved streams (hiding its latency), joined by a shift operator.

use std::sync::OnceLock;

/// Bytes per stream in one block; a block covers three streams.
const STREAM: usize = 16 << 10;
const BLOCK: usize = 3 * STREAM;

/// Copies shorter than this use a plain (cached) copy followed by crc32c of the hot bytes: the
/// fused loop's streaming stores would evict a small destination from the cache for nothing.
const FUSED_MIN: usize = 256 << 10;

/// x^e mod P (P = the Castagnoli polynomial, normal bit order, x^32 term implied).
const fn xpow_mod(e: u32) -> u32 {
    const POLY: u32 = 0x1EDC_6F41;
    let mut r: u32 = 1;
    let mut i = 0;
    while i < e {
        let carry = r & 0x8000_0000 != 0;
        r <<= 1;
        if carry {
            r ^= POLY;
        }
        i += 1;
    }
    r
}

/// A folding constant for the reflected (LSB-first) CRC: x^e mod P bit-reversed into 33 bits.
const fn fold_constant(e: u32) -> u64 {
    (xpow_mod(e).reverse_bits() as u64) << 1
}

/// Bytes folded per step of the vector kernel: four 512-bit registers.
const FOLD_BLOCK: usize = 256;
/// Fold distance in bits: a lane moves forward by one whole block.
const FOLD_BITS: u32 = (FOLD_BLOCK * 8) as u32;
/// Multiplier of a lane's low (earlier) 64 bits, then of its high 64 bits.
const FOLD_LO: u64 = fold_constant(FOLD_BITS + 32);
const FOLD_HI: u64 = fold_constant(FOLD_BITS - 32);

/// The GF(2) matrix that advances a raw crc register over `STREAM` zero bytes, column by column.
fn shift_matrix() -> &'static [u32; 32] {
    static M: OnceLock<[u32; 32]> = OnceLock::new();
    M.get_or_init(|| {
        let zeros = vec![0u8; STREAM];
        let mut m = [0u32; 32];
        for (k, col) in m.iter_mut().enumerate() {
            // crc32c_append inverts on entry and exit; undo both to get the raw register map.
            *col = !crc32c::crc32c_append(!(1u32 << k), &zeros);
        }
        m
    })
}

fn shift(m: &[u32; 32], mut r: u32) -> u32 {
    let mut out = 0u32;
    let mut k = 0;
    while r != 0 {
        if r & 1 != 0 {
            out ^= m[k];
        }
        r >>= 1;
        k += 1;
    }
    out
}

/// `crc32c_append(crc, bytes)`, folded with VPCLMULQDQ where the CPU has it: about twice the
/// `crc32` instruction's speed, from memory or from cache. The store checks every object it
/// reads from the pool with this, beside the threads computing on what it read.
pub(crate) fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if bytes.len() >= FOLD_MIN && fold_available() {
            let body = bytes.len() / FOLD_BLOCK * FOLD_BLOCK;
            let (body_bytes, tail) = bytes.split_at(body);
            // SAFETY: AVX-512F and VPCLMULQDQ were detected just above; `body_bytes` is `body`
            // bytes long, a non-zero multiple of FOLD_BLOCK; a null destination copies nothing.
            let residue =
                unsafe { fold_body(std::ptr::null_mut(), body_bytes.as_ptr(), body, !crc) };
            return finish_fold(&residue, tail);
        }
    }
    crc32c::crc32c_append(crc, bytes)
}

/// Whether the CPU runs the folding kernel (AVX-512 F and VPCLMULQDQ).
#[cfg(target_arch = "x86_64")]
fn fold_available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("vpclmulqdq")
}

/// The CRC of a folded body followed by `tail`: the residue's raw CRC from a zero register is
/// the body's from the register it was folded from, so the residue's CRC continues into `tail`.
#[cfg(target_arch = "x86_64")]
fn finish_fold(residue: &[u8; FOLD_BLOCK], tail: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c_append(!0, residue), tail)
}

/// Buffers shorter than this are checksummed by the `crc32c` crate: folding pays a fixed
/// finish over its 256-byte residue.
const FOLD_MIN: usize = 4 << 10;

/// Copy `src` into `dst` (same length) and return `crc32c_append(crc, src)`.
pub(crate) fn copy_with_crc(dst: &mut [u8], src: &[u8], crc: u32) -> u32 {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    #[cfg(target_arch = "x86_64")]
    {
        if n >= FUSED_MIN && fold_available() {
            return copy_with_crc_fold(dst, src, crc);
        }
        if n >= FUSED_MIN && std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: `dst` and `src` are valid for `n` bytes (slices of that length) and cannot
            // overlap (a `&mut` and a `&` slice never alias); SSE4.2 was detected just above.
            return unsafe { copy_with_crc_sse42(dst.as_mut_ptr(), src.as_ptr(), n, crc) };
        }
    }
    dst.copy_from_slice(src);
    crc32c::crc32c_append(crc, dst)
}

/// Copy `src` into the raw destination `dst` and return `crc32c_append(crc, src)`.
///
/// # Safety
/// `dst` must be valid for writes of `src.len()` bytes and must not overlap `src`.
pub(crate) unsafe fn copy_to_raw_with_crc(dst: *mut u8, src: &[u8], crc: u32) -> u32 {
    // SAFETY: the caller guarantees `dst` is writable for `src.len()` bytes and disjoint from
    // `src`; no reference to the destination bytes exists during the copy.
    let dst = unsafe { std::slice::from_raw_parts_mut(dst, src.len()) };
    copy_with_crc(dst, src, crc)
}

/// Copy from the raw source `src` into `dst` and return `crc32c_append(crc, copied bytes)`.
///
/// # Safety
/// `src` must be valid for reads of `dst.len()` bytes and must not overlap `dst`.
pub(crate) unsafe fn copy_from_raw_with_crc(dst: &mut [u8], src: *const u8, crc: u32) -> u32 {
    // SAFETY: the caller guarantees `src` is readable for `dst.len()` bytes and disjoint from
    // `dst`; every bit pattern is a valid u8.
    let src = unsafe { std::slice::from_raw_parts(src, dst.len()) };
    copy_with_crc(dst, src, crc)
}

/// The vector kernel: a plain head until `dst` is 64-byte aligned (so the body can use
/// non-temporal 512-bit stores), the folded body, and a plain tail.
#[cfg(target_arch = "x86_64")]
fn copy_with_crc_fold(dst: &mut [u8], src: &[u8], crc: u32) -> u32 {
    let head = dst.as_ptr().align_offset(64).min(dst.len());
    let (dst_head, dst_rest) = dst.split_at_mut(head);
    let (src_head, src_rest) = src.split_at(head);
    dst_head.copy_from_slice(src_head);
    let crc = crc32c::crc32c_append(crc, dst_head);
    let body = dst_rest.len() / FOLD_BLOCK * FOLD_BLOCK;
    if body == 0 {
        dst_rest.copy_from_slice(src_rest);
        return crc32c::crc32c_append(crc, dst_rest);
    }
    let (dst_body, dst_tail) = dst_rest.split_at_mut(body);
    let (src_body, src_tail) = src_rest.split_at(body);
    // SAFETY: AVX-512F and VPCLMULQDQ were detected by the caller; both slices are `body` bytes
    // long (a non-zero multiple of FOLD_BLOCK), `dst_body` starts 64-byte aligned, and a `&mut`
    // and a `&` slice never overlap.
    let residue = unsafe { fold_body(dst_body.as_mut_ptr(), src_body.as_ptr(), body, !crc) };
    dst_tail.copy_from_slice(src_tail);
    finish_fold(&residue, dst_tail)
}

/// Fold `n` bytes of `src`, copying them to `dst` with non-temporal stores when it is not null;
/// returns the 256 folded bytes.
///
/// # Safety
/// AVX-512F and VPCLMULQDQ must be available; `src` valid for `n` reads; `dst` null, or valid
/// for `n` writes, not overlapping `src` and 64-byte aligned; `n` a non-zero multiple of
/// [`FOLD_BLOCK`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,vpclmulqdq")]
unsafe fn fold_body(dst: *mut u8, src: *const u8, n: usize, raw_init: u32) -> [u8; FOLD_BLOCK] {
    use std::arch::x86_64::{
        __m512i, _mm512_clmulepi64_epi128, _mm512_loadu_si512, _mm512_set_epi64,
        _mm512_storeu_si512, _mm512_stream_si512, _mm512_ternarylogic_epi64, _mm512_xor_si512,
        _mm512_zextsi128_si512, _mm_cvtsi32_si128, _mm_sfence,
    };
    // Load one block (copying it with streaming stores when there is a destination) and
    // return its four registers.
    let step = |off: usize| -> [__m512i; 4] {
        std::array::from_fn(|i| {
            // SAFETY: off + 64·i + 64 <= off + FOLD_BLOCK <= n keeps the load and the store in
            // bounds; dst + off + 64·i is 64-byte aligned (dst is, off is a multiple of 256).
            unsafe {
                let x = _mm512_loadu_si512(src.add(off + 64 * i).cast::<__m512i>());
                if !dst.is_null() {
                    _mm512_stream_si512(dst.add(off + 64 * i).cast::<__m512i>(), x);
                }
                x
            }
        })
    };
    let (lo, hi) = (FOLD_LO as i64, FOLD_HI as i64);
    let k = _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo);
    let mut acc = step(0);
    // A raw register r on entry is the same as r xored into the message's first four bytes.
    acc[0] = _mm512_xor_si512(acc[0], _mm512_zextsi128_si512(_mm_cvtsi32_si128(raw_init as i32)));
    let mut off = FOLD_BLOCK;
    while off < n {
        let x = step(off);
        for (a, x) in acc.iter_mut().zip(x) {
            let l = _mm512_clmulepi64_epi128(*a, k, 0x00);
            let h = _mm512_clmulepi64_epi128(*a, k, 0x11);
            *a = _mm512_ternarylogic_epi64(l, h, x, 0x96); // three-way xor
        }
        off += FOLD_BLOCK;
    }
    // Order the streaming stores before anything that follows (e.g. a flush or a reader).
    _mm_sfence();
    let mut out = [0u8; FOLD_BLOCK];
    for (i, a) in acc.iter().enumerate() {
        // SAFETY: `out` has room for a 64-byte store at 64·i for i < 4.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().add(64 * i).cast::<__m512i>(), *a) };
    }
    out
}

/// # Safety
/// SSE4.2 must be available; `dst` and `src` valid for `n` bytes and not overlapping.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn copy_with_crc_sse42(dst: *mut u8, src: *const u8, n: usize, crc: u32) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_sfence, _mm_stream_si64};
    let m = shift_matrix();
    let mut r = !crc;
    let mut off = 0usize;
    while n - off >= BLOCK {
        let (mut a, mut b, mut c) = (u64::from(r), 0u64, 0u64);
        let mut i = 0usize;
        while i < STREAM {
            // SAFETY: off + 2*STREAM + i + 8 <= off + BLOCK <= n, so all three 8-byte reads and
            // writes are in bounds of `src` / `dst`; unaligned accesses are explicit.
            unsafe {
                let s = src.add(off + i);
                let d = dst.add(off + i);
                let xa = s.cast::<u64>().read_unaligned();
                let xb = s.add(STREAM).cast::<u64>().read_unaligned();
                let xc = s.add(2 * STREAM).cast::<u64>().read_unaligned();
                a = _mm_crc32_u64(a, xa);
                b = _mm_crc32_u64(b, xb);
                c = _mm_crc32_u64(c, xc);
                // Non-temporal stores: no read-for-ownership of destination lines, which would
                // otherwise add a third memory stream to a copy that is already memory-bound.
                _mm_stream_si64(d.cast::<i64>(), xa as i64);
                _mm_stream_si64(d.add(STREAM).cast::<i64>(), xb as i64);
                _mm_stream_si64(d.add(2 * STREAM).cast::<i64>(), xc as i64);
            }
            i += 8;
        }
        // The raw register is linear: crc(A‖B) = shift(crc(A), |B|) ^ crc₀(B).
        r = shift(m, a as u32) ^ b as u32;
        r = shift(m, r) ^ c as u32;
        off += BLOCK;
    }
    // Order the streaming stores before anything that follows (e.g. a flush or a reader).
    _mm_sfence();
    let rest = n - off;
    // SAFETY: `off + rest == n`, so both ranges are in bounds; they do not overlap (caller).
    let tail = unsafe {
        std::ptr::copy_nonoverlapping(src.add(off), dst.add(off), rest);
        std::slice::from_raw_parts(dst.add(off), rest)
    };
    crc32c::crc32c_append(!r, tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_constants_are_the_castagnoli_powers() {
        // Reference values of x^2080 and x^2016 mod P, reflected: computed independently with
        // a bit-serial polynomial reduction (Python), so a wrong exponent or reflection fails.
        assert_eq!(FOLD_LO, 0xdcb1_7aa4);
        assert_eq!(FOLD_HI, 0xb9e0_2b86);
    }

    #[test]
    fn every_kernel_matches_copy_then_crc_at_every_alignment() {
        let len = FUSED_MIN + 3 * FOLD_BLOCK + 77;
        let src: Vec<u8> = (0..len + 64).map(|i| ((i * 40_503) >> 5) as u8).collect();
        let mut dst = vec![0u8; len + 64];
        for shift in [0usize, 1, 8, 63] {
            let s = &src[shift..shift + len];
            let want = crc32c::crc32c_append(0x1234_5678, s);
            for d_shift in [0usize, 3, 32] {
                let d = &mut dst[d_shift..d_shift + len];
                d.fill(0);
                assert_eq!(copy_with_crc(d, s, 0x1234_5678), want);
                assert_eq!(d, s);
                #[cfg(target_arch = "x86_64")]
                {
                    if fold_available() {
                        d.fill(0);
                        assert_eq!(copy_with_crc_fold(d, s, 0x1234_5678), want);
                        assert_eq!(d, s);
                    }
                    if std::arch::is_x86_feature_detected!("sse4.2") {
                        d.fill(0);
                        // SAFETY: both slices are `len` bytes and disjoint.
                        let got = unsafe {
                            copy_with_crc_sse42(d.as_mut_ptr(), s.as_ptr(), len, 0x1234_5678)
                        };
                        assert_eq!(got, want);
                        assert_eq!(d, s);
                    }
                }
            }
        }
    }

    #[test]
    fn folded_checksum_matches_the_crc32c_crate() {
        // Lengths below, at and above the fold threshold, with and without a partial block,
        // and unaligned starts: a wrong residue or tail fails every length past FOLD_MIN.
        let src: Vec<u8> = (0..(1 << 20) + 64).map(|i| ((i * 40_503) >> 3) as u8).collect();
        for len in [0usize, 5, FOLD_MIN - 1, FOLD_MIN, FOLD_MIN + 1, FOLD_MIN + 255, 1 << 20] {
            for start in [0usize, 1, 33] {
                let s = &src[start..start + len];
                for seed in [0u32, 0xdead_beef] {
                    let want = crc32c::crc32c_append(seed, s);
                    assert_eq!(crc32c_append(seed, s), want, "len {len} start {start}");
                }
            }
        }
        // Appending in pieces gives the checksum of the whole.
        let whole = crc32c_append(0, &src);
        let (a, b) = src.split_at(300_001);
        assert_eq!(crc32c_append(crc32c_append(0, a), b), whole);
    }

    #[test]
    fn fused_copy_matches_copy_then_crc() {
        for len in [0usize, 1, 7, BLOCK + 1, FUSED_MIN - 1, FUSED_MIN, FUSED_MIN + 12_345, 1 << 20]
        {
            let src: Vec<u8> = (0..len).map(|i| ((i * 2_654_435_761usize) >> 7) as u8).collect();
            for seed in [0u32, 0xdead_beef] {
                let mut dst = vec![0u8; len];
                let got = copy_with_crc(&mut dst, &src, seed);
                assert_eq!(dst, src, "len {len}");
                assert_eq!(got, crc32c::crc32c_append(seed, &src), "len {len} seed {seed:#x}");
            }
        }
    }
}
