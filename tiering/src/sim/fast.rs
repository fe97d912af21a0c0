//! The fast engine: the reference engine's decisions, kept in indexed sets instead of found by
//! scanning every object, so full-size model traces (a million pins over a hundred thousand
//! objects) simulate in seconds.
//!
//! Each object's cached policy priority and candidate key change only when that object is
//! inserted or accessed (true of `lru`, `alpha` and `planned` while accesses follow the hinted
//! plan, which they do here: the plan is the trace's own pin sequence), and on a hint, which
//! refreshes everything. Every change of an object goes through `detach` → change → `attach`,
//! which keeps these in step:
//! - `evictable`: resident, unpinned, not loading — keyed (clean, priority, smaller id), the
//!   demand victim order;
//! - `unheld`: occupying DRAM and unpinned — keyed (priority, clean, smaller id), the prefetch
//!   victim order;
//! - `absent`: existing objects out of DRAM that the policy would prefetch, in its order;
//! - for `planned`: occupants by next use, their bytes in a Fenwick tree over plan positions
//!   (bytes needed before a candidate), and objects not written yet at their first use (the
//!   headroom for results written before a candidate).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use super::fenwick::{Fenwick, MaxTree};
use super::prediction::{split_setup, timed_pins, PredictOptions, Prediction, Timeline, Transfer};
use crate::choice::prefetch_fits;
use crate::cost::CostModel;
use crate::error::{Error, Result};
use crate::ids::ObjectId;
use crate::policy::{AlphaPolicy, LruPolicy, PlannedPolicy, Policy, PolicyConfig, PrefetchRule};
use crate::trace::{Trace, TraceDurability, TraceEvent};

enum Pol {
    Lru(LruPolicy),
    Alpha(Box<AlphaPolicy>),
    Planned(PlannedPolicy, bool),
}

impl Pol {
    fn get(&self) -> &dyn Policy {
        match self {
            Pol::Lru(p) => p,
            Pol::Alpha(p) => &**p,
            Pol::Planned(p, _) => p,
        }
    }

    fn get_mut(&mut self) -> &mut dyn Policy {
        match self {
            Pol::Lru(p) => p,
            Pol::Alpha(p) => &mut **p,
            Pol::Planned(p, _) => p,
        }
    }
}

#[derive(Debug)]
struct Obj {
    len: u64,
    in_dram: bool,
    in_pm: bool,
    ready_at: Option<f64>,
    /// When its prefetch started on the link (meaningful while `ready_at` is set).
    started: f64,
    prefetched: bool,
    pins: u32,
    /// Cached `evict_priority`.
    prio: u64,
    /// Cached prefetch order key (`planned`: next use; `alpha`: load order), if any.
    cand: Option<u64>,
    /// Cached next use (`planned` only).
    next: Option<usize>,
}

impl Obj {
    fn occupant(&self) -> bool {
        self.in_dram || self.ready_at.is_some()
    }

    fn evictable(&self) -> bool {
        self.in_dram && self.pins == 0 && self.ready_at.is_none()
    }
}

type EvictKey = (bool, u64, Reverse<ObjectId>);
type RankKey = (u64, bool, Reverse<ObjectId>);

struct Fast<'a> {
    model: &'a CostModel,
    pol: Pol,
    objs: HashMap<ObjectId, Obj>,
    budget: u64,
    used: u64,
    now: f64,
    link_free: f64,
    prefetch: bool,
    credit: f64,
    p: Prediction,
    evictable: BTreeSet<EvictKey>,
    unheld: BTreeSet<RankKey>,
    absent: BTreeSet<(u64, ObjectId)>,
    /// Loads in flight by finish time (`f64::to_bits` of a non-negative time keeps its order);
    /// stale entries are skipped.
    ready: BinaryHeap<Reverse<(u64, ObjectId)>>,
    alpha_order: HashMap<ObjectId, u64>,
    occ_next: BTreeSet<(usize, ObjectId)>,
    occ_bytes: Fenwick,
    /// One count at the next use of every object in the plan that does not exist now.
    pending: Fenwick,
    pending_at: HashMap<ObjectId, usize>,
    last_insert_len: u64,
    /// Per plan position: the position of the same object's next use (`u64::MAX` if none).
    next_after: Vec<u64>,
    /// Each object's plan positions.
    positions: HashMap<ObjectId, Vec<usize>>,
    /// `next_after` at the positions of existing objects, 0 elsewhere.
    after: MaxTree,
    /// Every transfer and op of the timed phase, when asked for.
    log: Option<Timeline>,
}

impl Fast<'_> {
    fn planned(&self) -> Option<&PlannedPolicy> {
        match &self.pol {
            Pol::Planned(p, _) => Some(p),
            _ => None,
        }
    }

    fn detach(&mut self, id: ObjectId) {
        let Some(o) = self.objs.get(&id) else { return };
        if o.evictable() {
            self.evictable.remove(&(o.in_pm, o.prio, Reverse(id)));
        }
        if o.occupant() {
            if o.pins == 0 {
                self.unheld.remove(&(o.prio, o.in_pm, Reverse(id)));
            }
            if let Some(n) = o.next {
                self.occ_next.remove(&(n, id));
                self.occ_bytes.add(n, -(o.len as i64));
            }
        } else if let Some(k) = o.cand {
            self.absent.remove(&(k, id));
        }
    }

    fn attach(&mut self, id: ObjectId) {
        let Some(o) = self.objs.get(&id) else { return };
        if o.evictable() {
            self.evictable.insert((o.in_pm, o.prio, Reverse(id)));
        }
        if o.occupant() {
            if o.pins == 0 {
                self.unheld.insert((o.prio, o.in_pm, Reverse(id)));
            }
            if let Some(n) = o.next {
                self.occ_next.insert((n, id));
                self.occ_bytes.add(n, o.len as i64);
            }
        } else if let Some(k) = o.cand {
            self.absent.insert((k, id));
        }
    }

    /// Re-reads the policy's view of `id` (detached).
    fn refresh(&mut self, id: ObjectId) {
        let prio = self.pol.get().evict_priority(id);
        let (cand, next) = match &self.pol {
            Pol::Lru(p) => (p.warm_position(id), None),
            Pol::Alpha(_) => (self.alpha_order.get(&id).copied(), None),
            Pol::Planned(p, prefetch) => {
                let n = p.next_use(id);
                (n.filter(|_| *prefetch).map(|n| n as u64), n)
            }
        };
        if let Some(o) = self.objs.get_mut(&id) {
            o.prio = prio;
            o.cand = cand;
            o.next = next;
        }
    }

    /// Applies `f` to object `id` with every index kept in step.
    fn update(&mut self, id: ObjectId, f: impl FnOnce(&mut Obj)) {
        self.detach(id);
        if let Some(o) = self.objs.get_mut(&id) {
            f(o);
        }
        self.attach(id);
    }

    fn settle(&mut self) {
        while let Some(&Reverse((t, id))) = self.ready.peek() {
            if f64::from_bits(t) > self.now {
                break;
            }
            self.ready.pop();
            if self.objs.get(&id).and_then(|o| o.ready_at).map(f64::to_bits) == Some(t) {
                self.update(id, |o| o.ready_at = None);
            }
        }
    }

    fn earliest_ready(&mut self) -> Option<f64> {
        while let Some(&Reverse((t, id))) = self.ready.peek() {
            if self.objs.get(&id).and_then(|o| o.ready_at).map(f64::to_bits) == Some(t) {
                return Some(f64::from_bits(t));
            }
            self.ready.pop();
        }
        None
    }

    fn link(&mut self, start: f64, dur: f64) -> f64 {
        let s = start.max(self.link_free);
        self.link_free = s + dur;
        self.link_free
    }

    /// A transfer of `id` on the link from `start`; returns its end (and logs it if asked). A
    /// prefetch runs while the compute thread computes, at the overlapped read rate.
    fn transfer(
        &mut self,
        id: ObjectId,
        bytes: u64,
        read: bool,
        prefetch: bool,
        start: f64,
    ) -> f64 {
        let pm = &self.model.pm;
        let dur = match (read, prefetch) {
            (true, true) => pm.overlapped_read_ns(bytes),
            (true, false) => pm.read_ns(bytes),
            (false, _) => pm.write_ns(bytes),
        };
        let end = self.link(start, dur);
        if let Some(log) = &mut self.log {
            let op = log.ops.len().saturating_sub(1);
            log.transfers.push(Transfer { id, bytes, read, start_ns: end - dur, end_ns: end, op });
        }
        end
    }

    fn evict(&mut self, v: ObjectId, inline: bool) {
        let (len, in_pm) = match self.objs.get(&v) {
            Some(o) => (o.len, o.in_pm),
            None => return,
        };
        if !in_pm {
            let end = self.transfer(v, len, false, false, self.now);
            if inline {
                self.p.stall_ns += end - self.now;
                self.now = end;
            }
            self.p.pm_write_bytes += len;
        }
        let mut wasted = false;
        self.update(v, |o| {
            o.in_pm = true;
            o.in_dram = false;
            wasted = std::mem::take(&mut o.prefetched);
        });
        if wasted {
            self.p.prefetch_evicted_unused += 1;
        }
        self.used -= len;
    }

    fn reserve(&mut self, len: u64) {
        self.used += len;
        self.p.peak_dram = self.p.peak_dram.max(self.used);
    }

    fn room_demand(&mut self, len: u64) -> bool {
        while self.used + len > self.budget {
            self.settle();
            match self.evictable.last().map(|&(_, _, Reverse(id))| id) {
                Some(v) => self.evict(v, true),
                None => match self.earliest_ready() {
                    Some(t) => {
                        self.p.stall_ns += (t - self.now).max(0.0);
                        self.now = self.now.max(t);
                    }
                    None => return false,
                },
            }
        }
        self.reserve(len);
        true
    }

    /// The victim a prefetch of `c` may take now (the rules of `choice::prefetch_scan`).
    fn prefetch_victim(&self, c: ObjectId) -> Option<ObjectId> {
        // LRU's warm start loads into free DRAM only (its prefetch rank is 0 for everyone).
        if matches!(self.pol, Pol::Lru(_)) {
            return None;
        }
        let own = match self.planned() {
            Some(p) => p.next_use(c)? as u64,
            None => self.objs.get(&c).map_or(u64::MAX, |o| o.prio),
        };
        // The best unpinned occupant; below `own` all are needed before the candidate (the
        // planned policy's priority is the next use) or rank too low.
        let &(prio, _, Reverse(id)) = self.unheld.last()?;
        if prio <= own {
            return None;
        }
        let o = self.objs.get(&id)?;
        let dead_scratch = !o.in_pm && prio == u64::MAX;
        if !o.evictable() || dead_scratch || self.blocked(own as usize, prio) {
            return None;
        }
        Some(id)
    }

    /// Whether an occupant needed before position `tc` has a first use from `tc` on later
    /// than `rank`, which blocks the prefetch under [`PrefetchRule::Conservative`].
    ///
    /// Every plan position `q` of an existing object holds the position of that object's use
    /// after `q`; over `cursor..tc` the maximum of these is the latest "first use from `tc` on"
    /// of any object used in the window (earlier uses of the same object hold values below
    /// `tc < rank`, so they never decide), and every object used in the window is an occupant
    /// (the candidates before this one were all fetched).
    fn blocked(&self, tc: usize, rank: u64) -> bool {
        match self.planned() {
            Some(p) if p.rule_at(tc) == PrefetchRule::Conservative => {
                self.after.max(p.cursor(), tc) > rank
            }
            _ => false,
        }
    }

    /// Makes the plan positions of `id` from the cursor on count in [`Self::blocked`] (or
    /// stop counting, for an object that no longer exists).
    fn mark_positions(&mut self, id: ObjectId, exists: bool) {
        let Some(p) = self.planned() else { return };
        let cursor = p.cursor();
        let Some(ps) = self.positions.get(&id) else { return };
        let from = ps.partition_point(|&q| q < cursor);
        for &q in &ps[from..] {
            let v = if exists { self.next_after[q] } else { 0 };
            self.after.set(q, v);
        }
    }

    fn headroom_and_protected(&self, c: ObjectId) -> (u64, u64) {
        let Some(p) = self.planned() else { return (0, 0) };
        let Some(tc) = p.next_use(c) else { return (0, 0) };
        let cursor = p.cursor();
        let unknown = self.pending.range(cursor, tc).max(0) as u64;
        let protected = self.occ_bytes.range(cursor, tc).max(0) as u64;
        (unknown * self.last_insert_len, protected)
    }

    fn schedule_prefetch(&mut self) {
        if !self.prefetch {
            return;
        }
        self.settle();
        let mut after: Option<(u64, ObjectId)> = None;
        loop {
            let next = match after {
                None => self.absent.iter().next().copied(),
                Some(k) => self
                    .absent
                    .range((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded))
                    .next()
                    .copied(),
            };
            let Some((key, c)) = next else { return };
            after = Some((key, c));
            let Some(len) = self.objs.get(&c).map(|o| o.len) else { continue };
            let (headroom, protected) = self.headroom_and_protected(c);
            if len + headroom > self.budget || !prefetch_fits(protected, len, headroom, self.budget)
            {
                return;
            }
            while self.used + len > self.budget {
                match self.prefetch_victim(c) {
                    Some(v) => self.evict(v, false),
                    None => return,
                }
            }
            self.reserve(len);
            // An idle migrator thread is woken first.
            let end = self.transfer(c, len, true, true, self.now + self.model.pm.prefetch_wake_ns);
            self.p.pm_read_bytes += len;
            let started = end - self.model.pm.overlapped_read_ns(len);
            self.update(c, |o| {
                o.in_dram = true;
                o.ready_at = Some(end);
                o.started = started;
                o.prefetched = true;
            });
            self.ready.push(Reverse((end.to_bits(), c)));
        }
    }

    fn insert(&mut self, id: ObjectId, len: u64, in_dram: bool, in_pm: bool) {
        self.pol.get_mut().on_insert(id, len);
        self.last_insert_len = len;
        if let Some(pos) = self.pending_at.remove(&id) {
            self.pending.add(pos, -1);
            self.mark_positions(id, true);
        }
        self.objs.insert(
            id,
            Obj {
                len,
                in_dram,
                in_pm,
                ready_at: None,
                started: 0.0,
                prefetched: false,
                pins: 0,
                prio: 0,
                cand: None,
                next: None,
            },
        );
        self.refresh(id);
        self.attach(id);
    }

    fn put(&mut self, id: ObjectId, len: u64, durable: bool, timed: bool) -> bool {
        let t0 = self.now;
        self.settle();
        if !self.room_demand(len) {
            return false;
        }
        self.insert(id, len, true, false);
        let fill = self.model.dram.write_ns(len);
        self.now += fill;
        if timed {
            self.credit += fill;
        }
        if durable {
            self.now = self.transfer(id, len, false, false, self.now);
            self.p.pm_write_bytes += len;
        }
        self.update(id, |o| o.in_pm = durable);
        if !timed {
            self.now = t0;
        }
        self.schedule_prefetch();
        true
    }

    fn pin(&mut self, id: ObjectId) -> bool {
        self.detach(id);
        self.pol.get_mut().on_access(id);
        self.refresh(id);
        self.attach(id);
        self.settle();
        let Some(o) = self.objs.get(&id) else { return true };
        let (len, started) = (o.len, o.started);
        if let Some(t) = o.ready_at {
            let t = self.wait_for(id, started, t);
            self.p.stall_ns += (t - self.now).max(0.0);
            self.now = self.now.max(t);
            self.p.hits += 1;
            self.settle();
        } else if o.in_dram {
            self.p.hits += 1;
        } else {
            if !self.room_demand(len) {
                return false;
            }
            let end = self.transfer(id, len, true, false, self.now);
            self.p.stall_ns += end - self.now;
            self.now = end;
            self.p.pm_read_bytes += len;
            self.p.misses += 1;
        }
        self.update(id, |o| {
            o.in_dram = true;
            o.ready_at = None;
            o.prefetched = false;
            o.pins += 1;
        });
        self.schedule_prefetch();
        true
    }

    /// The compute thread waits for the prefetch of `id` (on the link from `started`, due at
    /// `end`): if it is the link's current and last transfer, the rest of it runs at the demand
    /// read rate. Returns when it lands.
    fn wait_for(&mut self, id: ObjectId, started: f64, end: f64) -> f64 {
        if end.to_bits() != self.link_free.to_bits() {
            return end;
        }
        let t = self.model.pm.waited_read_end(started, end, self.now);
        if t.to_bits() == end.to_bits() {
            return end;
        }
        self.link_free = t;
        self.update(id, |o| o.ready_at = Some(t));
        self.ready.push(Reverse((t.to_bits(), id)));
        if let Some(x) = self.log.as_mut().and_then(|l| l.transfers.last_mut()) {
            x.end_ns = t;
        }
        t
    }

    fn unpin(&mut self, id: ObjectId) {
        self.update(id, |o| o.pins = o.pins.saturating_sub(1));
        self.schedule_prefetch();
    }

    fn remove(&mut self, id: ObjectId) {
        self.settle();
        self.detach(id);
        if let Some(o) = self.objs.remove(&id) {
            if o.occupant() {
                self.used -= o.len;
            }
        }
        self.pol.get_mut().on_remove(id);
        self.mark_positions(id, false);
        // Still in the plan (only in odd traces): it counts as not written yet again.
        if let Some(n) = self.planned().and_then(|p| p.next_use(id)) {
            if self.pending_at.insert(id, n).is_none() {
                self.pending.add(n, 1);
            }
        }
        self.schedule_prefetch();
    }

    fn hint(&mut self, plan: &[ObjectId]) {
        let lens: HashMap<ObjectId, u64> = self.objs.iter().map(|(k, o)| (*k, o.len)).collect();
        let budget = self.budget;
        self.pol.get_mut().on_hint(plan, budget, &|id| lens.get(&id).copied());
        if let Pol::Alpha(a) = &self.pol {
            self.alpha_order = a
                .prefetch_candidates()
                .into_iter()
                .enumerate()
                .map(|(i, id)| (id, i as u64))
                .collect();
        }
        self.occ_bytes = Fenwick::new(plan.len());
        self.pending = Fenwick::new(plan.len());
        self.pending_at.clear();
        self.occ_next.clear();
        self.evictable.clear();
        self.unheld.clear();
        self.absent.clear();
        if matches!(self.pol, Pol::Planned(..)) {
            self.positions.clear();
            for (i, id) in plan.iter().enumerate() {
                self.positions.entry(*id).or_default().push(i);
            }
            self.next_after = vec![u64::MAX; plan.len()];
            for ps in self.positions.values() {
                for w in ps.windows(2) {
                    self.next_after[w[0]] = w[1] as u64;
                }
            }
            self.after = MaxTree::new(plan.len());
            for (i, id) in plan.iter().enumerate() {
                if self.objs.contains_key(id) {
                    self.after.set(i, self.next_after[i]);
                }
            }
            for (i, id) in plan.iter().enumerate() {
                if !self.objs.contains_key(id) && !self.pending_at.contains_key(id) {
                    self.pending_at.insert(*id, i);
                    self.pending.add(i, 1);
                }
            }
        }
        let ids: Vec<ObjectId> = self.objs.keys().copied().collect();
        for id in ids {
            self.refresh(id);
            self.attach(id);
        }
    }
}

/// The fast engine behind [`super::predict`] and [`super::predict_timeline`] (`log`: also
/// return every transfer and op of the timed phase).
pub(super) fn predict(
    trace: &Trace,
    model: &CostModel,
    policy: &PolicyConfig,
    budget: u64,
    opts: &PredictOptions,
    log: bool,
) -> Result<(Prediction, Option<Timeline>)> {
    trace.validate()?;
    model.validate()?;
    let pol = match policy {
        PolicyConfig::Lru => Pol::Lru(LruPolicy::new()),
        PolicyConfig::Alpha { reserve_bytes } => {
            Pol::Alpha(Box::new(AlphaPolicy::new(model.clone(), *reserve_bytes)))
        }
        PolicyConfig::Planned { prefetch, rule, lead_bytes } => Pol::Planned(
            PlannedPolicy::new(*prefetch).with_rule(*rule).with_lead(*lead_bytes),
            *prefetch,
        ),
    };
    let mut sim = Fast {
        model,
        pol,
        objs: HashMap::new(),
        budget,
        used: 0,
        now: 0.0,
        link_free: 0.0,
        prefetch: opts.migrator_threads > 0,
        credit: 0.0,
        p: Prediction::default(),
        evictable: BTreeSet::new(),
        unheld: BTreeSet::new(),
        absent: BTreeSet::new(),
        ready: BinaryHeap::new(),
        alpha_order: HashMap::new(),
        occ_next: BTreeSet::new(),
        occ_bytes: Fenwick::new(0),
        pending: Fenwick::new(0),
        pending_at: HashMap::new(),
        last_insert_len: 0,
        next_after: Vec::new(),
        positions: HashMap::new(),
        after: MaxTree::new(0),
        log: None,
    };
    let (setup, timed) = split_setup(trace);
    let too_large = |id: ObjectId, len: u64| Error::PinnedSetTooLarge {
        id: Some(id),
        requested: len,
        pinned: 0,
        budget,
    };
    for e in setup {
        if let TraceEvent::Put { id, len, durability, .. } = e {
            if opts.reuse_durable && *durability == TraceDurability::Durable {
                sim.insert(*id, *len, false, true);
                continue;
            }
            if !sim.put(*id, *len, *durability == TraceDurability::Durable, false) {
                return Err(too_large(*id, *len));
            }
        }
    }
    sim.hint(&timed_pins(trace));
    sim.schedule_prefetch();
    // Initial prefetches land before the clock starts (the replayer waits for them).
    while let Some(Reverse((_, id))) = sim.ready.pop() {
        sim.update(id, |o| o.ready_at = None);
    }
    sim.p = Prediction { peak_dram: sim.p.peak_dram, ..Prediction::default() };
    sim.now = 0.0;
    sim.link_free = 0.0;
    sim.credit = 0.0;
    sim.log = log.then(Timeline::default);
    for e in timed {
        match e {
            TraceEvent::Put { id, len, durability, .. } => {
                if !sim.put(*id, *len, *durability == TraceDurability::Durable, true) {
                    return Err(too_large(*id, *len));
                }
            }
            TraceEvent::Remove { id } => sim.remove(*id),
            TraceEvent::Op { name, pins, compute_ns } => {
                let start = sim.now;
                if let Some(log) = &mut sim.log {
                    log.ops.push((start, start));
                }
                for id in pins {
                    if !sim.pin(*id) {
                        return Err(Error::PinnedSetTooLarge {
                            id: Some(*id),
                            requested: sim.objs.get(id).map_or(0, |o| o.len),
                            pinned: pins
                                .iter()
                                .filter_map(|p| sim.objs.get(p))
                                .map(|o| o.len)
                                .sum(),
                            budget,
                        });
                    }
                }
                let c = model.op_ns(name, *compute_ns);
                sim.now += (c - std::mem::take(&mut sim.credit)).max(0.0);
                sim.p.compute_ns += c;
                let end = sim.now;
                if let Some(op) = sim.log.as_mut().and_then(|l| l.ops.last_mut()) {
                    op.1 = end;
                }
                for id in pins {
                    sim.unpin(*id);
                }
            }
        }
    }
    sim.p.total_ns = sim.now;
    Ok((sim.p, sim.log))
}
