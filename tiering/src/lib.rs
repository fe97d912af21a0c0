//! hetier-tiering: a store of immutable objects that keeps hot ones in DRAM under a hard
//! budget and spills cold ones to the persistent-memory pool.
#![doc = include_str!("../README.md")]
//!
//! Modules: [`tracker`] and [`trace`] record accesses; [`cost`], [`partition`] and [`sim`]
//! price placements; [`policy`] decides eviction and prefetch; [`throttle`] emulates PM
//! devices.

pub mod belady;
pub mod busy;
pub mod calibrate;
mod calibrate_paging;
mod choice;
pub mod cost;
pub mod error;
pub mod ids;
pub mod partition;
pub mod policy;
pub mod replay;
pub mod sim;
pub mod store;
pub mod throttle;
pub mod trace;
pub mod tracker;

pub use cost::{CostModel, PmDescription, TierCost};
pub use error::{Error, Result};
pub use hetier_allocator::{Backend, Durability, ObjectKind, Pool, PoolOptions};
pub use ids::{ObjectId, StreamId, Tick};
pub use partition::{solve_alpha, Partition, PartitionItem};
pub use policy::{Policy, PolicyConfig, PolicyReport, PrefetchRule};
pub use store::{
    BlockWriter, Cancel, ObjectInfo, PinGuard, Residency, ScratchBuffer, ScratchReserve,
    StoreBuilder, StoreStats, StreamScope, StreamStats, TieredStore,
};
pub use throttle::{Throttle, ThrottleProfile};
pub use trace::{
    ObjectClass, Trace, TraceDurability, TraceEvent, TraceHeader, TraceReader, TraceRecorder,
};
pub use tracker::{AccessStats, AccessTracker};
