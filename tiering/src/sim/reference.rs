//! The reference simulation: the store's rules applied by scanning every object at every
//! decision (O(objects) per event). Exact but slow; the fast engine (module `sim::fast`) must
//! agree with it.

use std::collections::HashMap;

use super::{split_setup, timed_pins, PredictOptions, Prediction};
use crate::choice::{demand_victim, prefetch_fits, prefetch_scan, Occupant};
use crate::cost::CostModel;
use crate::error::Result;
use crate::ids::ObjectId;
use crate::policy::{Policy, PolicyConfig};
use crate::trace::{Trace, TraceDurability, TraceEvent};

#[derive(Debug)]
struct Obj {
    len: u64,
    in_dram: bool,
    in_pm: bool,
    /// Load completes at this time (virtual ns); `None` when not loading.
    ready_at: Option<f64>,
    /// When its prefetch started on the link (meaningful while `ready_at` is set).
    started: f64,
    prefetched: bool,
    pins: u32,
}

struct Sim<'a> {
    model: &'a CostModel,
    policy: Box<dyn Policy>,
    objs: HashMap<ObjectId, Obj>,
    budget: u64,
    used: u64,
    now: f64,
    link_free: f64,
    prefetch: bool,
    /// Time spent writing results since the last op: part of the next op's compute, as in
    /// the replayer.
    credit: f64,
    p: Prediction,
}

impl Sim<'_> {
    fn settle(&mut self) {
        let now = self.now;
        for o in self.objs.values_mut() {
            if o.ready_at.is_some_and(|t| t <= now) {
                o.ready_at = None;
            }
        }
    }

    fn link(&mut self, start: f64, dur: f64) -> f64 {
        let s = start.max(self.link_free);
        self.link_free = s + dur;
        self.link_free
    }

    fn evictable(o: &Obj) -> bool {
        o.in_dram && o.pins == 0 && o.ready_at.is_none()
    }

    fn occupants(&self) -> impl Iterator<Item = Occupant> + '_ {
        self.objs.iter().filter_map(|(id, o)| {
            (o.in_dram || o.ready_at.is_some()).then_some(Occupant {
                id: *id,
                len: o.len,
                clean: o.in_pm,
                evictable: Self::evictable(o),
                held: o.pins > 0,
            })
        })
    }

    fn victim(&self, below: Option<u64>) -> Option<ObjectId> {
        demand_victim(&*self.policy, below, self.occupants())
    }

    /// Drops `v` from DRAM, writing it back first if it has no PM copy. `inline` write-backs
    /// stall the compute thread; queued ones only occupy the link.
    fn evict(&mut self, v: ObjectId, inline: bool) {
        let (len, in_pm) = match self.objs.get(&v) {
            Some(o) => (o.len, o.in_pm),
            None => return,
        };
        if !in_pm {
            let end = self.link(self.now, self.model.pm.write_ns(len));
            if inline {
                self.p.stall_ns += end - self.now;
                self.now = end;
            }
            self.p.pm_write_bytes += len;
        }
        if let Some(o) = self.objs.get_mut(&v) {
            o.in_pm = true;
            o.in_dram = false;
            if std::mem::take(&mut o.prefetched) {
                self.p.prefetch_evicted_unused += 1;
            }
        }
        self.used -= len;
    }

    fn reserve(&mut self, len: u64) {
        self.used += len;
        self.p.peak_dram = self.p.peak_dram.max(self.used);
    }

    /// Demand room: evict by priority; `false` if the pinned set cannot fit.
    fn room_demand(&mut self, len: u64) -> bool {
        while self.used + len > self.budget {
            self.settle();
            match self.victim(None) {
                Some(v) => self.evict(v, true),
                None => {
                    // Wait for the earliest in-flight load, if any, then retry.
                    let next = self.objs.values().filter_map(|o| o.ready_at).reduce(f64::min);
                    match next {
                        Some(t) => {
                            self.p.stall_ns += (t - self.now).max(0.0);
                            self.now = self.now.max(t);
                        }
                        None => return false,
                    }
                }
            }
        }
        self.reserve(len);
        true
    }

    fn schedule_prefetch(&mut self) {
        if !self.prefetch {
            return;
        }
        self.settle();
        for c in self.policy.prefetch_candidates() {
            let Some(o) = self.objs.get(&c) else { continue };
            if o.in_dram || o.ready_at.is_some() {
                continue;
            }
            let len = o.len;
            let headroom = self.policy.prefetch_headroom(c);
            let scan = prefetch_scan(&*self.policy, c, self.occupants());
            if !prefetch_fits(scan.protected, len, headroom, self.budget) {
                break;
            }
            let mut ok = true;
            while self.used + len > self.budget {
                match prefetch_scan(&*self.policy, c, self.occupants()).victim {
                    // A scratch victim's write-back is queued on the link, not inline.
                    Some(v) => self.evict(v, false),
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            if !ok {
                break;
            }
            self.reserve(len);
            let dur = self.model.pm.overlapped_read_ns(len);
            let end = self.link(self.now + self.model.pm.prefetch_wake_ns, dur);
            self.p.pm_read_bytes += len;
            if let Some(o) = self.objs.get_mut(&c) {
                o.in_dram = true;
                o.ready_at = Some(end);
                o.started = end - dur;
                o.prefetched = true;
            }
        }
    }

    /// Mirrors the replayer's `alloc` + fill + `put_block`: demand room in DRAM, the fill at
    /// DRAM write bandwidth, and for durable objects a synchronous PM write.
    fn put(&mut self, id: ObjectId, len: u64, durable: bool, timed: bool) -> bool {
        let t0 = self.now;
        self.settle();
        if !self.room_demand(len) {
            return false;
        }
        self.policy.on_insert(id, len);
        self.objs.insert(
            id,
            Obj {
                len,
                in_dram: true,
                in_pm: false,
                ready_at: None,
                started: 0.0,
                prefetched: false,
                pins: 0,
            },
        );
        let fill = self.model.dram.write_ns(len);
        self.now += fill;
        if timed {
            self.credit += fill;
        }
        if durable {
            self.now = self.link(self.now, self.model.pm.write_ns(len));
            self.p.pm_write_bytes += len;
        }
        if let Some(o) = self.objs.get_mut(&id) {
            o.in_pm = durable;
        }
        if !timed {
            self.now = t0;
        }
        self.schedule_prefetch();
        true
    }

    fn pin(&mut self, id: ObjectId) -> bool {
        self.policy.on_access(id);
        self.settle();
        let Some(o) = self.objs.get(&id) else { return true };
        let (len, started) = (o.len, o.started);
        if let Some(mut t) = o.ready_at {
            // Waited for as the link's current and last transfer, the rest runs at the demand
            // read rate.
            if t.to_bits() == self.link_free.to_bits() {
                t = self.model.pm.waited_read_end(started, t, self.now);
                self.link_free = t;
                if let Some(o) = self.objs.get_mut(&id) {
                    o.ready_at = Some(t);
                }
            }
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
            let end = self.link(self.now, self.model.pm.read_ns(len));
            self.p.stall_ns += end - self.now;
            self.now = end;
            self.p.pm_read_bytes += len;
            self.p.misses += 1;
        }
        if let Some(o) = self.objs.get_mut(&id) {
            o.in_dram = true;
            o.ready_at = None;
            o.prefetched = false;
            o.pins += 1;
        }
        self.schedule_prefetch();
        true
    }

    fn unpin(&mut self, id: ObjectId) {
        if let Some(o) = self.objs.get_mut(&id) {
            o.pins = o.pins.saturating_sub(1);
        }
        self.schedule_prefetch();
    }

    fn remove(&mut self, id: ObjectId) {
        self.settle();
        if let Some(o) = self.objs.remove(&id) {
            if o.in_dram || o.ready_at.is_some() {
                self.used -= o.len;
            }
        }
        self.policy.on_remove(id);
        self.schedule_prefetch();
    }
}

/// The straightforward simulation: every decision scans all objects, exactly as the store
/// does. Kept as the reference the fast engine is tested against (small traces only).
pub fn predict_reference(
    trace: &Trace,
    model: &CostModel,
    policy: &PolicyConfig,
    budget: u64,
    opts: &PredictOptions,
) -> Result<Prediction> {
    trace.validate()?;
    model.validate()?;
    let mut sim = Sim {
        model,
        policy: policy.build(model),
        objs: HashMap::new(),
        budget,
        used: 0,
        now: 0.0,
        link_free: 0.0,
        prefetch: opts.migrator_threads > 0,
        credit: 0.0,
        p: Prediction::default(),
    };
    let (setup, timed) = split_setup(trace);
    let too_large = |id: ObjectId, len: u64| crate::error::Error::PinnedSetTooLarge {
        id: Some(id),
        requested: len,
        pinned: 0,
        budget,
    };
    for e in setup {
        if let TraceEvent::Put { id, len, durability, .. } = e {
            if opts.reuse_durable && *durability == TraceDurability::Durable {
                sim.policy.on_insert(*id, *len);
                sim.objs.insert(
                    *id,
                    Obj {
                        len: *len,
                        in_dram: false,
                        in_pm: true,
                        ready_at: None,
                        started: 0.0,
                        prefetched: false,
                        pins: 0,
                    },
                );
                continue;
            }
            if !sim.put(*id, *len, *durability == TraceDurability::Durable, false) {
                return Err(too_large(*id, *len));
            }
        }
    }
    let plan = timed_pins(trace);
    let lens: HashMap<ObjectId, u64> = sim.objs.iter().map(|(k, o)| (*k, o.len)).collect();
    sim.policy.on_hint(&plan, budget, &|id| lens.get(&id).copied());
    sim.schedule_prefetch();
    // Initial prefetches land before the clock starts (the replayer waits for them).
    for o in sim.objs.values_mut() {
        o.ready_at = None;
    }
    sim.p = Prediction { peak_dram: sim.p.peak_dram, ..Prediction::default() };
    sim.now = 0.0;
    sim.link_free = 0.0;
    sim.credit = 0.0;
    for e in timed {
        match e {
            TraceEvent::Put { id, len, durability, .. } => {
                if !sim.put(*id, *len, *durability == TraceDurability::Durable, true) {
                    return Err(too_large(*id, *len));
                }
            }
            TraceEvent::Remove { id } => sim.remove(*id),
            TraceEvent::Op { name, pins, compute_ns } => {
                for id in pins {
                    if !sim.pin(*id) {
                        return Err(crate::error::Error::PinnedSetTooLarge {
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
                for id in pins {
                    sim.unpin(*id);
                }
            }
        }
    }
    sim.p.total_ns = sim.now;
    Ok(sim.p)
}
