//! The blob format every serialised object shares: header, bit-packed limbs, checksum, and the
//! writer and reader of it (see the parent module for the layout and the versions).

use super::super::context::Context;
use crate::error::{Error, Result};
use crate::math::bit_fields::{packed_len, unpack_fields};

pub(super) const MAGIC: &[u8; 4] = b"HTCK";
/// Current format version.
pub const FORMAT_VERSION: u16 = 4;
/// Versions whose seeds expand into other residues (1: ChaCha20, 2: ChaCha12, 3: AES-256 with
/// candidates only below q): still read for blobs without a seed, the same bytes.
pub(super) const RETIRED_SEED_VERSIONS: [u16; 3] = [1, 2, 3];
pub(super) const HEADER: usize = 4 + 2 + 1 + 1 + 8 + 8;

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
    /// One digit of a seed-compressed key-switching key ([`crate::ckks::KeySwitchKey::write_digit_to`]):
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
pub(super) trait Sink {
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
pub(super) struct SliceSink<'a> {
    pub(super) buf: &'a mut [u8],
    pub(super) len: usize,
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

pub(super) struct Writer<S: Sink = Vec<u8>> {
    buf: S,
    bits: u128,
    nbits: u32,
}

impl Writer {
    pub(super) fn new(kind: BlobKind, params_id: u64) -> Self {
        Self::into_sink(kind, params_id, Vec::new())
    }
    pub(super) fn finish(self) -> Vec<u8> {
        self.finish_sink()
    }
}

impl<S: Sink> Writer<S> {
    pub(super) fn into_sink(kind: BlobKind, params_id: u64, mut buf: S) -> Self {
        buf.extend(MAGIC);
        buf.extend(&FORMAT_VERSION.to_le_bytes());
        buf.extend(&[kind as u8, 0]);
        buf.extend(&params_id.to_le_bytes());
        buf.extend(&0u64.to_le_bytes());
        Self { buf, bits: 0, nbits: 0 }
    }
    pub(super) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(super) fn u32(&mut self, v: u32) {
        self.buf.extend(&v.to_le_bytes());
    }
    pub(super) fn u64(&mut self, v: u64) {
        self.buf.extend(&v.to_le_bytes());
    }
    pub(super) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend(v);
    }
    /// Packs one limb of residues at `width` bits each (ends byte-aligned).
    pub(super) fn limb(&mut self, words: &[u64], width: u32) {
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
    pub(super) fn finish_sink(mut self) -> S {
        let written = self.buf.written_mut();
        let body = (written.len() - HEADER) as u64;
        written[16..24].copy_from_slice(&body.to_le_bytes());
        let crc = crc32c::crc32c(written);
        self.buf.extend(&crc.to_le_bytes());
        self.buf
    }
}

pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

/// Unpacks `out.len()` residues of `width(q)` bits from `src` (little-endian bit order, as
/// [`Writer::limb`] packs them), rejecting residues not below `q`. The range check is on the
/// largest residue, which the unpacking returns, so the limb is not read twice.
pub(super) fn unpack_limb(src: &[u8], out: &mut [u64], q: u64) -> Result<()> {
    if unpack_fields(src, width(q), out) >= q {
        let v = out.iter().copied().find(|&v| v >= q).unwrap_or(q);
        return Err(Error::Corrupt { reason: format!("residue {v} not below its prime {q}") });
    }
    Ok(())
}

/// Whether reading a blob checks its CRC-32C.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Checksum {
    /// Every read of bytes from outside.
    Verify,
    /// Bytes whose integrity the caller has just verified: a pinned store object, which the
    /// pool checks against its own CRC-32C on every read. Everything else is still checked.
    AlreadyVerified,
}

impl<'a> Reader<'a> {
    /// Checks magic, version, kind, parameter id, length and checksum.
    pub(super) fn open(bytes: &'a [u8], kind: BlobKind, ctx: &Context) -> Result<Self> {
        Self::open_with(bytes, kind, ctx, Checksum::Verify)
    }
    pub(super) fn open_with(
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
    pub(super) fn take(&mut self, len: usize) -> Result<&'a [u8]> {
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
    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }
    pub(super) fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    pub(super) fn seed(&mut self) -> Result<[u8; 32]> {
        let mut s = [0u8; 32];
        s.copy_from_slice(self.take(32)?);
        Ok(s)
    }
    /// Unpacks one limb, rejecting residues not below `q`.
    pub(super) fn limb(&mut self, out: &mut [u64], q: u64) -> Result<()> {
        let src = self.take(packed_len(out.len(), width(q)))?;
        unpack_limb(src, out, q)
    }
    /// Checks, before anything is allocated, that the rest of the body is exactly `copies`
    /// times one packed limb for each prime index in `primes` (plus `extra` bytes first): a
    /// header that claims more data than the blob holds is refused without allocating it.
    pub(super) fn expect_limbs(
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
    pub(super) fn end(&self) -> Result<()> {
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
    if version != FORMAT_VERSION && !RETIRED_SEED_VERSIONS.contains(&version) {
        return Err(Error::BadHeader {
            reason: format!("format version {version}, this build reads {FORMAT_VERSION}"),
        });
    }
    let kind = BlobKind::from_u8(bytes[6])
        .ok_or_else(|| Error::BadHeader { reason: format!("unknown kind {}", bytes[6]) })?;
    if version != FORMAT_VERSION && kind.has_seed() {
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

/// The kind of a blob whose checksum the caller has verified (a pinned store object): the
/// rest of its header is still checked.
pub(super) fn kind_unchecked(bytes: &[u8]) -> Result<BlobKind> {
    parse_header(bytes, Checksum::AlreadyVerified).map(|(k, _, _)| k)
}

/// Bits of a residue of `q`: what each is packed to.
pub(super) fn width(q: u64) -> u32 {
    64 - q.leading_zeros()
}
