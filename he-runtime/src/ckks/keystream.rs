//! The ChaCha12 keystream that seed-compressed `a` parts expand from. On AVX-512 it is made
//! sixteen blocks at a time (`math::simd::chacha12_blocks16`); elsewhere it comes from
//! `rand_chacha` ([`SeedPrg`]), the portable twin. Both give the same bytes, so a key expands
//! to the same words on every machine.
//!
//! Expansion runs at every pin of a seed-compressed key (117 per bootstrap at N = 2^16), and
//! the keystream was its largest cost: about 40% of an expansion through `rand_chacha`'s AVX2
//! path.

use rand::{RngCore, SeedableRng};

use crate::math::simd;

/// A 32-byte seed (as [`super::Seed`]; named here so that this module needs nothing from
/// `sampling`, which builds on it).
type Seed = [u8; 32];

/// The PRG seeds expand with (blob format 2 on; format 1 used ChaCha20, see
/// [`super::serialize::FORMAT_VERSION`]).
///
/// Why 12 rounds: the seed is public (anyone holding a key can expand its `a` parts), so what
/// the construction needs is that the expanded polynomial has no structure an RLWE attacker
/// can use — the role Kyber gives its XOF, modelled as a random oracle; the generator's own
/// secrecy plays no part. The best published cryptanalysis of ChaCha reaches 7 rounds
/// (differential-linear distinguishers, far above 2^128 work for the 256-bit key); 12 rounds
/// keep a 5-round margin, the choice `rand`'s `StdRng` makes for a CSPRNG and Aumasson's
/// "Too Much Crypto" (2019) argues is already conservative (it proposes 8). ChaCha20 cost
/// ~1.7× as much per expanded key for no security this use can tell apart.
pub(crate) type SeedPrg = rand_chacha::ChaCha12Rng;

/// Bytes the SIMD kernel makes per call: sixteen 64-byte blocks.
const CHUNK: usize = 1024;

/// ChaCha12 with a 64-bit block counter and a 64-bit stream id, read front to back.
pub(crate) struct Keystream {
    key: [u32; 8],
    stream: u64,
    /// The next block the SIMD kernel makes.
    block: u64,
    chunk: [u8; CHUNK],
    /// Bytes of `chunk` already handed out.
    used: usize,
    /// The portable path, when the CPU has no AVX-512 F.
    portable: Option<SeedPrg>,
}

impl Keystream {
    /// The stream `stream` of `seed`, from its first byte; the SIMD path where the CPU has it.
    pub(crate) fn new(seed: &Seed, stream: u64) -> Self {
        Self::with_path(seed, stream, 0, simd::avx512f_available())
    }

    /// From block `block` on, through the SIMD kernel when `simd` (which the caller has
    /// checked the CPU supports) or else `rand_chacha`.
    fn with_path(seed: &Seed, stream: u64, block: u64, simd: bool) -> Self {
        let mut key = [0u32; 8];
        for (k, b) in key.iter_mut().zip(seed.chunks_exact(4)) {
            *k = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        let portable = (!simd).then(|| {
            let mut rng = SeedPrg::from_seed(*seed);
            rng.set_stream(stream);
            rng.set_word_pos(u128::from(block) * 16);
            rng
        });
        Self { key, stream, block, chunk: [0; CHUNK], used: CHUNK, portable }
    }

    /// Fills `out` with the next bytes of the stream. Lengths are multiples of 4 (whole 32-bit
    /// words), as `rand_chacha` needs to give the same bytes: it drops the rest of a word.
    pub(crate) fn fill(&mut self, mut out: &mut [u8]) {
        debug_assert!(out.len().is_multiple_of(4), "keystream reads whole words");
        if let Some(rng) = &mut self.portable {
            rng.fill_bytes(out);
            return;
        }
        while !out.is_empty() {
            if self.used == CHUNK {
                // Whole chunks go straight to the caller.
                let (chunks, rest) = std::mem::take(&mut out).as_chunks_mut::<CHUNK>();
                for head in chunks {
                    self.block = make(&self.key, self.block, self.stream, head);
                }
                out = rest;
                if out.is_empty() {
                    break;
                }
                self.block = make(&self.key, self.block, self.stream, &mut self.chunk);
                self.used = 0;
            }
            let take = (CHUNK - self.used).min(out.len());
            let (head, rest) = out.split_at_mut(take);
            head.copy_from_slice(&self.chunk[self.used..self.used + take]);
            self.used += take;
            out = rest;
        }
    }
}

/// Blocks `block..block + 16` into `out` through the SIMD kernel; returns the next block.
fn make(key: &[u32; 8], block: u64, stream: u64, out: &mut [u8; CHUNK]) -> u64 {
    let made = simd::chacha12_blocks16(key, block, stream, out);
    debug_assert!(made, "the SIMD path is chosen only where the CPU has it");
    block.wrapping_add(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SIMD kernel against `rand_chacha`, byte for byte: the seeds' keys, stream ids with
    /// both halves set, reads of odd word counts (crossing chunks unaligned) and whole chunks,
    /// and a block counter whose low word wraps inside a chunk.
    #[test]
    fn simd_keystream_matches_rand_chacha() {
        if !simd::avx512f_available() {
            eprintln!("skipped: no AVX-512 F on this CPU (only the portable path runs)");
            return;
        }
        let cases: [(Seed, u64, u64); 4] = [
            ([0; 32], 0, 0),
            ([0x5a; 32], (7 << 8) | 3, 0),
            (std::array::from_fn(|i| i as u8 * 37 + 1), 0xdead_beef_0000_1234, 5),
            ([0xff; 32], u64::MAX, (1 << 32) - 5),
        ];
        for (seed, stream, block) in cases {
            let mut fast = Keystream::with_path(&seed, stream, block, true);
            let mut twin = Keystream::with_path(&seed, stream, block, false);
            for len in [4usize, 60, 1024, 1028, 2048, 12, 4096, 488] {
                let (mut a, mut b) = (vec![0u8; len], vec![1u8; len]);
                fast.fill(&mut a);
                twin.fill(&mut b);
                assert_eq!(
                    a, b,
                    "seed {:?}, stream {stream:#x}, block {block}, read {len}",
                    seed[0]
                );
            }
        }
    }

    /// The portable path is `rand_chacha` from the stream's start, as stored keys define it.
    #[test]
    fn keystream_starts_at_the_streams_first_byte() {
        let seed = [3u8; 32];
        let mut rng = SeedPrg::from_seed(seed);
        rng.set_stream(42);
        let mut want = vec![0u8; 3000];
        rng.fill_bytes(&mut want);
        let mut got = vec![0u8; 3000];
        Keystream::new(&seed, 42).fill(&mut got);
        assert_eq!(got, want);
    }
}
