//! Random pin / put / remove sequences from several threads: the budget is never exceeded,
//! pinned bytes never change under a guard, nothing deadlocks and every error is typed.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{content, file_pool};
use hetier_tiering::{
    Durability, Error, ObjectId, ObjectKind, PolicyConfig, PrefetchRule, TieredStore,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Put { id: u64, kilobytes: usize, durable: bool },
    Pin { ids: Vec<u64>, hold_us: u64 },
    Remove { id: u64 },
    Hint { ids: Vec<u64> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..24, 1usize..24, any::<bool>()).prop_map(|(id, kilobytes, durable)| Op::Put {
            id,
            kilobytes,
            durable
        }),
        (proptest::collection::vec(0u64..24, 1..4), 0u64..300)
            .prop_map(|(ids, hold_us)| Op::Pin { ids, hold_us }),
        (0u64..24).prop_map(|id| Op::Remove { id }),
        proptest::collection::vec(0u64..24, 0..30).prop_map(|ids| Op::Hint { ids }),
    ]
}

fn policy() -> impl Strategy<Value = PolicyConfig> {
    prop_oneof![
        Just(PolicyConfig::Lru),
        Just(PolicyConfig::planned(PrefetchRule::Conservative)),
        Just(PolicyConfig::planned_without_prefetch()),
        Just(PolicyConfig::Alpha { reserve_bytes: None }),
    ]
}

/// Object lengths are a function of the id and a generation, so readers can check contents:
/// `len = kilobytes * 1024`, bytes = content(id + 1000 * generation).
fn run(budget_kb: u64, policy: PolicyConfig, threads: Vec<Vec<Op>>) {
    let dir = tempfile::tempdir().unwrap();
    let store = TieredStore::builder()
        .dram_budget(budget_kb * 1024)
        .pool(file_pool(dir.path()))
        .policy(policy)
        .cost_model(hetier_tiering::cost::CostModel {
            dram: hetier_tiering::TierCost::symmetric(10e9, 100.0),
            pm: hetier_tiering::TierCost::symmetric(1e9, 1000.0),
            pm_description: hetier_tiering::PmDescription { label: "test".into(), emulated: false },
            ops_ns: Default::default(),
        })
        .migrator_threads(2)
        .build()
        .unwrap();
    // Per id: the generation currently stored (0 = absent); bumping it before each put makes
    // every incarnation's bytes distinct.
    let gens: Arc<Vec<AtomicU64>> = Arc::new((0..24).map(|_| AtomicU64::new(0)).collect());
    let next_gen = AtomicU64::new(1);
    std::thread::scope(|sc| {
        for ops in threads {
            let store = &store;
            let gens = Arc::clone(&gens);
            let next_gen = &next_gen;
            sc.spawn(move || {
                for op in ops {
                    match op {
                        Op::Put { id, kilobytes, durable } => {
                            let g = next_gen.fetch_add(1, Ordering::SeqCst);
                            let key = ObjectId(id + 1000 * g);
                            let bytes = content(key, kilobytes * 1024);
                            let d = if durable { Durability::Durable } else { Durability::Scratch };
                            // Claim the id first so readers know which generation to expect.
                            if gens[id as usize]
                                .compare_exchange(0, g, Ordering::SeqCst, Ordering::SeqCst)
                                .is_err()
                            {
                                continue;
                            }
                            match store.put(ObjectId(id), ObjectKind::Blob, d, &bytes) {
                                Ok(()) => {}
                                Err(e) => panic!("put failed: {e}"),
                            }
                        }
                        Op::Pin { ids, hold_us } => {
                            let mut guards = Vec::new();
                            for id in ids {
                                match store.pin(ObjectId(id)) {
                                    Ok(g) => guards.push((id, g)),
                                    Err(Error::UnknownObject { .. })
                                    | Err(Error::PinnedSetTooLarge { .. })
                                    | Err(Error::ObjectLargerThanBudget { .. }) => {}
                                    Err(e) => panic!("unexpected pin error: {e}"),
                                }
                            }
                            let snap: Vec<u8> =
                                guards.iter().flat_map(|(_, g)| g[..8].to_vec()).collect();
                            std::thread::sleep(Duration::from_micros(hold_us));
                            for (i, (id, g)) in guards.iter().enumerate() {
                                // Pinned bytes never move or change while the guard lives.
                                assert_eq!(&g[..8], &snap[i * 8..i * 8 + 8]);
                                let gen = gens[*id as usize].load(Ordering::SeqCst);
                                let key = ObjectId(id + 1000 * gen);
                                assert_eq!(&g[..], &content(key, g.len())[..], "object {id}");
                                assert!(store.residency(ObjectId(*id)).is_some());
                            }
                            let st = store.stats();
                            assert!(st.dram_in_use <= st.budget);
                            // The arena is the budget rounded up to a page: all it can touch.
                            assert!(st.dram_resident <= st.budget.next_multiple_of(4096));
                        }
                        Op::Remove { id } => match store.remove(ObjectId(id)) {
                            Ok(()) => gens[id as usize].store(0, Ordering::SeqCst),
                            Err(Error::UnknownObject { .. }) | Err(Error::ObjectPinned { .. }) => {}
                            Err(e) => panic!("unexpected remove error: {e}"),
                        },
                        Op::Hint { ids } => {
                            let ids: Vec<ObjectId> = ids.into_iter().map(ObjectId).collect();
                            store.hint(&ids);
                        }
                    }
                }
            });
        }
    });
    store.quiesce();
    let st = store.stats();
    let budget = budget_kb * 1024;
    assert!(st.peak_dram <= budget, "store peak {} > budget {budget}", st.peak_dram);
    assert!(
        store.allocator_peak() <= budget,
        "allocator peak {} > {budget}",
        store.allocator_peak()
    );
    assert_eq!(st.transfer_failures, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn budget_never_exceeded(
        budget_kb in 8u64..96,
        policy in policy(),
        threads in proptest::collection::vec(proptest::collection::vec(op(), 1..40), 2..4),
    ) {
        run(budget_kb, policy, threads);
    }
}
