//! Predicts a trace's run time under a policy and budget with the cost model, by replaying it
//! in virtual time with the store's residency rules and the same [`Policy`] objects.
//!
//! Model: one compute thread; one PM link serving transfers first come, first served (the
//! throttle enforces exactly this; a real disk shares bandwidth between concurrent transfers,
//! which totals the same). Demand loads and inline write-backs stall the compute thread;
//! prefetches run on the link while it computes. Events before the first `op` are setup
//! (untimed), after which the plan is hinted and initial prefetches complete before the clock
//! starts — the same protocol as [`crate::replay`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::belady::simulate_min;
use crate::choice::{demand_victim, prefetch_fits, prefetch_scan, Occupant};
use crate::cost::CostModel;
use crate::error::Result;
use crate::ids::ObjectId;
use crate::policy::{Policy, PolicyConfig};
use crate::trace::{Trace, TraceDurability, TraceEvent};

/// What the model predicts for one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Predicted wall time of the timed phase (ns).
    pub total_ns: f64,
    /// Compute time alone (ns).
    pub compute_ns: f64,
    /// Time the compute thread waited for transfers (ns).
    pub stall_ns: f64,
    /// Bytes read PM → DRAM.
    pub pm_read_bytes: u64,
    /// Bytes written DRAM → PM.
    pub pm_write_bytes: u64,
    /// Pins that found the object resident (including finished prefetches).
    pub hits: u64,
    /// Pins that loaded on demand.
    pub misses: u64,
    /// Highest DRAM reservation.
    pub peak_dram: u64,
    /// Prefetched objects evicted before any pin used them.
    #[serde(default)]
    pub prefetch_evicted_unused: u64,
}

/// The physical lower bound on a run: compute, or the bytes MIN must move over the PM link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhysicalBound {
    /// Total compute time (ns).
    pub compute_ns: f64,
    /// Bytes MIN must read from PM after filling the budget once (ns).
    pub min_read_bytes: u64,
    /// Those bytes at the PM read bandwidth (ns).
    pub io_ns: f64,
    /// `max(compute_ns, io_ns)`.
    pub bound_ns: f64,
}

/// Splits a trace into setup (events before the first op) and the timed rest.
pub fn split_setup(trace: &Trace) -> (&[TraceEvent], &[TraceEvent]) {
    let k = trace
        .events
        .iter()
        .position(|e| matches!(e, TraceEvent::Op { .. }))
        .unwrap_or(trace.events.len());
    trace.events.split_at(k)
}

/// The pins of the timed phase, in order: what the replayer hints.
pub fn timed_pins(trace: &Trace) -> Vec<ObjectId> {
    let (_, timed) = split_setup(trace);
    timed
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Op { pins, .. } => Some(pins.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Computes the physical bound of the timed phase under `budget`.
pub fn physical_bound(trace: &Trace, model: &CostModel, budget: u64) -> PhysicalBound {
    let (_, timed) = split_setup(trace);
    let compute_ns: f64 = timed
        .iter()
        .map(|e| match e {
            TraceEvent::Op { name, compute_ns, .. } => model.op_ns(name, *compute_ns),
            _ => 0.0,
        })
        .sum();
    let seq = timed_pins(trace);
    let lens = trace.object_lens();
    let min = simulate_min(&seq, &lens, budget);
    let mut bytes: u64 = min.misses.iter().map(|&t| lens.get(&seq[t]).copied().unwrap_or(0)).sum();
    // The first distinct objects that fit are loaded before the clock starts.
    let mut seen = std::collections::HashSet::new();
    let mut pre = 0u64;
    for id in &seq {
        if seen.insert(*id) {
            let l = lens.get(id).copied().unwrap_or(0);
            if pre + l > budget {
                break;
            }
            pre += l;
        }
    }
    bytes = bytes.saturating_sub(pre);
    let io_ns = bytes as f64 / model.pm.read_bw * 1e9;
    PhysicalBound { compute_ns, min_read_bytes: bytes, io_ns, bound_ns: compute_ns.max(io_ns) }
}

#[derive(Debug)]
struct Obj {
    len: u64,
    in_dram: bool,
    in_pm: bool,
    /// Load completes at this time (virtual ns); `None` when not loading.
    ready_at: Option<f64>,
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
            let end = self.link(self.now, self.model.pm.read_ns(len));
            self.p.pm_read_bytes += len;
            if let Some(o) = self.objs.get_mut(&c) {
                o.in_dram = true;
                o.ready_at = Some(end);
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
            Obj { len, in_dram: true, in_pm: false, ready_at: None, prefetched: false, pins: 0 },
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
        let len = o.len;
        if let Some(t) = o.ready_at {
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

/// How the predicted run is set up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictOptions {
    /// Migrator threads of the store; 0 disables prefetch, as in the store.
    pub migrator_threads: usize,
    /// Durable setup objects already sit in the pool from an earlier process (the replayer's
    /// `reuse_durable`): they start PM-only instead of being written.
    pub reuse_durable: bool,
}

impl Default for PredictOptions {
    fn default() -> Self {
        Self { migrator_threads: 2, reuse_durable: false }
    }
}

/// Predicts the timed phase of `trace` under `policy` with a DRAM budget of `budget` bytes.
pub fn predict(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::test_model;
    use crate::trace::{ObjectClass, TraceHeader};

    /// `keys` keys of `klen` bytes cycled by `ops` ops, each also pinning one ciphertext.
    fn cyclic(keys: u64, klen: u64, ops: u64, compute_ns: u64) -> Trace {
        let mut ev = Vec::new();
        for k in 0..keys {
            ev.push(TraceEvent::Put {
                id: ObjectId(k),
                kind: ObjectClass::EvalKey,
                durability: TraceDurability::Durable,
                len: klen,
            });
        }
        ev.push(TraceEvent::Put {
            id: ObjectId(1000),
            kind: ObjectClass::Ciphertext,
            durability: TraceDurability::Scratch,
            len: klen / 4,
        });
        for i in 0..ops {
            ev.push(TraceEvent::Op {
                name: "key_switch".into(),
                pins: vec![ObjectId(1000), ObjectId(i % keys)],
                compute_ns,
            });
        }
        Trace { header: TraceHeader::new("test"), events: ev }
    }

    #[test]
    fn all_dram_is_pure_compute() {
        let mut m = test_model();
        m.ops_ns.clear();
        let t = cyclic(4, 1_000_000, 12, 5_000_000);
        let p =
            predict(&t, &m, &PolicyConfig::Lru, 10_000_000, &PredictOptions::default()).unwrap();
        assert_eq!(p.pm_read_bytes, 0);
        assert!((p.total_ns - 60e6).abs() < 1.0, "{p:?}");
    }

    #[test]
    fn planned_overlaps_and_lru_stalls() {
        let mut m = test_model();
        m.ops_ns.clear();
        // PM: 1 GB/s → a 1 MB key takes ≈1 ms; compute 2 ms per op hides it.
        let t = cyclic(8, 1_000_000, 64, 2_000_000);
        let budget = 3_250_000; // three keys and the ciphertext
        let lru = predict(&t, &m, &PolicyConfig::Lru, budget, &PredictOptions::default()).unwrap();
        let planned = predict(
            &t,
            &m,
            &PolicyConfig::Planned { prefetch: true },
            budget,
            &PredictOptions::default(),
        )
        .unwrap();
        let bound = physical_bound(&t, &m, budget);
        assert_eq!(lru.misses, 64, "cyclic access is LRU's worst case");
        assert!(lru.total_ns > 64.0 * 2.9e6, "{lru:?}");
        assert!(planned.total_ns < 1.1 * bound.bound_ns, "{planned:?} vs {bound:?}");
        assert!(planned.pm_read_bytes <= lru.pm_read_bytes);
        assert!(planned.peak_dram <= budget && lru.peak_dram <= budget);
    }

    #[test]
    fn reused_durable_objects_start_in_pm() {
        let mut m = test_model();
        m.ops_ns.clear();
        let t = cyclic(4, 1_000_000, 12, 5_000_000);
        let opts = PredictOptions { migrator_threads: 2, reuse_durable: true };
        // LRU starts cold: the first cycle reads every key once, then all stay.
        let lru = predict(&t, &m, &PolicyConfig::Lru, 10_000_000, &opts).unwrap();
        assert_eq!((lru.pm_read_bytes, lru.misses), (4_000_000, 4));
        // Planned loads them before the clock starts.
        let planned =
            predict(&t, &m, &PolicyConfig::Planned { prefetch: true }, 10_000_000, &opts).unwrap();
        assert_eq!(planned.pm_read_bytes, 0);
    }

    #[test]
    fn bound_counts_min_traffic() {
        let mut m = test_model();
        m.ops_ns.clear();
        let t = cyclic(4, 1000, 12, 0);
        // Budget: the ciphertext and two keys.
        let b = physical_bound(&t, &m, 2250);
        // MIN's traffic minus the ciphertext and k0, k1, which fill the budget before the
        // clock starts.
        let seq = timed_pins(&t);
        let lens = t.object_lens();
        let min = simulate_min(&seq, &lens, 2250);
        let raw: u64 = min.misses.iter().map(|&i| lens[&seq[i]]).sum();
        assert_eq!(b.min_read_bytes, raw - 2250);
        assert!(b.min_read_bytes > 0 && b.bound_ns == b.io_ns);
    }
}
