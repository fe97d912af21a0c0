//! [`RunReport`]: what one run of an executor did, shared by the slot-packed and the
//! batch-major executors.

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunReport {
    /// Steps executed.
    pub steps: usize,
    /// Sum of the steps' compute times (measured in real mode, estimated in plan mode).
    pub compute_ns: u64,
    /// The part of `compute_ns` spent in bootstraps (not counted in the layers' times).
    pub bootstrap_ns: u64,
    /// Damaged pool objects regenerated from their source during this run (by a session).
    pub healed: usize,
    /// Bootstraps whose two EvalMod halves ran side by side on a partner scratch (a pool of
    /// two threads or more, and room in the budget for its buffers beside the run's largest
    /// working set); the others ran one half after the other.
    pub eval_mods_side_by_side: u64,
}
