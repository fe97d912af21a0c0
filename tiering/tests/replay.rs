//! The replayer drives a store from a trace file: setup untimed, ops timed with busy work,
//! object identity checked on every pin; the cost model predicts the same traffic.

mod common;

use common::file_pool;
use hetier_tiering::replay::replay;
use hetier_tiering::sim::{predict, PredictOptions};
use hetier_tiering::{
    CostModel, ObjectClass, ObjectId, PmDescription, PolicyConfig, TierCost, TieredStore, Trace,
    TraceHeader, TraceRecorder,
};

fn model() -> CostModel {
    let t = TierCost { read_bw: 1e9, write_bw: 1e9, read_latency_ns: 0.0, write_latency_ns: 0.0 };
    CostModel {
        dram: t.clone(),
        pm: t,
        pm_description: PmDescription { label: "test".into(), emulated: false },
        ops_ns: [("noop".to_owned(), 0.0)].into_iter().collect(),
    }
}

#[test]
fn replays_a_recorded_trace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ks.jsonl");
    let mut rec = TraceRecorder::create(&path, TraceHeader::new("replay test")).unwrap();
    let klen = 64 * 1024;
    for k in 0..6 {
        rec.put(ObjectId(k), ObjectClass::EvalKey, hetier_tiering::TraceDurability::Durable, klen)
            .unwrap();
    }
    rec.put(
        ObjectId(100),
        ObjectClass::Ciphertext,
        hetier_tiering::TraceDurability::Scratch,
        16 * 1024,
    )
    .unwrap();
    let mut ct = 100;
    for i in 0..18u64 {
        rec.op("key_switch", &[ObjectId(ct), ObjectId(i % 6)], 200_000).unwrap();
        rec.put(
            ObjectId(ct + 1),
            ObjectClass::Ciphertext,
            hetier_tiering::TraceDurability::Scratch,
            16 * 1024,
        )
        .unwrap();
        rec.remove(ObjectId(ct)).unwrap();
        ct += 1;
    }
    rec.op("noop", &[ObjectId(ct)], 5_000_000).unwrap();
    assert_eq!(rec.events(), 6 + 1 + 18 * 3 + 1);
    rec.finish().unwrap();

    let trace = Trace::load(&path).unwrap();
    let budget = 3 * klen + 2 * 16 * 1024;
    for policy in [PolicyConfig::Lru, PolicyConfig::Planned { prefetch: true }] {
        let pool_dir = tempfile::tempdir().unwrap();
        let store = TieredStore::builder()
            .dram_budget(budget)
            .pool(file_pool(pool_dir.path()))
            .policy(policy.clone())
            .build()
            .unwrap();
        let r = replay(&store, &trace, &model()).unwrap();
        assert_eq!(r.ops, 19);
        // The model overrides "noop" to 0; key switches keep the trace's 0.2 ms.
        assert_eq!(r.compute_ns, 18 * 200_000);
        assert!(r.wall_ns >= r.compute_ns);
        assert!(r.stats.peak_dram <= budget);
        let p = predict(&trace, &model(), &policy, budget, &PredictOptions::default()).unwrap();
        assert!(p.peak_dram <= budget);
        if policy == PolicyConfig::Lru {
            // LRU has no timing-dependent decisions: the model's traffic is the store's.
            assert_eq!(p.misses, r.stats.misses);
        }
        assert!(!store.contains(ObjectId(100)) && store.contains(ObjectId(ct)));
    }
}
