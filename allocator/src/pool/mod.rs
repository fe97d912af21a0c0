//! The persistent-memory pool: checksummed, immutable objects in 4 KiB-aligned extents of a
//! growable device, indexed by an on-device object table, crash-consistent by construction.
//!
//! Durable `put`: data → flush → table entry (with checksum and sequence) → flush. `remove`
//! zeroes the entry (flushed for durable objects) before the extent can be reused, so a crash at
//! any point leaves either the old or the new state, never an entry pointing at foreign bytes.

mod open;
mod options;
mod stream;

pub use options::{Backend, FsckReport, OpenReport, PoolOptions, PoolStats};

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::extent::ExtentAllocator;
use crate::format::{align_up, encode_entry, Superblock, ENTRY_LEN, EXTENT_UNIT};
use crate::object::{ByteOffset, Durability, ObjectId, ObjectKind, ObjectMeta};

/// Free space, shared with live objects so the last reader of a removed object frees its extent.
#[derive(Debug, Default)]
struct Space {
    extents: ExtentAllocator,
    leaked: u64,
}

/// A live object. Dropping the last handle returns its extent to the free space.
#[derive(Debug)]
struct Live {
    meta: ObjectMeta,
    slot: u64,
    extent_len: u64,
    space: Arc<Mutex<Space>>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.space.lock().extents.free(self.meta.offset.0, self.extent_len);
    }
}

#[derive(Debug)]
enum Slot {
    /// A put of this id is in flight.
    Pending,
    Live(Arc<Live>),
}

#[derive(Debug)]
struct State {
    objects: HashMap<ObjectId, Slot>,
    free_slots: BTreeSet<u64>,
    next_seq: u64,
}

/// A persistent-memory pool over one [`Device`]; `Send + Sync`, all operations take `&self`.
#[derive(Debug)]
pub struct Pool {
    dev: Box<dyn Device>,
    sb: Superblock,
    state: Mutex<State>,
    space: Arc<Mutex<Space>>,
    path: Option<PathBuf>,
    io_threads: usize,
}

impl Pool {
    /// Use up to `threads` threads (at least 1) to copy and checksum one large object.
    pub fn set_io_threads(&mut self, threads: usize) {
        self.io_threads = threads.max(1);
    }

    /// Threads used per large get or put.
    pub fn io_threads(&self) -> usize {
        self.io_threads
    }

    /// The superblock geometry.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// The pool directory, for file-backed pools.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The device's name ("mmap", "direct", "faulty").
    pub fn backend_name(&self) -> &'static str {
        self.dev.name()
    }

    /// Maps every live object's pages now (the mmap backend; a no-op elsewhere), so that no later
    /// read pays for mapping them. A process's first read of an object through a fresh mapping
    /// otherwise faults every page of it into the mapping, which makes that read slower than
    /// every later one and the tier's cost depend on what the process read before. Right for
    /// a pool whose pages are memory (DAX, tmpfs); on a file on a disk it reads the objects into
    /// the page cache. Mapping is in 2 MiB regions, so a few pages beside an object may be
    /// mapped too. Returns the bytes mapped.
    pub fn populate(&self) -> u64 {
        let extents: Vec<(u64, u64)> = self
            .state
            .lock()
            .objects
            .values()
            .filter_map(|s| match s {
                Slot::Live(l) => Some((l.meta.offset.0, l.meta.len)),
                Slot::Pending => None,
            })
            .collect();
        extents.into_iter().map(|(offset, len)| self.dev.populate(offset, len)).sum()
    }

    /// The largest object this pool can ever store.
    pub fn max_object_len(&self) -> u64 {
        (self.sb.max_pool_bytes - self.sb.data_offset()) / EXTENT_UNIT * EXTENT_UNIT
    }

    /// Store `bytes` as object `id`. A durable object is on stable storage when this returns; a
    /// scratch object is never flushed and disappears at the next open.
    pub fn put(
        &self,
        id: ObjectId,
        kind: ObjectKind,
        durability: Durability,
        bytes: &[u8],
    ) -> Result<()> {
        let len = bytes.len() as u64;
        if len == 0 {
            return Err(Error::EmptyObject { id });
        }
        let max = self.max_object_len();
        if len > max {
            return Err(Error::ObjectTooLarge { id, len, max });
        }
        let extent_len = align_up(len, EXTENT_UNIT).unwrap_or(u64::MAX);
        let (slot, sequence) = self.reserve(id)?;
        let offset = match self.alloc_extent(extent_len) {
            Ok(o) => o,
            Err(e) => {
                self.unreserve(id, Some(slot));
                return Err(e);
            }
        };
        let meta = ObjectMeta {
            id,
            kind,
            durability,
            len,
            checksum: 0,
            offset: ByteOffset(offset),
            sequence,
        };
        match self.write_object(meta, slot, bytes) {
            Ok(meta) => {
                let live = Live { meta, slot, extent_len, space: Arc::clone(&self.space) };
                self.state.lock().objects.insert(id, Slot::Live(Arc::new(live)));
                Ok(())
            }
            Err((e, entry_touched)) => {
                let clean = !entry_touched || self.clear_slot(slot, true).is_ok();
                if clean {
                    self.space.lock().extents.free(offset, extent_len);
                    self.unreserve(id, Some(slot));
                } else {
                    // The entry may or may not be on disk; reusing its extent or slot could let a
                    // later crash expose foreign bytes under this id. Quarantine both until reopen.
                    self.space.lock().leaked += extent_len;
                    self.unreserve(id, None);
                }
                Err(e)
            }
        }
    }

    /// Write data and entry; on failure say whether the entry write was attempted.
    fn write_object(
        &self,
        mut meta: ObjectMeta,
        slot: u64,
        bytes: &[u8],
    ) -> std::result::Result<ObjectMeta, (Error, bool)> {
        let chunk = self.dev.io_chunk();
        let crc = stream::write_with_crc(&*self.dev, meta.offset.0, bytes, chunk, self.io_threads)
            .map_err(|e| (e, false))?;
        meta.checksum = crc;
        let durable = meta.durability == Durability::Durable;
        if durable {
            self.dev.flush(meta.offset.0, meta.len).map_err(|e| (e, false))?;
        }
        let at = self.sb.slot_offset(slot);
        self.dev.write_at(at, &encode_entry(&meta)).map_err(|e| (e, true))?;
        if durable {
            self.dev.flush(at, ENTRY_LEN as u64).map_err(|e| (e, true))?;
        }
        Ok(meta)
    }

    fn reserve(&self, id: ObjectId) -> Result<(u64, u64)> {
        let mut st = self.state.lock();
        if st.objects.contains_key(&id) {
            return Err(Error::ObjectExists { id });
        }
        let slot =
            st.free_slots.pop_first().ok_or(Error::TableFull { slots: self.sb.table_slots })?;
        let seq = st.next_seq;
        st.next_seq += 1;
        st.objects.insert(id, Slot::Pending);
        Ok((slot, seq))
    }

    fn unreserve(&self, id: ObjectId, slot: Option<u64>) {
        let mut st = self.state.lock();
        st.objects.remove(&id);
        if let Some(s) = slot {
            st.free_slots.insert(s);
        }
    }

    fn clear_slot(&self, slot: u64, flush: bool) -> Result<()> {
        let at = self.sb.slot_offset(slot);
        self.dev.write_at(at, &[0u8; ENTRY_LEN])?;
        if flush {
            self.dev.flush(at, ENTRY_LEN as u64)?;
        }
        Ok(())
    }

    /// Allocate an extent, growing the device by whole segments if no free extent fits.
    fn alloc_extent(&self, len: u64) -> Result<u64> {
        let mut space = self.space.lock();
        if let Some(o) = space.extents.alloc(len) {
            return Ok(o);
        }
        let dev_len = self.dev.len();
        let tail = space.extents.tail_ending_at(dev_len);
        let seg = self.sb.segment_size;
        let grow_by = align_up(len - tail, seg).unwrap_or(u64::MAX);
        let new_len = dev_len.saturating_add(grow_by);
        if new_len > self.sb.max_pool_bytes {
            return Err(Error::PoolFull {
                requested: len,
                largest_free: space.extents.largest(),
                max_pool: self.sb.max_pool_bytes,
            });
        }
        self.dev.grow(new_len)?;
        let grown = self.dev.len();
        space.extents.free(dev_len, grown - dev_len);
        space.extents.alloc(len).ok_or(Error::PoolFull {
            requested: len,
            largest_free: space.extents.largest(),
            max_pool: self.sb.max_pool_bytes,
        })
    }

    fn lookup(&self, id: ObjectId) -> Result<Arc<Live>> {
        match self.state.lock().objects.get(&id) {
            Some(Slot::Live(l)) => Ok(Arc::clone(l)),
            _ => Err(Error::NotFound { id }),
        }
    }

    /// Read object `id` into the front of `buf`, verifying its checksum; returns its length.
    /// Page-aligned buffers (e.g. a [`crate::DramBlock`]) are filled by the device directly.
    pub fn read_into(&self, id: ObjectId, buf: &mut [u8]) -> Result<usize> {
        let live = self.lookup(id)?;
        let len = live.meta.len as usize;
        if buf.len() < len {
            return Err(Error::BufferTooSmall { id, needed: live.meta.len, got: buf.len() });
        }
        self.read_verified(&live.meta, &mut buf[..len])?;
        Ok(len)
    }

    /// Read object `id` into a new vector, verifying its checksum.
    pub fn get(&self, id: ObjectId) -> Result<Vec<u8>> {
        let live = self.lookup(id)?;
        let mut v = vec![0u8; live.meta.len as usize];
        self.read_verified(&live.meta, &mut v)?;
        Ok(v)
    }

    fn read_verified(&self, meta: &ObjectMeta, buf: &mut [u8]) -> Result<()> {
        let chunk = self.dev.io_chunk();
        let crc = stream::read_with_crc(&*self.dev, meta.offset.0, buf, chunk, self.io_threads)?;
        if crc != meta.checksum {
            return Err(Error::DataChecksum { id: meta.id, stored: meta.checksum, computed: crc });
        }
        Ok(())
    }

    /// Remove object `id`. For a durable object the removal is on stable storage when this
    /// returns. Readers already in progress finish; the extent is reused only after them.
    pub fn remove(&self, id: ObjectId) -> Result<()> {
        let live = {
            let mut st = self.state.lock();
            match st.objects.get(&id) {
                Some(Slot::Live(_)) => match st.objects.remove(&id) {
                    Some(Slot::Live(l)) => l,
                    _ => return Err(Error::NotFound { id }),
                },
                _ => return Err(Error::NotFound { id }),
            }
        };
        let durable = live.meta.durability == Durability::Durable;
        if let Err(e) = self.clear_slot(live.slot, durable) {
            let mut st = self.state.lock();
            st.objects.entry(id).or_insert(Slot::Live(live));
            return Err(e);
        }
        self.state.lock().free_slots.insert(live.slot);
        drop(live);
        Ok(())
    }

    /// The record of object `id`, if it is live.
    pub fn meta(&self, id: ObjectId) -> Option<ObjectMeta> {
        self.lookup(id).ok().map(|l| l.meta)
    }

    /// Whether object `id` is live.
    pub fn contains(&self, id: ObjectId) -> bool {
        self.meta(id).is_some()
    }

    /// Records of all live objects, by id.
    pub fn list(&self) -> Vec<ObjectMeta> {
        let st = self.state.lock();
        let mut v: Vec<ObjectMeta> = st
            .objects
            .values()
            .filter_map(|s| match s {
                Slot::Live(l) => Some(l.meta),
                Slot::Pending => None,
            })
            .collect();
        v.sort_by_key(|m| m.id);
        v
    }

    /// Space and object counts. With operations in flight the numbers are a consistent snapshot
    /// of the table but free space may lag by the extents being written or released.
    pub fn stats(&self) -> PoolStats {
        let st = self.state.lock();
        let mut s = PoolStats {
            pool_bytes: self.dev.len(),
            table_slots: self.sb.table_slots,
            used_slots: self.sb.table_slots - st.free_slots.len() as u64,
            ..PoolStats::default()
        };
        s.data_bytes = s.pool_bytes - self.sb.data_offset();
        for slot in st.objects.values() {
            if let Slot::Live(l) = slot {
                s.used_bytes += l.extent_len;
                s.object_bytes += l.meta.len;
                match l.meta.durability {
                    Durability::Durable => s.durable_objects += 1,
                    Durability::Scratch => s.scratch_objects += 1,
                }
            }
        }
        drop(st);
        let space = self.space.lock();
        s.free_bytes = space.extents.free_bytes();
        s.leaked_bytes = space.leaked;
        s.free_extents = space.extents.extent_count() as u64;
        s.largest_free = space.extents.largest();
        s
    }

    /// Read and verify every live object and check that the space accounting adds up.
    pub fn fsck(&self) -> Result<FsckReport> {
        let lives: Vec<Arc<Live>> = {
            let st = self.state.lock();
            st.objects
                .values()
                .filter_map(|s| match s {
                    Slot::Live(l) => Some(Arc::clone(l)),
                    Slot::Pending => None,
                })
                .collect()
        };
        let mut report = FsckReport::default();
        let mut buf = Vec::new();
        let mut extents: Vec<(u64, u64)> = Vec::with_capacity(lives.len());
        for l in &lives {
            buf.resize(l.meta.len as usize, 0);
            match self.read_verified(&l.meta, &mut buf) {
                Ok(()) => {}
                Err(e @ Error::DataChecksum { .. }) => {
                    report.corrupt.push((l.meta.id, e.to_string()))
                }
                Err(e) => return Err(e),
            }
            report.objects_checked += 1;
            report.bytes_checked += l.meta.len;
            extents.push((l.meta.offset.0, l.extent_len));
        }
        extents.sort_unstable();
        let no_overlap = extents.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0);
        let used: u64 = extents.iter().map(|e| e.1).sum();
        let data_bytes = self.dev.len() - self.sb.data_offset();
        let space = self.space.lock();
        report.space_consistent =
            no_overlap && used + space.extents.free_bytes() + space.leaked == data_bytes;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Pool>();
    }
}
