//! Where a seed-compressed switching key's packed limbs lie, how many of its digits a switch
//! at a given level reads, and the checks of its blobs' headers: shared by the blobs that
//! write and expand keys and by the layout a key read in place is located with.

use super::blob::{width, BlobKind, Checksum, Reader, HEADER};
use crate::ckks::context::Context;
use crate::ckks::Seed;
use crate::error::{Error, Result};
use crate::math::bit_fields::packed_len;

/// Where each prime's packed limb starts within one digit of a switching key's `b` parts
/// (over Q·P), and at the end the digit's length.
pub(super) fn digit_starts(ctx: &Context) -> Vec<usize> {
    let n = ctx.n();
    let qp = ctx.q_len() + ctx.p_len();
    let mut starts = Vec::with_capacity(qp + 1);
    starts.push(0usize);
    for i in 0..qp {
        starts.push(starts[i] + packed_len(n, width(ctx.prime(i).q)));
    }
    starts
}

/// The highest level whose switches read no more than the first `digits` digits of a key
/// (`None` when even the lowest reads more).
pub(super) fn highest_level_reading(ctx: &Context, digits: usize) -> Option<usize> {
    (0..=ctx.params().max_level()).rev().find(|&l| digits_read_at(ctx, l) <= digits)
}

/// How many digits of a switching key a switch at `level` reads: all of them from the top
/// level on.
pub fn digits_read_at(ctx: &Context, level: usize) -> usize {
    let p = ctx.params();
    if level >= p.max_level() {
        p.dnum()
    } else {
        p.digits_at(level).min(p.dnum())
    }
}

impl Reader<'_> {
    /// Checks the digit count and that the rest of the body is one switching key's b parts.
    pub(super) fn expect_switch_key(&mut self, ctx: &Context) -> Result<()> {
        let qp = ctx.q_len() + ctx.p_len();
        let start = self.pos;
        let dnum = self.u32()? as usize;
        if dnum != ctx.params().dnum() {
            return Err(Error::Corrupt {
                reason: format!("dnum {dnum}, parameters have {}", ctx.params().dnum()),
            });
        }
        self.expect_limbs(ctx, &format!("a switching key of {dnum} digits"), dnum, 0..qp, 32)?;
        self.pos = start;
        Ok(())
    }
}

/// Checks digit `digit`'s blob as a checksummed store pinned it (its CRC is not computed
/// again): magic, version, kind, parameter id, digit count, index and length. Returns the
/// key's seed and where the digit's packed `b` limbs start in `bytes`.
pub(super) fn open_digit(ctx: &Context, bytes: &[u8], digit: usize) -> Result<(Seed, usize)> {
    let (p, qp) = (ctx.params(), ctx.q_len() + ctx.p_len());
    let checksum = Checksum::AlreadyVerified;
    let mut r = Reader::open_with(bytes, BlobKind::SwitchKeyDigit, ctx, checksum)?;
    let dnum = r.u32()? as usize;
    let found = r.u32()? as usize;
    if dnum != p.dnum() || found != digit {
        return Err(Error::Corrupt {
            reason: format!(
                "digit {found} of {dnum}, expected digit {digit} of {} (parameters' dnum)",
                p.dnum()
            ),
        });
    }
    r.expect_limbs(ctx, "one digit of a switching key", 1, 0..qp, 32)?;
    let seed = r.seed()?;
    let at = HEADER + r.pos;
    r.take(digit_starts(ctx)[qp])?;
    r.end()?;
    Ok((seed, at))
}

/// Records the first part's seed, and fails when a later part holds another: parts of two
/// different keys.
pub(super) fn check_same_seed(seed: &mut Option<Seed>, found: Seed) -> Result<()> {
    match seed {
        Some(s) if *s != found => {
            Err(Error::Corrupt { reason: "digit blobs of different keys (seeds differ)".into() })
        }
        _ => {
            *seed = Some(found);
            Ok(())
        }
    }
}
