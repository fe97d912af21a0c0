//! The crate's one error type: every failure carries the numbers or paths that explain it.

use std::io;
use std::path::PathBuf;

use crate::object::ObjectId;

/// Convenience alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the DRAM tier, the device seam or the pool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A DRAM allocation would push the tier over its hard budget.
    #[error("DRAM budget exceeded: requested {requested} B with {in_use} B in use of a {budget} B budget")]
    BudgetExceeded {
        /// Bytes asked for (a DRAM block's footprint: its length in whole pages).
        requested: usize,
        /// Bytes already handed out.
        in_use: usize,
        /// The hard limit.
        budget: usize,
    },
    /// The budget has room for the block's bytes, but the DRAM arena cannot place it: its
    /// live blocks, counted in whole pages, leave less room than the block needs, or no free
    /// extent of address space is large enough (freeing blocks makes room).
    #[error(
        "DRAM arena cannot place {requested} B: it can place at most {largest_free} B now \
         ({free} B of its resident limit are not held by live blocks)"
    )]
    Fragmented {
        /// Bytes asked for.
        requested: usize,
        /// The arena's resident limit minus its live blocks in whole pages.
        free: u64,
        /// The biggest block it could place now.
        largest_free: u64,
    },
    /// The operating system refused to give us memory even though the budget allowed it.
    #[error("the OS refused an allocation of {requested} B")]
    OutOfMemory {
        /// Bytes asked for.
        requested: usize,
    },
    /// An I/O call on a pool file or device failed. The OS error is said in the message, not
    /// again as a source (a report of the chain says each thing once).
    #[error("{op} failed on {path:?}: {cause}")]
    Io {
        /// What we were doing (e.g. "pwrite").
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        cause: io::Error,
    },
    /// Another process (or another handle in this one) holds the pool's writer lock.
    #[error("pool {path:?} is locked by another writer{}", holder_pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The lock file that is held.
        path: PathBuf,
        /// The process id the holder recorded in the lock file, if readable.
        holder_pid: Option<u32>,
    },
    /// `create` was pointed at a directory that already holds a pool.
    #[error("a pool already exists in {path:?}")]
    AlreadyExists {
        /// The pool directory.
        path: PathBuf,
    },
    /// `open` found no pool segment in the directory.
    #[error("no pool found in {path:?}")]
    NoPool {
        /// The pool directory.
        path: PathBuf,
    },
    /// A segment file is missing while a later one exists.
    #[error("pool segment {path:?} is missing (a later segment, {later:?}, exists)")]
    MissingSegment {
        /// The missing file.
        path: PathBuf,
        /// A later segment file that is present.
        later: PathBuf,
    },
    /// A pool file or device is shorter than the format says it must be.
    #[error("pool truncated: {what} is {found} B, expected {expected} B")]
    Truncated {
        /// Which file or region.
        what: String,
        /// Bytes the format requires.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The first bytes are not a hetier pool superblock.
    #[error("not a hetier pool: bad magic {found:02x?}")]
    BadMagic {
        /// The eight bytes found where the magic belongs.
        found: [u8; 8],
    },
    /// The pool was written by a newer (or unknown) format version.
    #[error("unsupported pool format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the superblock.
        found: u32,
        /// Version this build understands.
        supported: u32,
    },
    /// The superblock's checksum does not match its contents.
    #[error("superblock checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    SuperblockChecksum {
        /// Checksum stored on disk.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// The superblock's geometry fields are inconsistent.
    #[error("corrupt superblock: {reason}")]
    CorruptSuperblock {
        /// What is wrong.
        reason: String,
    },
    /// A table entry fails its checksum or points outside the data region.
    #[error("corrupt object table entry in slot {slot}: {reason}")]
    CorruptEntry {
        /// Table slot index.
        slot: u64,
        /// What is wrong.
        reason: String,
    },
    /// An object's bytes do not match the checksum recorded when it was written.
    #[error(
        "object {id} data checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
    )]
    DataChecksum {
        /// The object.
        id: ObjectId,
        /// Checksum in the table entry.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// No live object has this id.
    #[error("object {id} not found")]
    NotFound {
        /// The id asked for.
        id: ObjectId,
    },
    /// An object with this id is already stored (objects are immutable).
    #[error("object {id} already exists")]
    ObjectExists {
        /// The id asked for.
        id: ObjectId,
    },
    /// Objects must hold at least one byte.
    #[error("object {id} is empty; zero-length objects are not stored")]
    EmptyObject {
        /// The id asked for.
        id: ObjectId,
    },
    /// The object is larger than the pool can ever hold.
    #[error("object {id} of {len} B exceeds the largest object this pool can hold ({max} B)")]
    ObjectTooLarge {
        /// The id asked for.
        id: ObjectId,
        /// Its length.
        len: u64,
        /// The largest storable length.
        max: u64,
    },
    /// The pool has reached its configured maximum size and has no extent large enough.
    #[error("pool full: need {requested} B, largest free extent {largest_free} B, pool at its {max_pool} B limit")]
    PoolFull {
        /// Bytes needed (rounded to the extent unit).
        requested: u64,
        /// Largest free extent.
        largest_free: u64,
        /// The configured limit.
        max_pool: u64,
    },
    /// Every object-table slot is in use.
    #[error("object table full ({slots} slots)")]
    TableFull {
        /// Table capacity.
        slots: u64,
    },
    /// The caller's buffer cannot hold the object.
    #[error("buffer of {got} B too small for object {id} of {needed} B")]
    BufferTooSmall {
        /// The object.
        id: ObjectId,
        /// Object length.
        needed: u64,
        /// Buffer length.
        got: usize,
    },
    /// Pool options are out of range.
    #[error("invalid pool options: {reason}")]
    InvalidOptions {
        /// What is wrong.
        reason: String,
    },
    /// A device access lies outside the device.
    #[error("device access [{offset}, {offset}+{len}) beyond device length {device_len}")]
    OutOfBounds {
        /// Start of the access.
        offset: u64,
        /// Length of the access.
        len: u64,
        /// Device length.
        device_len: u64,
    },
    /// The fault-injecting device failed an operation on purpose.
    #[error("injected fault in {op} (operation #{index})")]
    InjectedFault {
        /// Which device operation.
        op: &'static str,
        /// Its sequence number among operations of that kind.
        index: u64,
    },
    /// The fault-injecting device has simulated a crash; it accepts no more operations.
    #[error("device crashed (simulated)")]
    Crashed,
}

impl Error {
    /// Build an [`Error::Io`] from an OS error.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io { op, path: path.into(), cause: source }
    }
}

#[cfg(test)]
mod tests {
    /// A report of the chain says the OS error once: in the message, not again as a source.
    #[test]
    fn an_io_error_is_said_once() {
        let e = super::Error::io("pread", "/pool/segment", std::io::Error::other("disk on fire"));
        assert_eq!(e.to_string(), "pread failed on \"/pool/segment\": disk on fire");
        assert!(std::error::Error::source(&e).is_none());
    }
}
