//! Versioned little-endian serialisation with a CRC-32C checksum. Residues are bit-packed to
//! the width of their prime; keys and symmetric ciphertexts store the seed of their `a` parts
//! instead of the parts themselves. The secret key has no serialisation at all.
//!
//! Layout: magic `HTCK` · version u16 · kind u8 · flags u8 (0) · params id u64 · body length
//! u64 · body · CRC-32C (u32) of everything before it.
//!
//! Versions: 4 expands seeds with AES-256 in counter mode, each candidate up to two bits wider
//! than q and kept below a multiple of q, then reduced ([`super::sampling::uniform_limb`]); 3
//! did the same keeping only candidates of `width(q)` bits below q, 2 that with ChaCha12, and 1
//! with ChaCha20, 64 bits per candidate. An older blob without a seed (ciphertext, plaintext)
//! is the same bytes and still read; one with a seed is refused with
//! [`Error::RetiredSeedFormat`] (its seed would expand into other `a` parts), and the key-set
//! manifest regenerates such keys.

use super::ciphertext::{Ciphertext, Plaintext};
use super::context::Context;
use super::encryptor::SeededCiphertext;
use super::keys::{GaloisKey, PublicKey, RelinKey};

use super::sampling::uniform_from_seed;
use crate::error::{Error, Result};

mod blob;
mod digits;
mod layout;
mod packed;
mod switch_key;
pub use blob::{blob_kind, BlobKind, FORMAT_VERSION};
use blob::{width, Reader, Writer};
pub use digits::{expand_pinned_digit, switch_key_digit_stored_len};
pub use layout::digits_read_at;
pub use packed::PackedKeyLayout;
pub use switch_key::switch_key_stored_len;
use switch_key::{read_switch_key, write_switch_key};

fn check_level(ctx: &Context, level: usize) -> Result<()> {
    let max = ctx.params().max_level();
    if level > max {
        return Err(Error::Corrupt { reason: format!("level {level} above the maximum {max}") });
    }
    Ok(())
}

fn check_scale(scale: f64) -> Result<()> {
    if scale.is_finite() && scale > 0.0 {
        Ok(())
    } else {
        Err(Error::Corrupt { reason: format!("scale {scale} is not a positive number") })
    }
}

impl<C: AsRef<[u64]>> Ciphertext<C> {
    /// Serialises the ciphertext (all polynomials, bit-packed).
    pub fn to_bytes(&self, ctx: &Context) -> Vec<u8> {
        let n = self.n;
        let mut w = Writer::new(BlobKind::Ciphertext, self.params_id);
        w.u8(self.parts as u8);
        w.u32(self.level as u32);
        w.u64(self.scale.to_bits());
        for p in 0..self.parts {
            let part = self.part(p);
            for i in 0..=self.level {
                w.limb(&part[i * n..(i + 1) * n], width(ctx.prime(i).q));
            }
        }
        w.finish()
    }
}

impl Ciphertext {
    /// Loads a ciphertext written by [`Ciphertext::to_bytes`] under the same parameters.
    pub fn from_bytes(ctx: &Context, bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::open(bytes, BlobKind::Ciphertext, ctx)?;
        let parts = r.u8()? as usize;
        if !(2..=3).contains(&parts) {
            return Err(Error::Corrupt { reason: format!("{parts} polynomials") });
        }
        let level = r.u32()? as usize;
        check_level(ctx, level)?;
        let scale = f64::from_bits(r.u64()?);
        check_scale(scale)?;
        let what = format!("a ciphertext of {parts} polynomials at level {level}");
        r.expect_limbs(ctx, &what, parts, 0..level + 1, 0)?;
        let n = ctx.n();
        let mut ct = Ciphertext::zeros(parts, level, scale, n, ctx.params().id());
        for limb in 0..parts * (level + 1) {
            let i = limb % (level + 1);
            r.limb(&mut ct.data[limb * n..(limb + 1) * n], ctx.prime(i).q)?;
        }
        r.end()?;
        Ok(ct)
    }
}

impl<C: AsRef<[u64]>> Plaintext<C> {
    /// Serialises the plaintext.
    pub fn to_bytes(&self, ctx: &Context) -> Vec<u8> {
        let n = self.n;
        let mut w = Writer::new(BlobKind::Plaintext, self.params_id);
        w.u32(self.level as u32);
        w.u64(self.scale.to_bits());
        for i in 0..=self.level {
            w.limb(&self.data.as_ref()[i * n..(i + 1) * n], width(ctx.prime(i).q));
        }
        w.finish()
    }
}

impl Plaintext {
    /// Loads a plaintext written by [`Plaintext::to_bytes`] under the same parameters.
    pub fn from_bytes(ctx: &Context, bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::open(bytes, BlobKind::Plaintext, ctx)?;
        let level = r.u32()? as usize;
        check_level(ctx, level)?;
        let scale = f64::from_bits(r.u64()?);
        check_scale(scale)?;
        r.expect_limbs(ctx, &format!("a plaintext at level {level}"), 1, 0..level + 1, 0)?;
        let n = ctx.n();
        let mut data = vec![0u64; (level + 1) * n];
        for i in 0..=level {
            r.limb(&mut data[i * n..(i + 1) * n], ctx.prime(i).q)?;
        }
        r.end()?;
        Ok(Plaintext { data, level, scale, n, params_id: ctx.params().id(), slots: None })
    }
}

impl SeededCiphertext {
    /// Serialises c_0 and the seed of c_1.
    pub fn to_bytes(&self, ctx: &Context) -> Vec<u8> {
        let n = ctx.n();
        let mut w = Writer::new(BlobKind::SeededCiphertext, self.params_id);
        w.u32(self.level as u32);
        w.u64(self.scale.to_bits());
        w.bytes(&self.seed);
        for i in 0..=self.level {
            w.limb(&self.c0[i * n..(i + 1) * n], width(ctx.prime(i).q));
        }
        w.finish()
    }

    /// Loads a seeded ciphertext.
    pub fn from_bytes(ctx: &Context, bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::open(bytes, BlobKind::SeededCiphertext, ctx)?;
        let level = r.u32()? as usize;
        check_level(ctx, level)?;
        let scale = f64::from_bits(r.u64()?);
        check_scale(scale)?;
        let what = format!("a seeded ciphertext at level {level}");
        r.expect_limbs(ctx, &what, 1, 0..level + 1, 32)?;
        let seed = r.seed()?;
        let n = ctx.n();
        let mut c0 = vec![0u64; (level + 1) * n];
        for i in 0..=level {
            r.limb(&mut c0[i * n..(i + 1) * n], ctx.prime(i).q)?;
        }
        r.end()?;
        Ok(Self { c0, seed, level, scale, params_id: ctx.params().id() })
    }
}

impl<C: AsRef<[u64]>> PublicKey<C> {
    /// Serialises b and the seed of a.
    pub fn to_bytes(&self, ctx: &Context) -> Vec<u8> {
        let n = ctx.n();
        let mut w = Writer::new(BlobKind::PublicKey, self.params_id);
        w.bytes(&self.seed);
        for i in 0..ctx.q_len() + ctx.p_len() {
            w.limb(&self.data.as_ref()[i * n..(i + 1) * n], width(ctx.prime(i).q));
        }
        w.finish()
    }
}

impl PublicKey {
    /// Loads a public key, expanding a from its seed.
    pub fn from_bytes(ctx: &Context, bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::open(bytes, BlobKind::PublicKey, ctx)?;
        let n = ctx.n();
        let l1 = ctx.q_len() + ctx.p_len();
        r.expect_limbs(ctx, "a public key", 1, 0..l1, 32)?;
        let seed = r.seed()?;
        let mut data = vec![0u64; 2 * l1 * n];
        for i in 0..l1 {
            r.limb(&mut data[i * n..(i + 1) * n], ctx.prime(i).q)?;
        }
        r.end()?;
        let idx: Vec<usize> = (0..l1).collect();
        uniform_from_seed(ctx, &seed, 0, &idx, &mut data[l1 * n..]);
        Ok(Self { data, seed, params_id: ctx.params().id() })
    }
}

impl<C: AsRef<[u64]>> RelinKey<C> {
    /// Serialises the b parts and the seed of the a parts.
    pub fn to_bytes(&self, ctx: &Context) -> Vec<u8> {
        let mut w = Writer::new(BlobKind::RelinKey, self.key.params_id);
        write_switch_key(&mut w, ctx, &self.key);
        w.finish()
    }
}

impl RelinKey {
    /// Loads a relinearisation key, expanding the a parts from the seed.
    pub fn from_bytes(ctx: &Context, bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::open(bytes, BlobKind::RelinKey, ctx)?;
        let key = read_switch_key(&mut r, ctx)?;
        r.end()?;
        Ok(Self { key })
    }
}

impl<C: AsRef<[u64]>> GaloisKey<C> {
    /// Serialises the Galois element, the b parts and the seed of the a parts.
    pub fn to_bytes(&self, ctx: &Context) -> Vec<u8> {
        let mut w = Writer::new(BlobKind::GaloisKey, self.key.params_id);
        w.u64(self.galois_element);
        write_switch_key(&mut w, ctx, &self.key);
        w.finish()
    }
}

impl GaloisKey {
    /// Loads a Galois key, expanding the a parts from the seed.
    pub fn from_bytes(ctx: &Context, bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::open(bytes, BlobKind::GaloisKey, ctx)?;
        let g = r.u64()?;
        if g.is_multiple_of(2) || g >= 2 * ctx.n() as u64 {
            return Err(Error::Corrupt { reason: format!("Galois element {g}") });
        }
        let key = read_switch_key(&mut r, ctx)?;
        r.end()?;
        Ok(Self { galois_element: g, key })
    }
}

#[cfg(test)]
#[path = "tests_serialize.rs"]
mod tests;
#[cfg(test)]
mod tests_digits;
#[cfg(test)]
mod tests_packed;
