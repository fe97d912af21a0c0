//! The crate's single error type.

use crate::ids::{ObjectId, StreamId};

/// Everything that can go wrong in the tiering engine, with the numbers that explain it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The objects that must be in DRAM at once (already pinned plus the new request) exceed
    /// the budget, so the request can never be satisfied by evicting unpinned objects.
    #[error(
        "pinned set does not fit the DRAM budget: {requested} B requested (object {id:?}) \
         while {pinned} B are pinned (budget {budget} B)"
    )]
    PinnedSetTooLarge {
        /// Object whose residency was requested (`None` for a block writer).
        id: Option<ObjectId>,
        /// Bytes the request needs (its length in whole pages, as DRAM is placed).
        requested: u64,
        /// Bytes held by pins (and pinned-for-write blocks), in whole pages, when the request
        /// was made.
        pinned: u64,
        /// The store's DRAM budget.
        budget: u64,
    },
    /// A plan holds more DRAM at once in one of its steps than the budget allows; found before
    /// any of its work starts.
    #[error(
        "DRAM budget of {budget} B is too small for this plan: step {step} holds {needed} B at \
         once (in whole pages); the smallest workable budget is {needed} B"
    )]
    BudgetTooSmall {
        /// The store's DRAM budget.
        budget: u64,
        /// The most any step holds at once: the smallest budget the plan can run in.
        needed: u64,
        /// Index of the first step that needs that much.
        step: usize,
    },
    /// An object is larger than the whole DRAM budget and can never be pinned.
    #[error("object of {len} B can never fit the DRAM budget of {budget} B")]
    ObjectLargerThanBudget {
        /// Length of the object.
        len: u64,
        /// The store's DRAM budget.
        budget: u64,
    },
    /// No object with this id exists in the store.
    #[error("unknown object {id}")]
    UnknownObject {
        /// The id that was looked up.
        id: ObjectId,
    },
    /// Objects must have at least one byte (the pool cannot store empty ones).
    #[error("object {id:?} is empty")]
    EmptyObject {
        /// The object's id (`None` for a block writer).
        id: Option<ObjectId>,
    },
    /// An object with this id already exists; objects are immutable once written.
    #[error("object {id} already exists")]
    DuplicateObject {
        /// The id that was reused.
        id: ObjectId,
    },
    /// The object is pinned and cannot be removed until every guard is dropped.
    #[error("object {id} is pinned {pins} time(s) and cannot be removed")]
    ObjectPinned {
        /// The pinned object.
        id: ObjectId,
        /// Number of live guards.
        pins: u32,
    },
    /// A transfer between the tiers failed; the object stays readable from its other copy.
    #[error("transfer of object {id} ({direction}) failed: {reason}")]
    TransferFailed {
        /// Object being moved.
        id: ObjectId,
        /// `"pm->dram"` or `"dram->pm"`.
        direction: &'static str,
        /// The underlying failure, rendered.
        reason: String,
    },
    /// An object's bytes in the pool fail the checksum recorded when they were written: the
    /// pool's copy is damaged (the object stays in the store until removed).
    #[error(
        "object {id} is damaged in the pool: checksum stored {stored:#010x}, computed {computed:#010x}"
    )]
    Damaged {
        /// The damaged object.
        id: ObjectId,
        /// Checksum recorded when it was written.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// The persistent-memory pool or the DRAM allocator reported an error (its own message,
    /// said once).
    #[error(transparent)]
    Allocator(#[from] hetier_allocator::Error),
    /// A trace file is malformed.
    #[error("trace line {line}: {reason}")]
    TraceFormat {
        /// 1-based line number (the header is line 1).
        line: u64,
        /// What was wrong.
        reason: String,
    },
    /// A trace file has a format version this build cannot read.
    #[error("trace format version {found} is not supported (this build reads {supported})")]
    TraceVersion {
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// Reading or writing a trace or profile file failed.
    /// (The OS error is said in the message, not again as a source.)
    #[error("io on {path}: {cause}")]
    Io {
        /// The file involved.
        path: String,
        /// The OS error.
        cause: std::io::Error,
    },
    /// A JSON profile or configuration could not be parsed or written.
    /// (The parser's error is said in the message, not again as a source.)
    #[error("json ({what}): {cause}")]
    Json {
        /// What was being parsed.
        what: &'static str,
        /// The serde error.
        cause: serde_json::Error,
    },
    /// The request of this stream was cancelled: its pins fail from then on, so it stops at
    /// its next step and its scratch objects can be dropped.
    #[error("request stream {stream} was cancelled")]
    Cancelled {
        /// The cancelled stream.
        stream: StreamId,
    },
    /// A stream scope was opened for a stream that is already open (or for the default one).
    #[error("request stream {stream} is already open (or is the default stream 0)")]
    StreamInUse {
        /// The stream asked for.
        stream: StreamId,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {name} = {value} ({reason})")]
    InvalidConfig {
        /// Parameter name.
        name: &'static str,
        /// Rendered value.
        value: String,
        /// Why it is invalid.
        reason: &'static str,
    },
}

/// Result alias for the tiering crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().display().to_string(), cause: source }
    }
}
