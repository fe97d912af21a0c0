//! Versioned little-endian serialisation with a CRC-32C checksum. Residues are bit-packed to
//! the width of their prime; keys and symmetric ciphertexts store the seed of their `a` parts
//! instead of the parts themselves. The secret key has no serialisation at all.
//!
//! Layout: magic `HTCK` · version u16 · kind u8 · flags u8 (0) · params id u64 · body length
//! u64 · body · CRC-32C (u32) of everything before it.
//!
//! Versions: 2 expands seeds with ChaCha12 taking `width(q)` bits per candidate
//! ([`super::sampling::uniform_limb`]); 1 expanded them with ChaCha20, 64 bits per candidate.
//! A format-1 blob without a seed (ciphertext, plaintext) is the same bytes and still read; a
//! format-1 blob with one is refused with [`Error::RetiredSeedFormat`] (its seed would expand
//! into other `a` parts), and the key-set manifest regenerates such keys.

use super::ciphertext::{Ciphertext, Plaintext};
use super::context::Context;
use super::encryptor::SeededCiphertext;
use super::keys::{GaloisKey, PublicKey, RelinKey};

use super::sampling::uniform_from_seed;
use crate::error::{Error, Result};
use crate::math::bit_fields::{packed_len, unpack_fields};

mod digits;
mod switch_key;
pub use digits::{expand_pinned_digit, switch_key_digit_stored_len};
pub use switch_key::digits_read_at;
pub use switch_key::switch_key_stored_len;
use switch_key::{read_switch_key, write_switch_key};

const MAGIC: &[u8; 4] = b"HTCK";
/// Current format version.
pub const FORMAT_VERSION: u16 = 2;
/// The version before seeds were expanded with ChaCha12: still read for blobs without a seed.
const FORMAT_V1: u16 = 1;
const HEADER: usize = 4 + 2 + 1 + 1 + 8 + 8;

/// What a serialised blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobKind {
    /// A full ciphertext.
    Ciphertext = 1,
    /// A seed-compressed symmetric ciphertext.
    SeededCiphertext = 2,
    /// A seed-compressed public key.
    PublicKey = 3,
    /// A seed-compressed relinearisation key.
    RelinKey = 4,
    /// A seed-compressed Galois key.
    GaloisKey = 5,
    /// A plaintext.
    Plaintext = 6,
    /// A seed-compressed key-switching key of any use (relinearisation, Galois, the
    /// encapsulation keys): the form evaluation keys take in the store.
    SwitchKey = 7,
    /// One digit of a seed-compressed key-switching key ([`super::KeySwitchKey::write_digit_to`]):
    /// a key stored one object per digit, so that a low-level switch reads only its digits.
    SwitchKeyDigit = 8,
}

impl BlobKind {
    /// Whether the blob stores the seed of uniform `a` parts (and so depends on the PRG).
    fn has_seed(self) -> bool {
        !matches!(self, Self::Ciphertext | Self::Plaintext)
    }
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Ciphertext,
            2 => Self::SeededCiphertext,
            3 => Self::PublicKey,
            4 => Self::RelinKey,
            5 => Self::GaloisKey,
            6 => Self::Plaintext,
            7 => Self::SwitchKey,
            8 => Self::SwitchKeyDigit,
            _ => return None,
        })
    }
}

/// Where a [`Writer`] puts a blob: a growing `Vec`, or a caller's buffer of exactly the
/// blob's length ([`SliceSink`]: a store block), so that a large blob needs no heap copy.
trait Sink {
    fn extend(&mut self, bytes: &[u8]);
    fn push(&mut self, byte: u8);
    fn written_mut(&mut self) -> &mut [u8];
}

impl Sink for Vec<u8> {
    fn extend(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn push(&mut self, byte: u8) {
        Vec::push(self, byte);
    }
    fn written_mut(&mut self) -> &mut [u8] {
        self
    }
}

/// A caller's buffer, filled front to back. Writing past its end is a bug of the caller,
/// who checks the blob's exact length first, and panics.
struct SliceSink<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Sink for SliceSink<'_> {
    fn extend(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
    fn push(&mut self, byte: u8) {
        self.buf[self.len] = byte;
        self.len += 1;
    }
    fn written_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
}

struct Writer<S: Sink = Vec<u8>> {
    buf: S,
    bits: u128,
    nbits: u32,
}

impl Writer {
    fn new(kind: BlobKind, params_id: u64) -> Self {
        Self::into_sink(kind, params_id, Vec::new())
    }
    fn finish(self) -> Vec<u8> {
        self.finish_sink()
    }
}

impl<S: Sink> Writer<S> {
    fn into_sink(kind: BlobKind, params_id: u64, mut buf: S) -> Self {
        buf.extend(MAGIC);
        buf.extend(&FORMAT_VERSION.to_le_bytes());
        buf.extend(&[kind as u8, 0]);
        buf.extend(&params_id.to_le_bytes());
        buf.extend(&0u64.to_le_bytes());
        Self { buf, bits: 0, nbits: 0 }
    }
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.buf.extend(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.buf.extend(v);
    }
    /// Packs one limb of residues at `width` bits each (ends byte-aligned).
    fn limb(&mut self, words: &[u64], width: u32) {
        for &w in words {
            self.bits |= (w as u128) << self.nbits;
            self.nbits += width;
            while self.nbits >= 8 {
                self.buf.push(self.bits as u8);
                self.bits >>= 8;
                self.nbits -= 8;
            }
        }
        if self.nbits > 0 {
            self.buf.push(self.bits as u8);
            self.bits = 0;
            self.nbits = 0;
        }
    }
    /// Sets the body length, appends the checksum and hands the sink back.
    fn finish_sink(mut self) -> S {
        let written = self.buf.written_mut();
        let body = (written.len() - HEADER) as u64;
        written[16..24].copy_from_slice(&body.to_le_bytes());
        let crc = crc32c::crc32c(written);
        self.buf.extend(&crc.to_le_bytes());
        self.buf
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Unpacks `out.len()` residues of `width(q)` bits from `src` (little-endian bit order, as
/// [`Writer::limb`] packs them), rejecting residues not below `q`. The range check is on the
/// largest residue, which the unpacking returns, so the limb is not read twice.
fn unpack_limb(src: &[u8], out: &mut [u64], q: u64) -> Result<()> {
    if unpack_fields(src, width(q), out) >= q {
        let v = out.iter().copied().find(|&v| v >= q).unwrap_or(q);
        return Err(Error::Corrupt { reason: format!("residue {v} not below its prime {q}") });
    }
    Ok(())
}

/// Whether reading a blob checks its CRC-32C.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checksum {
    /// Every read of bytes from outside.
    Verify,
    /// Bytes whose integrity the caller has just verified: a pinned store object, which the
    /// pool checks against its own CRC-32C on every read. Everything else is still checked.
    AlreadyVerified,
}

impl<'a> Reader<'a> {
    /// Checks magic, version, kind, parameter id, length and checksum.
    fn open(bytes: &'a [u8], kind: BlobKind, ctx: &Context) -> Result<Self> {
        Self::open_with(bytes, kind, ctx, Checksum::Verify)
    }
    fn open_with(
        bytes: &'a [u8],
        kind: BlobKind,
        ctx: &Context,
        checksum: Checksum,
    ) -> Result<Self> {
        let (found_kind, params_id, body) = parse_header(bytes, checksum)?;
        if found_kind != kind {
            return Err(Error::BadHeader {
                reason: format!("expected {kind:?}, found {found_kind:?}"),
            });
        }
        ctx.check_id(params_id)?;
        Ok(Self { buf: body, pos: 0 })
    }
    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        if self.buf.len() - self.pos < len {
            return Err(Error::Corrupt {
                reason: format!(
                    "body ends at {} of {} bytes needed",
                    self.buf.len(),
                    self.pos + len
                ),
            });
        }
        let s = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    fn seed(&mut self) -> Result<[u8; 32]> {
        let mut s = [0u8; 32];
        s.copy_from_slice(self.take(32)?);
        Ok(s)
    }
    /// Unpacks one limb, rejecting residues not below `q`.
    fn limb(&mut self, out: &mut [u64], q: u64) -> Result<()> {
        let src = self.take(packed_len(out.len(), width(q)))?;
        unpack_limb(src, out, q)
    }
    /// Checks, before anything is allocated, that the rest of the body is exactly `copies`
    /// times one packed limb for each prime index in `primes` (plus `extra` bytes first): a
    /// header that claims more data than the blob holds is refused without allocating it.
    fn expect_limbs(
        &self,
        ctx: &Context,
        what: &str,
        copies: usize,
        primes: std::ops::Range<usize>,
        extra: usize,
    ) -> Result<()> {
        let n = ctx.n();
        let per_copy: usize = primes.map(|i| packed_len(n, width(ctx.prime(i).q))).sum();
        let needed = per_copy.saturating_mul(copies).saturating_add(extra);
        let left = self.buf.len() - self.pos;
        if left != needed {
            return Err(Error::Corrupt {
                reason: format!(
                    "{what} needs {needed} more body bytes, the blob has {left} (nothing \
                     allocated)"
                ),
            });
        }
        Ok(())
    }
    fn end(&self) -> Result<()> {
        if self.pos != self.buf.len() {
            return Err(Error::Corrupt {
                reason: format!("{} trailing bytes", self.buf.len() - self.pos),
            });
        }
        Ok(())
    }
}

fn parse_header(bytes: &[u8], checksum: Checksum) -> Result<(BlobKind, u64, &[u8])> {
    if bytes.len() < HEADER + 4 {
        return Err(Error::Truncated { needed: HEADER + 4, found: bytes.len() });
    }
    if &bytes[..4] != MAGIC {
        return Err(Error::BadHeader { reason: "bad magic".into() });
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != FORMAT_VERSION && version != FORMAT_V1 {
        return Err(Error::BadHeader {
            reason: format!("format version {version}, this build reads {FORMAT_VERSION}"),
        });
    }
    let kind = BlobKind::from_u8(bytes[6])
        .ok_or_else(|| Error::BadHeader { reason: format!("unknown kind {}", bytes[6]) })?;
    if version == FORMAT_V1 && kind.has_seed() {
        return Err(Error::RetiredSeedFormat { found: version, supported: FORMAT_VERSION });
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[8..16]);
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[16..24]);
    let body_len = u64::from_le_bytes(len);
    let needed = (HEADER as u64).saturating_add(body_len).saturating_add(4);
    if (bytes.len() as u64) < needed {
        return Err(Error::Truncated {
            needed: needed.min(usize::MAX as u64) as usize,
            found: bytes.len(),
        });
    }
    if bytes.len() as u64 > needed {
        return Err(Error::Corrupt {
            reason: format!("{} bytes after the checksum", bytes.len() as u64 - needed),
        });
    }
    let end = HEADER + body_len as usize;
    let mut c = [0u8; 4];
    c.copy_from_slice(&bytes[end..end + 4]);
    let stored = u32::from_le_bytes(c);
    if checksum == Checksum::Verify {
        let computed = crc32c::crc32c(&bytes[..end]);
        if stored != computed {
            return Err(Error::ChecksumMismatch { stored, computed });
        }
    }
    Ok((kind, u64::from_le_bytes(id), &bytes[HEADER..end]))
}

/// The kind of a blob, after checking its header and checksum.
pub fn blob_kind(bytes: &[u8]) -> Result<BlobKind> {
    parse_header(bytes, Checksum::Verify).map(|(k, _, _)| k)
}

fn width(q: u64) -> u32 {
    64 - q.leading_zeros()
}

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
