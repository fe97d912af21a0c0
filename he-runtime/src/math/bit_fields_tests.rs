//! The bit-field kernels against a bit-by-bit model of the format, SIMD against portable.

use proptest::prelude::*;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

/// Field k of `src`, bit by bit (the definition, independent of the window reads).
fn model_field(src: &[u8], width: u32, k: usize) -> u64 {
    (0..width as usize).fold(0, |a, b| {
        let bit = k * width as usize + b;
        a | (u64::from(src[bit / 8] >> (bit % 8) & 1) << b)
    })
}

/// `take_below` as a plain loop over the model's fields, reducing with `%`.
fn model_take(src: &[u8], width: u32, q: u64, multiple: u64, cap: usize) -> (Vec<u64>, usize) {
    let fields = src.len() * 8 / width as usize;
    let (mut kept, mut read) = (Vec::new(), 0);
    while read < fields && kept.len() < cap {
        let v = model_field(src, width, read);
        read += 1;
        if u128::from(v) < u128::from(q) * u128::from(multiple) {
            kept.push(if multiple == 1 { v } else { v % q });
        }
    }
    (kept, read)
}

type Take = fn(&[u8], u32, u64, u64, &mut [u64]) -> (usize, usize);
const TAKES: [(&str, Take); 2] = [("dispatched", take_below), ("portable", take_below_portable)];

fn random_bytes(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// Exactly the bytes of `n` fields (no slack), the padding bits of the last byte random too.
fn unpack_all(src: &[u8], width: u32, n: usize) -> (Vec<u64>, u64, Vec<u64>, u64) {
    let mut fast = vec![u64::MAX; n];
    let mut port = vec![u64::MAX; n];
    let mf = unpack_fields(src, width, &mut fast);
    let mp = unpack_fields_portable(src, width, &mut port);
    (fast, mf, port, mp)
}

#[test]
fn unpack_matches_the_model_for_every_width_and_short_length() {
    let mut rng = ChaCha8Rng::from_seed([3; 32]);
    for width in 1..=MAX_WIDTH {
        for n in (0..=40).chain([63, 64, 65, 127, 200]) {
            let src = random_bytes(&mut rng, packed_len(n, width));
            let (fast, mf, port, mp) = unpack_all(&src, width, n);
            let want: Vec<u64> = (0..n).map(|k| model_field(&src, width, k)).collect();
            assert_eq!(port, want, "portable, width {width}, n {n}");
            assert_eq!(fast, want, "dispatched, width {width}, n {n}");
            let max = want.iter().copied().max().unwrap_or(0);
            assert_eq!((mf, mp), (max, max), "largest field, width {width}, n {n}");
        }
    }
}

#[test]
fn unpack_reads_nothing_past_the_fields_and_leaves_the_rest_of_out() {
    // The same fields followed by different bytes, or by nothing, give the same words; a longer
    // `out` prefix is untouched past the fields asked for.
    let mut rng = ChaCha8Rng::from_seed([4; 32]);
    for width in [1, 7, 46, 55, 58, 61, 62, 63, 64] {
        for n in [1, 5, 8, 9, 33] {
            let len = packed_len(n, width);
            let mut src = random_bytes(&mut rng, len + 70);
            let (a, ..) = unpack_all(&src[..len], width, n);
            src[len..].iter_mut().for_each(|b| *b = !*b);
            let mut out = vec![7u64; n + 3];
            unpack_fields(&src, width, &mut out[..n]);
            assert_eq!(out[..n], a[..], "width {width}, n {n}");
            assert_eq!(out[n..], [7, 7, 7]);
        }
    }
}

#[test]
fn unpack_of_a_large_limb_matches_portable_at_every_alignment() {
    // Large outputs take non-temporal stores on 64-byte lines, the fields of a line coming
    // from two groups unless `out` is aligned: every offset of `out` in a line is tried.
    let mut rng = ChaCha8Rng::from_seed([5; 32]);
    for (width, n) in [(46, 1 << 16), (55, (1 << 16) + 3), (61, 1 << 15), (62, 100_003)] {
        let src = random_bytes(&mut rng, packed_len(n, width));
        let mut port = vec![0u64; n];
        let mp = unpack_fields_portable(&src, width, &mut port);
        for k in [0, 1, n / 2, n - 1] {
            assert_eq!(port[k], model_field(&src, width, k));
        }
        let mut buf = vec![7u64; n + 16];
        for off in 0..8 {
            buf.fill(7);
            let mf = unpack_fields(&src, width, &mut buf[off..off + n]);
            assert!(buf[off..off + n] == port[..] && mf == mp, "width {width}, n {n}, {off}");
            assert!(buf[..off].iter().chain(&buf[off + n..]).all(|&w| w == 7), "{off}");
        }
    }
}

#[test]
#[should_panic(expected = "bit-field")]
fn unpack_refuses_a_short_source() {
    unpack_fields(&[0u8; 6], 50, &mut [0u64; 1]);
}

#[test]
fn take_below_matches_the_model_when_out_fills_mid_group_or_src_runs_out() {
    let mut rng = ChaCha8Rng::from_seed([6; 32]);
    for width in 1..=MAX_WIDTH {
        let top = u64::MAX >> (64 - width);
        for _ in 0..12 {
            let len = rng.gen_range(0..90);
            let src = random_bytes(&mut rng, len);
            // Bounds that keep none, some, about half, or all of the fields.
            let q = match rng.gen_range(0..4) {
                0 => 0,
                1 => rng.gen_range(0..=top),
                2 => top / 2 + 1,
                _ => u64::MAX,
            };
            let fields = len * 8 / width as usize;
            for cap in [0, 1, 3, 7, 8, 9, fields / 3, fields, fields + 5] {
                let (want, want_read) = model_take(&src, width, q, 1, cap);
                for (name, f) in TAKES {
                    let mut out = vec![u64::MAX - 1; cap + 2];
                    let (n, read) = f(&src, width, q, 1, &mut out[..cap]);
                    let ctx = format!("{name}: width {width}, q {q}, len {len}, cap {cap}");
                    assert_eq!((n, read), (want.len(), want_read), "{ctx}");
                    assert_eq!(out[..n], want[..], "{ctx}");
                    assert_eq!(out[cap..], [u64::MAX - 1; 2], "{ctx}: wrote past out");
                }
            }
        }
    }
}

/// With a multiple, every kept field below `multiple·q` comes out reduced mod q, for
/// multiples of one to sixty-four reduction steps and moduli just above and below a power of
/// two, the field width at or above what `multiple·q` needs.
#[test]
fn take_below_with_a_multiple_keeps_below_it_and_reduces() {
    let mut rng = ChaCha8Rng::from_seed([8; 32]);
    for _ in 0..400 {
        let width = rng.gen_range(2..=MAX_WIDTH);
        let multiple = match rng.gen_range(0..4) {
            0 => rng.gen_range(2..=7),
            1 => (1u64 << rng.gen_range(1..width)) - 1,
            2 => 1 << rng.gen_range(1..width),
            _ => rng.gen_range(2..=u64::MAX >> (64 - width)),
        };
        // The largest q with multiple·q within the field range, or a random one below it.
        let top = (u64::MAX >> (64 - width)) / multiple;
        if top == 0 {
            continue;
        }
        let q = if rng.gen() { top } else { rng.gen_range(1..=top) };
        let len = rng.gen_range(0..200);
        let src = random_bytes(&mut rng, len);
        let fields = src.len() * 8 / width as usize;
        for cap in [0, 5, 8, 13, fields] {
            let (want, want_read) = model_take(&src, width, q, multiple, cap);
            for (name, f) in TAKES {
                let mut out = vec![u64::MAX - 1; cap + 1];
                let (n, read) = f(&src, width, q, multiple, &mut out[..cap]);
                let ctx = format!("{name}: width {width}, q {q}, multiple {multiple}, cap {cap}");
                assert_eq!((n, read), (want.len(), want_read), "{ctx}");
                assert_eq!(out[..n], want[..], "{ctx}");
                assert!(out[..n].iter().all(|&v| v < q), "{ctx}");
                assert_eq!(out[cap], u64::MAX - 1, "{ctx}: wrote past out");
            }
        }
    }
}

#[test]
#[should_panic(expected = "overflows")]
fn take_below_refuses_a_multiple_past_64_bits() {
    take_below_portable(&[0u8; 8], 64, 1 << 62, 4, &mut [0u64; 1]);
}

#[test]
#[should_panic(expected = "overflows")]
fn take_below_dispatched_refuses_a_multiple_past_64_bits() {
    take_below(&[0u8; 8], 64, 1 << 62, 4, &mut [0u64; 1]);
}

#[test]
fn take_below_resumes_where_it_stopped() {
    // Filling a limb in pieces, each resuming after the fields the last one read, gives the
    // same words as in one go (48-bit fields start on a byte, so any field is a resume point).
    let mut rng = ChaCha8Rng::from_seed([7; 32]);
    let (width, q) = (48, (1u64 << 47) + 12_345);
    let src = random_bytes(&mut rng, 6 * 2500);
    let mut whole = vec![0u64; 1000];
    assert_eq!(take_below(&src, width, q, 1, &mut whole).0, 1000);
    let mut parts = vec![0u64; 1000];
    let (mut written, mut byte) = (0, 0);
    for cap in [1, 13, 64, 100, 822] {
        let (n, read) = take_below(&src[byte..], width, q, 1, &mut parts[written..written + cap]);
        assert_eq!(n, cap);
        written += n;
        byte += read * 6;
    }
    assert_eq!(parts, whole);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn unpack_simd_and_portable_agree(
        width in 1u32..=MAX_WIDTH,
        n in 0usize..300,
        seed in any::<[u8; 32]>(),
    ) {
        let src = random_bytes(&mut ChaCha8Rng::from_seed(seed), packed_len(n, width));
        let (fast, mf, port, mp) = unpack_all(&src, width, n);
        prop_assert_eq!(fast, port);
        prop_assert_eq!(mf, mp);
    }

    #[test]
    fn take_below_simd_and_portable_agree(
        width in 1u32..=MAX_WIDTH,
        len in 0usize..500,
        cap in 0usize..400,
        q in any::<u64>(),
        multiple in 1u64..=15,
        seed in any::<[u8; 32]>(),
    ) {
        let src = random_bytes(&mut ChaCha8Rng::from_seed(seed), len);
        let q = (q >> rng_shift(width, q)) / multiple;
        let mut a = vec![0u64; cap];
        let mut b = vec![0u64; cap];
        let ra = take_below(&src, width, q, multiple, &mut a);
        let rb = take_below_portable(&src, width, q, multiple, &mut b);
        prop_assert_eq!(ra, rb);
        prop_assert_eq!(&a[..ra.0], &b[..rb.0]);
    }
}

/// A shift that brings a random bound near the field range (so some fields are kept and some
/// are not), varied by the bound's own low bits.
fn rng_shift(width: u32, q: u64) -> u32 {
    (64 - width).saturating_sub((q & 1) as u32)
}
