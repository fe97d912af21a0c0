//! Fixed-width bit fields in a little-endian bit string: field k of width `w` is bits
//! `[k·w, (k+1)·w)`, bit b being bit `b mod 8` of byte `b / 8`. Packed limbs of a blob are such
//! strings (one residue per field), and seed-expanded limbs cut their PRG stream into fields and
//! keep those below a multiple of the prime, reduced.
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
//! assert_eq!(take_below(&src, 5, 10, 1, &mut below), (2, 3));
//! assert_eq!(below[..2], [1, 6]);
//! // Below 4·5 = 20, reduced mod 5 (31 is dropped).
//! assert_eq!(take_below(&src, 5, 5, 4, &mut below), (2, 3));
//! assert_eq!(below[..2], [1, 1]);
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

/// Appends `field mod q` for each field of `src` (at `width` bits) below `multiple·q` to `out`,
/// in order, until `out` is full or `src` has no whole field left. Returns (words written,
/// fields read); reading stops right after the field that fills `out`, so a caller can resume
/// after it. With `multiple` = 1 the kept fields are written as they are.
///
/// Rejection sampling with a multiple: uniform fields give residues exactly uniform mod `q`
/// when `multiple·q` ≤ 2^`width`. A prime just above a power of two keeps half of its
/// candidates at its own width; cut at `e` more bits with `multiple` = 2^(e+1) − 1 it keeps
/// about `multiple / (multiple + 1)` of them.
///
/// # Panics
/// If `width` is not in 1..=64, `multiple` is 0, or `multiple·q` overflows a `u64`.
pub fn take_below(
    src: &[u8],
    width: u32,
    q: u64,
    multiple: u64,
    out: &mut [u64],
) -> (usize, usize) {
    let bound = window_bound(q, multiple);
    match simd::take_below(src, width, bound, q, multiple, out) {
        Some(r) => r,
        None => take_below_portable(src, width, q, multiple, out),
    }
}

/// [`take_below`] without SIMD.
///
/// # Panics
/// As [`take_below`].
pub fn take_below_portable(
    src: &[u8],
    width: u32,
    q: u64,
    multiple: u64,
    out: &mut [u64],
) -> (usize, usize) {
    check_width(width);
    let bound = window_bound(q, multiple);
    let w = width as usize;
    let mask = u64::MAX >> (64 - width);
    let fields = src.len() * 8 / w;
    let (mut written, mut read) = (0, 0);
    while read < fields && written < out.len() {
        let v = field_at(src, read * w, mask);
        // Branch-free compaction: the slot is overwritten until a field is accepted.
        out[written] = reduce_below_multiple(v, q, multiple);
        written += usize::from(v < bound);
        read += 1;
    }
    (written, read)
}

/// `multiple·q`, the bound of [`take_below`].
///
/// # Panics
/// If `multiple` is 0 or the product overflows.
pub(crate) fn window_bound(q: u64, multiple: u64) -> u64 {
    assert!(multiple > 0, "bit-field window: multiple 0");
    q.checked_mul(multiple)
        .unwrap_or_else(|| panic!("bit-field window: {multiple}·{q} overflows 64 bits"))
}

/// `v mod q` for `v` below `multiple·q`: one conditional subtraction of `2^k·q` per bit of
/// `multiple`, the highest first (each leaves `v` below `2^k·q`). Other `v` give some word.
#[inline(always)]
pub(crate) fn reduce_below_multiple(v: u64, q: u64, multiple: u64) -> u64 {
    if multiple == 1 {
        return v;
    }
    (0..64 - multiple.leading_zeros()).rev().fold(v, |v, k| v.min(v.wrapping_sub(q << k)))
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
