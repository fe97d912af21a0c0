//! Randomness: ternary secrets, discrete Gaussian errors (σ = 3.2) and uniform polynomials
//! expanded from a seed with AES-256 in counter mode ([`Keystream`]), so that `a` parts can be
//! stored as their 32-byte seed.

use rand::{Rng, RngCore};
use rayon::prelude::*;

use super::context::Context;
use super::keystream::Keystream;
use crate::math::bit_fields::{reduce_below_multiple, take_below, unpack_fields, window_bound};

/// Standard deviation of the error distribution.
pub const SIGMA: f64 = 3.2;
/// Errors are cut at 6σ.
const BOUND: f64 = 6.0 * SIGMA;

/// A 32-byte PRNG seed.
pub type Seed = [u8; 32];

/// A fresh seed from the operating system's entropy source.
pub fn os_seed() -> Seed {
    let mut s = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

/// Uniform ternary coefficients in {-1, 0, 1}.
pub(crate) fn ternary<R: RngCore>(rng: &mut R, n: usize) -> Vec<i8> {
    (0..n)
        .map(|_| {
            // Rejection from 2 bits keeps the three values exactly equiprobable.
            loop {
                let v = (rng.next_u32() & 3) as i8;
                if v < 3 {
                    return v - 1;
                }
            }
        })
        .collect()
}

/// Rounded Gaussian coefficients with σ = 3.2, cut at 6σ (Box–Muller).
pub(crate) fn gaussian<R: RngCore>(rng: &mut R, n: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let u1: f64 = 1.0 - rng.gen::<f64>();
        let u2: f64 = rng.gen::<f64>();
        let r = (-2.0 * u1.ln()).sqrt() * SIGMA;
        let t = 2.0 * std::f64::consts::PI * u2;
        for z in [r * t.cos(), r * t.sin()] {
            if z.abs() <= BOUND && out.len() < n {
                out.push(z.round() as i64);
            }
        }
    }
    out
}

/// Reduces small signed coefficients into every prime of `primes` and applies the NTT:
/// `out` receives |primes| limbs.
pub(crate) fn small_to_ntt(ctx: &Context, coeffs: &[i64], primes: &[usize], out: &mut [u64]) {
    let n = ctx.n();
    out.par_chunks_mut(n).zip(primes.par_iter()).for_each(|(limb, &pi)| {
        let p = ctx.prime(pi);
        for (o, &c) in limb.iter_mut().zip(coeffs) {
            *o = p.reduce_i64(c);
        }
        p.ntt(limb);
    });
}

/// Fills |primes| limbs with polynomials uniform mod each prime, expanded from `seed`; each
/// (stream, prime index) pair has its own PRG stream so limbs are generated in parallel and
/// a key can regenerate any limb alone ([`uniform_limb`]).
pub(crate) fn uniform_from_seed(
    ctx: &Context,
    seed: &Seed,
    stream: u64,
    primes: &[usize],
    out: &mut [u64],
) {
    let n = ctx.n();
    out.par_chunks_mut(n).zip(primes.par_iter()).for_each(|(limb, &pi)| {
        uniform_limb(seed, stream, pi, ctx.prime(pi).q, limb);
    });
}

/// One limb uniform mod `q` (prime index `pi`) from `seed`'s stream `stream`, on the calling
/// thread. Candidates take [`candidate_window`]`(q)` bits of the PRG's little-endian output
/// stream each; those below the window's multiple of `q` are kept and reduced mod `q`, the
/// others rejected, so every residue is exactly uniform.
pub(crate) fn uniform_limb(seed: &Seed, stream: u64, pi: usize, q: u64, limb: &mut [u64]) {
    UniformStream::new(seed, stream, pi, q).fill(limb);
}

/// The most bits a candidate takes beyond `width(q)` ([`candidate_window`]).
const MAX_SPARE_BITS: u32 = 2;

/// How seed expansion cuts candidates for residues mod `q`: (bits per candidate, multiple).
/// A candidate of `bits` = `width(q)` + e bits is kept when below `multiple·q`, `multiple` =
/// ⌊2^bits / q⌋, and reduced mod q. Of e = 0 ..= [`MAX_SPARE_BITS`] (and `bits` ≤ 64) the one
/// whose expected keystream per residue, `bits·2^bits / (multiple·q)`, is least, the smaller e
/// on a tie.
///
/// A prime just below a power of two keeps nearly every candidate at its own width (e = 0,
/// multiple 1). One just above keeps only half there; at two more bits it keeps 7 of 8. That
/// takes `n16_deep`'s limbs from 70.4 to 54.0 keystream bits per residue on average.
pub(crate) fn candidate_window(q: u64) -> (u32, u64) {
    let width = 64 - q.leading_zeros();
    let window = |e: u32| {
        let bits = width + e;
        (bits, ((1u128 << bits) / u128::from(q)) as u64)
    };
    // The costs compared without dividing: bits·2^bits·m_best < bits_best·2^bits_best·m.
    let weight =
        |bits: u32, multiple: u64| u128::from(bits) * (1u128 << bits) * u128::from(multiple);
    (1..=MAX_SPARE_BITS.min(64 - width)).map(window).fold(window(0), |best, w| {
        if weight(w.0, best.1) < weight(best.0, w.1) {
            w
        } else {
            best
        }
    })
}

/// Groups of eight candidates per keystream refill: 1024·width bytes, whole keystream chunks
/// (made in place, no copy).
const GROUPS: usize = 1024;

/// The residues [`uniform_limb`] writes, handed out a piece at a time in the same order: a key
/// switch reading a seed-compressed key in place makes each piece of an `a` limb just before
/// it multiplies by it, instead of expanding the whole key first.
pub(crate) struct UniformStream {
    keystream: Keystream,
    q: u64,
    /// Bits per candidate, and the multiple of q below which one is kept ([`candidate_window`]).
    width: usize,
    multiple: u64,
    /// Keystream bytes: `GROUPS` groups of eight `width`-bit candidates (`width` bytes each).
    buf: Vec<u8>,
    /// Groups of `buf` already read.
    group: usize,
    /// Accepted candidates of a group read only in part (the piece before ended inside it).
    pending: [u64; 8],
    pending_at: usize,
    pending_len: usize,
}

impl UniformStream {
    /// The residues of limb `pi` (prime `q`) of `seed`'s stream `stream`, from the first.
    pub(crate) fn new(seed: &Seed, stream: u64, pi: usize, q: u64) -> Self {
        Self::with_buffer(seed, stream, pi, q, Vec::new())
    }

    /// As [`Self::new`], its keystream buffer made from `buf` (any contents; one of
    /// [`Self::into_buffer`], so that a caller making many streams allocates once).
    pub(crate) fn with_buffer(
        seed: &Seed,
        stream: u64,
        pi: usize,
        q: u64,
        mut buf: Vec<u8>,
    ) -> Self {
        let (width, multiple) = candidate_window(q);
        let width = width as usize;
        buf.resize(GROUPS * width, 0);
        Self {
            keystream: Keystream::new(seed, (stream << 8) | pi as u64),
            q,
            width,
            multiple,
            buf,
            group: GROUPS,
            pending: [0; 8],
            pending_at: 0,
            pending_len: 0,
        }
    }

    /// The keystream buffer, for the next stream's [`Self::with_buffer`].
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// Fills `out` with the next residues.
    pub(crate) fn fill(&mut self, out: &mut [u64]) {
        let w = self.width;
        let mut i = 0;
        while self.pending_at < self.pending_len && i < out.len() {
            out[i] = self.pending[self.pending_at];
            self.pending_at += 1;
            i += 1;
        }
        while i < out.len() {
            if self.group == GROUPS {
                self.keystream.fill(&mut self.buf);
                self.group = 0;
            }
            let (written, read) = take_below(
                &self.buf[self.group * w..],
                w as u32,
                self.q,
                self.multiple,
                &mut out[i..],
            );
            i += written;
            self.group += read / 8;
            let part = read % 8;
            if part != 0 {
                // `out` filled inside a group: its later candidates are the next piece's first.
                let mut raw = [0u64; 8];
                let bytes = &self.buf[self.group * w..(self.group + 1) * w];
                unpack_fields(bytes, w as u32, &mut raw);
                self.pending_len = 0;
                let bound = window_bound(self.q, self.multiple);
                for &v in raw[part..].iter().filter(|&&v| v < bound) {
                    self.pending[self.pending_len] =
                        reduce_below_multiple(v, self.q, self.multiple);
                    self.pending_len += 1;
                }
                self.pending_at = 0;
                self.group += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use aes::cipher::{BlockEncrypt, KeyInit};

    use super::super::keystream::counter_block;

    use super::*;

    #[test]
    fn gaussian_has_the_right_spread() {
        let mut rng = ChaCha20Rng::from_seed([7; 32]);
        let e = gaussian(&mut rng, 200_000);
        let mean = e.iter().sum::<i64>() as f64 / e.len() as f64;
        let var = e.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / e.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        // Rounding adds 1/12 to the variance.
        assert!(
            (var.sqrt() - (SIGMA * SIGMA + 1.0 / 12.0).sqrt()).abs() < 0.05,
            "sd {}",
            var.sqrt()
        );
        assert!(e.iter().all(|&x| x.abs() <= 19));
    }

    /// The stored format's definition of an expanded limb (blob format 4): AES-256 in counter
    /// mode on stream `(stream << 8) | prime index`, its output read as one little-endian bit
    /// string, cut into candidates of `width(q) + e` bits, e in 0..=2 the one needing the
    /// fewest keystream bits per residue; those below `⌊2^bits/q⌋·q` kept, mod q. Written here
    /// bit by bit from the `aes` crate (the costs compared in floating point), independently of
    /// the word-at-a-time code and the SIMD kernel, and pinned to known values so a change to
    /// either (or to the cipher crate) fails here rather than as keys that no longer match
    /// their seeds.
    #[test]
    fn uniform_limb_matches_its_definition_and_known_values() {
        let seed = [0x5a; 32];
        for (q, pi, stream, spare) in [
            ((1u64 << 50) - 27, 3, 1, 0),
            ((1u64 << 59) + 21, 0, 7, 2),
            ((1u64 << 40) + 15, 9, 0, 2),
            ((1u64 << 61) - 1, 4, 3, 0),
            (0xffff_ffff_ffff_ffc5, 2, 2, 0),
        ] {
            let width = 64 - q.leading_zeros();
            let per_residue = |e: u32| {
                let bits = width + e;
                let multiple = (1u128 << bits) / u128::from(q);
                let kept = (multiple * u128::from(q)) as f64 / 2f64.powi(bits as i32);
                (bits, multiple as u64, f64::from(bits) / kept)
            };
            let best = (0..=2.min(64 - width))
                .min_by(|&a, &b| per_residue(a).2.total_cmp(&per_residue(b).2))
                .unwrap();
            assert_eq!(best, spare, "q = {q:#x}: spare bits");
            let (bits, multiple, _) = per_residue(best);
            assert_eq!(candidate_window(q), (bits, multiple), "q = {q:#x}");
            let bound = u128::from(q) * u128::from(multiple);
            let cipher = aes::Aes256::new(&seed.into());
            let mut block = 0u64;
            let mut stream_bits: Vec<bool> = Vec::new();
            let mut want = Vec::new();
            while want.len() < 1000 {
                while stream_bits.len() < bits as usize {
                    let mut b = counter_block(block, (stream << 8) | pi as u64);
                    cipher.encrypt_block((&mut b).into());
                    block += 1;
                    stream_bits.extend(
                        b.iter().flat_map(|&byte| (0..8).map(move |k| (byte >> k) & 1 == 1)),
                    );
                }
                let x = stream_bits
                    .drain(..bits as usize)
                    .enumerate()
                    .fold(0u64, |a, (b, v)| a | (u64::from(v) << b));
                if u128::from(x) < bound {
                    want.push(x % q);
                }
            }
            let mut got = vec![0u64; 1000];
            uniform_limb(&seed, stream, pi, q, &mut got);
            assert_eq!(got, want, "q = {q:#x}");
            if let Some(known) = KNOWN.iter().find(|k| k.0 == q) {
                assert_eq!(got[..3], known.1, "the keystream changed: stored keys would too");
            }
        }
    }

    /// Exactly uniform in [0, q) for a prime on either side of a power of two, whether a
    /// residue was cut at the prime's width or reduced from a multiple: each sixteenth of the
    /// range gets its share of 2^18 draws (within 5σ of a binomial count), and the mean is q/2.
    #[test]
    fn uniform_limb_is_uniform_on_both_sides_of_a_power_of_two() {
        for q in [(1u64 << 45) + 59, (1u64 << 45) - 111, (1u64 << 60) + 33] {
            let mut v = vec![0u64; 1 << 18];
            uniform_limb(&[1; 32], 0, 0, q, &mut v);
            assert!(v.iter().all(|&x| x < q), "q {q:#x}");
            let mut bins = [0usize; 16];
            for &x in &v {
                bins[(u128::from(x) * 16 / u128::from(q)) as usize] += 1;
            }
            let (n, p) = (v.len() as f64, 1.0 / 16.0);
            let sd = (n * p * (1.0 - p)).sqrt();
            for (i, &c) in bins.iter().enumerate() {
                assert!((c as f64 - n * p).abs() < 5.0 * sd, "q {q:#x}: bin {i} has {c}");
            }
            let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
            assert!((mean / (q as f64 / 2.0) - 1.0).abs() < 0.01, "q {q:#x}: mean {mean}");
        }
    }

    /// Pieces of every size, crossing groups and refills at every offset, give the residues
    /// of the whole limb in order.
    #[test]
    fn a_uniform_stream_read_in_pieces_gives_the_whole_limb() {
        for q in [(1u64 << 50) - 27, (1u64 << 61) - 1, (1u64 << 36) + 31] {
            let mut whole = vec![0u64; 40_000];
            uniform_limb(&[9; 32], 2, 5, q, &mut whole);
            for piece in [1usize, 7, 8, 9, 1000, 2048, 8191, 8193] {
                let mut stream = UniformStream::new(&[9; 32], 2, 5, q);
                let mut got = Vec::with_capacity(whole.len());
                while got.len() < whole.len() {
                    let mut buf = vec![0u64; piece.min(whole.len() - got.len())];
                    stream.fill(&mut buf);
                    got.extend_from_slice(&buf);
                }
                assert_eq!(got, whole, "q {q:#x}, pieces of {piece}");
            }
        }
    }

    /// The first residues of two limbs above: one cut at its prime's width, one reduced.
    const KNOWN: [(u64, [u64; 3]); 2] = [
        ((1u64 << 50) - 27, [707_070_361_320_516, 640_184_494_590_744, 706_747_081_495_364]),
        ((1u64 << 40) + 15, [529_634_357_127, 430_694_479_923, 579_345_024_940]),
    ];

    #[test]
    fn ternary_is_balanced() {
        let mut rng = ChaCha20Rng::from_seed([8; 32]);
        let s = ternary(&mut rng, 300_000);
        for v in -1..=1 {
            let c = s.iter().filter(|&&x| x == v).count() as f64 / s.len() as f64;
            assert!((c - 1.0 / 3.0).abs() < 0.01);
        }
    }
}
