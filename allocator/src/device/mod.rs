//! The device seam: a flat, growable byte address space the pool reads, writes and flushes.
//!
//! Three implementations: [`MmapDevice`] (the default), [`DirectDevice`] (O_DIRECT pread/pwrite,
//! the reference) and [`FaultyDevice`] (in memory, for crash and fault tests).

mod direct;
mod faulty;
mod files;
mod mmap;
mod seam;

pub use direct::DirectDevice;
pub use faulty::{FaultConfig, FaultyDevice};
pub(crate) use files::SegmentFiles;
pub use mmap::MmapDevice;
pub use seam::Device;
pub(crate) use seam::{check_bounds, segment_pieces};
