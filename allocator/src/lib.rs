//! hetier-allocator: a DRAM tier under a hard byte budget and a crash-consistent,
//! checksummed persistent-memory pool. It knows bytes, tiers and durability — nothing about HE.
//!
//! ```
//! use hetier_allocator::{Durability, ObjectId, ObjectKind, Pool, PoolOptions};
//! # fn main() -> hetier_allocator::Result<()> {
//! let dir = tempfile::tempdir().expect("temp dir");
//! let opts = PoolOptions::default().segment_size(1 << 20).table_slots(64);
//! let pool = Pool::create(dir.path(), opts)?;
//! pool.put(ObjectId(1), ObjectKind::Blob, Durability::Durable, b"hello")?;
//! drop(pool);
//! let (pool, report) = Pool::open(dir.path(), opts)?;
//! assert_eq!(pool.get(ObjectId(1))?, b"hello");
//! assert_eq!(report.durable_objects, 1);
//! # Ok(())
//! # }
//! ```

pub mod device;
mod dram;
mod error;
mod extent;
pub mod format;
pub mod heap;
mod object;
mod pagecache;
mod pool;
mod resident;
mod sys;
pub mod usage;

pub use device::{Device, DirectDevice, FaultConfig, FaultyDevice, MmapDevice};
pub use dram::{DramBlock, DramStats, DramTier};
pub use error::{Error, Result};
pub use object::{ByteOffset, Durability, ObjectId, ObjectKind, ObjectMeta};
pub use pagecache::drop_page_cache;
pub use pool::{Backend, FsckReport, OpenReport, Pool, PoolOptions, PoolStats};
