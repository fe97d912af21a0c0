//! Drive pool operations, crashes and reopens against a model: a map of the durable objects whose
//! put returned. After every step the pool must agree with the model.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use hetier_allocator::{
    Durability, Error, FaultConfig, FaultyDevice, ObjectId, ObjectKind, Pool, PoolOptions,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Put { id: u8, len: u16, fill: u8, durable: bool },
    Remove { id: u8 },
    Get { id: u8 },
    Reopen,
    Crash { torn: bool, seed: u64 },
}

fn opts() -> PoolOptions {
    PoolOptions::default().segment_size(64 << 10).table_slots(16).max_pool_bytes(1 << 20)
}

fuzz_target!(|ops: Vec<Op>| {
    let mut dev = FaultyDevice::new(0, FaultConfig::default());
    let Ok(mut pool) = Pool::create_on(Box::new(dev.clone()), opts()) else { return };
    let mut durable: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut scratch: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for op in ops.into_iter().take(64) {
        match op {
            Op::Put { id, len, fill, durable: d } => {
                let id = u64::from(id % 24);
                let bytes = vec![fill; usize::from(len) * 3];
                let class = if d { Durability::Durable } else { Durability::Scratch };
                match pool.put(ObjectId(id), ObjectKind::Blob, class, &bytes) {
                    Ok(()) => {
                        assert!(!durable.contains_key(&id) && !scratch.contains_key(&id));
                        if d {
                            durable.insert(id, bytes);
                        } else {
                            scratch.insert(id, bytes);
                        }
                    }
                    Err(Error::EmptyObject { .. }) => assert!(bytes.is_empty()),
                    Err(Error::ObjectExists { .. }) => {
                        assert!(durable.contains_key(&id) || scratch.contains_key(&id))
                    }
                    Err(Error::PoolFull { .. } | Error::TableFull { .. }) => {}
                    Err(e) => panic!("put: {e}"),
                }
            }
            Op::Remove { id } => {
                let id = u64::from(id % 24);
                let known = durable.remove(&id).is_some() | scratch.remove(&id).is_some();
                match pool.remove(ObjectId(id)) {
                    Ok(()) => assert!(known),
                    Err(Error::NotFound { .. }) => assert!(!known),
                    Err(e) => panic!("remove: {e}"),
                }
            }
            Op::Get { id } => {
                let id = u64::from(id % 24);
                let want = durable.get(&id).or_else(|| scratch.get(&id));
                match (pool.get(ObjectId(id)), want) {
                    (Ok(v), Some(w)) => assert_eq!(&v, w),
                    (Err(Error::NotFound { .. }), None) => {}
                    (got, want) => panic!("get {id}: {got:?} vs model {:?}", want.map(Vec::len)),
                }
            }
            Op::Reopen | Op::Crash { .. } => {
                let image = match op {
                    Op::Crash { torn, seed } => {
                        dev.set_tearing(torn, seed);
                        dev.crash()
                    }
                    _ => dev.live_image(),
                };
                drop(pool);
                dev = FaultyDevice::from_image(image, FaultConfig::default());
                let (p, report) =
                    Pool::open_on(Box::new(dev.clone())).expect("reopen must succeed");
                pool = p;
                assert!(report.dropped_scratch.iter().all(|m| m.durability == Durability::Scratch));
                scratch.clear();
            }
        }
        let listed: Vec<u64> = pool.list().iter().map(|m| m.id.0).collect();
        let mut expected: Vec<u64> = durable.keys().chain(scratch.keys()).copied().collect();
        expected.sort_unstable();
        assert_eq!(listed, expected);
        let s = pool.stats();
        assert_eq!(s.used_bytes + s.free_bytes, s.data_bytes);
    }
    assert!(pool.fsck().expect("fsck").is_clean());
});
