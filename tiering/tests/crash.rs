//! After a simulated crash (the allocator's crash device) durable objects are intact, scratch
//! objects are gone, and a store reopens on the recovered pool.

mod common;

use common::{content, opts};
use hetier_allocator::{FaultConfig, FaultyDevice};
use hetier_tiering::{
    Durability, ObjectId, ObjectKind, PolicyConfig, Pool, PrefetchRule, Residency, TieredStore,
};

const K: usize = 4096;

#[test]
fn durable_objects_survive_and_store_reopens() {
    let dev = FaultyDevice::new(0, FaultConfig { torn: true, seed: 7, ..FaultConfig::default() });
    let pool = Pool::create_on(Box::new(dev.clone()), opts()).unwrap();
    let s = TieredStore::builder()
        .dram_budget(8 * K as u64)
        .pool(pool)
        .policy(PolicyConfig::Lru)
        .migrator_threads(1)
        .build()
        .unwrap();
    let durable: Vec<ObjectId> = (0..6).map(ObjectId).collect();
    for id in &durable {
        s.put(
            *id,
            ObjectKind::EvalKey { galois_element: 5, level: 3, digit: 0 },
            Durability::Durable,
            &content(*id, 3 * K),
        )
        .unwrap();
    }
    // Scratch objects, some written back to PM by eviction (never flushed), some DRAM-only.
    for i in 100..106 {
        let id = ObjectId(i);
        s.put(id, ObjectKind::Ciphertext, Durability::Scratch, &content(id, 2 * K)).unwrap();
    }
    for i in 100..106 {
        let _ = s.pin(ObjectId(i)).unwrap();
    }
    assert!(s.stats().writebacks > 0, "some scratch must have been written back");
    // Crash with everything still open: unflushed sectors survive at random (torn).
    let image = dev.crash();
    drop(s);

    let (pool, report) =
        Pool::open_on(Box::new(FaultyDevice::from_image(image, FaultConfig::default()))).unwrap();
    assert_eq!(report.durable_objects, 6);
    let s = TieredStore::builder()
        .dram_budget(8 * K as u64)
        .pool(pool)
        .policy(PolicyConfig::planned(PrefetchRule::Conservative))
        .build()
        .unwrap();
    s.hint(&durable);
    for id in &durable {
        assert_eq!(s.residency(*id).map(|r| r != Residency::DramOnly), Some(true));
        let g = s.pin(*id).unwrap();
        assert_eq!(&g[..], &content(*id, 3 * K)[..], "durable object {id} intact");
    }
    for i in 100..106 {
        assert!(s.residency(ObjectId(i)).is_none(), "scratch {i} dropped on reopen");
    }
    // The reopened store is fully usable.
    let n = ObjectId(200);
    s.put(n, ObjectKind::Blob, Durability::Durable, &content(n, K)).unwrap();
    assert_eq!(&s.pin(n).unwrap()[..], &content(n, K)[..]);
}
