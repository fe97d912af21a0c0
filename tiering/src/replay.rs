//! Trace replayer: drives a [`TieredStore`] from a trace, simulating each op's compute time
//! with calibrated busy work. This is how traces of models far larger than the machine are
//! measured.
//!
//! Protocol (shared with [`crate::sim::predict`]): puts before the first op are setup and not
//! timed; then the timed pin sequence is hinted, initial prefetches are awaited, and the clock
//! runs over the rest. Every object's first 8 bytes carry its id, checked on every pin.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::busy::busy_work;
use crate::cost::CostModel;
use crate::error::{Error, Result};
use crate::ids::ObjectId;
use crate::sim::{split_setup, timed_pins};
use crate::store::{StoreStats, TieredStore};
use crate::trace::{ObjectClass, Trace, TraceDurability, TraceEvent};
use hetier_allocator::{Durability, ObjectKind};

/// What a replay measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayReport {
    /// Wall time of the timed phase (ns).
    pub wall_ns: u64,
    /// Wall time of setup, hint and initial prefetch (ns).
    pub setup_ns: u64,
    /// Sum of the simulated compute times (ns).
    pub compute_ns: u64,
    /// Ops executed.
    pub ops: u64,
    /// The store's counters at the end (covering setup too).
    pub stats: StoreStats,
}

/// Maps a trace's object class to the allocator's kind.
pub fn kind_of(class: ObjectClass) -> ObjectKind {
    match class {
        ObjectClass::Ciphertext => ObjectKind::Ciphertext,
        ObjectClass::EvalKey => ObjectKind::EvalKey { galois_element: 0, level: 0, digit: 0 },
        ObjectClass::Plaintext => ObjectKind::Plaintext,
        ObjectClass::Blob => ObjectKind::Blob,
    }
}

fn durability_of(d: TraceDurability) -> Durability {
    match d {
        TraceDurability::Durable => Durability::Durable,
        TraceDurability::Scratch => Durability::Scratch,
    }
}

/// Reusable source bytes for puts, stamped with the id.
struct Source {
    buf: Vec<u8>,
}

impl Source {
    fn new(trace: &Trace) -> Self {
        let max = trace.object_lens().values().copied().max().unwrap_or(0) as usize;
        let mut buf = vec![0u8; max.max(8)];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        Self { buf }
    }

    fn bytes_for(&mut self, id: ObjectId, len: u64) -> &[u8] {
        self.buf[..8].copy_from_slice(&id.0.to_le_bytes());
        &self.buf[..len as usize]
    }
}

/// Touches one word per 4 KiB page, as a kernel would have to fault each page in, and checks
/// the id stamp.
pub(crate) fn touch(bytes: &[u8]) -> u64 {
    let mut acc = 0u64;
    for page in bytes.chunks(4096) {
        acc = acc.wrapping_add(page[0] as u64);
    }
    acc
}

fn stamped_id(bytes: &[u8]) -> Option<u64> {
    bytes.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
}

/// Replays `trace` on `store`. Op compute times come from `model` when it knows the op name,
/// otherwise from the trace.
pub fn replay(store: &TieredStore, trace: &Trace, model: &CostModel) -> Result<ReplayReport> {
    trace.validate()?;
    let mut src = Source::new(trace);
    let t0 = Instant::now();
    let (setup, timed) = split_setup(trace);
    let put = |src: &mut Source, e: &TraceEvent| -> Result<()> {
        if let TraceEvent::Put { id, kind, durability, len } = e {
            if *len < 8 {
                return Err(Error::InvalidConfig {
                    name: "trace object length",
                    value: len.to_string(),
                    reason: "the replayer stamps 8-byte ids into every object",
                });
            }
            store.put(*id, kind_of(*kind), durability_of(*durability), src.bytes_for(*id, *len))?;
        }
        Ok(())
    };
    for e in setup {
        put(&mut src, e)?;
    }
    store.hint(&timed_pins(trace));
    store.quiesce();
    let setup_ns = t0.elapsed().as_nanos() as u64;
    let start = Instant::now();
    let (mut compute_ns, mut ops) = (0u64, 0u64);
    let mut sink = 0u64;
    for e in timed {
        match e {
            TraceEvent::Put { .. } => put(&mut src, e)?,
            TraceEvent::Remove { id } => store.remove(*id)?,
            TraceEvent::Op { name, pins, compute_ns: recorded } => {
                let guards = store.pin_all(pins)?;
                for g in &guards {
                    if stamped_id(g) != Some(g.id().0) {
                        return Err(Error::TraceFormat {
                            line: 0,
                            reason: format!("object {} came back with foreign bytes", g.id()),
                        });
                    }
                    sink = sink.wrapping_add(touch(g));
                }
                let c = model.op_ns(name, *recorded).max(0.0) as u64;
                sink = sink.wrapping_add(busy_work(Duration::from_nanos(c)));
                compute_ns += c;
                ops += 1;
                drop(guards);
            }
        }
    }
    std::hint::black_box(sink);
    Ok(ReplayReport {
        wall_ns: start.elapsed().as_nanos() as u64,
        setup_ns,
        compute_ns,
        ops,
        stats: store.stats(),
    })
}
