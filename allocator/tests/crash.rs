//! Crash consistency through the device seam: run a random put/remove sequence on a
//! fault-injecting device, crash at every flush point (dropping or tearing unflushed 512 B
//! sectors), reopen, and check the promises of the durability protocol.

mod common;

use std::collections::BTreeMap;

use common::pattern;
use hetier_allocator::{
    Backend, Durability, Error, FaultConfig, FaultyDevice, ObjectId, ObjectKind, Pool, PoolOptions,
};
use proptest::prelude::*;

fn opts() -> PoolOptions {
    PoolOptions::default()
        .backend(Backend::Mmap)
        .segment_size(64 << 10)
        .table_slots(16)
        .max_pool_bytes(512 << 10)
}

#[derive(Clone, Debug)]
enum Op {
    Put { id: u64, len: usize, durable: bool },
    Remove { id: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..10, prop_oneof![1usize..5000, 5000usize..90_000], any::<bool>())
            .prop_map(|(id, len, durable)| Op::Put { id, len, durable }),
        1 => (0u64..10).prop_map(|id| Op::Remove { id }),
    ]
}

/// Bytes of the `n`-th put: distinct per put so a stale extent can never pass for a new one.
fn bytes_for(id: u64, n: usize, len: usize) -> Vec<u8> {
    pattern(id * 1000 + n as u64, len)
}

/// What the caller may rely on after running `ops` until the device crashed.
struct Outcome {
    /// Durable objects whose put returned and whose remove did not start.
    acked: BTreeMap<u64, Vec<u8>>,
    /// The operation that was interrupted by the crash: id and, for a put, its bytes.
    in_flight: Option<(u64, Option<Vec<u8>>)>,
    /// Durable objects whose remove returned (must be gone unless re-put).
    removed: Vec<u64>,
}

fn run(pool: &Pool, ops: &[Op]) -> Outcome {
    let mut acked = BTreeMap::new();
    let mut scratch = BTreeMap::new();
    let mut removed = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        match *op {
            Op::Put { id, len, durable } => {
                let data = bytes_for(id, n, len);
                let d = if durable { Durability::Durable } else { Durability::Scratch };
                match pool.put(ObjectId(id), ObjectKind::Blob, d, &data) {
                    Ok(()) => {
                        if durable {
                            acked.insert(id, data);
                        } else {
                            scratch.insert(id, data);
                        }
                        removed.retain(|&r| r != id);
                    }
                    Err(Error::Crashed) => {
                        return Outcome { acked, in_flight: Some((id, Some(data))), removed }
                    }
                    Err(
                        Error::ObjectExists { .. }
                        | Error::PoolFull { .. }
                        | Error::TableFull { .. },
                    ) => {}
                    Err(e) => panic!("unexpected put error {e}"),
                }
            }
            Op::Remove { id } => match pool.remove(ObjectId(id)) {
                Ok(()) => {
                    if acked.remove(&id).is_some() {
                        removed.push(id);
                    }
                    scratch.remove(&id);
                }
                Err(Error::Crashed) => {
                    let was = acked.remove(&id).is_some();
                    return Outcome { acked, in_flight: was.then_some((id, None)), removed };
                }
                Err(Error::NotFound { .. }) => {}
                Err(e) => panic!("unexpected remove error {e}"),
            },
        }
        // Without a crash the pool must behave like the model at every step.
        for (id, data) in acked.iter().chain(scratch.iter()) {
            match pool.get(ObjectId(*id)) {
                Ok(got) => assert_eq!(&got, data, "live read of {id}"),
                Err(Error::Crashed) => return Outcome { acked, in_flight: None, removed },
                Err(e) => panic!("live read of {id}: {e}"),
            }
        }
    }
    Outcome { acked, in_flight: None, removed }
}

fn check_after_crash(image: Vec<u8>, out: &Outcome) -> Result<(), TestCaseError> {
    let dev = FaultyDevice::from_image(image, FaultConfig::default());
    let (pool, report) = match Pool::open_on(Box::new(dev)) {
        Ok(x) => x,
        Err(e) => return Err(TestCaseError::fail(format!("reopen after crash failed: {e}"))),
    };
    for (id, data) in &out.acked {
        let got = pool.get(ObjectId(*id));
        prop_assert!(got.is_ok(), "acknowledged durable object {} lost: {:?}", id, got.err());
        prop_assert_eq!(&got.unwrap(), data, "object {} changed", id);
    }
    for m in pool.list() {
        prop_assert_eq!(m.durability, Durability::Durable, "scratch object visible after reopen");
        let id = m.id.0;
        if out.acked.contains_key(&id) {
            continue;
        }
        // The only other object allowed is the one whose put/remove was interrupted, and then only
        // whole: its checksum must verify and its bytes must be the ones that were being put.
        match &out.in_flight {
            Some((fid, Some(data))) if *fid == id => {
                prop_assert_eq!(
                    &pool.get(m.id).unwrap(),
                    data,
                    "half-written object {} visible",
                    id
                )
            }
            Some((fid, None)) if *fid == id => {
                prop_assert!(pool.get(m.id).is_ok(), "interrupted remove left a damaged object");
            }
            _ => prop_assert!(
                false,
                "object {} visible but never acknowledged (removed: {:?})",
                id,
                out.removed
            ),
        }
    }
    for m in &report.dropped_scratch {
        prop_assert_eq!(m.durability, Durability::Scratch);
    }
    let s = pool.stats();
    prop_assert_eq!(s.used_bytes + s.free_bytes, s.data_bytes, "free space does not add up");
    prop_assert_eq!(s.leaked_bytes, 0);
    let used: u64 = pool.list().iter().map(|m| m.len.div_ceil(4096) * 4096).sum();
    prop_assert_eq!(used, s.used_bytes);
    prop_assert!(pool.fsck().unwrap().is_clean());
    // The recovered pool is fully usable.
    pool.put(ObjectId(500), ObjectKind::Blob, Durability::Durable, b"after").unwrap();
    prop_assert_eq!(pool.get(ObjectId(500)).unwrap(), b"after".to_vec());
    Ok(())
}

fn crash_everywhere(ops: &[Op], torn: bool, seed: u64) -> Result<(), TestCaseError> {
    let base_dev = FaultyDevice::new(0, FaultConfig::default());
    drop(Pool::create_on(Box::new(base_dev.clone()), opts()).unwrap());
    let base = base_dev.durable_image();

    // Count the flush points of a crash-free run.
    let dry = FaultyDevice::from_image(base.clone(), FaultConfig::default());
    let (pool, _) = Pool::open_on(Box::new(dry.clone())).unwrap();
    let flushes_before = dry.flush_count();
    run(&pool, ops);
    drop(pool);
    let total = dry.flush_count();

    // Crash at each flush point, and once more after the last operation with nothing flushed.
    for k in flushes_before..=total {
        let cfg =
            FaultConfig { crash_at_flush: Some(k), torn, seed: seed ^ k, ..FaultConfig::default() };
        let dev = FaultyDevice::from_image(base.clone(), cfg);
        let (pool, _) = Pool::open_on(Box::new(dev.clone())).unwrap();
        let out = run(&pool, ops);
        let image = dev.crash();
        drop(pool);
        check_after_crash(image, &out)
            .map_err(|e| TestCaseError::fail(format!("crash at flush {k} (torn {torn}): {e}")))?;
    }
    Ok(())
}

proptest! {
    // HETIER_CRASH_CASES=2000 cargo test --release -p hetier-allocator --test crash  runs longer.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("HETIER_CRASH_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(96)
    ))]

    #[test]
    fn crash_at_every_flush_point(ops in proptest::collection::vec(op(), 1..24)) {
        crash_everywhere(&ops, false, 0)?;
    }

    #[test]
    fn crash_with_torn_sectors_at_every_flush_point(
        ops in proptest::collection::vec(op(), 1..24),
        seed in any::<u64>(),
    ) {
        crash_everywhere(&ops, true, seed)?;
    }
}

/// An I/O error (not a crash) in the middle of a put leaves the pool consistent and usable, and a
/// reopen afterwards sees exactly the acknowledged objects.
#[test]
fn injected_write_and_flush_faults_leave_a_consistent_pool() {
    for (fail_write, fail_flush) in [
        (Some(0), None),
        (Some(1), None),
        (Some(2), None),
        (None, Some(0)),
        (None, Some(1)),
        (None, Some(2)),
    ] {
        let base_dev = FaultyDevice::new(0, FaultConfig::default());
        drop(Pool::create_on(Box::new(base_dev.clone()), opts()).unwrap());
        let cfg = FaultConfig { fail_write, fail_flush, ..FaultConfig::default() };
        let dev = FaultyDevice::from_image(base_dev.durable_image(), cfg);
        let (pool, _) = Pool::open_on(Box::new(dev.clone())).unwrap();
        // Open issues no writes or flushes on a clean pool, so the fault indices hit the puts.
        assert_eq!((dev.write_count(), dev.flush_count()), (0, 0));
        let a = pattern(1, 10_000);
        let b = pattern(2, 20_000);
        let ra = pool.put(ObjectId(1), ObjectKind::Blob, Durability::Durable, &a);
        let rb = pool.put(ObjectId(2), ObjectKind::Blob, Durability::Durable, &b);
        let failed = [&ra, &rb].iter().filter(|r| r.is_err()).count();
        assert!(failed <= 1, "one fault should fail at most one put: {ra:?} {rb:?}");
        for (r, id, data) in [(&ra, 1, &a), (&rb, 2, &b)] {
            match r {
                Ok(()) => assert_eq!(&pool.get(ObjectId(id)).unwrap(), data),
                Err(Error::InjectedFault { .. }) => assert!(pool.meta(ObjectId(id)).is_none()),
                Err(e) => panic!("{e}"),
            }
        }
        let s = pool.stats();
        assert_eq!(s.used_bytes + s.free_bytes + s.leaked_bytes, s.data_bytes);
        assert!(pool.fsck().unwrap().is_clean());
        // The failed id can be put again.
        for (id, data) in [(1, &a), (2, &b)] {
            if pool.meta(ObjectId(id)).is_none() {
                pool.put(ObjectId(id), ObjectKind::Blob, Durability::Durable, data).unwrap();
            }
        }
        drop(pool);
        let (pool, _) = Pool::open_on(Box::new(FaultyDevice::from_image(
            dev.durable_image(),
            FaultConfig::default(),
        )))
        .unwrap();
        assert_eq!(pool.get(ObjectId(1)).unwrap(), a);
        assert_eq!(pool.get(ObjectId(2)).unwrap(), b);
    }
}
