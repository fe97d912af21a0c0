//! The spare buffers a bootstrap takes from its [`super::Scratch`], computed exactly: the
//! sequence of lengths the computation lends and gives back is written down as a [`Trace`]
//! (the bootstrap's shape, no arithmetic), and [`Trace::buffers`] finds buffers of which the
//! scratch's choice (the smallest free buffer that holds a length, `Scratch::take_spare`)
//! never runs short. Every temporary is lent at the length its level needs, so the buffers
//! are as many as the temporaries alive at once and each as long as its share of the peak.

use super::{chebyshev, Bootstrapper};

/// A temporary of a [`Trace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handle(usize);

#[derive(Debug, Clone, Copy)]
enum Event {
    Take(usize, Handle),
    Give(Handle),
}

/// The lends and give-backs of one computation over a scratch's spares, in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Trace {
    events: Vec<Event>,
    next: usize,
    /// Buffers in the scratch before the computation that it does not own (a partner's
    /// input, lent by the other scratch): their length, and the handle holding each.
    foreign: Vec<(usize, Handle)>,
}

impl Trace {
    /// A spare of at least `len` words lent out.
    pub(crate) fn take(&mut self, len: usize) -> Handle {
        let h = Handle(self.next);
        self.next += 1;
        self.events.push(Event::Take(len, h));
        h
    }

    /// A spare given back.
    pub(crate) fn give(&mut self, h: Handle) {
        self.events.push(Event::Give(h));
    }

    /// A buffer of `room` words handed in from outside, holding a temporary.
    pub(crate) fn foreign(&mut self, room: usize) -> Handle {
        let h = Handle(self.next);
        self.next += 1;
        self.foreign.push((room, h));
        h
    }

    /// Replays the trace over free buffers `own` (and the foreign ones) with the scratch's
    /// choice: the room of the buffer each handle got, or, at the first length no free buffer
    /// holds, that length and the buffers of `own` free then (their indices).
    fn replay(&self, own: &[usize]) -> Result<Vec<usize>, (usize, Vec<usize>)> {
        // (room, index in `own`; None for a foreign buffer).
        let mut free: Vec<(usize, Option<usize>)> =
            own.iter().enumerate().map(|(i, &r)| (r, Some(i))).collect();
        let mut held = vec![(0usize, None); self.next];
        for &(room, h) in &self.foreign {
            held[h.0] = (room, None);
        }
        for e in &self.events {
            match *e {
                Event::Take(len, h) => {
                    let fit =
                        (0..free.len()).filter(|&i| free[i].0 >= len).min_by_key(|&i| free[i].0);
                    let Some(i) = fit else {
                        return Err((len, free.iter().filter_map(|&(_, o)| o).collect()));
                    };
                    held[h.0] = free.swap_remove(i);
                }
                Event::Give(h) => free.push(held[h.0]),
            }
        }
        Ok(held.into_iter().map(|(r, _)| r).collect())
    }

    /// The room of the buffer `h` holds when the trace runs over `own` (0 if it fails).
    pub(crate) fn room_of(&self, own: &[usize], h: Handle) -> usize {
        self.replay(own).map_or(0, |held| held[h.0])
    }

    /// The fewest buffers, each about as short as it can be, over which every trace of
    /// `traces` runs (each from all of them free), longest first. Starts from the lower bound
    /// (the k-th longest buffer at least the k-th longest temporary alive at any one time, the
    /// foreign buffers serving the longest) and, where the scratch's choice still runs short of
    /// a length, lengthens the longest buffer free then to it, as a growable scratch does (a
    /// buffer is added only when none is free, so there are no more than are alive at once).
    pub(crate) fn buffers(traces: &[&Trace]) -> Vec<usize> {
        let mut own: Vec<usize> = Vec::new();
        for t in traces {
            for (k, len) in t.lower_bound().into_iter().enumerate() {
                match own.get_mut(k) {
                    Some(b) => *b = (*b).max(len),
                    None => own.push(len),
                }
            }
        }
        while let Some((len, free)) = traces.iter().find_map(|t| t.replay(&own).err()) {
            match free.into_iter().max_by_key(|&i| own[i]) {
                Some(i) => own[i] = len,
                None => own.push(len),
            }
        }
        own.sort_unstable_by(|a, b| b.cmp(a));
        own
    }

    /// For each k, the largest k-th longest length alive at once (longest first), less as
    /// many of the longest as there are foreign buffers.
    fn lower_bound(&self) -> Vec<usize> {
        let mut live: Vec<(Handle, usize)> = self.foreign.iter().map(|&(r, h)| (h, r)).collect();
        let mut bound: Vec<usize> = Vec::new();
        for e in &self.events {
            match *e {
                Event::Take(len, h) => {
                    live.push((h, len));
                    let mut lens: Vec<usize> = live.iter().map(|&(_, l)| l).collect();
                    lens.sort_unstable_by(|a, b| b.cmp(a));
                    for (k, &l) in lens.iter().skip(self.foreign.len()).enumerate() {
                        match bound.get_mut(k) {
                            Some(b) => *b = (*b).max(l),
                            None => bound.push(l),
                        }
                    }
                }
                Event::Give(h) => live.retain(|&(x, _)| x != h),
            }
        }
        bound
    }
}

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
            let y = tr.take(2 * (top + 1) * n);
            tr.give(x);
            x = y;
        }
        let mut level = top;
        for _ in &self.trace_steps {
            let r = tr.take(2 * (level + 1) * n);
            tr.give(r);
        }
        for t in &self.cts {
            let y = t.trace(ctx, level, &mut tr);
            tr.give(x);
            x = y;
            level = level.checked_sub(1)?;
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
        for t in &self.stc {
            let y = t.trace(ctx, level, &mut tr);
            tr.give(x);
            x = y;
            level = level.checked_sub(1)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Over buffers of 20 and 10 words a temporary of 5 takes the 10, one of 8 the 20, and one
    /// of 15, after the 5 is given back, finds none; over the lower bound (15, 8) likewise. The
    /// buffers found serve the scratch's choice; one fewer, or one word shorter, does not.
    #[test]
    fn buffers_serve_the_scratch_choice_exactly() {
        let mut t = Trace::default();
        let a = t.take(5);
        let b = t.take(8);
        t.give(a);
        let c = t.take(15);
        t.give(b);
        t.give(c);
        assert_eq!(t.lower_bound(), vec![15, 8]);
        assert!(t.replay(&[20, 10]).is_err());
        assert!(t.replay(&[15, 8]).is_err());
        let own = Trace::buffers(&[&t]);
        assert_eq!(own, vec![15, 15]);
        assert!(t.replay(&own).is_ok());
        assert!(t.replay(&[15]).is_err());
        assert!(t.replay(&[15, 14]).is_err());
        // A foreign buffer serves a temporary too, and several traces share one set.
        let mut u = Trace::default();
        let f = u.foreign(30);
        let d = u.take(25);
        u.give(f);
        u.give(d);
        assert_eq!(Trace::buffers(&[&u]), vec![25]);
        assert_eq!(Trace::buffers(&[&t, &u]), vec![25, 15]);
    }
}
