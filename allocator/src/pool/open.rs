//! Creating a pool (format) and opening one (verify the superblock and every table entry, drop
//! scratch objects, resolve superseded records, rebuild the free lists).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use super::options::DEFAULT_IO_THREADS;
use super::{Backend, Live, OpenReport, Pool, PoolOptions, Slot, Space, State};
use crate::device::{Device, DirectDevice, MmapDevice, SegmentFiles};
use crate::error::{Error, Result};
use crate::format::{
    align_up, decode_entry, Superblock, ENTRY_LEN, EXTENT_UNIT, SUPERBLOCK_AREA, SUPERBLOCK_LEN,
};
use crate::object::{Durability, ObjectId, ObjectMeta};

fn superblock_for(opts: &PoolOptions) -> Result<Superblock> {
    let sb = Superblock {
        uuid: *uuid::Uuid::new_v4().as_bytes(),
        segment_size: opts.segment_size,
        table_slots: opts.table_slots,
        max_pool_bytes: opts.max_pool_bytes,
    };
    sb.validate().map_err(|e| match e {
        Error::CorruptSuperblock { reason } => Error::InvalidOptions { reason },
        other => other,
    })?;
    Ok(sb)
}

fn file_device(files: SegmentFiles, seg: u64, backend: Backend) -> Result<Box<dyn Device>> {
    Ok(match backend {
        Backend::Mmap => Box::new(MmapDevice::new(files, seg)?),
        Backend::Direct => Box::new(DirectDevice::new(files, seg)?),
    })
}

impl Pool {
    /// Create a new pool in directory `dir` (created if missing; must not already hold a pool).
    pub fn create(dir: impl AsRef<Path>, opts: PoolOptions) -> Result<Pool> {
        let dir = dir.as_ref();
        let sb = superblock_for(&opts)?;
        let files = SegmentFiles::create(dir, sb.segment_size)?;
        let dev = file_device(files, sb.segment_size, opts.backend)?;
        let mut pool = Pool::format(dev, sb)?;
        pool.path = Some(dir.to_path_buf());
        pool.set_io_threads(opts.io_threads);
        Ok(pool)
    }

    /// Open the pool in directory `dir` for writing (takes the exclusive lock).
    pub fn open(dir: impl AsRef<Path>, opts: PoolOptions) -> Result<(Pool, OpenReport)> {
        let dir = dir.as_ref();
        let files = SegmentFiles::open(dir)?;
        let head = files.read_head(SUPERBLOCK_LEN)?;
        let sb = Superblock::decode(&head)?;
        // Before anything is mapped: a short file would be a SIGBUS, so it is an error instead.
        files.check_lengths(sb.segment_size)?;
        let dev = file_device(files, sb.segment_size, opts.backend)?;
        let (mut pool, report) = Pool::recover(dev, sb)?;
        pool.path = Some(dir.to_path_buf());
        pool.set_io_threads(opts.io_threads);
        if opts.populate {
            pool.populate();
        }
        Ok((pool, report))
    }

    /// Create a new pool on an arbitrary device (e.g. a [`crate::FaultyDevice`]), growing it to
    /// one segment if it is smaller. `opts.backend` is ignored.
    pub fn create_on(dev: Box<dyn Device>, opts: PoolOptions) -> Result<Pool> {
        let sb = superblock_for(&opts)?;
        if dev.len() < sb.segment_size {
            dev.grow(sb.segment_size)?;
        }
        let mut pool = Pool::format(dev, sb)?;
        pool.set_io_threads(opts.io_threads);
        Ok(pool)
    }

    /// Open a pool that lives on an arbitrary device (with the default I/O threads; see
    /// [`Pool::set_io_threads`]).
    pub fn open_on(dev: Box<dyn Device>) -> Result<(Pool, OpenReport)> {
        let dev_len = dev.len();
        if dev_len < SUPERBLOCK_LEN as u64 {
            return Err(Error::Truncated {
                what: "superblock".into(),
                expected: SUPERBLOCK_LEN as u64,
                found: dev_len,
            });
        }
        let mut head = [0u8; SUPERBLOCK_LEN];
        dev.read_at(0, &mut head)?;
        let sb = Superblock::decode(&head)?;
        if dev_len < sb.segment_size || !dev_len.is_multiple_of(sb.segment_size) {
            return Err(Error::Truncated {
                what: "device".into(),
                expected: align_up(dev_len, sb.segment_size)
                    .unwrap_or(u64::MAX)
                    .max(sb.segment_size),
                found: dev_len,
            });
        }
        Pool::recover(dev, sb)
    }

    /// Write an empty table, then the superblock, each made durable.
    fn format(dev: Box<dyn Device>, sb: Superblock) -> Result<Pool> {
        let zeros = vec![0u8; 1 << 20];
        let table_end = sb.table_offset() + sb.table_len();
        let mut at = sb.table_offset();
        while at < table_end {
            let n = (table_end - at).min(zeros.len() as u64);
            dev.write_at(at, &zeros[..n as usize])?;
            at += n;
        }
        dev.flush(sb.table_offset(), sb.table_len())?;
        let mut area = vec![0u8; SUPERBLOCK_AREA as usize];
        area[..SUPERBLOCK_LEN].copy_from_slice(&sb.encode());
        dev.write_at(0, &area)?;
        dev.flush(0, SUPERBLOCK_AREA)?;
        let dev_len = dev.len();
        let mut space = Space::default();
        space.extents.free(sb.data_offset(), dev_len - sb.data_offset());
        Ok(Pool {
            dev,
            sb,
            state: Mutex::new(State {
                objects: HashMap::new(),
                free_slots: (0..sb.table_slots).collect(),
                next_seq: 1,
            }),
            space: Arc::new(Mutex::new(space)),
            path: None,
            io_threads: DEFAULT_IO_THREADS,
        })
    }

    /// Verify every table entry and rebuild the in-memory state.
    fn recover(dev: Box<dyn Device>, sb: Superblock) -> Result<(Pool, OpenReport)> {
        let dev_len = dev.len();
        let data_offset = sb.data_offset();
        let mut report = OpenReport { pool_bytes: dev_len, ..OpenReport::default() };
        let mut durable: HashMap<ObjectId, (u64, ObjectMeta)> = HashMap::new();
        let mut to_clear: Vec<u64> = Vec::new();
        let mut max_seq = 0u64;

        let per_chunk = ((1u64 << 20) / ENTRY_LEN as u64).min(sb.table_slots);
        let mut buf = vec![0u8; (per_chunk as usize) * ENTRY_LEN];
        let mut first = 0u64;
        while first < sb.table_slots {
            let n = per_chunk.min(sb.table_slots - first);
            let bytes = &mut buf[..n as usize * ENTRY_LEN];
            dev.read_at(sb.slot_offset(first), bytes)?;
            for (i, raw) in bytes.chunks_exact(ENTRY_LEN).enumerate() {
                let slot = first + i as u64;
                let Some(meta) = decode_entry(slot, raw)? else { continue };
                check_extent(slot, &meta, data_offset, dev_len)?;
                max_seq = max_seq.max(meta.sequence);
                if meta.durability == Durability::Scratch {
                    report.dropped_scratch.push(meta);
                    to_clear.push(slot);
                    continue;
                }
                match durable.get(&meta.id) {
                    Some(&(_, old)) if old.sequence >= meta.sequence => {
                        report.superseded.push(meta);
                        to_clear.push(slot);
                    }
                    Some(&(old_slot, old)) => {
                        report.superseded.push(old);
                        to_clear.push(old_slot);
                        durable.insert(meta.id, (slot, meta));
                    }
                    None => {
                        durable.insert(meta.id, (slot, meta));
                    }
                }
            }
            first += n;
        }

        // Live extents must not overlap; anything else means the table is corrupt.
        let mut by_offset: Vec<(u64, ObjectMeta)> = durable.values().copied().collect();
        by_offset.sort_unstable_by_key(|(_, m)| m.offset.0);
        let mut prev_end = data_offset;
        let mut prev_id = None;
        let mut space = Space::default();
        for (slot, m) in &by_offset {
            if m.offset.0 < prev_end {
                return Err(Error::CorruptEntry {
                    slot: *slot,
                    reason: format!(
                        "extent at {} overlaps object {} ending at {prev_end}",
                        m.offset.0,
                        prev_id.map_or_else(|| "(table)".to_string(), |i: ObjectId| i.to_string())
                    ),
                });
            }
            space.extents.free(prev_end, m.offset.0 - prev_end);
            prev_end = m.offset.0 + extent_len(m.len);
            prev_id = Some(m.id);
        }
        space.extents.free(prev_end, dev_len - prev_end);

        // Forget dropped and superseded records durably, so they cannot resurface later.
        for &slot in &to_clear {
            dev.write_at(sb.slot_offset(slot), &[0u8; ENTRY_LEN])?;
        }
        if !to_clear.is_empty() {
            dev.flush(sb.table_offset(), sb.table_len())?;
        }

        let space = Arc::new(Mutex::new(space));
        let mut used_slots = BTreeSet::new();
        let mut objects = HashMap::with_capacity(by_offset.len());
        for (slot, m) in by_offset {
            report.durable_objects += 1;
            report.durable_bytes += m.len;
            used_slots.insert(slot);
            let live =
                Live { meta: m, slot, extent_len: extent_len(m.len), space: Arc::clone(&space) };
            objects.insert(m.id, Slot::Live(Arc::new(live)));
        }
        let free_slots = (0..sb.table_slots).filter(|s| !used_slots.contains(s)).collect();
        let pool = Pool {
            dev,
            sb,
            state: Mutex::new(State { objects, free_slots, next_seq: max_seq + 1 }),
            space,
            path: None,
            io_threads: DEFAULT_IO_THREADS,
        };
        Ok((pool, report))
    }
}

fn extent_len(len: u64) -> u64 {
    // Callers have checked that the extent fits in the device, so this cannot overflow.
    len.div_ceil(EXTENT_UNIT) * EXTENT_UNIT
}

fn check_extent(slot: u64, m: &ObjectMeta, data_offset: u64, dev_len: u64) -> Result<()> {
    let bad = |reason: String| Err(Error::CorruptEntry { slot, reason });
    if m.len == 0 {
        return bad(format!("object {} has length 0", m.id));
    }
    if !m.offset.0.is_multiple_of(EXTENT_UNIT) || m.offset.0 < data_offset {
        return bad(format!("extent offset {} not a 4 KiB-aligned data offset", m.offset.0));
    }
    match align_up(m.len, EXTENT_UNIT).and_then(|l| m.offset.0.checked_add(l)) {
        Some(end) if end <= dev_len => Ok(()),
        _ => {
            bad(format!("extent [{}, +{}) extends past the {dev_len} B device", m.offset.0, m.len))
        }
    }
}
