//! Counters the store keeps about itself.

use serde::{Deserialize, Serialize};

use crate::policy::PolicyReport;

/// A snapshot of the store's counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    /// The DRAM budget in bytes.
    pub budget: u64,
    /// DRAM bytes held right now (resident objects, in-flight loads, open block writers), each
    /// counted in whole pages as the arena places it.
    pub dram_in_use: u64,
    /// Objects in the store (both tiers).
    #[serde(default)]
    pub objects: u64,
    /// Request streams open (see `TieredStore::stream`).
    #[serde(default)]
    pub open_streams: u64,
    /// The biggest object the DRAM arena can place right now without evicting anything.
    #[serde(default)]
    pub dram_free_largest: u64,
    /// Fragmentation of the arena's free room, `1 − dram_free_largest / free room` (0 when
    /// any object that fits the budget's free bytes can be placed).
    #[serde(default)]
    pub dram_fragmentation: f64,
    /// DRAM bytes resident in the arena: live blocks plus freed pages kept for reuse. Never
    /// above the budget rounded up to a page.
    #[serde(default)]
    pub dram_resident: u64,
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
    /// Wall time during which at least one PM → DRAM read (demand load or prefetch, throttle
    /// included) was in progress, ns: `bytes_pm_to_dram` over this is the read rate the store
    /// saw, to set beside the calibrated one.
    #[serde(default)]
    pub pm_read_ns: u64,
    /// Scratch objects written back because they had to leave DRAM.
    pub writebacks: u64,
    /// Objects dropped from DRAM (clean copies, free).
    pub evictions: u64,
    /// Prefetched objects dropped from DRAM before any pin used them: wasted PM reads.
    #[serde(default)]
    pub prefetch_evicted_unused: u64,
    /// Bytes of DRAM blocks placed in memory that was not resident (faulted in, zeroed by the
    /// kernel), since the store started.
    #[serde(default)]
    pub dram_faulted: u64,
    /// Bytes of freed DRAM given back to the OS to keep resident memory within the budget,
    /// since the store started (each is faulted in again when reused).
    #[serde(default)]
    pub dram_released: u64,
    /// DRAM blocks (loads, puts, writers) placed wholly in arena memory that earlier blocks had
    /// used: no fresh pages faulted in.
    pub block_reuses: u64,
    /// Transfers that failed.
    pub transfer_failures: u64,
    /// DRAM bytes (footprints) held right now by borrowed scratch buffers
    /// (`TieredStore::scratch`); part of `dram_in_use`.
    #[serde(default)]
    pub scratch_in_use: u64,
    /// The most `scratch_in_use` has been.
    #[serde(default)]
    pub scratch_peak: u64,
    /// DRAM bytes (footprints) held right now by standing scratch reservations
    /// (`TieredStore::reserve_scratch`), lent to buffers or not; part of `dram_in_use`, and no
    /// room for objects.
    #[serde(default)]
    pub scratch_reserved: u64,
    /// Scratch buffers asked of a reservation that had not enough unlent bytes left, and so
    /// were made room for like a pin (0 when the reservation covers every step).
    #[serde(default)]
    pub scratch_beyond_reserve: u64,
    /// Times prefetching stopped at an object it had prefetched and seen evicted unused since
    /// the last pin (the guard against prefetch-evict-prefetch loops).
    #[serde(default)]
    pub prefetches_held_back: u64,
    /// What the policy reports (α for the α-partition).
    pub policy: Option<PolicyReport>,
}

/// Pins of one stream, by how they were served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStats {
    /// Pins that found the object already in DRAM (not counting prefetch hits).
    pub hits: u64,
    /// Pins that read the object from PM themselves.
    pub misses: u64,
    /// Pins served by a prefetch (landed or still in flight).
    pub prefetch_hits: u64,
    /// Pins that waited for an in-flight transfer.
    pub pin_waits: u64,
    /// Prefetches issued for an object this stream's plan uses (a prefetch of an object
    /// shared by several plans counts for each).
    pub prefetches: u64,
}
