//! Plan-driven policy: Belady/MIN eviction over the hinted future and prefetch of the next
//! objects in plan order, as far ahead as the budget allows.
//!
//! By default prefetching follows the "conservative" integrated prefetching rule (Cao, Felten,
//! Karlin and Li, 1995): a prefetch of the next missing object `c` evicts exactly the object MIN
//! would evict when `c` is used — the one whose use at or after `c`'s is farthest — and waits
//! while that object is still needed before `c`. So the PM traffic is MIN's, issued as early
//! as possible. Pinned objects are left out of the choice (they cannot leave now, and waiting for
//! them would serialise every transfer behind the op using them), which keeps one slot rotating
//! for the in-flight transfer: the traffic then lies between MIN's with the full budget and
//! MIN's with one object less. With prefetch off the eviction sequence is exactly MIN's (both
//! checked against [`crate::belady`] in the tests).
//!
//! With [`PrefetchRule::Aggressive`] a prefetch never waits for objects used before `c`: it
//! evicts the farthest-used object that is not, if that use comes after `c`'s. It reads ahead
//! as far as the budget holds and reads back some of what it evicts.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::{Policy, PolicyReport, PrefetchRule};
use crate::ids::{ObjectId, StreamId};

/// How far past a mismatch the cursor may jump to resynchronise with the plan.
const RESYNC_WINDOW: usize = 256;

/// One stream's hinted pin sequence and how far it has got.
#[derive(Debug, Default)]
struct Plan {
    seq: Vec<ObjectId>,
    cursor: usize,
    /// Future plan positions of each object, ascending; fronts are ≥ `cursor`.
    positions: HashMap<ObjectId, VecDeque<usize>>,
}

impl Plan {
    fn new(future: &[ObjectId]) -> Self {
        let mut positions: HashMap<ObjectId, VecDeque<usize>> = HashMap::new();
        for (i, id) in future.iter().enumerate() {
            positions.entry(*id).or_default().push_back(i);
        }
        Self { seq: future.to_vec(), cursor: 0, positions }
    }

    fn cursor(&self) -> usize {
        self.cursor.min(self.seq.len())
    }

    fn next_use(&self, id: ObjectId) -> Option<usize> {
        self.positions.get(&id).and_then(|q| q.front().copied())
    }

    fn use_at_or_after(&self, id: ObjectId, pos: usize) -> Option<usize> {
        let q = self.positions.get(&id)?;
        q.get(q.partition_point(|&p| p < pos)).copied()
    }

    /// Steps from the cursor to the next use of `id`.
    fn distance(&self, id: ObjectId) -> Option<usize> {
        self.next_use(id).map(|p| p.saturating_sub(self.cursor()))
    }

    /// Takes an access of `id` as this plan's next step, or resynchronises a short way ahead;
    /// an access far outside the plan is treated as unplanned and ignored.
    fn access(&mut self, id: ObjectId) {
        let Some(p) = self.next_use(id) else { return };
        if p < self.cursor + RESYNC_WINDOW {
            while self.cursor <= p {
                let at = self.seq[self.cursor];
                if let Some(q) = self.positions.get_mut(&at) {
                    if q.front() == Some(&self.cursor) {
                        q.pop_front();
                    }
                }
                self.cursor += 1;
            }
        }
    }
}

/// Belady/MIN eviction plus in-order prefetch within the budget, over the merged plans of
/// every open request stream.
///
/// Each stream keeps its own plan and cursor. The plans are merged by time: a use `d` steps
/// ahead of its stream's cursor happens at time `clock + d`, where `clock` is the furthest
/// cursor (so a lone plan's times are its own positions). Requests that run side by side
/// advance about one step each per step, so the merged order is the order the uses are
/// expected in: an object the next use of which, in any stream, is soonest stays longest, and
/// prefetches are issued in merged order.
#[derive(Debug, Default)]
pub struct PlannedPolicy {
    prefetch: bool,
    rule: PrefetchRule,
    /// Under [`PrefetchRule::Conservative`], the plan bytes ahead of the cursor within which a
    /// prefetch follows the aggressive rule instead (see [`Self::with_lead`]).
    lead: u64,
    plans: BTreeMap<StreamId, Plan>,
    lens: HashMap<ObjectId, u64>,
    budget: u64,
    /// Length of the most recently written object: the estimate for results not yet written.
    last_insert_len: u64,
}

impl PlannedPolicy {
    /// A planned policy; with `prefetch == false` it is pure MIN eviction. Prefetches follow
    /// [`PrefetchRule::Conservative`] unless [`Self::with_rule`] says otherwise.
    pub fn new(prefetch: bool) -> Self {
        Self { prefetch, ..Self::default() }
    }

    /// This policy with its prefetches evicting under `rule`.
    pub fn with_rule(self, rule: PrefetchRule) -> Self {
        Self { rule, ..self }
    }

    /// This policy with a prefetch lead of `bytes`: under [`PrefetchRule::Conservative`], an
    /// object used within the next `bytes` of the plan (each distinct object counted once,
    /// resident or not) is prefetched under the aggressive rule, so the PM link always has
    /// that much of the plan to read ahead of the computation. Conservative alone can wait
    /// until the object just used becomes MIN's victim, and then every miss is read while the
    /// computation waits for it; the lead trades a few reads back (at most about `bytes` per
    /// burst of misses) for reads that overlap it. 0 (the default) is the plain rule.
    pub fn with_lead(self, bytes: u64) -> Self {
        Self { lead: bytes, ..self }
    }

    /// The rule a prefetch of the object used at position `pos` of the default stream's plan
    /// follows: aggressive within the lead, else this policy's rule.
    pub fn rule_at(&self, pos: usize) -> PrefetchRule {
        match self.default_plan() {
            Some(p) => self.rule_in(p, pos),
            None => self.rule,
        }
    }

    fn rule_in(&self, plan: &Plan, pos: usize) -> PrefetchRule {
        if self.rule == PrefetchRule::Conservative
            && self.lead > 0
            && self.bytes_before(plan, pos) < self.lead
        {
            PrefetchRule::Aggressive
        } else {
            self.rule
        }
    }

    /// Bytes of the distinct objects `plan` uses from its cursor up to (not including) `pos`,
    /// counted until they reach the lead.
    fn bytes_before(&self, plan: &Plan, pos: usize) -> u64 {
        let start = plan.cursor();
        let end = pos.min(plan.seq.len());
        let mut seen = HashSet::new();
        let mut bytes = 0u64;
        for id in plan.seq.get(start..end).unwrap_or(&[]) {
            if seen.insert(*id) {
                bytes += self.lens.get(id).copied().unwrap_or(self.last_insert_len);
                if bytes >= self.lead {
                    break;
                }
            }
        }
        bytes
    }

    fn default_plan(&self) -> Option<&Plan> {
        self.plans.get(&StreamId::DEFAULT)
    }

    /// Plan position of the next use of `id` in the default stream's plan.
    pub fn next_use(&self, id: ObjectId) -> Option<usize> {
        self.default_plan().and_then(|p| p.next_use(id))
    }

    /// Plan position of the next access the default stream's plan expects.
    pub fn cursor(&self) -> usize {
        self.default_plan().map_or(0, Plan::cursor)
    }

    /// Plan position of the first use of `id` at or after position `pos` (default stream).
    pub fn use_at_or_after(&self, id: ObjectId, pos: usize) -> Option<usize> {
        self.default_plan().and_then(|p| p.use_at_or_after(id, pos))
    }

    /// Open streams with a plan.
    pub fn streams(&self) -> usize {
        self.plans.len()
    }

    /// The merged clock: the furthest cursor of any plan.
    fn clock(&self) -> usize {
        self.plans.values().map(Plan::cursor).max().unwrap_or(0)
    }

    /// Merged time of the next use of `id` in any plan, and that use's distance.
    fn next_time(&self, id: ObjectId) -> Option<usize> {
        let d = self.plans.values().filter_map(|p| p.distance(id)).min()?;
        Some(self.clock() + d)
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
        // Not attributed to a stream: the plan that expects it soonest takes it.
        let nearest = self
            .plans
            .iter()
            .filter_map(|(s, p)| p.distance(id).map(|d| (d, *s)))
            .min()
            .map(|(_, s)| s);
        if let Some(p) = nearest.and_then(|s| self.plans.get_mut(&s)) {
            p.access(id);
        }
    }

    fn on_access_in(&mut self, stream: StreamId, id: ObjectId) {
        if let Some(p) = self.plans.get_mut(&stream) {
            p.access(id);
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
        self.on_hint_in(StreamId::DEFAULT, future, budget, len_of);
    }

    fn on_hint_in(
        &mut self,
        stream: StreamId,
        future: &[ObjectId],
        budget: u64,
        len_of: &dyn Fn(ObjectId) -> Option<u64>,
    ) {
        self.budget = budget;
        for id in future {
            if let Some(len) = len_of(*id) {
                self.lens.entry(*id).or_insert(len);
            }
        }
        self.plans.insert(stream, Plan::new(future));
    }

    fn on_stream_end(&mut self, stream: StreamId) {
        self.plans.remove(&stream);
    }

    fn wanted_by(&self, id: ObjectId) -> Vec<StreamId> {
        self.plans.iter().filter(|(_, p)| p.next_use(id).is_some()).map(|(s, _)| *s).collect()
    }

    fn evict_priority(&self, id: ObjectId) -> u64 {
        self.next_time(id).map_or(u64::MAX, |t| t as u64)
    }

    fn prefetch_rank(&self, id: ObjectId, candidate: ObjectId) -> (u64, bool) {
        let Some(dc) = self.plans.values().filter_map(|p| p.distance(candidate)).min() else {
            return (self.evict_priority(id), false);
        };
        let clock = self.clock();
        let mut needed_first = false;
        let mut rank: Option<usize> = None;
        for p in self.plans.values() {
            let Some(q) = p.positions.get(&id) else { continue };
            // The candidate's use, in this plan's positions.
            let tc = p.cursor() + dc;
            needed_first |= q.front().is_some_and(|&x| x < tc);
            // First use at or after the candidate's: what MIN would compare at that moment.
            if let Some(&x) = q.get(q.partition_point(|&x| x < tc)) {
                let t = clock + (x - p.cursor());
                rank = Some(rank.map_or(t, |r| r.min(t)));
            }
        }
        (rank.map_or(u64::MAX, |t| t as u64), needed_first)
    }

    fn prefetch_rule(&self) -> PrefetchRule {
        self.rule
    }

    fn prefetch_rule_for(&self, candidate: ObjectId) -> PrefetchRule {
        // The plan that uses the candidate soonest decides.
        let nearest = self
            .plans
            .values()
            .filter_map(|p| p.next_use(candidate).map(|at| (at.saturating_sub(p.cursor()), p, at)))
            .min_by_key(|&(d, _, _)| d);
        match nearest {
            Some((_, p, at)) => self.rule_in(p, at),
            None => self.rule,
        }
    }

    fn prefetch_headroom(&self, candidate: ObjectId) -> u64 {
        let Some(dc) = self.plans.values().filter_map(|p| p.distance(candidate)).min() else {
            return 0;
        };
        let mut unknown: Vec<ObjectId> = Vec::new();
        for p in self.plans.values() {
            let start = p.cursor();
            let end = (start + dc).min(p.seq.len());
            unknown.extend(p.seq[start..end].iter().filter(|id| !self.lens.contains_key(id)));
        }
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
        let mut seen = HashSet::new();
        let longest = self.plans.values().map(|p| p.seq.len() - p.cursor()).max().unwrap_or(0);
        // The plans merged by distance from their cursors: step d of every plan, then d + 1.
        for d in 0..longest {
            for p in self.plans.values() {
                let Some(id) = p.seq.get(p.cursor() + d) else { continue };
                if !seen.insert(*id) {
                    continue;
                }
                // Objects not yet written cannot be fetched, but they will occupy DRAM when
                // they are; stop once the distinct upcoming objects fill the budget.
                bytes += self.lens.get(id).copied().unwrap_or(self.last_insert_len);
                if bytes > self.budget {
                    return out;
                }
                out.push(*id);
            }
        }
        out
    }

    fn report(&self) -> PolicyReport {
        PolicyReport {
            name: "planned".into(),
            alpha: None,
            planned_ahead: Some(
                self.plans.values().map(|p| (p.seq.len() - p.cursor()) as u64).sum(),
            ),
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

    #[test]
    fn plans_of_two_streams_are_merged_by_distance_from_their_cursors() {
        let ids = |v: &[u64]| v.iter().map(|&i| ObjectId(i)).collect::<Vec<_>>();
        let mut p = PlannedPolicy::new(true);
        for i in 1..=9 {
            p.on_insert(ObjectId(i), 10);
        }
        // Two requests share key 9; each has its own ciphertexts.
        let (a, b) = (StreamId(1), StreamId(2));
        p.on_hint_in(a, &ids(&[1, 9, 2, 3]), 1000, &|_| Some(10));
        p.on_hint_in(b, &ids(&[5, 6, 9, 7]), 1000, &|_| Some(10));
        assert_eq!(p.streams(), 2);
        assert_eq!(p.prefetch_candidates(), ids(&[1, 5, 9, 6, 2, 3, 7]));
        // Request a used 1 and 9: 9 is still needed by b one step ahead of b's cursor.
        p.on_access_in(a, ObjectId(1));
        p.on_access_in(a, ObjectId(9));
        assert_eq!(p.evict_priority(ObjectId(9)), 2 + 2);
        assert!(p.evict_priority(ObjectId(9)) < p.evict_priority(ObjectId(7)));
        // A prefetch of b's 7 may not take 9, which b needs first.
        assert_eq!(p.prefetch_rank(ObjectId(9), ObjectId(7)), (u64::MAX, true));
        assert_eq!(p.wanted_by(ObjectId(9)), vec![b]);
        assert_eq!(p.wanted_by(ObjectId(2)), vec![a]);
        // Once b ends, its plan no longer protects 9.
        p.on_stream_end(b);
        assert_eq!(p.evict_priority(ObjectId(9)), u64::MAX);
        assert_eq!(p.prefetch_candidates(), ids(&[2, 3]));
        assert_eq!(p.report().planned_ahead, Some(2));
    }
}
