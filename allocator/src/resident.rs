//! Which pages of the DRAM arena are resident, so the arena can reserve more address space than
//! its budget (which keeps fragmentation from refusing blocks) and still hold resident memory
//! to the budget exactly: live spans are resident, freed spans stay resident ("dirty", reused
//! without faults) until the budget needs their pages for a span elsewhere, and then they are
//! released to the OS. Offsets here are page multiples.

use std::collections::BTreeMap;

/// Resident bytes of the arena: live spans plus freed-but-not-released ("dirty") ranges.
#[derive(Debug)]
pub(crate) struct ResidentSet {
    /// Freed ranges whose pages are still resident, by start offset (merged when adjacent).
    dirty: BTreeMap<u64, u64>,
    dirty_bytes: u64,
    /// Live bytes plus `dirty_bytes`: what the arena holds in DRAM.
    resident: u64,
    /// The most that may be resident.
    limit: u64,
}

/// What taking a range for a new span means for residency.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Taken {
    /// Bytes of the range that were dirty: resident already, holding old data.
    pub reused: u64,
    /// End of the last dirty piece inside the range (the range's start if none): everything
    /// from here on is fresh, still zero from the kernel.
    pub stale_end: u64,
    /// Dirty ranges elsewhere to release to the OS so the limit holds.
    pub release: Vec<(u64, u64)>,
}

impl ResidentSet {
    /// Nothing resident, at most `limit` bytes ever.
    pub(crate) fn new(limit: u64) -> ResidentSet {
        ResidentSet { dirty: BTreeMap::new(), dirty_bytes: 0, resident: 0, limit }
    }

    /// Bytes resident now (live spans and dirty ranges).
    pub(crate) fn resident(&self) -> u64 {
        self.resident
    }

    /// Bytes of live spans.
    pub(crate) fn live(&self) -> u64 {
        self.resident - self.dirty_bytes
    }

    /// The limit.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// The dirty pieces inside `s..e`.
    fn overlaps(&self, s: u64, e: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        if let Some((&a, &l)) = self.dirty.range(..s).next_back() {
            if a + l > s {
                out.push((a, l));
            }
        }
        out.extend(self.dirty.range(s..e).map(|(&a, &l)| (a, l)));
        out
    }

    /// Takes `s..e` (free space) for a live span, or returns `None` (changing nothing) when
    /// the limit cannot hold even after releasing every other dirty range.
    pub(crate) fn take(&mut self, s: u64, e: u64) -> Option<Taken> {
        let pieces = self.overlaps(s, e);
        let reused: u64 = pieces.iter().map(|&(a, l)| (a + l).min(e) - a.max(s)).sum();
        let fresh = (e - s) - reused;
        let releasable = self.dirty_bytes - reused;
        if self.resident + fresh > self.limit + releasable {
            return None;
        }
        let mut stale_end = s;
        for (a, l) in pieces {
            self.dirty.remove(&a);
            if a < s {
                self.dirty.insert(a, s - a);
            }
            if a + l > e {
                self.dirty.insert(e, a + l - e);
            }
            stale_end = stale_end.max((a + l).min(e));
        }
        self.dirty_bytes -= reused;
        self.resident += fresh;
        let mut release = Vec::new();
        // Release from the top of the address space: low addresses stay warm for reuse.
        while self.resident > self.limit {
            let Some((&a, &l)) = self.dirty.iter().next_back() else { break };
            let cut = l.min(self.resident - self.limit);
            self.dirty.remove(&a);
            if cut < l {
                self.dirty.insert(a, l - cut);
            }
            release.push((a + l - cut, cut));
            self.dirty_bytes -= cut;
            self.resident -= cut;
        }
        Some(Taken { reused, stale_end, release })
    }

    /// A live span `s..e` was freed: its pages stay resident, as a dirty range.
    pub(crate) fn give_back(&mut self, mut s: u64, mut e: u64) {
        if s == e {
            return;
        }
        self.dirty_bytes += e - s;
        if let Some((&a, &l)) = self.dirty.range(..s).next_back() {
            if a + l == s {
                self.dirty.remove(&a);
                s = a;
            }
        }
        if let Some(&l) = self.dirty.get(&e) {
            self.dirty.remove(&e);
            e += l;
        }
        self.dirty.insert(s, e - s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 4096;

    #[test]
    fn freed_pages_are_reused_then_released_when_the_limit_needs_them() {
        let mut r = ResidentSet::new(4 * P);
        let t = r.take(0, 2 * P).unwrap();
        assert_eq!(t, Taken { reused: 0, stale_end: 0, release: vec![] });
        r.give_back(0, 2 * P);
        // Part of the dirty range reused, the rest fresh.
        let t = r.take(P, 3 * P).unwrap();
        assert_eq!(t, Taken { reused: P, stale_end: 2 * P, release: vec![] });
        assert_eq!((r.resident(), r.live()), (3 * P, 2 * P));
        // Fresh pages elsewhere push the total over: the leftover dirty page is released.
        let t = r.take(10 * P, 12 * P).unwrap();
        assert_eq!(t.release, vec![(0, P)]);
        assert_eq!((r.resident(), r.live()), (4 * P, 4 * P));
        // Nothing left to release: a fresh page cannot be taken.
        assert!(r.take(20 * P, 21 * P).is_none());
        assert_eq!(r.resident(), 4 * P);
        r.give_back(10 * P, 12 * P);
        r.give_back(P, 3 * P);
        assert_eq!((r.resident(), r.live()), (4 * P, 0));
    }

    #[test]
    fn adjacent_dirty_ranges_merge() {
        let mut r = ResidentSet::new(8 * P);
        r.take(0, 6 * P).unwrap();
        r.give_back(0, 2 * P);
        r.give_back(4 * P, 6 * P);
        r.give_back(2 * P, 4 * P);
        assert_eq!(r.dirty.iter().map(|(&a, &l)| (a, l)).collect::<Vec<_>>(), vec![(0, 6 * P)]);
        let t = r.take(2 * P, 3 * P).unwrap();
        assert_eq!((t.reused, t.stale_end), (P, 3 * P));
        assert_eq!(r.dirty.len(), 2);
    }
}
