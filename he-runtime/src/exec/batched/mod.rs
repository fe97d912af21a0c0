//! The throughput executor: a model lowered batch-major ([`BatchPlan`]: one ciphertext per
//! tensor element, slot b = sample b, so one run serves up to N/2 samples) run over the
//! [`TieredStore`](hetier_tiering::TieredStore) in the same two modes as the slot-packed [`super::Executor`]:
//!
//! - **real**: every input and intermediate ciphertext is a scratch store object, pinned only
//!   while a step uses it, the relinearisation key a durable object found or put through the
//!   key-set manifest; the pin sequence is handed to the store with `hint` before the run.
//!   A linear block's per-output sums live in executor memory between its `lincomb` steps (like
//!   the hoisted decomposition of the slot-packed executor) and become store objects at its
//!   `lincomb_finish` step.
//! - **plan**: the same walk without cryptography, sizes from the parameters and times from
//!   [`OpCosts`](crate::exec::OpCosts) (`lincomb_term` per weight·ciphertext term).
//!
//! Both record the trace in the tiering crate's format: `put` of the key and of each input,
//! one `op` per step with the objects it pins, a `put` per ciphertext it writes and a `remove`
//! per ciphertext that dies.

mod executor;
mod plan;
mod session;
mod working_set;

pub use executor::BatchExecutor;
pub use plan::{
    batch_params, BatchObj, BatchPlan, BatchStep, LinBlock, Template, ACC_LIMIT, MAX_PINS,
};
pub use session::{BatchOutput, BatchSession};
