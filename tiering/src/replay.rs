//! Trace replayer: drives a [`TieredStore`] from a trace, simulating each op's compute time
//! with calibrated busy work. This is how traces of models far larger than the machine are
//! measured.
//!
//! Protocol (shared with [`crate::sim::predict`]): puts before the first op are setup and not
//! timed; then the timed pin sequence is hinted, initial prefetches are awaited, and the clock
//! runs over the rest. Every object is filled in place through `alloc`/`put_block` with its id
//! in the first 8 bytes, checked on every pin. An op's compute time covers its own memory
//! work — reading its pinned operands and writing the result put after it — and busy work
//! makes up the rest, so an all-DRAM replay takes the trace's compute time.

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
    /// Counter increments during the timed phase only.
    pub timed: TimedCounters,
}

/// What happened while the clock ran.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedCounters {
    /// Bytes read PM → DRAM.
    pub pm_read_bytes: u64,
    /// Bytes written DRAM → PM.
    pub pm_write_bytes: u64,
    /// Pins served from DRAM without waiting.
    pub hits: u64,
    /// Pins that loaded on demand.
    pub misses: u64,
    /// Pins served by a prefetch.
    pub prefetch_hits: u64,
    /// Pins that waited for an in-flight transfer.
    pub pin_waits: u64,
    /// Prefetched objects evicted before any pin used them.
    #[serde(default)]
    pub prefetch_evicted_unused: u64,
    /// Wall time with at least one PM read in progress (ns).
    #[serde(default)]
    pub pm_read_ns: u64,
}

impl TimedCounters {
    fn between(a: &StoreStats, b: &StoreStats) -> Self {
        Self {
            pm_read_bytes: b.bytes_pm_to_dram - a.bytes_pm_to_dram,
            pm_write_bytes: b.bytes_dram_to_pm - a.bytes_dram_to_pm,
            hits: b.hits - a.hits,
            misses: b.misses - a.misses,
            prefetch_hits: b.prefetch_hits - a.prefetch_hits,
            pin_waits: b.pin_waits - a.pin_waits,
            prefetch_evicted_unused: b.prefetch_evicted_unused - a.prefetch_evicted_unused,
            pm_read_ns: b.pm_read_ns - a.pm_read_ns,
        }
    }
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

/// Fills a fresh object in place: the id in the first word, a per-object constant after it
/// (a plain store loop, so filling runs at DRAM write bandwidth as the cost model prices it).
pub(crate) fn fill(words: &mut [u64], id: ObjectId) {
    words.fill(id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    if let Some(w) = words.first_mut() {
        *w = id.0;
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
/// otherwise from the trace. A budget too small for the trace's largest step fails with
/// [`Error::BudgetTooSmall`] (naming the smallest workable budget) before any work starts.
pub fn replay(store: &TieredStore, trace: &Trace, model: &CostModel) -> Result<ReplayReport> {
    replay_with(store, trace, model, false)
}

/// Like [`replay`]; with `reuse_durable`, a setup `put` of a durable object that the store
/// already holds with the same length (left by an earlier process, as evaluation keys are) is
/// skipped instead of rejected.
pub fn replay_with(
    store: &TieredStore,
    trace: &Trace,
    model: &CostModel,
    reuse_durable: bool,
) -> Result<ReplayReport> {
    trace.validate()?;
    // A budget too small for some step fails here, before anything is put or timed.
    store.check_working_sets(trace.working_sets())?;
    let t0 = Instant::now();
    let (setup, timed) = split_setup(trace);
    // Objects are produced in place in a budgeted block, as the HE runtime does: no source
    // buffer outside the budget. Writing a result is part of the op that produced it, so the
    // time spent filling is returned and credited against the next op's busy work.
    let put = |e: &TraceEvent| -> Result<Duration> {
        let mut filled = Duration::ZERO;
        if let TraceEvent::Put { id, kind, durability, len } = e {
            if *len < 8 || len % 8 != 0 {
                return Err(Error::InvalidConfig {
                    name: "trace object length",
                    value: len.to_string(),
                    reason: "the replayer needs whole 8-byte words to stamp ids",
                });
            }
            // Allocating and filling is producing the result; an allocation that had to write
            // a victim back to PM stalled instead, and is not credited. The fill writes every
            // word, so the block is not zeroed first (one write, as the cost model prices it).
            let writebacks = store.stats().writebacks;
            let t = Instant::now();
            let mut w = store.alloc_for_overwrite(*len)?;
            fill(w.as_u64s_mut(), *id);
            if store.stats().writebacks == writebacks {
                filled = t.elapsed();
            }
            store.put_block(*id, kind_of(*kind), durability_of(*durability), w)?;
        }
        Ok(filled)
    };
    for e in setup {
        if let TraceEvent::Put { id, len, durability: TraceDurability::Durable, .. } = e {
            let held = store
                .info(*id)
                .is_some_and(|i| i.len == *len && i.durability == Durability::Durable);
            if reuse_durable && held {
                continue;
            }
        }
        put(e)?;
    }
    store.hint(&timed_pins(trace));
    store.quiesce();
    let setup_ns = t0.elapsed().as_nanos() as u64;
    let before = store.stats();
    let start = Instant::now();
    let (mut compute_ns, mut ops) = (0u64, 0u64);
    let mut sink = 0u64;
    // Time already spent on the op's own memory work (reading its operands, writing the
    // previous result): the busy work only makes up the rest of its compute time.
    let mut credit = Duration::ZERO;
    for e in timed {
        match e {
            TraceEvent::Put { .. } => credit += put(e)?,
            TraceEvent::Remove { id } => store.remove(*id)?,
            TraceEvent::Op { name, pins, compute_ns: recorded } => {
                let guards = store.pin_all(pins)?;
                let op_start = Instant::now();
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
                let spent = op_start.elapsed() + std::mem::take(&mut credit);
                let rest = Duration::from_nanos(c).saturating_sub(spent);
                if !rest.is_zero() {
                    sink = sink.wrapping_add(busy_work(rest));
                }
                compute_ns += c;
                ops += 1;
                drop(guards);
            }
        }
    }
    std::hint::black_box(sink);
    let wall_ns = start.elapsed().as_nanos() as u64;
    let stats = store.stats();
    Ok(ReplayReport {
        wall_ns,
        setup_ns,
        compute_ns,
        ops,
        timed: TimedCounters::between(&before, &stats),
        stats,
    })
}
