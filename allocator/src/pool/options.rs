//! Pool configuration and the reports the pool hands back.

use crate::object::ObjectMeta;

/// Which device implementation a file-backed pool uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Shared memory mappings of the segment files (default; right for DAX and tmpfs).
    #[default]
    Mmap,
    /// O_DIRECT pread/pwrite, bypassing the page cache (the reference implementation).
    Direct,
}

/// Threads per large get/put unless configured otherwise: serial, because the tiering layer
/// already runs transfers of different objects in parallel.
pub(crate) const DEFAULT_IO_THREADS: usize = 1;

/// Options for creating or opening a pool. Geometry fields are used only by `create`; `open`
/// takes them from the superblock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolOptions {
    /// Device implementation for file-backed pools.
    pub backend: Backend,
    /// Size of each segment file, the unit the pool grows by (multiple of 4 KiB).
    pub segment_size: u64,
    /// Capacity of the object table (live objects at once).
    pub table_slots: u64,
    /// The pool never grows beyond this many bytes (a multiple of `segment_size`).
    pub max_pool_bytes: u64,
    /// Threads that copy and checksum one object of 2 MiB or more, each a contiguous part
    /// (1 = serial). Not stored on disk.
    pub io_threads: usize,
    /// `open` maps every live object's pages before it returns ([`crate::Pool::populate`]), so
    /// reads cost the same from the first one on. Off by default: on a disk file it reads the
    /// whole pool into the page cache. Not stored on disk.
    pub populate: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            backend: Backend::Mmap,
            segment_size: 256 << 20,
            table_slots: 16384,
            max_pool_bytes: 1 << 40,
            io_threads: DEFAULT_IO_THREADS,
            populate: false,
        }
    }
}

impl PoolOptions {
    /// Use `backend`.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Use segments of `bytes`.
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// Use a table of `slots` entries.
    pub fn table_slots(mut self, slots: u64) -> Self {
        self.table_slots = slots;
        self
    }

    /// Use `threads` threads per large get/put.
    pub fn io_threads(mut self, threads: usize) -> Self {
        self.io_threads = threads;
        self
    }

    /// Map every live object's pages at `open` (see [`PoolOptions::populate`]).
    pub fn populate(mut self, yes: bool) -> Self {
        self.populate = yes;
        self
    }

    /// Cap the pool at `bytes`.
    pub fn max_pool_bytes(mut self, bytes: u64) -> Self {
        self.max_pool_bytes = bytes;
        self
    }
}

/// What reopening a pool found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Scratch objects found in the table and dropped, as they were recorded.
    pub dropped_scratch: Vec<ObjectMeta>,
    /// Older durable records of an id that also has a newer record (left by a crash between a
    /// remove and a re-put); the newer one wins.
    pub superseded: Vec<ObjectMeta>,
    /// Durable objects now live.
    pub durable_objects: u64,
    /// Their total length in bytes.
    pub durable_bytes: u64,
    /// Pool size in bytes.
    pub pool_bytes: u64,
}

/// A snapshot of space and object counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes of the whole pool (all segments).
    pub pool_bytes: u64,
    /// Bytes of the data region (pool minus superblock and table).
    pub data_bytes: u64,
    /// Bytes held by live objects' extents (lengths rounded up to 4 KiB).
    pub used_bytes: u64,
    /// Bytes in free extents.
    pub free_bytes: u64,
    /// Bytes neither used nor free: extents quarantined after an I/O error until the next open.
    pub leaked_bytes: u64,
    /// Sum of live objects' lengths.
    pub object_bytes: u64,
    /// Live durable objects.
    pub durable_objects: u64,
    /// Live scratch objects.
    pub scratch_objects: u64,
    /// Number of free extents.
    pub free_extents: u64,
    /// Largest free extent.
    pub largest_free: u64,
    /// Table capacity.
    pub table_slots: u64,
    /// Table slots in use (live objects, puts in flight and quarantined slots).
    pub used_slots: u64,
}

/// The result of [`crate::Pool::fsck`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Objects whose bytes were read and checked.
    pub objects_checked: u64,
    /// Bytes read.
    pub bytes_checked: u64,
    /// Objects whose data failed verification, with the error text.
    pub corrupt: Vec<(crate::ObjectId, String)>,
    /// Whether used + free + leaked extents add up to the data region with no overlap.
    pub space_consistent: bool,
}

impl FsckReport {
    /// Whether nothing was found wrong.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.space_consistent
    }
}
