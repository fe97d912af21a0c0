//! What a prediction takes and gives ([`PredictOptions`], [`Prediction`]) and how a trace splits
//! into its untimed setup and timed rest. A leaf of the sim module: both engines (`fast.rs`,
//! `reference.rs`) and `mod.rs` import it.

use serde::{Deserialize, Serialize};

use crate::ids::ObjectId;
use crate::trace::{Trace, TraceEvent};

/// What the model predicts for one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Predicted wall time of the timed phase (ns).
    pub total_ns: f64,
    /// Compute time alone (ns).
    pub compute_ns: f64,
    /// Time the compute thread waited for transfers (ns).
    pub stall_ns: f64,
    /// Bytes read PM → DRAM.
    pub pm_read_bytes: u64,
    /// Bytes written DRAM → PM.
    pub pm_write_bytes: u64,
    /// Pins that found the object resident (including finished prefetches).
    pub hits: u64,
    /// Pins that loaded on demand.
    pub misses: u64,
    /// Highest DRAM reservation.
    pub peak_dram: u64,
    /// Prefetched objects evicted before any pin used them.
    #[serde(default)]
    pub prefetch_evicted_unused: u64,
}

/// Splits a trace into setup (events before the first op) and the timed rest.
pub fn split_setup(trace: &Trace) -> (&[TraceEvent], &[TraceEvent]) {
    let k = trace
        .events
        .iter()
        .position(|e| matches!(e, TraceEvent::Op { .. }))
        .unwrap_or(trace.events.len());
    trace.events.split_at(k)
}

/// The pins of the timed phase, in order: what the replayer hints.
pub fn timed_pins(trace: &Trace) -> Vec<ObjectId> {
    let (_, timed) = split_setup(trace);
    timed
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Op { pins, .. } => Some(pins.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// How the predicted run is set up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictOptions {
    /// Migrator threads of the store; 0 disables prefetch, as in the store.
    pub migrator_threads: usize,
    /// Durable setup objects already sit in the pool from an earlier process (the replayer's
    /// `reuse_durable`): they start PM-only instead of being written.
    pub reuse_durable: bool,
}

impl Default for PredictOptions {
    fn default() -> Self {
        Self { migrator_threads: 2, reuse_durable: false }
    }
}

/// One transfer on the PM link in a predicted run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    /// The object moved.
    #[serde(with = "crate::ids::serde_id")]
    pub id: ObjectId,
    /// Bytes moved.
    pub bytes: u64,
    /// PM → DRAM (a load or prefetch) when true, DRAM → PM (a write-back or durable put) when
    /// false.
    pub read: bool,
    /// When the link started it (ns from the start of the timed phase).
    pub start_ns: f64,
    /// When it finished (ns).
    pub end_ns: f64,
    /// Index of the timed-phase op that was running (or pinning) when it was issued.
    pub op: usize,
}

/// What happened when, in a predicted run: every PM transfer and every op's span.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Transfers in the order they were issued.
    pub transfers: Vec<Transfer>,
    /// (start, end) of each timed-phase op in ns: from its first pin to the end of its compute.
    pub ops: Vec<(f64, f64)>,
}
