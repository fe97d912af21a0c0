//! Plan-driven policy: Belady/MIN eviction over the hinted future and prefetch of the next
//! objects in plan order, as far ahead as the budget allows.
//!
//! Prefetching follows the "conservative" integrated prefetching rule (Cao, Felten, Karlin and
//! Li, 1995): a prefetch of the next missing object `c` evicts exactly the object MIN would
//! evict when `c` is used — the one whose use at or after `c`'s is farthest — and waits while
//! that object is still needed before `c`. So the PM traffic is MIN's, issued as early as
//! possible. Pinned objects are left out of the choice (they cannot leave now, and waiting for
//! them would serialise every transfer behind the op using them), which keeps one slot rotating
//! for the in-flight transfer: the traffic then lies between MIN's with the full budget and
//! MIN's with one object less. With prefetch off the eviction sequence is exactly MIN's (both
//! checked against [`crate::belady`] in the tests).

use std::collections::{HashMap, VecDeque};

use super::{Policy, PolicyReport};
use crate::ids::ObjectId;

/// How far past a mismatch the cursor may jump to resynchronise with the plan.
const RESYNC_WINDOW: usize = 256;

/// Belady/MIN eviction plus in-order prefetch within the budget.
#[derive(Debug, Default)]
pub struct PlannedPolicy {
    prefetch: bool,
    plan: Vec<ObjectId>,
    cursor: usize,
    /// Future plan positions of each object, ascending; fronts are ≥ `cursor`.
    positions: HashMap<ObjectId, VecDeque<usize>>,
    lens: HashMap<ObjectId, u64>,
    budget: u64,
    /// Length of the most recently written object: the estimate for results not yet written.
    last_insert_len: u64,
}

impl PlannedPolicy {
    /// A planned policy; with `prefetch == false` it is pure MIN eviction.
    pub fn new(prefetch: bool) -> Self {
        Self { prefetch, ..Self::default() }
    }

    /// Plan position of the next use of `id`, if the plan still mentions it.
    pub fn next_use(&self, id: ObjectId) -> Option<usize> {
        self.positions.get(&id).and_then(|q| q.front().copied())
    }

    /// Plan position of the next access the policy expects.
    pub fn cursor(&self) -> usize {
        self.cursor.min(self.plan.len())
    }

    /// Plan position of the first use of `id` at or after position `pos`.
    pub fn use_at_or_after(&self, id: ObjectId, pos: usize) -> Option<usize> {
        let q = self.positions.get(&id)?;
        q.get(q.partition_point(|&p| p < pos)).copied()
    }

    fn advance_to(&mut self, end: usize) {
        while self.cursor < end {
            let id = self.plan[self.cursor];
            if let Some(q) = self.positions.get_mut(&id) {
                if q.front() == Some(&self.cursor) {
                    q.pop_front();
                }
            }
            self.cursor += 1;
        }
    }
}

impl Policy for PlannedPolicy {
    fn name(&self) -> &'static str {
        "planned"
    }

    fn on_insert(&mut self, id: ObjectId, len: u64) {
        self.lens.insert(id, len);
        self.last_insert_len = len;
    }

    fn on_access(&mut self, id: ObjectId) {
        let Some(p) = self.next_use(id) else { return };
        // Accept the access as the plan's next step, or resynchronise a short way ahead;
        // an access far outside the plan is treated as unplanned and ignored.
        if p < self.cursor + RESYNC_WINDOW {
            self.advance_to(p + 1);
        }
    }

    fn on_remove(&mut self, id: ObjectId) {
        self.lens.remove(&id);
    }

    fn on_hint(
        &mut self,
        future: &[ObjectId],
        budget: u64,
        len_of: &dyn Fn(ObjectId) -> Option<u64>,
    ) {
        self.plan = future.to_vec();
        self.cursor = 0;
        self.budget = budget;
        self.positions.clear();
        for (i, id) in future.iter().enumerate() {
            self.positions.entry(*id).or_default().push_back(i);
            if let Some(len) = len_of(*id) {
                self.lens.entry(*id).or_insert(len);
            }
        }
    }

    fn evict_priority(&self, id: ObjectId) -> u64 {
        self.next_use(id).map_or(u64::MAX, |p| p as u64)
    }

    fn prefetch_rank(&self, id: ObjectId, candidate: ObjectId) -> (u64, bool) {
        let Some(tc) = self.next_use(candidate) else {
            return (self.evict_priority(id), false);
        };
        let Some(q) = self.positions.get(&id) else { return (u64::MAX, false) };
        let needed_first = q.front().is_some_and(|&p| p < tc);
        // First use at or after the candidate's: what MIN would compare at that moment.
        let k = q.partition_point(|&p| p < tc);
        (q.get(k).map_or(u64::MAX, |&p| p as u64), needed_first)
    }

    fn prefetch_headroom(&self, candidate: ObjectId) -> u64 {
        let Some(tc) = self.next_use(candidate) else { return 0 };
        let start = self.cursor.min(self.plan.len());
        let end = tc.min(self.plan.len());
        let mut unknown: Vec<ObjectId> = self.plan[start..end]
            .iter()
            .copied()
            .filter(|id| !self.lens.contains_key(id))
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        unknown.len() as u64 * self.last_insert_len
    }

    fn prefetch_candidates(&self) -> Vec<ObjectId> {
        if !self.prefetch {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let mut seen = std::collections::HashSet::new();
        for id in &self.plan[self.cursor.min(self.plan.len())..] {
            if !seen.insert(*id) {
                continue;
            }
            // Objects not yet written cannot be fetched, but they will occupy DRAM when they
            // are; stop once the distinct upcoming objects fill the budget.
            bytes += self.lens.get(id).copied().unwrap_or(self.last_insert_len);
            if bytes > self.budget {
                break;
            }
            out.push(*id);
        }
        out
    }

    fn report(&self) -> PolicyReport {
        PolicyReport {
            name: "planned".into(),
            alpha: None,
            planned_ahead: Some((self.plan.len() - self.cursor.min(self.plan.len())) as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_use_follows_the_cursor() {
        let mut p = PlannedPolicy::new(true);
        let ids: Vec<_> = [1, 2, 1, 3, 2].iter().map(|&i| ObjectId(i)).collect();
        for i in [1, 2, 3] {
            p.on_insert(ObjectId(i), 10);
        }
        p.on_hint(&ids, 25, &|_| Some(10));
        assert_eq!(p.next_use(ObjectId(3)), Some(3));
        assert_eq!(p.prefetch_candidates(), vec![ObjectId(1), ObjectId(2)]);
        p.on_access(ObjectId(1));
        assert_eq!(p.next_use(ObjectId(1)), Some(2));
        // Skipping ahead (access of 3 before the planned 2 and 1) resynchronises.
        p.on_access(ObjectId(3));
        assert_eq!(p.next_use(ObjectId(1)), None);
        assert_eq!(p.next_use(ObjectId(2)), Some(4));
        assert_eq!(p.evict_priority(ObjectId(1)), u64::MAX);
        assert_eq!(p.report().planned_ahead, Some(1));
    }
}
