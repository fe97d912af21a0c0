//! Calibrating kernel paging: what reading a pool file through its mapping costs when the pages
//! are not cached (4 KiB faults with the kernel's readahead, streamed or isolated), when they
//! are (a copy), and what writing dirty mapped pages back costs — the inputs of
//! [`crate::sim::predict_paging`].

use std::path::Path;
use std::time::Instant;

use hetier_allocator::{
    drop_page_cache, Backend, Durability, ObjectId, ObjectKind, Pool, PoolOptions,
};

use crate::error::{Error, Result};
use crate::sim::PagingCost;

/// Objects of the streamed read: below the mapped device's prefault threshold (64 KiB), so
/// every page comes in by a fault, as a reclaimed page does.
const SMALL: usize = 60 << 10;
/// Isolated probes, each between spacers wider than the read-around, so no fault's read-around
/// reaches another probe.
const PROBE: usize = 16 << 10;
const PROBES: u64 = 8;

/// The read-around of a page fault on the block device holding `dir`: its `read_ahead_kb`
/// (128 KiB, the kernel's default, when sysfs does not say).
pub fn readaround_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let kb = std::fs::metadata(dir).ok().and_then(|m| {
        let dev = m.dev();
        let (major, minor) = (
            ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff),
            ((dev >> 12) & 0xffff_ff00) | (dev & 0xff),
        );
        let base = format!("/sys/dev/block/{major}:{minor}");
        // A partition has no queue of its own: its disk's is one level up.
        [format!("{base}/queue/read_ahead_kb"), format!("{base}/../queue/read_ahead_kb")]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok())
    });
    kb.unwrap_or(128).max(4) << 10
}

/// Measures page-fault reads, cached copies and write-back of mapped pool files in `dir`
/// (a temporary pool there, removed after), streaming about `bytes` of data.
pub fn calibrate_paging(dir: &Path, bytes: u64) -> Result<PagingCost> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let root = dir.join(format!("hetier-calibrate-paging-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let res = measure(&root, bytes.max(4 << 20));
    let _ = std::fs::remove_dir_all(&root);
    res
}

fn measure(root: &Path, bytes: u64) -> Result<PagingCost> {
    let ra = readaround_bytes(root);
    // The stream must be much longer than one read-around to measure streaming.
    let bytes = bytes.max(4 * ra);
    let n_seq = bytes.div_ceil(SMALL as u64);
    let spacer = (2 * ra + (1 << 20)) as usize;
    let total = n_seq * SMALL as u64 + PROBES * (PROBE + spacer) as u64 + bytes + (64 << 20);
    let seg = (256u64 << 20).min(total.next_power_of_two());
    let opts = |b| {
        PoolOptions::default()
            .backend(b)
            .segment_size(seg)
            .table_slots((n_seq + 2 * PROBES + 64).next_power_of_two())
    };
    let put = |pool: &Pool, id: u64, len: usize| {
        pool.put(ObjectId(id), ObjectKind::Blob, Durability::Durable, &vec![0x5a; len])
    };
    // Written with O_DIRECT, so nothing of it is cached.
    {
        let pool = Pool::create(root, opts(Backend::Direct))?;
        for i in 0..n_seq {
            put(&pool, i, SMALL)?;
        }
        for p in 0..PROBES {
            put(&pool, 1_000_000 + p, PROBE)?;
            put(&pool, 2_000_000 + p, spacer)?;
        }
    }
    drop_page_cache(root)?;
    let (pool, _) = Pool::open(root, opts(Backend::Mmap))?;
    let mut buf = vec![0u8; SMALL.max(bytes as usize / 4)];
    // Isolated faults first (nothing near them cached yet), in a scattered order.
    let mut probe_ns = Vec::new();
    for k in 0..PROBES {
        let p = (k * 13) % PROBES;
        let t = Instant::now();
        pool.read_into(ObjectId(1_000_000 + p), &mut buf[..PROBE])?;
        probe_ns.push(t.elapsed().as_nanos() as f64);
    }
    let t = Instant::now();
    for i in 0..n_seq {
        pool.read_into(ObjectId(i), &mut buf[..SMALL])?;
    }
    let seq_s = t.elapsed().as_secs_f64().max(1e-9);
    let streamed = (n_seq * SMALL as u64) as f64;
    let fault_seq_read_bw = streamed / seq_s;
    let t = Instant::now();
    for i in 0..n_seq {
        pool.read_into(ObjectId(i), &mut buf[..SMALL])?;
    }
    let mapped_copy_bw = streamed / t.elapsed().as_secs_f64().max(1e-9);
    probe_ns.sort_by(f64::total_cmp);
    let probe = probe_ns[probe_ns.len() / 2];
    let fault_random_ns = probe;
    // Write-back: durable puts through the mapping are a copy and an msync of fresh pages.
    let big = buf.len();
    let t = Instant::now();
    for i in 0..4u64 {
        put(&pool, 3_000_000 + i, big)?;
    }
    let writeback_bw = (4 * big) as f64 / t.elapsed().as_secs_f64().max(1e-9);
    let cost = PagingCost {
        fault_seq_read_bw,
        fault_random_ns,
        readaround_bytes: ra,
        writeback_bw,
        mapped_copy_bw,
    };
    cost.validate()?;
    Ok(cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_positive_rates_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let c = calibrate_paging(dir.path(), 4 << 20).unwrap();
        assert!(c.readaround_bytes >= 4096 && c.readaround_bytes.is_multiple_of(1024), "{c:?}");
        assert!(c.fault_seq_read_bw > 0.0 && c.writeback_bw > 0.0 && c.mapped_copy_bw > 0.0);
        // A cached copy is never slower than faulting the same bytes in from the file.
        assert!(c.mapped_copy_bw >= c.fault_seq_read_bw * 0.5, "{c:?}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
