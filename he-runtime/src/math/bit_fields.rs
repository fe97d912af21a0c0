//! Fixed-width bit fields in a little-endian bit string: field k of width `w` is bits
//! `[k·w, (k+1)·w)`, bit b being bit `b mod 8` of byte `b / 8`. Packed limbs of a blob are such
//! strings (one residue per field), and seed-expanded limbs cut their PRG stream into fields and
//! keep those below the prime.
//!
//! [`unpack_fields`] and [`take_below`] run AVX-512 VBMI kernels when the CPU has them and the
//! portable loops ([`unpack_fields_portable`], [`take_below_portable`]) otherwise; both give the
//! same words. A string may end right after its last field: nothing past it is read.
//!
//! ```
//! use hetier_he::math::bit_fields::{take_below, unpack_fields};
//!
//! // Three 5-bit fields 1, 31, 6: bits 00001 11111 00110 from the lowest bit up.
//! let src = [0b1110_0001u8, 0b0001_1011];
//! let mut out = [0u64; 3];
//! assert_eq!(unpack_fields(&src, 5, &mut out), 31);
//! assert_eq!(out, [1, 31, 6]);
//! let mut below = [0u64; 3];
//! assert_eq!(take_below(&src, 5, 10, &mut below), (2, 3));
//! assert_eq!(below[..2], [1, 6]);
//! ```

use super::simd;

/// The widest field supported.
pub const MAX_WIDTH: u32 = 64;

/// Bytes that `n` fields of `width` bits take (the last byte padded with zero bits).
pub fn packed_len(n: usize, width: u32) -> usize {
    (n * width as usize).div_ceil(8)
}

/// Whether [`unpack_fields`] and [`take_below`] run their AVX-512 kernels on this CPU.
pub fn simd_available() -> bool {
    simd::bit_fields_available()
}

fn check_width(width: u32) {
    assert!((1..=MAX_WIDTH).contains(&width), "bit-field width {width} not in 1..={MAX_WIDTH}");
}

/// `out[k]` = field k of `src` at `width` bits, for every k < `out.len()`; returns the largest
/// field (0 when `out` is empty), so that a caller can range-check without a second pass.
///
/// # Panics
/// If `width` is not in 1..=64 or `src` is shorter than [`packed_len`]`(out.len(), width)`.
pub fn unpack_fields(src: &[u8], width: u32, out: &mut [u64]) -> u64 {
    match simd::unpack_fields(src, width, out) {
        Some(max) => max,
        None => unpack_fields_portable(src, width, out),
    }
}

/// [`unpack_fields`] without SIMD: one unaligned 9-byte window per field, independent of the
/// others.
///
/// # Panics
/// As [`unpack_fields`].
pub fn unpack_fields_portable(src: &[u8], width: u32, out: &mut [u64]) -> u64 {
    check_width(width);
    assert!(
        src.len() >= packed_len(out.len(), width),
        "bit-field unpack: {} bytes for {} fields of {width} bits",
        src.len(),
        out.len()
    );
    let w = width as usize;
    let mask = u64::MAX >> (64 - width);
    let mut max = 0;
    for (k, o) in out.iter_mut().enumerate() {
        let v = field_at(src, k * w, mask);
        max = max.max(v);
        *o = v;
    }
    max
}

/// Appends the fields of `src` (at `width` bits) that are below `q` to `out`, in order, until
/// `out` is full or `src` has no whole field left. Returns (words written, fields read);
/// reading stops right after the field that fills `out`, so a caller can resume after it.
///
/// # Panics
/// If `width` is not in 1..=64.
pub fn take_below(src: &[u8], width: u32, q: u64, out: &mut [u64]) -> (usize, usize) {
    match simd::take_below(src, width, q, out) {
        Some(r) => r,
        None => take_below_portable(src, width, q, out),
    }
}

/// [`take_below`] without SIMD.
///
/// # Panics
/// As [`take_below`].
pub fn take_below_portable(src: &[u8], width: u32, q: u64, out: &mut [u64]) -> (usize, usize) {
    check_width(width);
    let w = width as usize;
    let mask = u64::MAX >> (64 - width);
    let fields = src.len() * 8 / w;
    let (mut written, mut read) = (0, 0);
    while read < fields && written < out.len() {
        let v = field_at(src, read * w, mask);
        // Branch-free compaction: the slot is overwritten until a field is accepted.
        out[written] = v;
        written += usize::from(v < q);
        read += 1;
    }
    (written, read)
}

/// The `mask`-wide field at bit `o` of `src` (the field must lie inside `src`). Reads the
/// 9-byte window from byte `o / 8` in place when `src` has it, else from a zero-padded copy of
/// the last bytes.
#[inline(always)]
fn field_at(src: &[u8], o: usize, mask: u64) -> u64 {
    let b = o >> 3;
    if b + 9 <= src.len() {
        window(&src[b..b + 9], (o & 7) as u32, mask)
    } else {
        let mut pad = [0u8; 9];
        let rest = &src[b..];
        pad[..rest.len()].copy_from_slice(rest);
        window(&pad, (o & 7) as u32, mask)
    }
}

/// Bits `s ..` of the 9-byte little-endian `w`, masked.
#[inline(always)]
fn window(w: &[u8], s: u32, mask: u64) -> u64 {
    let lo = u64::from_le_bytes(w[..8].try_into().expect("8 bytes"));
    let hi = u64::from(w[8]);
    // `hi << (64 - s)`, zero when s = 0.
    ((lo >> s) | ((hi << 1) << (63 - s))) & mask
}

#[cfg(test)]
#[path = "bit_fields_tests.rs"]
mod tests;
