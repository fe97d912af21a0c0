//! The cost model's simulation and the real store agree on a deterministic key-switch trace:
//! same bytes read from PM, and no prefetched object is evicted before it is used.

mod common;

use common::{durable_key_put, throttled_store};
use hetier_tiering::replay::replay;
use hetier_tiering::sim::{predict, PredictOptions};
use hetier_tiering::{
    CostModel, ObjectClass, ObjectId, PmDescription, PolicyConfig, PrefetchRule, TierCost, Trace,
    TraceDurability, TraceEvent, TraceHeader,
};

const CT0: u64 = 1_000_000;

/// The benchmark's workload: `keys` keys cycled by `ops` key switches, each writing a new
/// ciphertext and removing the old one.
fn key_switches(keys: u64, key_len: u64, ct_len: u64, ops: u64, compute_ns: u64) -> Trace {
    let mut ev = Vec::new();
    for k in 0..keys {
        ev.push(durable_key_put(k, key_len));
    }
    ev.push(TraceEvent::Put {
        id: ObjectId(CT0),
        kind: ObjectClass::Ciphertext,
        durability: TraceDurability::Scratch,
        len: ct_len,
    });
    for i in 0..ops {
        ev.push(TraceEvent::Op {
            name: "key_switch".into(),
            pins: vec![ObjectId(CT0 + i), ObjectId(i % keys)],
            compute_ns,
        });
        ev.push(TraceEvent::Put {
            id: ObjectId(CT0 + i + 1),
            kind: ObjectClass::Ciphertext,
            durability: TraceDurability::Scratch,
            len: ct_len,
        });
        ev.push(TraceEvent::Remove { id: ObjectId(CT0 + i) });
    }
    Trace { header: TraceHeader::new("key switches"), events: ev }
}

fn model(read_bw: f64) -> CostModel {
    CostModel {
        dram: TierCost::symmetric(20e9, 0.0),
        pm: TierCost::symmetric(read_bw, 0.0),
        pm_description: PmDescription { label: "test".into(), emulated: true },
        ops_ns: Default::default(),
    }
}

#[test]
fn store_reads_what_the_simulator_predicts() {
    let (key_len, ct_len, keys, ops) = (120 << 10, 32 << 10, 24u64, 48u64);
    let footprint = keys * key_len + 2 * ct_len;
    let m = model(1e9);
    let compute_ns = (1.2 * key_len as f64 / 1e9 * 1e9) as u64;
    let trace = key_switches(keys, key_len, ct_len, ops, compute_ns);
    let rules = [PrefetchRule::Conservative, PrefetchRule::Aggressive];
    for (pct, rule) in [10u64, 25, 50].into_iter().flat_map(|p| rules.map(|r| (p, r))) {
        let budget = footprint * pct / 100;
        let dir = tempfile::tempdir().unwrap();
        let store = throttled_store(dir.path(), budget, PolicyConfig::planned(rule), &m);
        let r = replay(&store, &trace, &m).unwrap();
        let p =
            predict(&trace, &m, &PolicyConfig::planned(rule), budget, &PredictOptions::default())
                .unwrap();
        assert_eq!(r.timed.prefetch_evicted_unused, 0, "{pct}% {rule:?}: {:?}", r.timed);
        assert_eq!(r.timed.pm_read_bytes, p.pm_read_bytes, "{pct}% {rule:?}");
    }
}
