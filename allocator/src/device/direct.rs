//! The reference backend: O_DIRECT `pread`/`pwrite` on the segment files, so the page cache can
//! never quietly keep "persistent" data in DRAM. Page-aligned caller buffers go straight to the
//! device; anything else goes through aligned bounce buffers.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{check_bounds, segment_pieces, Device, SegmentFiles};
use crate::error::{Error, Result};
use crate::sys::mem::RawBlock;

/// The block size every O_DIRECT offset, length and buffer address is aligned to.
pub(crate) const DIRECT_BLOCK: usize = 4096;
const BOUNCE_LEN: usize = 1 << 20;

#[derive(Debug)]
struct Seg {
    path: PathBuf,
    file: File,
}

/// A pool directory accessed with O_DIRECT pread/pwrite.
#[derive(Debug)]
pub struct DirectDevice {
    files: Mutex<SegmentFiles>,
    segs: RwLock<Vec<Arc<Seg>>>,
    seg_size: u64,
    bounces: Mutex<Vec<RawBlock>>,
    /// Serialises read-modify-write of partial blocks so two small writes into one block (e.g.
    /// neighbouring table entries) cannot lose each other's bytes.
    rmw: Mutex<()>,
}

fn open_direct(files: &SegmentFiles, i: usize) -> Result<Seg> {
    let (path, _) = files.get(i);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| Error::io("open O_DIRECT", path, e))?;
    Ok(Seg { path: path.to_path_buf(), file })
}

fn is_aligned(x: usize) -> bool {
    x.is_multiple_of(DIRECT_BLOCK)
}

impl DirectDevice {
    /// Reopen every segment of `files` with O_DIRECT (lengths already checked by the caller).
    pub(crate) fn new(files: SegmentFiles, seg_size: u64) -> Result<DirectDevice> {
        if !seg_size.is_multiple_of(DIRECT_BLOCK as u64) {
            return Err(Error::InvalidOptions {
                reason: format!("segment size {seg_size} is not a multiple of {DIRECT_BLOCK}"),
            });
        }
        let mut segs = Vec::with_capacity(files.count());
        for i in 0..files.count() {
            segs.push(Arc::new(open_direct(&files, i)?));
        }
        Ok(DirectDevice {
            files: Mutex::new(files),
            segs: RwLock::new(segs),
            seg_size,
            bounces: Mutex::new(Vec::new()),
            rmw: Mutex::new(()),
        })
    }

    fn snapshot(&self) -> Vec<Arc<Seg>> {
        self.segs.read().clone()
    }

    fn take_bounce(&self) -> Result<RawBlock> {
        if let Some(b) = self.bounces.lock().pop() {
            return Ok(b);
        }
        RawBlock::zeroed(BOUNCE_LEN).ok_or(Error::OutOfMemory { requested: BOUNCE_LEN })
    }

    fn give_bounce(&self, b: RawBlock) {
        let mut v = self.bounces.lock();
        if v.len() < 4 {
            v.push(b);
        }
    }

    fn read_piece(&self, seg: &Seg, foff: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        if is_aligned(foff as usize) && is_aligned(buf.as_ptr() as usize) {
            let body = buf.len() / DIRECT_BLOCK * DIRECT_BLOCK;
            if body > 0 {
                seg.file
                    .read_exact_at(&mut buf[..body], foff)
                    .map_err(|e| Error::io("pread O_DIRECT", &seg.path, e))?;
                done = body;
            }
        }
        if done < buf.len() {
            self.read_bounced(seg, foff + done as u64, &mut buf[done..])?;
        }
        Ok(())
    }

    fn read_bounced(&self, seg: &Seg, foff: u64, buf: &mut [u8]) -> Result<()> {
        let mut bounce = self.take_bounce()?;
        let mut pos = 0usize;
        let result = (|| {
            while pos < buf.len() {
                let abs = foff + pos as u64;
                let start = abs / DIRECT_BLOCK as u64 * DIRECT_BLOCK as u64;
                let lead = (abs - start) as usize;
                let want = (lead + buf.len() - pos).min(BOUNCE_LEN);
                let window = want.div_ceil(DIRECT_BLOCK) * DIRECT_BLOCK;
                let b = &mut bounce.as_mut_slice()[..window];
                seg.file
                    .read_exact_at(b, start)
                    .map_err(|e| Error::io("pread O_DIRECT", &seg.path, e))?;
                let n = want - lead;
                buf[pos..pos + n].copy_from_slice(&b[lead..lead + n]);
                pos += n;
            }
            Ok(())
        })();
        self.give_bounce(bounce);
        result
    }

    fn write_piece(&self, seg: &Seg, foff: u64, data: &[u8]) -> Result<()> {
        let mut done = 0usize;
        if is_aligned(foff as usize) && is_aligned(data.as_ptr() as usize) {
            let body = data.len() / DIRECT_BLOCK * DIRECT_BLOCK;
            if body > 0 {
                seg.file
                    .write_all_at(&data[..body], foff)
                    .map_err(|e| Error::io("pwrite O_DIRECT", &seg.path, e))?;
                done = body;
            }
        }
        if done < data.len() {
            self.write_bounced(seg, foff + done as u64, &data[done..])?;
        }
        Ok(())
    }

    fn write_bounced(&self, seg: &Seg, foff: u64, data: &[u8]) -> Result<()> {
        let mut bounce = self.take_bounce()?;
        let mut pos = 0usize;
        let result = (|| {
            while pos < data.len() {
                let abs = foff + pos as u64;
                let start = abs / DIRECT_BLOCK as u64 * DIRECT_BLOCK as u64;
                let lead = (abs - start) as usize;
                let want = (lead + data.len() - pos).min(BOUNCE_LEN);
                let window = want.div_ceil(DIRECT_BLOCK) * DIRECT_BLOCK;
                let n = want - lead;
                let b = &mut bounce.as_mut_slice()[..window];
                let partial = lead != 0 || n != window;
                // Partial blocks need their old bytes: read, patch and write back under the lock.
                let _guard = if partial { Some(self.rmw.lock()) } else { None };
                if partial {
                    seg.file
                        .read_exact_at(b, start)
                        .map_err(|e| Error::io("pread O_DIRECT", &seg.path, e))?;
                }
                b[lead..lead + n].copy_from_slice(&data[pos..pos + n]);
                seg.file
                    .write_all_at(b, start)
                    .map_err(|e| Error::io("pwrite O_DIRECT", &seg.path, e))?;
                pos += n;
            }
            Ok(())
        })();
        self.give_bounce(bounce);
        result
    }
}

impl Device for DirectDevice {
    fn len(&self) -> u64 {
        self.segs.read().len() as u64 * self.seg_size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let segs = self.snapshot();
        check_bounds(offset, buf.len(), segs.len() as u64 * self.seg_size)?;
        for (s, in_seg, pos, n) in segment_pieces(offset, buf.len(), self.seg_size) {
            self.read_piece(&segs[s], in_seg, &mut buf[pos..pos + n])?;
        }
        Ok(())
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let segs = self.snapshot();
        check_bounds(offset, data.len(), segs.len() as u64 * self.seg_size)?;
        for (s, in_seg, pos, n) in segment_pieces(offset, data.len(), self.seg_size) {
            self.write_piece(&segs[s], in_seg, &data[pos..pos + n])?;
        }
        Ok(())
    }

    fn flush(&self, offset: u64, len: u64) -> Result<()> {
        let segs = self.snapshot();
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        check_bounds(offset, len, segs.len() as u64 * self.seg_size)?;
        let mut last = usize::MAX;
        for (s, _, _, _) in segment_pieces(offset, len, self.seg_size) {
            if s != last {
                // O_DIRECT bypasses the page cache but not the drive's write cache.
                segs[s].file.sync_data().map_err(|e| Error::io("fdatasync", &segs[s].path, e))?;
                last = s;
            }
        }
        Ok(())
    }

    fn grow(&self, new_len: u64) -> Result<()> {
        let mut files = self.files.lock();
        while (files.count() as u64) * self.seg_size < new_len {
            files.add_segment(self.seg_size)?;
            let seg = open_direct(&files, files.count() - 1)?;
            self.segs.write().push(Arc::new(seg));
        }
        Ok(())
    }

    fn io_chunk(&self) -> usize {
        8 << 20
    }

    fn io_bound(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "direct"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_unaligned_io_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let files = SegmentFiles::create(dir.path(), 16384).unwrap();
        let dev = DirectDevice::new(files, 16384).unwrap();
        dev.grow(40000).unwrap();
        let data: Vec<u8> = (0..30000u32).map(|i| (i * 13 + 1) as u8).collect();
        // Unaligned offset and buffer: bounce path with read-modify-write at both ends.
        dev.write_at(1001, &data).unwrap();
        dev.flush(0, dev.len()).unwrap();
        let mut back = vec![0u8; data.len()];
        dev.read_at(1001, &mut back).unwrap();
        assert_eq!(back, data);
        // Neighbouring bytes untouched by the read-modify-write.
        let mut head = vec![1u8; 1001];
        dev.read_at(0, &mut head).unwrap();
        assert!(head.iter().all(|&b| b == 0));
        // Aligned buffer at an aligned offset goes straight to the file.
        let mut blk = RawBlock::zeroed(3 * DIRECT_BLOCK + 5).unwrap();
        dev.read_at(4096, blk.as_mut_slice()).unwrap();
        assert_eq!(&*blk.as_mut_slice(), &data[4096 - 1001..4096 - 1001 + 3 * DIRECT_BLOCK + 5]);
    }
}
