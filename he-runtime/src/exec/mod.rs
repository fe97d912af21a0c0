//! The executor of an nn [`Program`](crate::nn::Program) over the
//! [`TieredStore`](hetier_tiering::TieredStore), in two modes that share one
//! code path:
//!
//! - **real**: every ciphertext, encoded weight and evaluation key is a store object (keys and
//!   weights durable, each rotation key its own object; ciphertexts scratch), pinned only while
//!   a step uses it. Before running, the pin sequence is handed to the store with `hint` so the
//!   `planned` policy can prefetch. Keys are found through a key-set manifest and reused by
//!   later processes.
//! - **plan**: the same walk without cryptography, emitting the same events with sizes from the
//!   parameters and compute times from [`OpCosts`].
//!
//! Both record a trace in the tiering crate's format: `put` of each key, weight and ciphertext,
//! one `op` per step with the objects it pins, `remove` of each dead ciphertext. A hoisted
//! rotation is one `hoist` step (pins the source; its decomposition then lives in process
//! memory) and one `rotate_hoisted` step per rotation (pins that key), so no step pins more
//! than three objects. The manifest itself is bookkeeping and is not traced.

pub mod batched;
mod bootstrap;
mod compute;
mod costs;
mod deep_plan;
mod diagonals;
mod error;
mod executor;
mod heal;
pub mod ids;
mod key_in_place;
mod key_manifest;
mod key_words;
mod keys;
mod memory;
mod prepare;
mod real;
mod report;
mod run;
pub mod serve;
mod session;
mod steps;
mod stored_key;
#[cfg(test)]
mod test_store;
#[cfg(test)]
mod tests_diagonals;
#[cfg(test)]
mod tests_key_digits;
#[cfg(test)]
mod tests_key_in_place;
pub mod train;
pub mod wire;

pub use batched::{BatchExecutor, BatchPlan, BatchSession};
pub use bootstrap::{bootstrap_working_set, Expansion, StoredBootstrapKeys};
pub use costs::OpCosts;
pub use deep_plan::{plan_compiled, PlanSummary, WeightMode};
pub use diagonals::{pinned_diagonal_bytes, DiagonalReport, DiagonalStorage, StoredCoefficients};
pub use error::{Error, Result, StoreError};
pub use executor::Executor;
pub use heal::{
    derivable_damage, healed_line, program_role, ObjectRole, REMEDY_CIPHERTEXT, REMEDY_DERIVABLE,
};
pub use ids::{weights_tag, KeySetId};
pub use key_in_place::{KeyInUse, PinnedPackedKey};
pub use key_manifest::decode_manifest;
pub use key_words::{ExpandedKey, ExpansionBlocks, KeyPinTimes, KeyWords};
pub use keys::{GeneratedKeys, KeyForm, KeyMaker, KeyReport, KeySet, StoredKey};
pub use report::RunReport;
pub use serve::{Client, Response, Server, ServerOptions, ServerStats};
pub use session::Session;
pub use wire::EvalKeyBundle;
