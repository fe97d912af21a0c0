//! Seed-compressed key-switching keys ([`BlobKind::SwitchKey`], and inside relinearisation
//! and Galois key blobs): the `b` parts of every digit bit-packed, the seed of the `a` parts,
//! and the expansion back into the key's words, whole or only where a switch at a given level
//! reads.

use rayon::prelude::*;

use super::blob::{
    unpack_limb, width, BlobKind, Checksum, Reader, Sink, SliceSink, Writer, HEADER,
};
use super::layout::{digit_starts, digits_read_at};
use crate::ckks::context::Context;
use crate::ckks::keys::{switch_key_expanded_words, KeySwitchKey};
use crate::ckks::sampling::uniform_limb;
use crate::error::{Error, Result};
use crate::math::bit_fields::packed_len;

pub(super) fn write_switch_key<C: AsRef<[u64]>, S: Sink>(
    w: &mut Writer<S>,
    ctx: &Context,
    key: &KeySwitchKey<C>,
) {
    let n = ctx.n();
    let qp = ctx.q_len() + ctx.p_len();
    w.u32(key.dnum as u32);
    w.bytes(&key.seed);
    for j in 0..key.dnum {
        for i in 0..qp {
            w.limb(key.limb(j, 0, i, n, qp), width(ctx.prime(i).q));
        }
    }
}

pub(super) fn read_switch_key(r: &mut Reader<'_>, ctx: &Context) -> Result<KeySwitchKey> {
    let n = ctx.n();
    let qp = ctx.q_len() + ctx.p_len();
    let dnum = ctx.params().dnum();
    // The length is checked before the buffer is allocated.
    r.expect_switch_key(ctx)?;
    let mut data = vec![0u64; dnum * 2 * qp * n];
    let top = ctx.params().max_level();
    let seed = read_switch_key_into(r, ctx, &mut data, true, top)?;
    Ok(KeySwitchKey { data, seed, dnum, params_id: ctx.params().id(), max_level: top })
}

/// Reads a switching key's b parts into `data` (the expanded layout, length checked by the
/// caller) and regenerates its a parts from the seed; returns the seed. Every limb is its own
/// job (a `b` limb unpacked from its byte range, an `a` limb from its own PRG stream), run
/// over rayon's pool when `parallel`, else on the calling thread.
fn read_switch_key_into(
    r: &mut Reader<'_>,
    ctx: &Context,
    data: &mut [u64],
    parallel: bool,
    level: usize,
) -> Result<[u8; 32]> {
    let qp = ctx.q_len() + ctx.p_len();
    r.expect_switch_key(ctx)?;
    let dnum = r.u32()? as usize;
    let seed = r.seed()?;
    let starts = digit_starts(ctx);
    let body = r.take(dnum * starts[qp])?;
    fill_digits(ctx, &seed, body, 0..dnum, data, parallel, level)?;
    Ok(seed)
}

/// Expands `digits` of a switching key into `data` (the expanded layout): their `b` parts
/// unpacked from `body` (those digits' packed limbs, one after the other) and their `a` parts
/// regenerated from `seed`, each only where a switch at `level` reads. Every limb is its own
/// job (a `b` limb unpacked from its byte range, an `a` limb from its own PRG stream), run over
/// rayon's pool when `parallel`, else on the calling thread.
pub(super) fn fill_digits(
    ctx: &Context,
    seed: &[u8; 32],
    body: &[u8],
    digits: std::ops::Range<usize>,
    data: &mut [u64],
    parallel: bool,
    level: usize,
) -> Result<()> {
    let n = ctx.n();
    let (q_len, qp) = (ctx.q_len(), ctx.q_len() + ctx.p_len());
    let starts = digit_starts(ctx);
    let digit_bytes = starts[qp];
    // A switch at `level` reads the first digits_read_at(level) digits over Q_level·P only
    // (keyswitch::inner_product, hoisting::rotate_extended): SlotToCoeff's keys, below
    // EvalMod, need under a third of the limbs.
    let whole = level >= ctx.params().max_level();
    let read_digits = digits_read_at(ctx, level);
    let read = |i: usize| whole || i <= level || i >= q_len;
    let first = digits.start;
    let job = |(k, limb): (usize, &mut [u64])| -> Result<()> {
        let (j, i) = (first + k / (2 * qp), k % (2 * qp));
        if j >= read_digits || !read(i % qp) {
            return Ok(());
        }
        if i < qp {
            let at = (j - first) * digit_bytes;
            unpack_limb(&body[at + starts[i]..at + starts[i + 1]], limb, ctx.prime(i).q)
        } else {
            uniform_limb(seed, j as u64, i - qp, ctx.prime(i - qp).q, limb);
            Ok(())
        }
    };
    let limbs = &mut data[first * 2 * qp * n..digits.end * 2 * qp * n];
    if parallel {
        limbs.par_chunks_mut(n).enumerate().try_for_each(job)?;
    } else {
        limbs.chunks_mut(n).enumerate().try_for_each(job)?;
    }
    Ok(())
}

/// Bytes of one seed-compressed switching key ([`KeySwitchKey::to_bytes`]) under `ctx`: the
/// b parts bit-packed to their primes' widths, the seed, the header and checksum.
pub fn switch_key_stored_len(ctx: &Context) -> u64 {
    let n = ctx.n();
    let qp = ctx.q_len() + ctx.p_len();
    let per_digit: usize = (0..qp).map(|i| packed_len(n, width(ctx.prime(i).q))).sum();
    (HEADER + 4 + 32 + ctx.params().dnum() * per_digit + 4) as u64
}

impl<C: AsRef<[u64]>> KeySwitchKey<C> {
    /// Serialises the b parts and the seed of the a parts (about half the expanded words, each
    /// residue bit-packed to its prime's width): the form a key takes in the store. A key
    /// expanded only for a lower level ([`KeySwitchKey::max_level`]) has stale words where
    /// that level reads nothing, and would write them: [`Self::write_to`] refuses it.
    pub fn to_bytes(&self, ctx: &Context) -> Vec<u8> {
        let mut w = Writer::new(BlobKind::SwitchKey, self.params_id);
        write_switch_key(&mut w, ctx, self);
        w.finish()
    }

    /// Writes [`Self::to_bytes`]'s bytes into `out`, exactly [`switch_key_stored_len`] long
    /// (a store block, say): a key is stored without a heap copy of its blob (55 MiB at
    /// log N = 16).
    pub fn write_to(&self, ctx: &Context, out: &mut [u8]) -> Result<()> {
        ctx.check_id(self.params_id)?;
        // A key expanded for a lower level holds stale words where that level reads nothing.
        self.check_level(ctx.params().max_level())?;
        let expected = switch_key_stored_len(ctx) as usize;
        if out.len() != expected {
            return Err(Error::BlobBufferLength { expected, found: out.len() });
        }
        let sink = SliceSink { buf: out, len: 0 };
        let mut w = Writer::into_sink(BlobKind::SwitchKey, self.params_id, sink);
        write_switch_key(&mut w, ctx, self);
        let sink = w.finish_sink();
        debug_assert_eq!(sink.len, expected);
        Ok(())
    }
}

impl KeySwitchKey {
    /// Loads a seed-compressed switching key, expanding its a parts into a new buffer.
    pub fn from_bytes(ctx: &Context, bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::open(bytes, BlobKind::SwitchKey, ctx)?;
        let key = read_switch_key(&mut r, ctx)?;
        r.end()?;
        Ok(key)
    }
}

impl<C: AsRef<[u64]> + AsMut<[u64]>> KeySwitchKey<C> {
    /// Expands a seed-compressed switching key ([`KeySwitchKey::to_bytes`]) into `data`, a
    /// caller-owned buffer of exactly [`switch_key_expanded_words`] words (for instance a
    /// DRAM block charged to the store's budget), every word overwritten.
    pub fn expand_into(ctx: &Context, bytes: &[u8], data: C) -> Result<Self> {
        let top = ctx.params().max_level();
        Self::expand_into_with(ctx, bytes, data, true, Checksum::Verify, top)
    }

    /// As [`KeySwitchKey::expand_into`], on the calling thread only (no rayon job): for a
    /// helper thread expanding keys ahead of their use beside a computation that keeps rayon's
    /// pool busy.
    pub fn expand_into_serial(ctx: &Context, bytes: &[u8], data: C) -> Result<Self> {
        let top = ctx.params().max_level();
        Self::expand_into_with(ctx, bytes, data, false, Checksum::Verify, top)
    }

    /// As [`KeySwitchKey::expand_into`] (on rayon's pool when `parallel`), for bytes whose
    /// integrity the caller has just verified: a pinned object of a checksummed store (the
    /// tiered store's pool checks its own CRC-32C as it reads an object), so the blob's own is
    /// not computed again (5.5 ms of a ~40 ms expansion at log N = 16, at every pin). Magic,
    /// version, kind, parameter id, lengths and every residue are still checked.
    pub fn expand_pinned_into(
        ctx: &Context,
        bytes: &[u8],
        data: C,
        parallel: bool,
    ) -> Result<Self> {
        Self::expand_pinned_for_level(ctx, bytes, data, parallel, ctx.params().max_level())
    }

    /// As [`KeySwitchKey::expand_pinned_into`], writing only the words a key switch at `level`
    /// or below reads: the first `digits_at(level)` digits over Q_level·P (every word from the
    /// top level on). The rest of `data` is left as it was; the key refuses a switch above
    /// `level` ([`Error::KeyLevel`]) and cannot be written out.
    pub(crate) fn expand_pinned_for_level(
        ctx: &Context,
        bytes: &[u8],
        data: C,
        parallel: bool,
        level: usize,
    ) -> Result<Self> {
        Self::expand_into_with(ctx, bytes, data, parallel, Checksum::AlreadyVerified, level)
    }

    fn expand_into_with(
        ctx: &Context,
        bytes: &[u8],
        mut data: C,
        parallel: bool,
        checksum: Checksum,
        level: usize,
    ) -> Result<Self> {
        let expected = switch_key_expanded_words(ctx);
        if data.as_mut().len() != expected {
            return Err(Error::BufferLength { expected, found: data.as_mut().len() });
        }
        let p = ctx.params();
        if level > p.max_level() {
            return Err(Error::InvalidLevel { level, max: p.max_level() });
        }
        let mut r = Reader::open_with(bytes, BlobKind::SwitchKey, ctx, checksum)?;
        let seed = read_switch_key_into(&mut r, ctx, data.as_mut(), parallel, level)?;
        r.end()?;
        Ok(Self { data, seed, dnum: p.dnum(), params_id: p.id(), max_level: level })
    }
}
