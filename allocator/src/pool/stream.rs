//! Streaming an object through the device with its checksum computed alongside. For large
//! objects the checksum runs on a second thread, one chunk behind the I/O, so verification costs
//! almost no wall time on top of the copy or the disk transfer.

use std::sync::mpsc;

use crate::device::Device;
use crate::error::Result;

/// Objects at least this large are checksummed on a helper thread.
pub(crate) const PARALLEL_MIN: usize = 2 << 20;

fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    // The helper only runs crc32c over a slice; if it panicked, re-raise that panic here.
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Write `bytes` at `offset` in `chunk`-sized pieces; return their crc32c.
pub(crate) fn write_with_crc(
    dev: &dyn Device,
    offset: u64,
    bytes: &[u8],
    chunk: usize,
) -> Result<u32> {
    let write_all = || -> Result<()> {
        for (i, piece) in bytes.chunks(chunk).enumerate() {
            dev.write_at(offset + (i * chunk) as u64, piece)?;
        }
        Ok(())
    };
    if bytes.len() < PARALLEL_MIN {
        write_all()?;
        return Ok(crc32c::crc32c(bytes));
    }
    // The source is immutable, so the whole checksum can run concurrently with the writes.
    std::thread::scope(|s| {
        let h = s.spawn(|| crc32c::crc32c(bytes));
        let written = write_all();
        let crc = join(h);
        written.map(|()| crc)
    })
}

/// Fill `buf` from `offset` in `chunk`-sized pieces; return the crc32c of what was read.
pub(crate) fn read_with_crc(
    dev: &dyn Device,
    offset: u64,
    buf: &mut [u8],
    chunk: usize,
) -> Result<u32> {
    if buf.len() < PARALLEL_MIN {
        let mut crc = 0u32;
        for (i, piece) in buf.chunks_mut(chunk).enumerate() {
            dev.read_at(offset + (i * chunk) as u64, piece)?;
            crc = crc32c::crc32c_append(crc, piece);
        }
        return Ok(crc);
    }
    // Each chunk, once read, is handed (read-only) to the hasher while the next one is read.
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<&[u8]>(8);
        let h = s.spawn(move || rx.into_iter().fold(0u32, crc32c::crc32c_append));
        let mut result = Ok(());
        for (i, piece) in buf.chunks_mut(chunk).enumerate() {
            if let Err(e) = dev.read_at(offset + (i * chunk) as u64, piece) {
                result = Err(e);
                break;
            }
            let done: &[u8] = piece;
            if tx.send(done).is_err() {
                break;
            }
        }
        drop(tx);
        let crc = join(h);
        result.map(|()| crc)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{FaultConfig, FaultyDevice};

    #[test]
    fn parallel_and_serial_paths_agree_with_plain_crc() {
        let dev = FaultyDevice::new(8 << 20, FaultConfig::default());
        for len in [1usize, 5000, PARALLEL_MIN - 1, PARALLEL_MIN, PARALLEL_MIN * 2 + 12_345] {
            let data: Vec<u8> = (0..len).map(|i| (i * 131 + len) as u8).collect();
            let w = write_with_crc(&dev, 4096, &data, 64 << 10).unwrap();
            assert_eq!(w, crc32c::crc32c(&data));
            let mut back = vec![0u8; len];
            let r = read_with_crc(&dev, 4096, &mut back, 100_000).unwrap();
            assert_eq!(back, data);
            assert_eq!(r, w);
        }
    }

    #[test]
    fn errors_in_the_middle_of_a_stream_are_returned() {
        let dev = FaultyDevice::new(
            8 << 20,
            FaultConfig { fail_write: Some(3), ..FaultConfig::default() },
        );
        let data = vec![1u8; PARALLEL_MIN * 2];
        assert!(write_with_crc(&dev, 0, &data, 64 << 10).is_err());
        let mut buf = vec![0u8; PARALLEL_MIN * 2];
        assert!(read_with_crc(&dev, (8 << 20) - 4096, &mut buf, 64 << 10).is_err());
    }
}
