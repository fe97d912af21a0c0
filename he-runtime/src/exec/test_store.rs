//! The tiered store the exec tests run on: `planned` with prefetch over a pool of small segment
//! files, so a test's pool stays small on disk.

use hetier_tiering::{PolicyConfig, Pool, PoolOptions, TieredStore};

/// A store with a DRAM budget of `budget` bytes over the pool in `dir`, created there when
/// `create` and reopened otherwise, in segment files of `segment` bytes.
pub(crate) fn planned_store(
    dir: &std::path::Path,
    budget: u64,
    create: bool,
    segment: u64,
) -> TieredStore {
    let opts = PoolOptions::default().segment_size(segment);
    let pool =
        if create { Pool::create(dir, opts).unwrap() } else { Pool::open(dir, opts).unwrap().0 };
    TieredStore::builder()
        .dram_budget(budget)
        .pool(pool)
        .policy(PolicyConfig::Planned { prefetch: true })
        .build()
        .unwrap()
}
