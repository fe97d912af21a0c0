//! A seed-compressed switching key read in place, without expanding it: where its digits' packed
//! `b` limbs are in the blobs a store pinned (one whole-key blob, [`BlobKind::SwitchKey`], or one
//! blob per digit, [`BlobKind::SwitchKeyDigit`]), and how a key switch makes any piece of any of
//! its limbs just before it reads it (a `b` piece unpacked, an `a` piece from the seed's stream).
//!
//! Why: expanding a key writes its 140 MiB of words (log N = 16, `n16_deep`) to DRAM, and the
//! key switch then reads them back; read in place, a key switch reads the 55 MiB the store
//! holds and makes each piece in cache.

use super::blob::{unpack_limb, width, BlobKind, Checksum, Reader, HEADER};
use super::layout::{
    check_same_seed, digit_starts, digits_read_at, highest_level_reading, open_digit,
};
use crate::ckks::context::Context;
use crate::ckks::Seed;
use crate::error::{Error, Result};
use crate::math::bit_fields::packed_len;

/// Where each digit of a seed-compressed switching key is in its pinned blobs, checked once
/// when the blobs are pinned ([`PackedKeyLayout::parse`]); the residues themselves are checked
/// as they are unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedKeyLayout {
    seed: Seed,
    /// For each digit a switch up to `max_level` reads: (index of its blob, byte offset of its
    /// packed `b` limbs within that blob).
    digits: Vec<(usize, usize)>,
    /// Byte offset of each prime's packed limb within one digit's `b` parts, and their end.
    starts: Vec<usize>,
    max_level: usize,
    params_id: u64,
}

impl PackedKeyLayout {
    /// The layout of a key in `blobs` as a checksummed store pinned them (their CRC-32C is
    /// not computed again): either one whole-key blob ([`crate::ckks::KeySwitchKey::to_bytes`])
    /// or digit blobs 0, 1, … in order ([`crate::ckks::KeySwitchKey::write_digit_to`]), at
    /// least as many as a switch at `level` reads. The key then serves switches up to `level`.
    /// Magic, version, kind, parameter id, digit count and indices, seeds and lengths are
    /// checked here.
    pub fn parse(ctx: &Context, blobs: &[&[u8]], level: usize) -> Result<Self> {
        let p = ctx.params();
        if level > p.max_level() {
            return Err(Error::InvalidLevel { level, max: p.max_level() });
        }
        let qp = ctx.q_len() + ctx.p_len();
        let starts = digit_starts(ctx);
        let digit_bytes = starts[qp];
        let read = digits_read_at(ctx, level);
        let first = blobs.first().ok_or_else(|| Error::Corrupt { reason: "no key blob".into() })?;
        let whole = match super::blob::kind_unchecked(first)? {
            BlobKind::SwitchKey => true,
            BlobKind::SwitchKeyDigit => false,
            other => {
                return Err(Error::BadHeader {
                    reason: format!("expected a switching key or its digits, found {other:?}"),
                })
            }
        };
        let (seed, digits) = if whole {
            if blobs.len() != 1 {
                return Err(Error::Corrupt {
                    reason: format!("{} blobs of a key stored whole", blobs.len()),
                });
            }
            let checksum = Checksum::AlreadyVerified;
            let mut r = Reader::open_with(first, BlobKind::SwitchKey, ctx, checksum)?;
            r.expect_switch_key(ctx)?;
            r.u32()?;
            let seed = r.seed()?;
            let body = HEADER + r.pos;
            r.take(p.dnum() * digit_bytes)?;
            r.end()?;
            (seed, (0..read).map(|j| (0, body + j * digit_bytes)).collect())
        } else {
            if blobs.len() < read {
                let key_level = highest_level_reading(ctx, blobs.len()).unwrap_or(0);
                return Err(Error::KeyLevel { key_level, level });
            }
            let mut seed = None;
            let mut digits = Vec::with_capacity(read);
            for (j, bytes) in blobs.iter().enumerate().take(read) {
                let (s, at) = open_digit(ctx, bytes, j)?;
                check_same_seed(&mut seed, s)?;
                digits.push((j, at));
            }
            (seed.ok_or_else(|| Error::Corrupt { reason: "no digit blob".into() })?, digits)
        };
        Ok(Self { seed, digits, starts, max_level: level, params_id: p.id() })
    }

    /// The seed of the key's `a` parts.
    pub fn seed(&self) -> &Seed {
        &self.seed
    }

    /// The highest level whose switches the layout serves.
    pub fn max_level(&self) -> usize {
        self.max_level
    }

    /// Digits the layout locates: those a switch at [`Self::max_level`] reads.
    pub(crate) fn digit_count(&self) -> usize {
        self.digits.len()
    }

    /// The id of the parameters the blobs were written under.
    pub(crate) fn params_id(&self) -> u64 {
        self.params_id
    }

    /// Words `from..from + out.len()` of the `b` limb of digit `j` at global prime `gi`,
    /// unpacked from `blobs` (those [`Self::parse`] read); `from` is a multiple of 8, so the
    /// piece starts on a byte. A residue not below its prime is [`Error::Corrupt`].
    pub(crate) fn b_piece(
        &self,
        ctx: &Context,
        blobs: &[&[u8]],
        j: usize,
        gi: usize,
        from: usize,
        out: &mut [u64],
    ) -> Result<()> {
        let bytes = self.b_bytes(ctx, blobs, j, gi, from, out.len())?;
        unpack_limb(bytes, out, ctx.prime(gi).q)
    }

    /// The packed bytes of words `from..from + len` of the `b` limb of digit `j` at global
    /// prime `gi` ([`Self::b_piece`] unpacks them); `from` is a multiple of 8.
    pub(crate) fn b_bytes<'b>(
        &self,
        ctx: &Context,
        blobs: &[&'b [u8]],
        j: usize,
        gi: usize,
        from: usize,
        len: usize,
    ) -> Result<&'b [u8]> {
        debug_assert!(from.is_multiple_of(8));
        let w = width(ctx.prime(gi).q);
        let (blob, at) = self.digits[j];
        let start = at + self.starts[gi] + from / 8 * w as usize;
        let bytes = blobs.get(blob).and_then(|b| b.get(start..start + packed_len(len, w)));
        bytes.ok_or_else(|| Error::Corrupt {
            reason: format!("blob {blob} is shorter than the layout it was parsed with"),
        })
    }
}
