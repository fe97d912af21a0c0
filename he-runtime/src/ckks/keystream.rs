//! The keystream that seed-compressed `a` parts expand from (blob formats 3 and 4): AES-256 in counter
//! mode, keyed by the 32-byte seed. On AVX-512 VAES it is made sixty-four blocks at a time
//! (`math::simd::aes256_ctr_blocks64`); elsewhere the `aes` crate, the portable twin, encrypts
//! the same counter blocks. Both give the same bytes, so a key expands to the same words on
//! every machine.
//!
//! Expansion runs at every switch by a key read in place (117 per bootstrap at N = 2^16), and
//! the keystream is its largest cost: AES-256 on VAES makes it at 1.75× the speed of the
//! AVX-512 ChaCha12 kernel blob format 2 used.
//!
//! Why AES-256: the seed is public (anyone holding a key can expand its `a` parts), so what the
//! construction needs is that the expanded polynomial has no structure an RLWE attacker can use
//! — the role Kyber gives its XOF, modelled as a random oracle; the cipher's secrecy plays no
//! part. Kyber's "90s" variant made exactly this choice, AES-256 in counter mode over a public
//! 32-byte seed, to use the AES hardware every server CPU has. Its 14 rounds leave a wide
//! margin over the best known-key distinguishers (for fewer rounds, or for AES-128).

use aes::cipher::{BlockEncrypt, KeyInit};

use crate::math::simd;

/// A 32-byte seed (as [`super::Seed`]; named here so that this module needs nothing from
/// `sampling`, which builds on it).
type Seed = [u8; 32];

/// AES-256's round keys: the initial key addition and fourteen rounds.
pub(crate) type RoundKeys = [[u8; 16]; 15];

/// Bytes the SIMD kernel makes per call: sixty-four 16-byte blocks.
const CHUNK: usize = 1024;

/// The 16 bytes counter block `block` of stream `stream` encrypts: both u64 little-endian.
pub(crate) fn counter_block(block: u64, stream: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&block.to_le_bytes());
    b[8..].copy_from_slice(&stream.to_le_bytes());
    b
}

/// How blocks are encrypted: each path keeps the key schedule it uses.
// Both variants stay inline: a `Keystream` carries a 1 KiB chunk anyway, and a box would cost
// an allocation per stream (thousands per bootstrap).
#[allow(clippy::large_enum_variant)]
enum Cipher {
    /// The VAES kernel, with FIPS-197 round keys.
    Simd(RoundKeys),
    /// The `aes` crate, when the CPU has no AVX-512 VAES.
    Portable(aes::Aes256),
}

/// AES-256 in counter mode on `(seed, stream)`, read front to back from block 0.
pub(crate) struct Keystream {
    cipher: Cipher,
    stream: u64,
    /// The next block to encrypt.
    block: u64,
    chunk: [u8; CHUNK],
    /// Bytes of `chunk` already handed out.
    used: usize,
}

impl Keystream {
    /// The stream `stream` of `seed`, from its first byte; the SIMD path where the CPU has it.
    pub(crate) fn new(seed: &Seed, stream: u64) -> Self {
        Self::with_path(seed, stream, 0, simd::aes_ctr_available())
    }

    /// From block `block` on, through the SIMD kernel when `simd` (which the caller has
    /// checked the CPU supports) or else the `aes` crate.
    fn with_path(seed: &Seed, stream: u64, block: u64, simd: bool) -> Self {
        let cipher = if simd {
            Cipher::Simd(expand_key(seed))
        } else {
            Cipher::Portable(aes::Aes256::new(seed.into()))
        };
        Self { cipher, stream, block, chunk: [0; CHUNK], used: CHUNK }
    }

    /// Fills `out` with the next bytes of the stream.
    pub(crate) fn fill(&mut self, mut out: &mut [u8]) {
        while !out.is_empty() {
            if self.used == CHUNK {
                // Whole chunks go straight to the caller.
                let (chunks, rest) = std::mem::take(&mut out).as_chunks_mut::<CHUNK>();
                for head in chunks {
                    self.make(Some(head));
                }
                out = rest;
                if out.is_empty() {
                    break;
                }
                self.make(None);
                self.used = 0;
            }
            let take = (CHUNK - self.used).min(out.len());
            let (head, rest) = out.split_at_mut(take);
            head.copy_from_slice(&self.chunk[self.used..self.used + take]);
            self.used += take;
            out = rest;
        }
    }

    /// The next 64 blocks into `out`, or into the chunk buffer when `out` is `None`.
    fn make(&mut self, out: Option<&mut [u8; CHUNK]>) {
        let out = match out {
            Some(o) => o,
            None => &mut self.chunk,
        };
        match &self.cipher {
            Cipher::Portable(cipher) => {
                for (k, b) in out.as_chunks_mut::<16>().0.iter_mut().enumerate() {
                    *b = counter_block(self.block.wrapping_add(k as u64), self.stream);
                    cipher.encrypt_block(b.into());
                }
            }
            Cipher::Simd(round_keys) => {
                let made = simd::aes256_ctr_blocks64(round_keys, self.block, self.stream, out);
                debug_assert!(made, "the SIMD path is chosen only where the CPU has it");
            }
        }
        self.block = self.block.wrapping_add((CHUNK / 16) as u64);
    }
}

/// The AES S-box, built from its definition (the inverse in GF(2^8), then the affine map) so
/// that no table is typed in.
const SBOX: [u8; 256] = sbox();

/// a · b in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1.
const fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    p
}

const fn sbox() -> [u8; 256] {
    let mut s = [0u8; 256];
    let mut x = 0;
    while x < 256 {
        // x^254 = x^-1 (and 0 for 0): square and multiply over the bits of 254.
        let (mut inv, mut base, mut e) = (1u8, x as u8, 254u32);
        while e != 0 {
            if e & 1 != 0 {
                inv = gf_mul(inv, base);
            }
            base = gf_mul(base, base);
            e >>= 1;
        }
        if x == 0 {
            inv = 0;
        }
        s[x] = inv
            ^ inv.rotate_left(1)
            ^ inv.rotate_left(2)
            ^ inv.rotate_left(3)
            ^ inv.rotate_left(4)
            ^ 0x63;
        x += 1;
    }
    s
}

/// FIPS-197's AES-256 key expansion: 60 four-byte words, four to a round key.
pub(crate) fn expand_key(key: &Seed) -> RoundKeys {
    let mut w = [[0u8; 4]; 60];
    for (i, word) in w.iter_mut().take(8).enumerate() {
        word.copy_from_slice(&key[4 * i..4 * i + 4]);
    }
    let mut rcon = 1u8;
    for i in 8..60 {
        let mut t = w[i - 1];
        if i % 8 == 0 {
            let s = |b: u8| SBOX[b as usize];
            t = [s(t[1]) ^ rcon, s(t[2]), s(t[3]), s(t[0])];
            rcon = gf_mul(rcon, 2);
        } else if i % 8 == 4 {
            t = t.map(|b| SBOX[b as usize]);
        }
        w[i] = std::array::from_fn(|k| w[i - 8][k] ^ t[k]);
    }
    std::array::from_fn(|r| std::array::from_fn(|k| w[4 * r + k / 4][k % 4]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS-197 appendix C.3: key 00 01 … 1f, plaintext 00 11 … ff.
    const FIPS_KEY: Seed = {
        let mut k = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            k[i] = i as u8;
            i += 1;
        }
        k
    };
    const FIPS_PLAIN: [u8; 16] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ];
    const FIPS_CIPHER: [u8; 16] = [
        0x8e, 0xa2, 0xb7, 0xca, 0x51, 0x67, 0x45, 0xbf, 0xea, 0xfc, 0x49, 0x90, 0x4b, 0x49, 0x60,
        0x89,
    ];

    #[test]
    fn the_sbox_the_key_schedule_and_the_portable_cipher_match_fips_197() {
        assert_eq!((SBOX[0x00], SBOX[0x01], SBOX[0x53], SBOX[0xff]), (0x63, 0x7c, 0xed, 0x16));
        let mut b = FIPS_PLAIN;
        aes::Aes256::new(&FIPS_KEY.into()).encrypt_block((&mut b).into());
        assert_eq!(b, FIPS_CIPHER);
        // FIPS-197 appendix A.3: the last word of the expanded key 60 3d eb … f4.
        let key: Seed = [
            0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae, 0xf0, 0x85, 0x7d,
            0x77, 0x81, 0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61, 0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3,
            0x09, 0x14, 0xdf, 0xf4,
        ];
        assert_eq!(expand_key(&key)[14][12..], [0x70, 0x6c, 0x63, 0x1e]);
    }

    /// The SIMD kernel, with the round keys [`expand_key`] makes, against the `aes` crate byte
    /// for byte: the FIPS key as a seed, stream ids with both halves set, reads of odd lengths
    /// (crossing chunks unaligned) and whole chunks, and a counter that wraps inside a chunk.
    #[test]
    fn simd_keystream_matches_the_aes_crate() {
        if !simd::aes_ctr_available() {
            eprintln!("skipped: no AVX-512 VAES on this CPU (only the portable path runs)");
            return;
        }
        let cases: [(Seed, u64, u64); 4] = [
            (FIPS_KEY, 0, 0),
            ([0x5a; 32], (7 << 8) | 3, 0),
            (std::array::from_fn(|i| i as u8 * 37 + 1), 0xdead_beef_0000_1234, 5),
            ([0xff; 32], u64::MAX, u64::MAX - 20),
        ];
        for (seed, stream, block) in cases {
            let mut fast = Keystream::with_path(&seed, stream, block, true);
            let mut twin = Keystream::with_path(&seed, stream, block, false);
            for len in [5usize, 60, 1024, 1027, 2048, 12, 4096, 488] {
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

    /// The stream is the encryptions of its counter blocks 0, 1, 2, … in order, as stored keys
    /// define it.
    #[test]
    fn keystream_is_the_counter_blocks_encrypted() {
        let (seed, stream) = ([3u8; 32], 42);
        let cipher = aes::Aes256::new(&seed.into());
        let want: Vec<u8> = (0..200u64)
            .flat_map(|i| {
                let mut b = counter_block(i, stream);
                cipher.encrypt_block((&mut b).into());
                b
            })
            .collect();
        let mut got = vec![0u8; want.len()];
        Keystream::new(&seed, stream).fill(&mut got);
        assert_eq!(got, want);
    }
}
