//! AVX-512 VBMI kernels for fixed-width bit fields in a little-endian bit string: unpacking
//! (the packed limbs of a blob) and keeping the fields below a multiple of a prime, reduced
//! mod it (rejection sampling of seed-expanded limbs).
//!
//! Eight fields of `width` bits take exactly `width` bytes, so every group of eight starts on
//! a byte and one masked load of `width` bytes holds it (never a byte past the group: a
//! string that ends right after its last field is read in place). In that register, field k
//! starts at bit k·width: one `vpermb` gathers bytes `k·width/8 ..+ 8` into lane k and a
//! variable right shift drops the `k·width mod 8` bits below the field. A field wider than
//! what is left of those 64 bits (width + shift > 64, only for width ≥ 58) takes its top bits
//! from a second gather of byte `k·width/8 + 8`, shifted left into place.

use std::arch::x86_64::*;

/// Per-width constants: the byte gathers and shifts that put field k of a group into lane k.
#[derive(Clone, Copy)]
struct Layout {
    /// Bytes `k·width/8 ..+ 8` into lane k.
    lo: __m512i,
    /// Byte `k·width/8 + 8` into the low byte of lane k (the other bytes are zeroed).
    hi: __m512i,
    /// `k·width mod 8`.
    shr: __m512i,
    /// `64 − k·width mod 8` (64, which shifts everything out, when the field starts on a byte).
    shl: __m512i,
    /// The low `width` bits.
    mask: __m512i,
    /// Whether some field needs the ninth byte.
    wide: bool,
    /// Bytes in a group of eight fields (= width).
    bytes: usize,
}

/// The low byte of each lane: `hi` gathers only that one.
const LOW_BYTES: __mmask64 = 0x0101_0101_0101_0101;

/// Per width (index 0 unused): the byte offset of field k of a group in bytes 8k..8k+8 (lane k
/// of `Layout::lo` then holds offsets b..b+8), and its bit shift. Built at compile time, so a
/// call on a short string (64 PRG candidates) pays four loads for its constants.
const fn tables() -> ([[u8; 64]; 65], [[u64; 8]; 65]) {
    let mut lo = [[0u8; 64]; 65];
    let mut shr = [[0u64; 8]; 65];
    let mut w = 1;
    while w <= 64 {
        let mut k = 0;
        while k < 8 {
            let (b, s) = (k * w / 8, k * w % 8);
            let mut j = 0;
            while j < 8 {
                // b + 7 <= 7·64/8 + 7 = 63: always inside the register.
                lo[w][8 * k + j] = (b + j) as u8;
                j += 1;
            }
            shr[w][k] = s as u64;
            k += 1;
        }
        w += 1;
    }
    (lo, shr)
}

static TABLES: ([[u8; 64]; 65], [[u64; 8]; 65]) = tables();

#[target_feature(enable = "avx512f,avx512bw")]
fn layout(width: u32) -> Layout {
    let w = width as usize;
    // SAFETY: both rows are 64 bytes, read unaligned.
    let (lo, shr) = unsafe {
        (
            _mm512_loadu_si512(TABLES.0[w].as_ptr().cast()),
            _mm512_loadu_si512(TABLES.1[w].as_ptr().cast()),
        )
    };
    // Field k ends past the 64 bits gathered for it when width + shift > 64; shifts are
    // below 8, so no field does for width <= 57.
    let wide = TABLES.1[w].iter().any(|&s| w + s as usize > 64);
    Layout {
        lo,
        // Byte b + 8 is 64 only for width 64, whose fields all start on a byte (shl = 64,
        // which shifts it out); vpermb reads the index mod 64 anyway.
        hi: _mm512_add_epi8(lo, _mm512_set1_epi8(8)),
        shr,
        shl: _mm512_sub_epi64(_mm512_set1_epi64(64), shr),
        mask: _mm512_set1_epi64((u64::MAX >> (64 - width)) as i64),
        wide,
        bytes: w,
    }
}

/// The eight fields of the group in `g` (its bytes from the register's start), one per lane.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
fn fields8(g: __m512i, l: &Layout) -> __m512i {
    let v = _mm512_srlv_epi64(_mm512_permutexvar_epi8(l.lo, g), l.shr);
    let v = if l.wide {
        let top = _mm512_maskz_permutexvar_epi8(LOW_BYTES, l.hi, g);
        _mm512_or_si512(v, _mm512_sllv_epi64(top, l.shl))
    } else {
        v
    };
    _mm512_and_si512(v, l.mask)
}

/// Mask of the low `n` bytes (n ≤ 64).
#[inline]
fn byte_mask(n: usize) -> __mmask64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// The `m ≤ 8` fields of group `g` (the group's first byte is `src[g·width]`), each in its
/// lane, the lanes past `m` zero; reads only the `ceil(m·width/8)` bytes the fields occupy.
///
/// # Safety
/// Those bytes must be inside `src`; the CPU must have avx512f, avx512bw and avx512vbmi.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn group(src: &[u8], g: usize, m: usize, l: &Layout) -> __m512i {
    let need = (m * l.bytes).div_ceil(8);
    debug_assert!(g * l.bytes + need <= src.len());
    // SAFETY: the caller guarantees bytes g·width ..+ need are in `src`; the masked load
    // touches no byte outside the mask.
    let raw =
        unsafe { _mm512_maskz_loadu_epi8(byte_mask(need), src.as_ptr().add(g * l.bytes).cast()) };
    let v = fields8(raw, l);
    if m == 8 {
        v
    } else {
        _mm512_maskz_mov_epi64(((1u32 << m) - 1) as __mmask8, v)
    }
}

/// `out[k]` = field k of `src` at `width` bits; returns the largest field (0 if none).
///
/// # Safety
/// 1 ≤ width ≤ 64, `src` holds at least `ceil(out.len()·width/8)` bytes, and the CPU has
/// avx512f, avx512bw and avx512vbmi.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub(crate) unsafe fn unpack_fields(src: &[u8], width: u32, out: &mut [u64]) -> u64 {
    let l = layout(width);
    let mut max = _mm512_setzero_si512();
    let full = out.len() / 8;
    let dst = out.as_mut_ptr();
    if out.len() >= STREAM_MIN {
        // SAFETY: the caller's contract, passed on.
        max = unsafe { unpack_streaming(src, &l, out) };
    } else {
        for g in 0..full {
            // SAFETY: group g's 8·width bits end at bit 8·width·(g+1) ≤ out.len()·width,
            // inside `src` by the caller's contract.
            let v = unsafe { group(src, g, 8, &l) };
            max = _mm512_max_epu64(max, v);
            // SAFETY: lanes 8g ..+ 8 are inside `out` (g < out.len() / 8).
            unsafe { _mm512_storeu_si512(dst.add(8 * g).cast(), v) };
        }
    }
    let m = out.len() % 8;
    if m > 0 {
        // SAFETY: the last m fields end at bit out.len()·width, inside `src`.
        let v = unsafe { group(src, full, m, &l) };
        max = _mm512_max_epu64(max, v);
        // SAFETY: only the m lanes 8·full ..+ m, the end of `out`, are written.
        unsafe {
            _mm512_mask_storeu_epi64(dst.add(8 * full).cast(), ((1u32 << m) - 1) as __mmask8, v)
        };
    }
    _mm512_reduce_max_epu64(max)
}

/// Outputs of at least this many words (a limb at N ≥ 2^15, 256 KiB) are written with
/// non-temporal stores: they do not stay in cache anyway, and a normal store first reads each
/// line it writes (a third of the memory traffic of unpacking a key's limbs).
const STREAM_MIN: usize = 1 << 15;

/// The whole groups of [`unpack_fields`] with non-temporal stores on 64-byte lines of `out`
/// (the fields of a line come from two consecutive groups when `out` is not 64-byte
/// aligned); returns the running maximum. Leaves the last `out.len() mod 8` fields.
///
/// # Safety
/// As [`unpack_fields`].
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn unpack_streaming(src: &[u8], l: &Layout, out: &mut [u64]) -> __m512i {
    let full = out.len() / 8;
    let dst = out.as_mut_ptr();
    // Words before the first 64-byte boundary of `out`.
    let a = (8 - (dst as usize / 8) % 8) % 8;
    // Line j takes lanes a..8 of group j and lanes 0..a of group j + 1.
    let idx =
        _mm512_add_epi64(_mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi64(a as i64));
    let mut max = _mm512_setzero_si512();
    if full == 0 {
        return max;
    }
    // SAFETY: group 0 is whole (full ≥ 1) and inside `src`.
    let mut prev = unsafe { group(src, 0, 8, l) };
    max = _mm512_max_epu64(max, prev);
    // SAFETY: out[0..a] (a < 8 ≤ out.len()) is inside `out`.
    unsafe { _mm512_mask_storeu_epi64(dst.cast(), ((1u32 << a) - 1) as __mmask8, prev) };
    for g in 1..full {
        // SAFETY: as in `unpack_fields`, group g < full is inside `src`.
        let cur = unsafe { group(src, g, 8, l) };
        max = _mm512_max_epu64(max, cur);
        let line = if a == 0 { prev } else { _mm512_permutex2var_epi64(prev, idx, cur) };
        // SAFETY: out[a + 8(g−1) ..+ 8] is inside `out` (a + 8g ≤ 8·full) and 64-byte
        // aligned by the choice of a.
        unsafe { _mm512_stream_si512(dst.add(a + 8 * (g - 1)).cast(), line) };
        prev = cur;
    }
    // The last group's lanes a..8 (all eight when a = 0): out[8·full − 8 + a .. 8·full].
    let last = _mm512_permutex2var_epi64(prev, idx, _mm512_setzero_si512());
    // SAFETY: those 8 − a words end at 8·full ≤ out.len().
    unsafe {
        _mm512_mask_storeu_epi64(dst.add(8 * full - 8 + a).cast(), (0xffu32 >> a) as __mmask8, last)
    };
    // Non-temporal stores are weakly ordered: fence them before the caller (or another
    // thread it hands `out` to) reads the words.
    _mm_sfence();
    max
}

/// Appends `field mod q` for each field of `src` below `bound` (= `multiple·q`) to `out` in
/// order, until `out` is full or `src` has no whole field left; returns (fields written, fields
/// read). Reading stops right after the field that fills `out`.
///
/// # Safety
/// 1 ≤ width ≤ 64, `bound` = `multiple·q` without overflow, and the CPU has avx512f, avx512bw,
/// avx512vbmi and popcnt.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,popcnt")]
pub(crate) unsafe fn take_below(
    src: &[u8],
    width: u32,
    bound: u64,
    q: u64,
    multiple: u64,
    out: &mut [u64],
) -> (usize, usize) {
    // One conditional subtraction of 2^k·q per bit k of `multiple`, the highest first: v <
    // multiple·q ≤ 2^(k+1)·q, and each leaves v below 2^k·q. Seed expansion's multiples (at
    // most 7) get their subtrahends in registers and the steps unrolled.
    let steps = if multiple == 1 { 0 } else { 64 - multiple.leading_zeros() as usize };
    let sub = |k: usize| _mm512_set1_epi64((q << k) as i64);
    let fold = |v: __m512i, subs: &[__m512i]| {
        subs.iter().fold(v, |v, &s| _mm512_min_epu64(v, _mm512_sub_epi64(v, s)))
    };
    // SAFETY: as this function's.
    unsafe {
        match steps {
            0 => take_with(src, width, bound, out, |v| v),
            1 => take_with(src, width, bound, out, |v| fold(v, &[sub(0)])),
            2 => {
                let subs = [sub(1), sub(0)];
                take_with(src, width, bound, out, |v| fold(v, &subs))
            }
            3 => {
                let subs = [sub(2), sub(1), sub(0)];
                take_with(src, width, bound, out, |v| fold(v, &subs))
            }
            _ => {
                let subs: Vec<__m512i> = (0..steps).rev().map(sub).collect();
                take_with(src, width, bound, out, |v| fold(v, &subs))
            }
        }
    }
}

/// [`take_below`] with `reduce` taking each group's fields mod q (those below `bound`).
///
/// # Safety
/// As [`take_below`].
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,popcnt")]
unsafe fn take_with(
    src: &[u8],
    width: u32,
    bound: u64,
    out: &mut [u64],
    reduce: impl Fn(__m512i) -> __m512i,
) -> (usize, usize) {
    let l = layout(width);
    let bv = _mm512_set1_epi64(bound as i64);
    let fields = src.len() * 8 / width as usize;
    let dst = out.as_mut_ptr();
    let (mut written, mut read) = (0, 0);
    // Whole groups while `out` has room for all eight: the compressed vector is stored whole
    // (its lanes past the kept ones are overwritten by the next store or left past `written`).
    while read + 8 <= fields && written + 8 <= out.len() {
        // SAFETY: the group's 8 fields are whole fields of `src` (read is a multiple of 8).
        let v = unsafe { group(src, read / 8, 8, &l) };
        let keep = _mm512_cmplt_epu64_mask(v, bv);
        // SAFETY: lanes written ..+ 8 are inside `out`.
        unsafe {
            _mm512_storeu_si512(
                dst.add(written).cast(),
                _mm512_maskz_compress_epi64(keep, reduce(v)),
            )
        };
        written += keep.count_ones() as usize;
        read += 8;
    }
    while read < fields && written < out.len() {
        let m = (fields - read).min(8);
        // SAFETY: `read` is a multiple of 8 here (only the last iteration reads fewer than 8)
        // and the group's m fields are whole fields of `src`.
        let v = unsafe { group(src, read / 8, m, &l) };
        let mut keep = _mm512_mask_cmplt_epu64_mask(((1u32 << m) - 1) as __mmask8, v, bv);
        let room = out.len() - written;
        let mut took = m;
        if keep.count_ones() as usize >= room {
            // Keep the first `room` accepted fields; reading ends at the last of them.
            while keep.count_ones() as usize > room {
                keep &= !(0x80u8 >> keep.leading_zeros());
            }
            took = 8 - keep.leading_zeros() as usize;
        }
        let n = keep.count_ones() as usize;
        let packed = _mm512_maskz_compress_epi64(keep, reduce(v));
        // SAFETY: n ≤ room lanes from `written` on are inside `out`.
        unsafe {
            _mm512_mask_storeu_epi64(dst.add(written).cast(), ((1u32 << n) - 1) as __mmask8, packed)
        };
        written += n;
        read += took;
    }
    (written, read)
}
