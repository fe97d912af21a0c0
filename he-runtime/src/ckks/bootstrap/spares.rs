//! The spare buffers a bootstrap takes from its [`super::Scratch`], counted from the
//! computation's own order: the lengths it lends and gives back are written down as a [`Trace`]
//! (the bootstrap's shape, no arithmetic), and [`Trace::buffers`] finds buffers of which the
//! scratch's choice (the smallest free buffer that holds a length, `Scratch::take_spare`)
//! never runs short. Every temporary is lent at the length its level needs, so there are as
//! many buffers as temporaries alive at once, each near the shortest that serves its rank.

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
