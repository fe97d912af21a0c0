//! The default backend: every segment file mapped shared and writable; reads and writes are
//! memory copies, flush is `msync`. Segments are mapped once and never remapped, so growing the
//! pool never moves a live mapping.

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{check_bounds, segment_pieces, Device, SegmentFiles};
use crate::error::{Error, Result};
use crate::sys::map::MappedSegment;

/// Copies at least this long prefault their pages with one madvise call first.
const PREFAULT_MIN: usize = 64 << 10;

/// A pool directory accessed through shared memory mappings.
#[derive(Debug)]
pub struct MmapDevice {
    files: Mutex<SegmentFiles>,
    segs: RwLock<Vec<Arc<MappedSegment>>>,
    seg_size: u64,
}

impl MmapDevice {
    /// Map every segment of `files` (whose lengths the caller has already checked).
    pub(crate) fn new(files: SegmentFiles, seg_size: u64) -> Result<MmapDevice> {
        let mut segs = Vec::with_capacity(files.count());
        for i in 0..files.count() {
            segs.push(Arc::new(map_one(&files, i, seg_size)?));
        }
        Ok(MmapDevice { files: Mutex::new(files), segs: RwLock::new(segs), seg_size })
    }

    fn snapshot(&self) -> Vec<Arc<MappedSegment>> {
        self.segs.read().clone()
    }

    /// Refuse to touch a segment whose file has become shorter than its mapping.
    fn check_file(&self, seg: &MappedSegment, index: usize) -> Result<()> {
        let path = || self.files.lock().get(index).0.display().to_string();
        let found = seg.file_len().map_err(|e| Error::io("stat", path(), e))?;
        if found < self.seg_size {
            return Err(Error::Truncated { what: path(), expected: self.seg_size, found });
        }
        Ok(())
    }
}

fn map_one(files: &SegmentFiles, i: usize, seg_size: u64) -> Result<MappedSegment> {
    let (path, f) = files.get(i);
    let len = usize::try_from(seg_size).map_err(|_| Error::InvalidOptions {
        reason: format!("segment size {seg_size} does not fit in memory"),
    })?;
    MappedSegment::map(f, len).map_err(|e| Error::io("mmap", path, e))
}

impl Device for MmapDevice {
    fn len(&self) -> u64 {
        self.segs.read().len() as u64 * self.seg_size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let segs = self.snapshot();
        check_bounds(offset, buf.len(), segs.len() as u64 * self.seg_size)?;
        for (s, in_seg, pos, n) in segment_pieces(offset, buf.len(), self.seg_size) {
            self.check_file(&segs[s], s)?;
            if n >= PREFAULT_MIN {
                segs[s].prefault(in_seg as usize, n, false);
            }
            // Bounds were checked above, so copy_out cannot refuse; stay defensive anyway.
            if !segs[s].copy_out(in_seg as usize, &mut buf[pos..pos + n]) {
                return Err(Error::OutOfBounds {
                    offset,
                    len: buf.len() as u64,
                    device_len: self.len(),
                });
            }
        }
        Ok(())
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let segs = self.snapshot();
        check_bounds(offset, data.len(), segs.len() as u64 * self.seg_size)?;
        for (s, in_seg, pos, n) in segment_pieces(offset, data.len(), self.seg_size) {
            self.check_file(&segs[s], s)?;
            if n >= PREFAULT_MIN {
                segs[s].prefault(in_seg as usize, n, true);
            }
            if !segs[s].copy_in(in_seg as usize, &data[pos..pos + n]) {
                return Err(Error::OutOfBounds {
                    offset,
                    len: data.len() as u64,
                    device_len: self.len(),
                });
            }
        }
        Ok(())
    }

    fn read_at_crc(&self, offset: u64, buf: &mut [u8], mut crc: u32) -> Result<u32> {
        let segs = self.snapshot();
        check_bounds(offset, buf.len(), segs.len() as u64 * self.seg_size)?;
        for (s, in_seg, pos, n) in segment_pieces(offset, buf.len(), self.seg_size) {
            self.check_file(&segs[s], s)?;
            if n >= PREFAULT_MIN {
                segs[s].prefault(in_seg as usize, n, false);
            }
            crc = segs[s].copy_out_crc(in_seg as usize, &mut buf[pos..pos + n], crc).ok_or(
                Error::OutOfBounds { offset, len: buf.len() as u64, device_len: self.len() },
            )?;
        }
        Ok(crc)
    }

    fn write_at_crc(&self, offset: u64, data: &[u8], mut crc: u32) -> Result<u32> {
        let segs = self.snapshot();
        check_bounds(offset, data.len(), segs.len() as u64 * self.seg_size)?;
        for (s, in_seg, pos, n) in segment_pieces(offset, data.len(), self.seg_size) {
            self.check_file(&segs[s], s)?;
            if n >= PREFAULT_MIN {
                segs[s].prefault(in_seg as usize, n, true);
            }
            crc = segs[s].copy_in_crc(in_seg as usize, &data[pos..pos + n], crc).ok_or(
                Error::OutOfBounds { offset, len: data.len() as u64, device_len: self.len() },
            )?;
        }
        Ok(crc)
    }

    fn flush(&self, offset: u64, len: u64) -> Result<()> {
        let segs = self.snapshot();
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        check_bounds(offset, len, segs.len() as u64 * self.seg_size)?;
        for (s, in_seg, _, n) in segment_pieces(offset, len, self.seg_size) {
            segs[s].flush(in_seg as usize, n).map_err(|e| {
                let files = self.files.lock();
                Error::io("msync", files.get(s).0, e)
            })?;
        }
        Ok(())
    }

    fn grow(&self, new_len: u64) -> Result<()> {
        let mut files = self.files.lock();
        while (files.count() as u64) * self.seg_size < new_len {
            files.add_segment(self.seg_size)?;
            let seg = map_one(&files, files.count() - 1, self.seg_size)?;
            self.segs.write().push(Arc::new(seg));
        }
        Ok(())
    }

    fn io_chunk(&self) -> usize {
        256 << 10
    }

    fn populate(&self, offset: u64, len: u64) -> u64 {
        let segs = self.snapshot();
        let Ok(len) = usize::try_from(len) else { return 0 };
        if check_bounds(offset, len, segs.len() as u64 * self.seg_size).is_err() {
            return 0;
        }
        segment_pieces(offset, len, self.seg_size)
            .map(|(s, in_seg, _, n)| segs[s].prefault(in_seg as usize, n, false) as u64)
            .sum()
    }

    fn name(&self) -> &'static str {
        "mmap"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_writes_across_segments_and_growth() {
        let dir = tempfile::tempdir().unwrap();
        let files = SegmentFiles::create(dir.path(), 8192).unwrap();
        let dev = MmapDevice::new(files, 8192).unwrap();
        assert_eq!(dev.len(), 8192);
        dev.grow(20000).unwrap();
        assert_eq!(dev.len(), 24576);
        let data: Vec<u8> = (0..10000u32).map(|i| (i * 7) as u8).collect();
        dev.write_at(5000, &data).unwrap();
        dev.flush(5000, data.len() as u64).unwrap();
        let mut back = vec![0u8; data.len()];
        dev.read_at(5000, &mut back).unwrap();
        assert_eq!(back, data);
        assert!(matches!(dev.read_at(24000, &mut back), Err(Error::OutOfBounds { .. })));
    }
}
