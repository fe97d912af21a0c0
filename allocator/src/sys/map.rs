//! One shared, writable mapping of one pool segment file, with bounds-checked copies in and out.
//!
//! The mapping is created only after the file's length has been checked against it, and pool
//! files are held under an exclusive lock, so a cooperating process cannot truncate them under us
//! (the SIGBUS hole). A non-cooperating process that ignores the lock can still truncate a file;
//! that is outside what a memory mapping can defend against.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{Advice, MmapOptions, MmapRaw};

/// Granularity of the "already prefaulted" bookkeeping.
const REGION: usize = 2 << 20;

/// A mapped segment file.
#[derive(Debug)]
pub(crate) struct MappedSegment {
    map: MmapRaw,
    len: usize,
    /// A duplicate of the file's descriptor, to re-check its length before each copy.
    file: File,
    /// One bit per 2 MiB region that has been prefaulted for reading (`read_done`) or writing
    /// (`write_done`), so steady-state copies make no madvise calls at all.
    read_done: Vec<AtomicU64>,
    write_done: Vec<AtomicU64>,
}

impl MappedSegment {
    /// Map the first `len` bytes of `file` shared and writable. The caller has checked that the
    /// file is at least `len` bytes long.
    pub(crate) fn map(file: &File, len: usize) -> io::Result<MappedSegment> {
        let actual = file.metadata()?.len();
        if actual < len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("segment file is {actual} B, mapping needs {len} B"),
            ));
        }
        let map = MmapOptions::new().len(len).map_raw(file)?;
        let words = len.div_ceil(REGION).div_ceil(64);
        let bits = || (0..words).map(|_| AtomicU64::new(0)).collect();
        let file = file.try_clone()?;
        Ok(MappedSegment { map, len, file, read_done: bits(), write_done: bits() })
    }

    /// The file's current length. Checked before every copy: a process that ignores the pool lock
    /// and truncates the file then gets a typed error instead of SIGBUS (short of truncating in
    /// the microseconds between this check and the copy, which no mapping can prevent).
    pub(crate) fn file_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Copy `dst.len()` bytes starting at `offset` out of the mapping. Panics never: an
    /// out-of-range request returns `false` and copies nothing.
    pub(crate) fn copy_out(&self, offset: usize, dst: &mut [u8]) -> bool {
        let Some(end) = offset.checked_add(dst.len()) else { return false };
        if end > self.len {
            return false;
        }
        // SAFETY: `offset..end` lies inside the live mapping (checked above; the file was checked
        // to be at least `len` long when mapped and is locked against truncation). `dst` is a
        // distinct Rust allocation, so the ranges do not overlap. The pool never writes an extent
        // while it is being read; a racing writer elsewhere could only produce wrong bytes (every
        // bit pattern is a valid u8), which the object checksum then reports.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.as_ptr().add(offset),
                dst.as_mut_ptr(),
                dst.len(),
            );
        }
        true
    }

    /// Copy `src` into the mapping at `offset`. Returns `false` (copying nothing) if out of range.
    pub(crate) fn copy_in(&self, offset: usize, src: &[u8]) -> bool {
        let Some(end) = offset.checked_add(src.len()) else { return false };
        if end > self.len {
            return false;
        }
        // SAFETY: bounds as in `copy_out`; the mapping is PROT_WRITE and MAP_SHARED. The pool hands
        // every extent and table slot to one writer at a time and never reads a range while it is
        // being written, so no Rust reference to these bytes exists during the copy.
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.as_ptr(),
                self.map.as_mut_ptr().add(offset),
                src.len(),
            );
        }
        true
    }

    /// Ask the kernel to map `offset..offset+len` in one go (MADV_POPULATE_READ/WRITE) so a
    /// large copy does not take one page fault per 4 KiB page. Advice only: failures (older
    /// kernels, out-of-range) are ignored and the copy simply faults as usual.
    /// Each 2 MiB region is populated once per mapping (re-populating a mapped range costs about
    /// as much as the faults it avoids). Returns the bytes this call populated.
    pub(crate) fn prefault(&self, offset: usize, len: usize, write: bool) -> usize {
        let Some(end) = offset.checked_add(len).filter(|&e| e <= self.len && len > 0) else {
            return 0;
        };
        let mut populated = 0;
        let (advice, done) = if write {
            (Advice::PopulateWrite, &self.write_done)
        } else {
            (Advice::PopulateRead, &self.read_done)
        };
        for region in offset / REGION..=(end - 1) / REGION {
            let (word, bit) = (region / 64, 1u64 << (region % 64));
            if done[word].load(Ordering::Relaxed) & bit != 0 {
                continue;
            }
            let start = region * REGION;
            let n = REGION.min(self.len - start);
            if self.map.advise_range(advice, start, n).is_ok() {
                done[word].fetch_or(bit, Ordering::Relaxed);
                if write {
                    self.read_done[word].fetch_or(bit, Ordering::Relaxed);
                }
                populated += n;
            }
        }
        populated
    }

    /// Like `copy_out`, checksumming the bytes as they are copied; returns the extended crc32c.
    pub(crate) fn copy_out_crc(&self, offset: usize, dst: &mut [u8], crc: u32) -> Option<u32> {
        let end = offset.checked_add(dst.len())?;
        if end > self.len {
            return None;
        }
        // SAFETY: `offset..end` is inside the live mapping and disjoint from `dst`, as in
        // `copy_out`.
        Some(unsafe { super::crc::copy_from_raw_with_crc(dst, self.map.as_ptr().add(offset), crc) })
    }

    /// Like `copy_in`, checksumming the bytes as they are copied; returns the extended crc32c.
    pub(crate) fn copy_in_crc(&self, offset: usize, src: &[u8], crc: u32) -> Option<u32> {
        let end = offset.checked_add(src.len())?;
        if end > self.len {
            return None;
        }
        // SAFETY: `offset..end` is inside the live, writable mapping, disjoint from `src` and not
        // accessed by anyone else while it is written, as in `copy_in`.
        Some(unsafe {
            super::crc::copy_to_raw_with_crc(self.map.as_mut_ptr().add(offset), src, crc)
        })
    }

    /// Write back (msync) the dirty pages covering `offset..offset+len`.
    pub(crate) fn flush(&self, offset: usize, len: usize) -> io::Result<()> {
        self.map.flush_range(offset, len)
    }
}
