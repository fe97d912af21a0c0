//! Where a seed-compressed switching key's packed limbs lie, and how many of its digits a
//! switch at a given level reads: shared by the blobs that write and expand keys and by the
//! layout a key read in place is located with.

use super::blob::width;
use crate::ckks::context::Context;
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
