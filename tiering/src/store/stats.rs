//! Counters the store keeps about itself.

use serde::{Deserialize, Serialize};

use crate::policy::PolicyReport;

/// A snapshot of the store's counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    /// The DRAM budget in bytes.
    pub budget: u64,
    /// DRAM bytes held right now (resident objects, in-flight loads, open block writers).
    pub dram_in_use: u64,
    /// DRAM bytes of freed blocks kept for reuse (not in `dram_in_use`; they count against the
    /// budget and are released as soon as room is needed).
    #[serde(default)]
    pub dram_spare: u64,
    /// Highest DRAM reservation ever reached, spare blocks included.
    pub peak_dram: u64,
    /// Pins that found the object already in DRAM (not counting prefetch hits).
    pub hits: u64,
    /// Pins that had to read the object from PM themselves.
    pub misses: u64,
    /// Pins served by a prefetch (finished or still in flight when the pin arrived).
    pub prefetch_hits: u64,
    /// Pins that waited for an in-flight transfer.
    pub pin_waits: u64,
    /// Prefetches issued to the migrator.
    pub prefetches: u64,
    /// Bytes read PM → DRAM (demand loads and prefetches).
    pub bytes_pm_to_dram: u64,
    /// Bytes written DRAM → PM (durable puts and scratch write-backs).
    pub bytes_dram_to_pm: u64,
    /// Number of PM → DRAM reads.
    pub pm_reads: u64,
    /// Scratch objects written back because they had to leave DRAM.
    pub writebacks: u64,
    /// Objects dropped from DRAM (clean copies, free).
    pub evictions: u64,
    /// Prefetched objects dropped from DRAM before any pin used them: wasted PM reads.
    #[serde(default)]
    pub prefetch_evicted_unused: u64,
    /// Loads and puts that reused an evicted block instead of allocating fresh pages.
    pub block_reuses: u64,
    /// Transfers that failed.
    pub transfer_failures: u64,
    /// What the policy reports (α for the α-partition).
    pub policy: Option<PolicyReport>,
}
