//! Switching keys stored one digit per blob ([`BlobKind::SwitchKeyDigit`]): a key switch at a
//! low level reads only its first digits (SlotToCoeff's, below EvalMod, two of `n16_deep`'s
//! four), so a store that keeps each digit as its own object reads only those.
//!
//! Body: dnum u32 · digit u32 · seed (32 bytes, the whole key's) · the digit's `b` parts over
//! Q·P, each residue bit-packed to its prime's width. The digit's `a` parts are the whole
//! key's (the same seed and PRG stream per digit and limb), so the digits of one key expand to
//! exactly the words [`KeySwitchKey::to_bytes`]'s blob expands to.

use super::blob::{blob_kind, width, BlobKind, SliceSink, Writer, HEADER};
use super::layout::{check_same_seed, digit_starts, highest_level_reading, open_digit};
use super::switch_key::fill_digits;
use crate::ckks::context::Context;
use crate::ckks::keys::{switch_key_expanded_words, KeySwitchKey};
use crate::ckks::Seed;
use crate::error::{Error, Result};

/// Bytes of one digit blob of a switching key under `ctx`
/// ([`KeySwitchKey::write_digit_to`]): a quarter of [`super::switch_key_stored_len`]'s body
/// at dnum 4, plus a header of its own.
pub fn switch_key_digit_stored_len(ctx: &Context) -> u64 {
    let qp = ctx.q_len() + ctx.p_len();
    (HEADER + 4 + 4 + 32 + digit_starts(ctx)[qp] + 4) as u64
}

impl<C: AsRef<[u64]>> KeySwitchKey<C> {
    /// Writes digit `digit` of the key, seed-compressed, into `out`, exactly
    /// [`switch_key_digit_stored_len`] long (a store block). Like [`Self::write_to`], refuses a
    /// key expanded only for a lower level.
    pub fn write_digit_to(&self, ctx: &Context, digit: usize, out: &mut [u8]) -> Result<()> {
        ctx.check_id(self.params_id)?;
        self.check_level(ctx.params().max_level())?;
        if digit >= self.dnum {
            return Err(Error::Corrupt {
                reason: format!("digit {digit} of a key of {} digits", self.dnum),
            });
        }
        let expected = switch_key_digit_stored_len(ctx) as usize;
        if out.len() != expected {
            return Err(Error::BlobBufferLength { expected, found: out.len() });
        }
        let n = ctx.n();
        let qp = ctx.q_len() + ctx.p_len();
        let sink = SliceSink { buf: out, len: 0 };
        let mut w = Writer::into_sink(BlobKind::SwitchKeyDigit, self.params_id, sink);
        w.u32(self.dnum as u32);
        w.u32(digit as u32);
        w.bytes(&self.seed);
        for i in 0..qp {
            w.limb(self.limb(digit, 0, i, n, qp), width(ctx.prime(i).q));
        }
        let sink = w.finish_sink();
        debug_assert_eq!(sink.len, expected);
        Ok(())
    }

    /// [`Self::write_digit_to`] into a new buffer.
    pub fn digit_to_bytes(&self, ctx: &Context, digit: usize) -> Result<Vec<u8>> {
        let mut out = vec![0u8; switch_key_digit_stored_len(ctx) as usize];
        self.write_digit_to(ctx, digit, &mut out)?;
        Ok(out)
    }
}

impl<C: AsRef<[u64]> + AsMut<[u64]>> KeySwitchKey<C> {
    /// Expands a key from its digit blobs, `parts[j]` being digit j (checksums verified), into
    /// `data`, a caller-owned buffer of exactly [`switch_key_expanded_words`] words. With fewer
    /// parts than digits, the key serves switches only at levels that read no further
    /// ([`KeySwitchKey::max_level`]); a level that reads more is [`Error::KeyLevel`].
    pub fn expand_digits_into(ctx: &Context, parts: &[&[u8]], mut data: C) -> Result<Self> {
        let none = || Error::Corrupt { reason: "no digit blob".into() };
        let level = highest_level_reading(ctx, parts.len()).ok_or_else(none)?;
        let mut seed = None;
        for (j, bytes) in parts.iter().enumerate() {
            // Bytes from outside: their checksum first (a store's pin has checked its own).
            blob_kind(bytes)?;
            let s = expand_pinned_digit(ctx, bytes, data.as_mut(), j, true, level)?;
            check_same_seed(&mut seed, s)?;
        }
        let seed = seed.ok_or_else(none)?;
        Self::from_raw_for_level(data, seed, ctx, level)
    }
}

/// Expands digit `digit` of a switching key from `bytes`, its digit blob as a checksummed store
/// pinned it (its own CRC is not computed again), into `data` ([`switch_key_expanded_words`]
/// words), only where a switch at `level` reads; returns the key's seed. Magic, version, kind,
/// parameter id, digit count, digit index, length and every residue are checked.
pub fn expand_pinned_digit(
    ctx: &Context,
    bytes: &[u8],
    data: &mut [u64],
    digit: usize,
    parallel: bool,
    level: usize,
) -> Result<Seed> {
    let expected = switch_key_expanded_words(ctx);
    if data.len() != expected {
        return Err(Error::BufferLength { expected, found: data.len() });
    }
    let p = ctx.params();
    if level > p.max_level() {
        return Err(Error::InvalidLevel { level, max: p.max_level() });
    }
    let (seed, at) = open_digit(ctx, bytes, digit)?;
    let body = &bytes[at..at + digit_starts(ctx)[ctx.q_len() + ctx.p_len()]];
    fill_digits(ctx, &seed, body, digit..digit + 1, data, parallel, level)?;
    Ok(seed)
}
