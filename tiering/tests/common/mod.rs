//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hetier_allocator::{Device, FaultConfig, FaultyDevice};
use hetier_tiering::{
    CostModel, ObjectClass, ObjectId, PolicyConfig, Pool, PoolOptions, ThrottleProfile,
    TieredStore, TraceDurability, TraceEvent,
};

pub fn opts() -> PoolOptions {
    PoolOptions::default().segment_size(1 << 20).table_slots(1024)
}

pub fn file_pool(dir: &Path) -> Pool {
    Pool::create(dir, opts()).unwrap()
}

/// A store over a fresh file pool in a temporary directory (kept alive by the returned guard).
pub fn store(
    budget: u64,
    policy: PolicyConfig,
    threads: usize,
) -> (tempfile::TempDir, TieredStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = TieredStore::builder()
        .dram_budget(budget)
        .pool(file_pool(dir.path()))
        .policy(policy)
        .migrator_threads(threads)
        .build()
        .unwrap();
    (dir, s)
}

/// A store over a fresh file pool whose PM link is throttled to 1 GB/s each way, with `model`
/// as its cost model: the real store the simulator's predictions are checked against.
pub fn throttled_store(
    dir: &Path,
    budget: u64,
    policy: PolicyConfig,
    model: &CostModel,
) -> TieredStore {
    TieredStore::builder()
        .dram_budget(budget)
        .pool(file_pool(dir))
        .policy(policy)
        .cost_model(model.clone())
        .migrator_threads(2)
        .throttle(ThrottleProfile {
            name: "test".into(),
            read_bw: 1e9,
            write_bw: 1e9,
            read_latency_ns: 0.0,
            write_latency_ns: 0.0,
            source: String::new(),
        })
        .build()
        .unwrap()
}

/// A trace's put of a durable evaluation key of `len` bytes.
pub fn durable_key_put(id: u64, len: u64) -> TraceEvent {
    TraceEvent::Put {
        id: ObjectId(id),
        kind: ObjectClass::EvalKey,
        durability: TraceDurability::Durable,
        len,
    }
}

/// Deterministic, id-dependent contents so any mix-up between objects is caught.
pub fn content(id: ObjectId, len: usize) -> Vec<u8> {
    let mut x = id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A device that fails reads / writes while the flags are set, for transfer-failure tests, and
/// holds writes while its gate is closed, so that a test can keep a transfer in flight.
#[derive(Debug)]
pub struct Flaky {
    pub inner: FaultyDevice,
    pub fail_reads: Arc<AtomicBool>,
    pub fail_writes: Arc<AtomicBool>,
    pub gate: Arc<Gate>,
}

impl Flaky {
    pub fn new() -> (Self, Arc<AtomicBool>, Arc<AtomicBool>) {
        let r = Arc::new(AtomicBool::new(false));
        let w = Arc::new(AtomicBool::new(false));
        let inner = FaultyDevice::new(0, FaultConfig::default());
        let gate = Arc::new(Gate::default());
        (Self { inner, fail_reads: Arc::clone(&r), fail_writes: Arc::clone(&w), gate }, r, w)
    }
}

impl Device for Flaky {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> hetier_allocator::Result<()> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(hetier_allocator::Error::InjectedFault { op: "read", index: 0 });
        }
        self.inner.read_at(offset, buf)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> hetier_allocator::Result<()> {
        self.gate.pass();
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(hetier_allocator::Error::InjectedFault { op: "write", index: 0 });
        }
        self.inner.write_at(offset, data)
    }
    fn flush(&self, offset: u64, len: u64) -> hetier_allocator::Result<()> {
        self.inner.flush(offset, len)
    }
    fn grow(&self, new_len: u64) -> hetier_allocator::Result<()> {
        self.inner.grow(new_len)
    }
    fn name(&self) -> &'static str {
        "flaky"
    }
}

/// The write gate of a [`Flaky`] device (open until closed); `blocked` counts writes that
/// waited at it.
#[derive(Debug, Default)]
pub struct Gate {
    closed: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
    pub blocked: std::sync::atomic::AtomicUsize,
}

impl Gate {
    pub fn close(&self) {
        *self.closed.lock().unwrap() = true;
    }

    pub fn open(&self) {
        *self.closed.lock().unwrap() = false;
        self.opened.notify_all();
    }

    fn pass(&self) {
        let mut closed = self.closed.lock().unwrap();
        if *closed {
            self.blocked.fetch_add(1, Ordering::SeqCst);
            while *closed {
                closed = self.opened.wait(closed).unwrap();
            }
        }
    }
}
