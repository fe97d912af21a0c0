//! The replayer drives a store from a trace file: setup untimed, ops timed with busy work,
//! object identity checked on every pin; the cost model predicts the same traffic.

mod common;

use common::file_pool;
use hetier_tiering::replay::replay;
use hetier_tiering::sim::{predict, PredictOptions};
use hetier_tiering::{
    CostModel, ObjectClass, ObjectId, PmDescription, PolicyConfig, PrefetchRule, TierCost,
    TieredStore, Trace, TraceHeader, TraceRecorder,
};

fn model() -> CostModel {
    let t = TierCost::symmetric(1e9, 0.0);
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
    for policy in [PolicyConfig::Lru, PolicyConfig::planned(PrefetchRule::Conservative)] {
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

#[test]
fn a_budget_too_small_for_the_largest_step_fails_before_any_work() {
    let mut events = Vec::new();
    let put = |id, len| hetier_tiering::TraceEvent::Put {
        id: ObjectId(id),
        kind: ObjectClass::Blob,
        durability: hetier_tiering::TraceDurability::Scratch,
        len,
    };
    events.push(put(1, 3 * 4096));
    events.push(put(2, 4096 + 8));
    // Step 2 pins 3 + 2 pages (the second object's 4104 bytes take two whole pages).
    events.push(hetier_tiering::TraceEvent::Op {
        name: "noop".into(),
        pins: vec![ObjectId(1), ObjectId(2), ObjectId(1)],
        compute_ns: 0,
    });
    events.push(hetier_tiering::TraceEvent::Remove { id: ObjectId(1) });
    events.push(put(3, 4 * 4096));
    let trace = Trace { header: TraceHeader::new("too small"), events };
    assert_eq!(TieredStore::working_set_need(trace.working_sets()), (5 * 4096, 2));

    let dir = tempfile::tempdir().unwrap();
    let store = TieredStore::builder()
        .dram_budget(5 * 4096 - 1)
        .pool(file_pool(dir.path()))
        .policy(PolicyConfig::Lru)
        .build()
        .unwrap();
    match replay(&store, &trace, &model()) {
        Err(hetier_tiering::Error::BudgetTooSmall { budget, needed, step }) => {
            assert_eq!((budget, needed, step), (5 * 4096 - 1, 5 * 4096, 2));
        }
        other => panic!("expected BudgetTooSmall, got {other:?}"),
    }
    // Refused before any work: nothing was put.
    assert_eq!(store.stats().objects, 0);

    let dir = tempfile::tempdir().unwrap();
    let store = TieredStore::builder()
        .dram_budget(5 * 4096)
        .pool(file_pool(dir.path()))
        .policy(PolicyConfig::Lru)
        .build()
        .unwrap();
    let r = replay(&store, &trace, &model()).unwrap();
    assert_eq!(r.ops, 1);
}
