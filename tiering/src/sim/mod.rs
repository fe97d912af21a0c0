//! Predicts a trace's run time under a policy and budget with the cost model, by replaying it
//! in virtual time with the store's residency rules and the same
//! [`crate::policy::Policy`] objects.
//!
//! Model: one compute thread; one PM link serving transfers first come, first served (the
//! throttle enforces exactly this; a real disk shares bandwidth between concurrent transfers,
//! which totals the same). Demand loads and inline write-backs stall the compute thread;
//! prefetches run on the link while it computes. Events before the first `op` are setup
//! (untimed), after which the plan is hinted and initial prefetches complete before the clock
//! starts — the same protocol as [`crate::replay`].
//!
//! [`predict_paging`] puts kernel paging on the same footing: the store over its mapped pool
//! at its smallest budget, with the kernel's page cache in a cgroup limit (module `paging`).
//!
//! [`predict`] runs the fast engine (module `fast`: indexed sets and Fenwick trees, O(log n) per
//! event for the common decisions), which makes exactly the decisions of the straightforward
//! [`mod@reference`] engine — the tests check both on the same traces.

mod fast;
mod fenwick;
mod paging;
mod prediction;
pub mod reference;

pub use paging::{predict_paging, smallest_store_budget, PagingCost, PagingSetup};
pub use prediction::{split_setup, timed_pins, PredictOptions, Prediction, Timeline, Transfer};

use serde::{Deserialize, Serialize};

use crate::belady::simulate_min;
use crate::cost::CostModel;
use crate::error::Result;
use crate::policy::PolicyConfig;
use crate::trace::{Trace, TraceEvent};

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

/// Predicts the timed phase of `trace` under `policy` with a DRAM budget of `budget` bytes.
pub fn predict(
    trace: &Trace,
    model: &CostModel,
    policy: &PolicyConfig,
    budget: u64,
    opts: &PredictOptions,
) -> Result<Prediction> {
    fast::predict(trace, model, policy, budget, opts, false).map(|(p, _)| p)
}

/// [`predict`], also returning the timeline of the timed phase (for plots of the PM traffic
/// over time and of where it comes from).
pub fn predict_timeline(
    trace: &Trace,
    model: &CostModel,
    policy: &PolicyConfig,
    budget: u64,
    opts: &PredictOptions,
) -> Result<(Prediction, Timeline)> {
    let (p, t) = fast::predict(trace, model, policy, budget, opts, true)?;
    Ok((p, t.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::belady::simulate_min;
    use crate::cost::test_model;
    use crate::ids::ObjectId;
    use crate::policy::PrefetchRule;
    use crate::trace::{ObjectClass, TraceDurability, TraceHeader};

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
            &PolicyConfig::planned(PrefetchRule::Conservative),
            budget,
            &PredictOptions::default(),
        )
        .unwrap();
        let bound = physical_bound(&t, &m, budget);
        // Cyclic access is LRU's worst case; setup left the last keys put in DRAM, so its warm
        // start finds no free room and every pin misses.
        assert_eq!(lru.misses, 64, "{lru:?}");
        assert!(lru.total_ns > 64.0 * 2.9e6, "{lru:?}");
        assert!(planned.total_ns < 1.1 * bound.bound_ns, "{planned:?} vs {bound:?}");
        assert!(planned.pm_read_bytes <= lru.pm_read_bytes);
        assert!(planned.peak_dram <= budget && lru.peak_dram <= budget);
    }

    #[test]
    fn prefetches_run_at_the_overlapped_rate_and_the_rest_at_the_demand_rate_once_waited_for() {
        let mut m = test_model();
        m.ops_ns.clear();
        m.pm.read_latency_ns = 0.0;
        // 1 MB keys at 1 GB/s: 1 ms, hidden by 1.5 ms of compute per op.
        let t = cyclic(8, 1_000_000, 64, 1_500_000);
        // The ciphertext and two keys: the next key is prefetched while the current one is used.
        let budget = 2_250_000;
        let planned = PolicyConfig::planned(PrefetchRule::Conservative);
        let opts = PredictOptions::default();
        let hidden = predict(&t, &m, &planned, budget, &opts).unwrap();
        assert!((hidden.total_ns - 64.0 * 1.5e6).abs() < 1.0, "{hidden:?}");
        // Overlapping the computation the read runs at 0.5 GB/s (2 ms). Each op from the third
        // on waits 0.5 ms into the next one's prefetch; the 0.25 MB left then run at 1 GB/s
        // (0.25 ms): 1.75 ms per op, not 2.
        m.pm.overlapped_read_bw = Some(0.5e9);
        let (p, tl) = predict_timeline(&t, &m, &planned, budget, &opts).unwrap();
        for (i, (a, b)) in tl.ops.iter().enumerate().take(50).skip(1) {
            assert!((b - a - 1.75e6).abs() < 1.0, "op {i}: {a} .. {b}");
        }
        // Near the end the plan frees room to prefetch two keys ahead; a waited-for prefetch
        // with another queued behind it keeps its overlapped rate.
        assert!(p.total_ns > 64.0 * 1.75e6 && p.total_ns < 64.0 * 1.8e6, "{p:?}");
        let r = reference::predict_reference(&t, &m, &planned, budget, &opts).unwrap();
        assert!((r.total_ns - p.total_ns).abs() < 1e-6 * p.total_ns);
        // A migrator woken 1 ms after the prefetch is handed over starts it then: 1 ms of
        // wake-up and 1 ms of read (at the demand rate, since the compute thread is waiting
        // by its end) outlast 1.5 ms of compute, 2 ms per op.
        let mut woken = m.clone();
        woken.pm.overlapped_read_bw = None;
        woken.pm.prefetch_wake_ns = 1e6;
        let (_, tl) = predict_timeline(&t, &woken, &planned, budget, &opts).unwrap();
        for (i, (a, b)) in tl.ops.iter().enumerate().take(50).skip(2) {
            assert!((b - a - 2.0e6).abs() < 1.0, "op {i}: {a} .. {b}");
        }
        // Demand loads run while the compute thread waits: lru does not change.
        let lru_ov = predict(&t, &m, &PolicyConfig::Lru, budget, &opts).unwrap();
        m.pm.overlapped_read_bw = None;
        let lru = predict(&t, &m, &PolicyConfig::Lru, budget, &opts).unwrap();
        assert_eq!(lru_ov, lru);
    }

    #[test]
    fn timeline_accounts_for_every_byte_and_op() {
        let mut m = test_model();
        m.ops_ns.clear();
        m.pm.overlapped_read_bw = Some(0.6e9);
        let t = cyclic(8, 1_000_000, 64, 2_000_000);
        let budget = 3_250_000;
        for policy in [PolicyConfig::Lru, PolicyConfig::planned(PrefetchRule::Conservative)] {
            let opts = PredictOptions::default();
            let (p, tl) = predict_timeline(&t, &m, &policy, budget, &opts).unwrap();
            assert_eq!(p, predict(&t, &m, &policy, budget, &opts).unwrap());
            assert_eq!(tl.ops.len(), 64);
            let read: u64 = tl.transfers.iter().filter(|x| x.read).map(|x| x.bytes).sum();
            let written: u64 = tl.transfers.iter().filter(|x| !x.read).map(|x| x.bytes).sum();
            assert_eq!((read, written), (p.pm_read_bytes, p.pm_write_bytes), "{policy:?}");
            // One link: transfers never overlap, and none ends after the run.
            for w in tl.transfers.windows(2) {
                assert!(w[1].start_ns >= w[0].end_ns - 1e-6);
            }
            assert!(tl.transfers.iter().all(|x| x.end_ns <= p.total_ns + 1e-6 && x.op < 64));
            assert!(tl.ops.iter().all(|&(a, b)| a <= b && b <= p.total_ns + 1e-6));
        }
    }

    #[test]
    fn reused_durable_objects_start_in_pm() {
        let mut m = test_model();
        m.ops_ns.clear();
        let t = cyclic(4, 1_000_000, 12, 5_000_000);
        let opts = PredictOptions { migrator_threads: 2, reuse_durable: true };
        // LRU's warm start loads every key before the clock: they all fit.
        let lru = predict(&t, &m, &PolicyConfig::Lru, 10_000_000, &opts).unwrap();
        assert_eq!((lru.pm_read_bytes, lru.misses), (0, 0));
        // With room for the ciphertext and two keys it warms those two only, evicting nothing
        // for them: the other two are read on demand in the first cycle, then every pin of
        // the cycle misses (LRU on a cycle longer than DRAM).
        let lru = predict(&t, &m, &PolicyConfig::Lru, 2_250_000, &opts).unwrap();
        assert_eq!((lru.pm_read_bytes, lru.misses), (10_000_000, 10));
        // Planned loads them before the clock starts.
        let planned =
            predict(&t, &m, &PolicyConfig::planned(PrefetchRule::Conservative), 10_000_000, &opts)
                .unwrap();
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

    /// A random HE-shaped trace: durable keys and weights of mixed sizes, ops pinning a chain
    /// of ciphertexts plus one or two of them, results written and inputs removed.
    fn random_trace(seed: u64) -> Trace {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let keys = 2 + rnd(7);
        let mut ev = Vec::new();
        for k in 0..keys {
            ev.push(TraceEvent::Put {
                id: ObjectId(k),
                kind: ObjectClass::EvalKey,
                durability: TraceDurability::Durable,
                len: (1 + rnd(6)) * 4096,
            });
        }
        let ct_len = (1 + rnd(3)) * 4096;
        let mut live = vec![ObjectId(100)];
        ev.push(TraceEvent::Put {
            id: ObjectId(100),
            kind: ObjectClass::Ciphertext,
            durability: TraceDurability::Scratch,
            len: ct_len,
        });
        let ops = 10 + rnd(40);
        for next in 101..101 + ops {
            let ct = live[rnd(live.len() as u64) as usize];
            let mut pins = vec![ct, ObjectId(rnd(keys))];
            if rnd(3) == 0 {
                let k2 = ObjectId(rnd(keys));
                if !pins.contains(&k2) {
                    pins.push(k2);
                }
            }
            ev.push(TraceEvent::Op { name: "op".into(), pins, compute_ns: 2_000 + rnd(30_000) });
            ev.push(TraceEvent::Put {
                id: ObjectId(next),
                kind: ObjectClass::Ciphertext,
                durability: if rnd(5) == 0 {
                    TraceDurability::Durable
                } else {
                    TraceDurability::Scratch
                },
                len: ct_len,
            });
            live.push(ObjectId(next));
            if live.len() > 2 && rnd(2) == 0 {
                let victim = live.swap_remove(rnd(live.len() as u64) as usize);
                ev.push(TraceEvent::Remove { id: victim });
            }
        }
        Trace { header: TraceHeader::new("random"), events: ev }
    }

    #[test]
    fn fast_engine_equals_reference() {
        let mut m = test_model();
        m.ops_ns.clear();
        m.pm.read_bw = 0.3e9;
        m.pm.write_bw = 0.2e9;
        // Prefetches slower than demand loads, and sped up when waited for.
        m.pm.overlapped_read_bw = Some(0.2e9);
        m.pm.prefetch_wake_ns = 5_000.0;
        let policies = [
            PolicyConfig::Lru,
            PolicyConfig::Alpha { reserve_bytes: None },
            PolicyConfig::planned(PrefetchRule::Conservative),
            PolicyConfig::planned(PrefetchRule::Aggressive),
            PolicyConfig::planned(PrefetchRule::Conservative).with_lead(8 << 10),
            PolicyConfig::planned(PrefetchRule::Conservative).with_lead(48 << 10),
            PolicyConfig::planned_without_prefetch(),
        ];
        let mut compared = 0;
        for seed in 0..150 {
            let t = random_trace(seed);
            let lens = t.object_lens();
            let total: u64 = lens.values().sum();
            for pct in [15, 30, 55, 80, 120] {
                let budget = total * pct / 100;
                for policy in &policies {
                    for reuse in [false, true] {
                        let opts = PredictOptions { migrator_threads: 2, reuse_durable: reuse };
                        let fast = predict(&t, &m, policy, budget, &opts);
                        let slow = reference::predict_reference(&t, &m, policy, budget, &opts);
                        match (fast, slow) {
                            (Ok(f), Ok(s)) => {
                                let ctx = format!("seed {seed} {pct}% {policy:?} reuse {reuse}");
                                assert_eq!(
                                    (f.pm_read_bytes, f.pm_write_bytes, f.hits, f.misses),
                                    (s.pm_read_bytes, s.pm_write_bytes, s.hits, s.misses),
                                    "{ctx}"
                                );
                                assert_eq!(f.prefetch_evicted_unused, s.prefetch_evicted_unused);
                                assert_eq!(f.peak_dram, s.peak_dram, "{ctx}");
                                assert!(
                                    (f.total_ns - s.total_ns).abs() < 1e-6 * s.total_ns.max(1.0),
                                    "{ctx}"
                                );
                                compared += 1;
                            }
                            (Err(_), Err(_)) => {}
                            (f, s) => panic!("seed {seed} {pct}% {policy:?}: {f:?} vs {s:?}"),
                        }
                    }
                }
            }
        }
        assert!(compared > 3000, "{compared}");
    }

    #[test]
    #[ignore = "large: cargo test --release -p hetier-tiering fast_engine_scales -- --ignored"]
    fn fast_engine_scales() {
        let mut m = test_model();
        m.ops_ns.clear();
        // 200 000 pins over 40 keys and 100 000 ciphertexts: finishes in seconds.
        let keys = 40;
        let mut ev = Vec::new();
        for k in 0..keys {
            ev.push(TraceEvent::Put {
                id: ObjectId(k),
                kind: ObjectClass::EvalKey,
                durability: TraceDurability::Durable,
                len: 1 << 20,
            });
        }
        ev.push(TraceEvent::Put {
            id: ObjectId(1000),
            kind: ObjectClass::Ciphertext,
            durability: TraceDurability::Scratch,
            len: 1 << 18,
        });
        for i in 0..100_000u64 {
            ev.push(TraceEvent::Op {
                name: "ks".into(),
                pins: vec![ObjectId(1000 + i), ObjectId((i * 7) % keys)],
                compute_ns: 1_000_000,
            });
            ev.push(TraceEvent::Put {
                id: ObjectId(1001 + i),
                kind: ObjectClass::Ciphertext,
                durability: TraceDurability::Scratch,
                len: 1 << 18,
            });
            ev.push(TraceEvent::Remove { id: ObjectId(1000 + i) });
        }
        let t = Trace { header: TraceHeader::new("big"), events: ev };
        for policy in [
            PolicyConfig::Lru,
            PolicyConfig::Alpha { reserve_bytes: None },
            PolicyConfig::planned(PrefetchRule::Conservative),
        ] {
            for pct in [5u64, 25, 50, 100] {
                let budget = (keys << 20) * pct / 100 + (1 << 19);
                let p = predict(&t, &m, &policy, budget, &PredictOptions::default()).unwrap();
                assert!(p.total_ns >= p.compute_ns);
            }
        }
    }
}
