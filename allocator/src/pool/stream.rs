//! Streaming an object through the device with its checksum computed alongside (fused into the
//! copy on devices that copy through the CPU). Large objects are
//! split into contiguous parts, one per I/O thread; each thread copies and checksums its part
//! chunk by chunk (the chunk is still in cache when it is checksummed), and the parts' crc32c
//! values are combined. With one thread this is the plain serial loop.

use std::sync::mpsc;

use crate::device::Device;
use crate::error::Result;
use crate::sys::crc;

/// Objects at least this large are split across the I/O threads.
pub(crate) const PARALLEL_MIN: usize = 2 << 20;

/// Part boundaries are multiples of this, so every part stays 4 KiB aligned for O_DIRECT.
const PART_ALIGN: usize = 4096;

/// Split `len` into at most `threads` contiguous, 4 KiB-aligned part lengths.
fn part_lens(len: usize, threads: usize) -> Vec<usize> {
    let threads = if len < PARALLEL_MIN { 1 } else { threads.max(1) };
    let per = len.div_ceil(threads).div_ceil(PART_ALIGN) * PART_ALIGN;
    let mut v = Vec::with_capacity(threads);
    let mut left = len;
    while left > 0 {
        let n = per.min(left);
        v.push(n);
        left -= n;
    }
    v
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    // The workers only copy and checksum; if one panicked, re-raise that panic here.
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Combine per-part results in order into the crc32c of the whole.
fn combine(parts: Vec<(Result<u32>, usize)>) -> Result<u32> {
    let mut crc = 0u32;
    for (i, (r, len)) in parts.into_iter().enumerate() {
        let c = r?;
        crc = if i == 0 { c } else { crc32c::crc32c_combine(crc, c, len) };
    }
    Ok(crc)
}

/// I/O-bound device, one thread: the (immutable) source is checksummed on a helper thread while
/// the main thread writes it.
fn write_overlapped(dev: &dyn Device, offset: u64, bytes: &[u8], chunk: usize) -> Result<u32> {
    std::thread::scope(|s| {
        let h = s.spawn(|| crc::crc32c_append(0, bytes));
        let mut written = Ok(());
        for (i, piece) in bytes.chunks(chunk).enumerate() {
            if let Err(e) = dev.write_at(offset + (i * chunk) as u64, piece) {
                written = Err(e);
                break;
            }
        }
        let crc = join(h);
        written.map(|()| crc)
    })
}

/// I/O-bound device, one thread: each chunk, once read, is handed (read-only) to a hasher thread
/// while the next chunk is read.
fn read_overlapped(dev: &dyn Device, offset: u64, buf: &mut [u8], chunk: usize) -> Result<u32> {
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<&[u8]>(8);
        let h = s.spawn(move || rx.into_iter().fold(0u32, crc::crc32c_append));
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

fn write_part(dev: &dyn Device, offset: u64, bytes: &[u8], chunk: usize) -> Result<u32> {
    let mut crc = 0u32;
    for (i, piece) in bytes.chunks(chunk).enumerate() {
        crc = dev.write_at_crc(offset + (i * chunk) as u64, piece, crc)?;
    }
    Ok(crc)
}

fn read_part(dev: &dyn Device, offset: u64, buf: &mut [u8], chunk: usize) -> Result<u32> {
    let mut crc = 0u32;
    for (i, piece) in buf.chunks_mut(chunk).enumerate() {
        crc = dev.read_at_crc(offset + (i * chunk) as u64, piece, crc)?;
    }
    Ok(crc)
}

/// Write `bytes` at `offset` in `chunk`-sized pieces using up to `threads` threads; return the
/// crc32c of `bytes`.
pub(crate) fn write_with_crc(
    dev: &dyn Device,
    offset: u64,
    bytes: &[u8],
    chunk: usize,
    threads: usize,
) -> Result<u32> {
    let lens = part_lens(bytes.len(), threads);
    if lens.len() <= 1 {
        if dev.io_bound() && bytes.len() >= PARALLEL_MIN {
            return write_overlapped(dev, offset, bytes, chunk);
        }
        return write_part(dev, offset, bytes, chunk);
    }
    let mut parts = Vec::with_capacity(lens.len());
    let mut rest = bytes;
    let mut at = offset;
    for &n in &lens {
        let (head, tail) = rest.split_at(n);
        parts.push((at, head));
        rest = tail;
        at += n as u64;
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = parts[1..]
            .iter()
            .map(|&(at, part)| s.spawn(move || (write_part(dev, at, part, chunk), part.len())))
            .collect();
        let first = (write_part(dev, parts[0].0, parts[0].1, chunk), parts[0].1.len());
        let mut all = vec![first];
        all.extend(handles.into_iter().map(join));
        combine(all)
    })
}

/// Fill `buf` from `offset` in `chunk`-sized pieces using up to `threads` threads; return the
/// crc32c of what was read.
pub(crate) fn read_with_crc(
    dev: &dyn Device,
    offset: u64,
    buf: &mut [u8],
    chunk: usize,
    threads: usize,
) -> Result<u32> {
    let lens = part_lens(buf.len(), threads);
    if lens.len() <= 1 {
        if dev.io_bound() && buf.len() >= PARALLEL_MIN {
            return read_overlapped(dev, offset, buf, chunk);
        }
        return read_part(dev, offset, buf, chunk);
    }
    let mut parts = Vec::with_capacity(lens.len());
    let mut rest = buf;
    let mut at = offset;
    for &n in &lens {
        let (head, tail) = rest.split_at_mut(n);
        parts.push((at, head));
        rest = tail;
        at += n as u64;
    }
    std::thread::scope(|s| {
        let mut it = parts.into_iter();
        let Some((at0, first)) = it.next() else { return Ok(0) };
        let handles: Vec<_> = it
            .map(|(at, part)| {
                s.spawn(move || {
                    let n = part.len();
                    (read_part(dev, at, part, chunk), n)
                })
            })
            .collect();
        let n0 = first.len();
        let mut all = vec![(read_part(dev, at0, first, chunk), n0)];
        all.extend(handles.into_iter().map(join));
        combine(all)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{FaultConfig, FaultyDevice};

    #[test]
    fn parts_are_aligned_and_cover_the_object() {
        assert_eq!(part_lens(100, 4), vec![100]);
        assert_eq!(part_lens(0, 2), Vec::<usize>::new());
        for (len, t) in [(PARALLEL_MIN, 2), (PARALLEL_MIN + 5, 2), (PARALLEL_MIN * 3 + 4097, 3)] {
            let v = part_lens(len, t);
            assert!(v.len() <= t);
            assert_eq!(v.iter().sum::<usize>(), len);
            assert!(v[..v.len() - 1].iter().all(|n| n % PART_ALIGN == 0));
        }
    }

    #[test]
    fn split_and_serial_paths_agree_with_plain_crc() {
        let dev = FaultyDevice::new(8 << 20, FaultConfig::default());
        for threads in [1, 2, 3] {
            for len in [1usize, 5000, PARALLEL_MIN - 1, PARALLEL_MIN, PARALLEL_MIN * 2 + 12_345] {
                let data: Vec<u8> = (0..len).map(|i| (i * 131 + len + threads) as u8).collect();
                let w = write_with_crc(&dev, 4096, &data, 64 << 10, threads).unwrap();
                assert_eq!(w, crc32c::crc32c(&data));
                let mut back = vec![0u8; len];
                let r = read_with_crc(&dev, 4096, &mut back, 100_000, threads).unwrap();
                assert_eq!(back, data);
                assert_eq!(r, w);
            }
        }
    }

    #[test]
    fn errors_in_any_part_are_returned() {
        let cfg = FaultConfig { fail_write: Some(3), ..FaultConfig::default() };
        let dev = FaultyDevice::new(8 << 20, cfg);
        let data = vec![1u8; PARALLEL_MIN * 2];
        assert!(write_with_crc(&dev, 0, &data, 64 << 10, 2).is_err());
        let mut buf = vec![0u8; PARALLEL_MIN * 2];
        assert!(read_with_crc(&dev, (8 << 20) - 4096, &mut buf, 64 << 10, 2).is_err());
    }
}
