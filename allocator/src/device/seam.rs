//! The [`Device`] trait and the range helpers every implementation shares. A leaf of the
//! device module: the implementations import it, it imports none of them.

use crate::error::{Error, Result};

/// A flat byte address space with explicit durability.
///
/// Writes become durable only once a `flush` covering them returns. Concurrent calls are allowed;
/// callers must not write a range while any other call reads or writes it.
pub trait Device: Send + Sync + std::fmt::Debug {
    /// Current length in bytes.
    fn len(&self) -> u64;

    /// Whether the device has no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fill `buf` from `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// Write `data` at `offset` (not yet durable).
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()>;

    /// Fill `buf` from `offset` and return `crc32c_append(crc, buf)`; devices that copy through
    /// the CPU override this to checksum while copying.
    fn read_at_crc(&self, offset: u64, buf: &mut [u8], crc: u32) -> Result<u32> {
        self.read_at(offset, buf)?;
        Ok(crate::sys::crc::crc32c_append(crc, buf))
    }

    /// Write `data` at `offset` and return `crc32c_append(crc, data)`.
    fn write_at_crc(&self, offset: u64, data: &[u8], crc: u32) -> Result<u32> {
        let c = crate::sys::crc::crc32c_append(crc, data);
        self.write_at(offset, data)?;
        Ok(c)
    }

    /// Make every earlier write inside `offset..offset+len` durable.
    fn flush(&self, offset: u64, len: u64) -> Result<()>;

    /// Grow to `new_len` bytes (never shrinks, never moves existing bytes). New bytes read as zero.
    fn grow(&self, new_len: u64) -> Result<()>;

    /// The read/write chunk size the pool should use when streaming through this device.
    fn io_chunk(&self) -> usize {
        1 << 20
    }

    /// Whether transfers wait on I/O rather than on the CPU, so checksumming on a second thread
    /// while the next chunk transfers is free time (true for O_DIRECT, false for memory copies).
    fn io_bound(&self) -> bool {
        false
    }

    /// Map `offset..offset+len` now, so that later reads of it take no page faults (memory-mapped
    /// devices; others have nothing to map). Advice only: failures are ignored and reads then
    /// fault as usual. Returns the bytes this call mapped.
    fn populate(&self, offset: u64, len: u64) -> u64 {
        let _ = (offset, len);
        0
    }

    /// A short name for reports ("mmap", "direct", "faulty").
    fn name(&self) -> &'static str;
}

/// Check that `offset..offset+len` lies inside a device of `device_len` bytes.
pub(crate) fn check_bounds(offset: u64, len: usize, device_len: u64) -> Result<()> {
    let len64 = len as u64;
    match offset.checked_add(len64) {
        Some(end) if end <= device_len => Ok(()),
        _ => Err(Error::OutOfBounds { offset, len: len64, device_len }),
    }
}

/// Split `offset..offset+len` into per-segment pieces: (segment index, offset in segment,
/// position in the caller's buffer, piece length).
pub(crate) fn segment_pieces(
    offset: u64,
    len: usize,
    seg_size: u64,
) -> impl Iterator<Item = (usize, u64, usize, usize)> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos >= len {
            return None;
        }
        let abs = offset + pos as u64;
        let seg = (abs / seg_size) as usize;
        let in_seg = abs % seg_size;
        let n = ((seg_size - in_seg) as usize).min(len - pos);
        let item = (seg, in_seg, pos, n);
        pos += n;
        Some(item)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_range_and_respect_segments() {
        let v: Vec<_> = segment_pieces(90, 250, 100).collect();
        assert_eq!(v, vec![(0, 90, 0, 10), (1, 0, 10, 100), (2, 0, 110, 100), (3, 0, 210, 40)]);
        assert_eq!(segment_pieces(0, 0, 100).count(), 0);
    }
}
