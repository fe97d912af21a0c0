//! hetier-he: an RNS-CKKS runtime whose math works on any `AsRef<[u64]>` container.

pub mod ckks;
pub mod error;
#[cfg(feature = "store")]
pub mod exec;
pub mod math;
pub mod model;
pub mod nn;

pub use error::{Error, Result};
