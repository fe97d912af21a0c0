//! Which pages of the DRAM arena are resident, so the arena can reserve more address space than
//! its budget (which keeps fragmentation from refusing blocks) and still hold resident memory
//! to the budget exactly: live spans are resident, freed spans stay resident ("dirty", reused
//! without faults) until the budget needs their pages for a span elsewhere, and then they are
//! released to the OS. Offsets here are page multiples.

use std::collections::BTreeMap;

use crate::extent::ExtentAllocator;

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
    /// Bytes taken fresh (faulted in on first touch) and released to the OS, since creation.
    faulted: u64,
    released: u64,
}

/// What taking a range for a new span means for residency.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Taken {
    /// Bytes of the range that were dirty: resident already, holding old data.
    pub reused: u64,
    /// End of the last dirty piece inside the range (the range's start if none): everything
    /// from here on is fresh, still zero from the kernel.
    pub stale_end: u64,
    /// Pieces of the range that were not resident, in address order (to be faulted in, or
    /// filled with pages moved from `release`).
    pub fresh: Vec<(u64, u64)>,
    /// Dirty ranges elsewhere to release to the OS so the limit holds (at most as many bytes
    /// as `fresh` holds).
    pub release: Vec<(u64, u64)>,
}

impl ResidentSet {
    /// Nothing resident, at most `limit` bytes ever.
    pub(crate) fn new(limit: u64) -> ResidentSet {
        ResidentSet {
            dirty: BTreeMap::new(),
            dirty_bytes: 0,
            resident: 0,
            limit,
            faulted: 0,
            released: 0,
        }
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

    /// Bytes taken fresh (to be faulted in) and bytes released to the OS, since creation.
    pub(crate) fn churn(&self) -> (u64, u64) {
        (self.faulted, self.released)
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

    /// Dirty bytes inside `s..e`.
    fn overlap(&self, s: u64, e: u64) -> u64 {
        self.overlaps(s, e).iter().map(|&(a, l)| (a + l).min(e) - a.max(s)).sum()
    }

    /// Chooses where a span of `placed` bytes goes and takes it from `free`: where it reuses
    /// the most resident (dirty) memory, so that it needs the fewest fresh pages — and so the
    /// fewest releases elsewhere — preferring the tightest dirty range (so a small block does
    /// not split a large block's hole); otherwise the smallest free extent that holds it.
    pub(crate) fn place(&self, free: &mut ExtentAllocator, placed: u64, align: u64) -> Option<u64> {
        // (reused bytes, dirty range length, start): most reuse first, then tightest fit.
        let mut best: Option<(u64, u64, u64)> = None;
        for (&a, &l) in &self.dirty {
            let Some((eo, el)) = free.containing(a) else { continue };
            // Start at the dirty range, or end where it ends (reaching back over free space).
            let end_aligned = (a + l).saturating_sub(placed).max(eo);
            for s in [a, end_aligned] {
                if s % align != 0 || s + placed > eo + el {
                    continue;
                }
                let score = self.overlap(s, s + placed);
                let better = match best {
                    None => true,
                    Some((b, bl, _)) => score > b || (score == b && l < bl),
                };
                if better {
                    best = Some((score, l, s));
                }
            }
            if best.is_some_and(|(b, bl, _)| b == placed && bl == placed) {
                break;
            }
        }
        match best {
            Some((score, _, s)) if score > 0 && free.take_at(s, placed) => Some(s),
            _ => free.alloc_aligned(placed, align),
        }
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
        let mut fresh_pieces = Vec::new();
        let mut cur = s;
        for (a, l) in pieces {
            if a > cur {
                fresh_pieces.push((cur, a - cur));
            }
            cur = (a + l).min(e);
            self.dirty.remove(&a);
            if a < s {
                self.dirty.insert(a, s - a);
            }
            if a + l > e {
                self.dirty.insert(e, a + l - e);
            }
            stale_end = stale_end.max((a + l).min(e));
        }
        if cur < e {
            fresh_pieces.push((cur, e - cur));
        }
        self.dirty_bytes -= reused;
        self.resident += fresh;
        self.faulted += fresh;
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
            self.released += cut;
        }
        Some(Taken { reused, stale_end, fresh: fresh_pieces, release })
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
        assert_eq!(t, Taken { reused: 0, stale_end: 0, fresh: vec![(0, 2 * P)], release: vec![] });
        r.give_back(0, 2 * P);
        // Part of the dirty range reused, the rest fresh.
        let t = r.take(P, 3 * P).unwrap();
        assert_eq!(
            t,
            Taken { reused: P, stale_end: 2 * P, fresh: vec![(2 * P, P)], release: vec![] }
        );
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
        assert_eq!(r.churn(), (5 * P, P));
    }

    #[test]
    fn placement_prefers_resident_memory_over_a_better_fitting_fresh_hole() {
        let mut free = ExtentAllocator::default();
        free.free(0, 64 * P);
        let mut r = ResidentSet::new(16 * P);
        // A 6-page span is freed (dirty) and a 2-page one is placed: it goes into the dirty
        // range, not the fresh space at the end.
        let s = r.place(&mut free, 6 * P, P).unwrap();
        r.take(s, s + 6 * P).unwrap();
        free.free(s, 6 * P);
        r.give_back(s, s + 6 * P);
        let t = r.place(&mut free, 2 * P, P).unwrap();
        assert_eq!(t, s);
        assert_eq!(r.take(t, t + 2 * P).unwrap().reused, 2 * P);
        // A 5-page span overlaps the remaining 4 dirty pages and one fresh page.
        let u = r.place(&mut free, 5 * P, P).unwrap();
        assert_eq!(u, 2 * P);
        assert_eq!(r.take(u, u + 5 * P).unwrap().reused, 4 * P);
        // Nothing dirty left: best fit.
        assert_eq!(r.place(&mut free, P, P), Some(7 * P));
    }

    #[test]
    fn a_small_block_takes_the_tightest_dirty_hole() {
        let mut free = ExtentAllocator::default();
        free.free(0, 64 * P);
        let mut r = ResidentSet::new(64 * P);
        // A large hole at 0..8 and a small one at 10..12, both dirty, with live spans between.
        r.take(0, 13 * P).unwrap();
        assert!(free.take_at(0, 13 * P));
        for (s, e) in [(0, 8 * P), (10 * P, 12 * P)] {
            free.free(s, e - s);
            r.give_back(s, e);
        }
        assert_eq!(r.place(&mut free, 2 * P, P), Some(10 * P));
        assert_eq!(r.place(&mut free, 8 * P, P), Some(0));
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
        assert_eq!((t.reused, t.stale_end, t.fresh), (P, 3 * P, vec![]));
        assert_eq!(r.dirty.len(), 2);
    }
}
