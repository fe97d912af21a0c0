//! The spare buffers of [`Bootstrapper::spare_words`]: the bootstrap's order of lends and
//! give-backs written down as [`Trace`]s (its shape, no arithmetic), with EvalMod's halves one
//! after the other and side by side, and the buffers that serve them
//! ([`Trace::buffers`]).

use super::chebyshev;
use super::spares::{Handle, Trace};
use super::Bootstrapper;

impl Bootstrapper {
    /// The spare lengths of [`Bootstrapper::spare_words`] and
    /// [`Bootstrapper::partner_spare_words`] (None: EvalMod runs out of levels).
    pub(super) fn spare_buffers(&self) -> Option<(Vec<usize>, Vec<usize>)> {
        let (one_after_other, _) = self.trace(false)?;
        if self.sparse() {
            return Some((Trace::buffers(&[&one_after_other]), Vec::new()));
        }
        let (side_by_side, im) = self.trace(true)?;
        let own = Trace::buffers(&[&one_after_other, &side_by_side]);
        // The second half runs in the partner from the buffer the first scratch lent its input
        // in, and its result goes back in one as long.
        let (im, level) = im?;
        let mut partner = Trace::default();
        let t = partner.foreign(side_by_side.room_of(&own, im));
        self.trace_eval_mod(t, level, &mut partner)?;
        Some((own, Trace::buffers(&[&partner])))
    }

    /// The lends and give-backs of one bootstrap in its own scratch, in order, EvalMod's two
    /// halves one after the other or `side_by_side` (the second in a partner scratch, lent its
    /// input and handing its result back in the same buffer): the trace, and for full slots the
    /// imaginary half's handle and level.
    fn trace(&self, side_by_side: bool) -> Option<(Trace, Option<(Handle, usize)>)> {
        let ctx = &*self.ctx;
        let n = ctx.n();
        let top = ctx.params().max_level();
        let mut tr = Trace::default();
        let mut x = tr.take(2 * n);
        if self.config.sparse_secret.is_some() {
            let y = tr.take(2 * n);
            tr.give(x);
            x = y;
        }
        let y = tr.take(2 * (top + 1) * n);
        tr.give(x);
        x = y;
        if self.config.sparse_secret.is_some() {
            // The switch back to the dense secret, then its result settled.
            for _ in 0..2 {
                let y = tr.take(2 * (top + 1) * n);
                tr.give(x);
                x = y;
            }
        }
        let mut level = top;
        for _ in &self.trace_steps {
            let r = tr.take(2 * (level + 1) * n);
            tr.give(r);
        }
        // Each transform's result settled (Bootstrapper::settle): lent again, the old given back.
        let settle = |tr: &mut Trace, x: Handle, level: usize| {
            let y = tr.take(2 * (level + 1) * n);
            tr.give(x);
            y
        };
        for t in &self.cts {
            let y = t.trace(ctx, level, &mut tr);
            tr.give(x);
            level = level.checked_sub(1)?;
            x = settle(&mut tr, y, level);
        }
        let conj = tr.take(2 * (level + 1) * n);
        let mut im_half = None;
        if self.sparse() {
            tr.give(conj);
            (x, level) = self.trace_eval_mod(x, level, &mut tr)?;
        } else {
            let re = tr.take(2 * (level + 1) * n);
            tr.give(x);
            im_half = Some((conj, level));
            let (re, out) = self.trace_eval_mod(re, level, &mut tr)?;
            x = if side_by_side { conj } else { self.trace_eval_mod(conj, level, &mut tr)?.0 };
            tr.give(re);
            level = out;
        }
        for (i, t) in self.stc.iter().enumerate() {
            let y = t.trace(ctx, level, &mut tr);
            tr.give(x);
            level = level.checked_sub(1)?;
            x = if i + 1 < self.stc.len() { settle(&mut tr, y, level) } else { y };
        }
        tr.give(x);
        Some((tr, im_half))
    }

    /// [`Trace`] of one EvalMod of `t` at `level`: the result's handle and level.
    fn trace_eval_mod(&self, t: Handle, level: usize, tr: &mut Trace) -> Option<(Handle, usize)> {
        let n = self.ctx.n();
        let max_degree = self.cosine.len().checked_sub(1)?;
        let (mut c, mut l) = chebyshev::trace(&self.cosine, max_degree, t, level, n, tr)?;
        // The relinearised square (tensor, product) of `c`, at level l.
        let square = |tr: &mut Trace, l: usize| {
            let tensor = tr.take(3 * (l + 1) * n);
            let p = tr.take(2 * (l + 1) * n);
            tr.give(tensor);
            p
        };
        for _ in 0..self.config.double_angle {
            let sq = square(tr, l);
            tr.give(c);
            l = l.checked_sub(1)?;
            c = tr.take(2 * (l + 1) * n);
            tr.give(sq);
        }
        if self.config.arcsine {
            let uu = square(tr, l);
            l = l.checked_sub(1)?;
            let sq = tr.take(2 * (l + 1) * n);
            tr.give(uu);
            let low = tr.take(2 * (l + 1) * n);
            tr.give(c);
            let cube = square(tr, l);
            tr.give(sq);
            tr.give(low);
            l = l.checked_sub(1)?;
            c = tr.take(2 * (l + 1) * n);
            tr.give(cube);
        }
        Some((c, l))
    }
}
