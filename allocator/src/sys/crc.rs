//! A fused copy + crc32c (Castagnoli): every 8-byte word is checksummed with the SSE4.2 `crc32`
//! instruction as it is copied, on three interleaved streams so the instruction's latency is
//! hidden; the stream results are joined with a precomputed shift operator. Reading the bytes
//! once instead of twice is what lets a checksummed get run at close to memcpy speed.

use std::sync::OnceLock;

/// Bytes per stream in one block; a block covers three streams.
const STREAM: usize = 16 << 10;
const BLOCK: usize = 3 * STREAM;

/// Copies shorter than this use a plain (cached) copy followed by crc32c of the hot bytes: the
/// fused loop's streaming stores would evict a small destination from the cache for nothing.
const FUSED_MIN: usize = 256 << 10;

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

/// Copy `src` into `dst` (same length) and return `crc32c_append(crc, src)`.
pub(crate) fn copy_with_crc(dst: &mut [u8], src: &[u8], crc: u32) -> u32 {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    #[cfg(target_arch = "x86_64")]
    {
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
