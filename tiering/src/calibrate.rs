//! Host calibration: measures DRAM (memcpy bandwidth, dependent-load latency) and a PM tier
//! (large-object read/write bandwidth and small-object latency through a real pool with the
//! chosen backend in the chosen directory), producing a [`CostModel`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hetier_allocator::{
    Backend, DramBlock, DramTier, Durability, ObjectId, ObjectKind, Pool, PoolOptions,
};
use serde::{Deserialize, Serialize};

use crate::busy::busy_work;
pub use crate::calibrate_paging::calibrate_paging;
use crate::cost::{CostModel, PmDescription, TierCost};
use crate::error::{Error, Result};
use crate::throttle::ThrottleProfile;

/// What to measure and where.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationOptions {
    /// Bytes per DRAM copy buffer (two are allocated).
    pub dram_bytes: usize,
    /// Directory for the temporary PM pool (must be on the tier being measured).
    pub pm_dir: PathBuf,
    /// `true` for the O_DIRECT backend, `false` for mmap.
    pub direct: bool,
    /// Size of each large object used for bandwidth.
    pub object_bytes: u64,
    /// How many large objects to write and read.
    pub objects: u32,
    /// Emulated device laid over the measured one, if any.
    pub throttle: Option<ThrottleProfile>,
    /// Label for reports, e.g. `"ext4 /var/tmp"`.
    pub label: String,
    /// Reads cycle through at least this many bytes of large objects (more objects are
    /// stored than are read per pass), so that no object is still in a CPU cache when it is
    /// read again, as in a run whose working set exceeds the caches. Default: twice the
    /// last-level cache.
    pub read_set_bytes: u64,
}

impl CalibrationOptions {
    /// Defaults that take a few seconds: 128 MiB DRAM buffers, 4 × 64 MiB PM objects read per
    /// pass, cycling through twice the last-level cache.
    pub fn new(pm_dir: impl Into<PathBuf>, direct: bool, label: impl Into<String>) -> Self {
        Self {
            dram_bytes: 128 << 20,
            pm_dir: pm_dir.into(),
            direct,
            object_bytes: 64 << 20,
            objects: 4,
            throttle: None,
            label: label.into(),
            read_set_bytes: 2 * last_level_cache_bytes(),
        }
    }
}

/// Measures DRAM: best of three memcpy passes for read bandwidth, a random pointer chase for
/// latency, and for write bandwidth the mean rate of producing an object the way the replayer
/// does (fill every word of a recycled block).
pub fn calibrate_dram(bytes: usize) -> TierCost {
    let bytes = bytes.max(1 << 20);
    let src = vec![0x5au8; bytes];
    let mut dst = vec![0u8; bytes];
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        dst.copy_from_slice(&src);
        std::hint::black_box(&mut dst);
        best = best.min(t.elapsed().as_secs_f64());
    }
    let bw = bytes as f64 / best.max(1e-9);
    drop((src, dst));
    let mut fill_s = 0.0;
    let rounds = 4u32;
    if let Ok(mut b) = DramTier::new(bytes).and_then(|tier| tier.alloc(bytes)) {
        // The first round faults the block in; the store recycles blocks, so the rest refill
        // the same pages, as producing a result in a recycled block does.
        for i in 0..=rounds {
            let t = Instant::now();
            crate::replay::fill(b.as_u64s_mut(), crate::ObjectId(u64::from(i)));
            std::hint::black_box(&b);
            if i > 0 {
                fill_s += t.elapsed().as_secs_f64();
            }
        }
    }
    let write_bw = if fill_s > 0.0 { bytes as f64 * f64::from(rounds) / fill_s } else { bw };
    TierCost {
        read_bw: bw,
        write_bw,
        read_latency_ns: chase_ns(bytes),
        write_latency_ns: 0.0,
        overlapped_read_bw: None,
        prefetch_wake_ns: 0.0,
    }
}

/// Average latency of a dependent random load over `bytes` of memory (ns).
fn chase_ns(bytes: usize) -> f64 {
    let n = (bytes / 4).max(1024);
    // Sattolo's algorithm: one cycle through all slots, so the chase never short-circuits.
    let mut next: Vec<u32> = (0..n as u32).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = (x % i as u64) as usize;
        next.swap(i, j);
    }
    let steps = 1_000_000usize;
    let mut p = 0u32;
    let t = Instant::now();
    for _ in 0..steps {
        p = next[p as usize];
    }
    std::hint::black_box(p);
    t.elapsed().as_nanos() as f64 / steps as f64
}

/// Measures the PM tier through a temporary pool in `opts.pm_dir`.
pub fn calibrate_pm(opts: &CalibrationOptions) -> Result<TierCost> {
    if opts.objects == 0 || opts.object_bytes == 0 {
        return Err(Error::InvalidConfig {
            name: "calibration objects",
            value: format!("{} x {}", opts.objects, opts.object_bytes),
            reason: "need at least one non-empty object",
        });
    }
    let dir = tempdir_in(&opts.pm_dir)?;
    let backend = if opts.direct { Backend::Direct } else { Backend::Mmap };
    // Reads cycle through enough objects to span twice the last-level cache, as a run's
    // working set does: re-reading a few objects that stay cached (300 MiB of L3 here) timed
    // the emulated tier at 6.6 GB/s and more where runs read 4.6-5.6 GB/s.
    let cache_objects = opts.read_set_bytes.div_ceil(opts.object_bytes).min(256);
    let stored = opts.objects.max(cache_objects as u32);
    let total = opts.object_bytes * u64::from(stored) + (64 << 20);
    // Segments must divide the pool's maximum size (a power of two).
    let seg = (256u64 << 20).min(total.next_power_of_two());
    let popts = PoolOptions::default().backend(backend).segment_size(seg).table_slots(1024);
    let res = (|| {
        let pool = Pool::create(&dir, popts)?;
        let data = vec![0xa5u8; opts.object_bytes as usize];
        let t = Instant::now();
        for i in 0..stored {
            pool.put(ObjectId(u64::from(i)), ObjectKind::Blob, Durability::Durable, &data)?;
        }
        let write_s = t.elapsed().as_secs_f64() * f64::from(opts.objects) / f64::from(stored);
        let dram = DramTier::new(2 * opts.object_bytes as usize)?;
        let mut block = dram.alloc(opts.object_bytes as usize)?;
        let times = read_times(&pool, opts.objects, stored, &dram, &mut block)?;
        let (read_s, overlapped_s) = (times.alone_s, times.overlapped_s);
        // Small objects: per-request cost once bandwidth is negligible.
        let small = vec![0x3cu8; 4096];
        let n_small = 64u64;
        let t = Instant::now();
        for i in 0..n_small {
            pool.put(ObjectId(1_000_000 + i), ObjectKind::Blob, Durability::Durable, &small)?;
        }
        let small_write_ns = t.elapsed().as_nanos() as f64 / n_small as f64;
        let t = Instant::now();
        for i in 0..n_small {
            pool.read_into(ObjectId(1_000_000 + i), &mut block.as_bytes_mut()[..4096])?;
        }
        let small_read_ns = t.elapsed().as_nanos() as f64 / n_small as f64;
        let bytes = (opts.object_bytes * opts.objects as u64) as f64;
        Ok::<_, Error>(TierCost {
            read_bw: bytes / read_s.max(1e-9),
            write_bw: bytes / write_s.max(1e-9),
            read_latency_ns: small_read_ns,
            write_latency_ns: small_write_ns,
            overlapped_read_bw: Some(bytes / overlapped_s.max(1e-9)),
            prefetch_wake_ns: times.wake_ns,
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let measured = res?;
    Ok(match &opts.throttle {
        Some(p) => emulate(&measured, p),
        None => measured,
    })
}

/// Timed rounds of [`read_times`], averaged.
const READ_ROUNDS: usize = 10;

/// What [`read_times`] measured (means over its rounds).
struct ReadTimes {
    /// Seconds to read every object on the calling thread.
    alone_s: f64,
    /// Seconds a second thread spent reading them while the calling thread busy-worked, from
    /// each read's start (after the wake-up) to its end.
    overlapped_s: f64,
    /// Mean delay from handing a read to the sleeping thread to its start (ns).
    wake_ns: f64,
}

/// Seconds to read `objects` large objects of `pool` (the next ones of the `stored` in turn,
/// so none is still cached when it comes round again), two ways, as the store reads:
/// - alone: on this thread, into `block` (a demand load, the compute thread waiting);
/// - overlapped: each by a second thread, woken from a blocking receive, into its own block,
///   while this thread busy-works as the compute thread does until the read is done (a
///   migrator's prefetch during an op).
///
/// On a tier read by CPU copies the copy competes with the computation for the cores (and on
/// a loaded machine with everything else), and the woken thread waits for a core: a prefetch
/// then runs slower than a demand load. Calibration that timed only reads on an otherwise idle
/// process predicted such runs up to 2x too fast. The wake-up delay is reported apart, since a
/// prefetch handed over while the compute thread already waits pays it at full length.
/// Destinations are faulted in first (the store
/// reads into resident blocks) and a first round of each is untimed (the store reads the same
/// objects over and over); then [`READ_ROUNDS`] rounds alternate the two ways, so both see the
/// same machine, and each way's mean is returned: a run pays the slow rounds a loaded machine
/// gives it as well as the fast ones, so a median or a best pass would be optimistic.
fn read_times(
    pool: &Pool,
    objects: u32,
    stored: u32,
    dram: &DramTier,
    block: &mut DramBlock,
) -> Result<ReadTimes> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::mpsc;
    let mut theirs = dram.alloc(block.len())?;
    block.as_bytes_mut().fill(1);
    theirs.as_bytes_mut().fill(1);
    let done = AtomicBool::new(false);
    // When the reader took its current request, in ns from `base`.
    let base = Instant::now();
    let woke = AtomicU64::new(0);
    let (tx, rx) = mpsc::channel::<u64>();
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    std::thread::scope(|s| {
        let reader = s.spawn(|| -> Result<()> {
            for id in rx {
                woke.store(base.elapsed().as_nanos() as u64, Ordering::Release);
                let res = pool.read_into(ObjectId(id), theirs.as_bytes_mut());
                done.store(true, Ordering::Release);
                res?;
            }
            Ok(())
        });
        let (mut alone, mut overlapped, mut wakes) = (Vec::new(), Vec::new(), Vec::new());
        let mut cursor = 0u32;
        let mut next = || {
            cursor = (cursor + 1) % stored.max(1);
            u64::from(cursor)
        };
        let mut run = || -> Result<()> {
            for round in 0..=READ_ROUNDS {
                let t = Instant::now();
                for _ in 0..objects {
                    pool.read_into(ObjectId(next()), block.as_bytes_mut())?;
                }
                let a = t.elapsed().as_secs_f64();
                let (mut read_ns, mut wake_ns) = (0u64, 0u64);
                for _ in 0..objects {
                    done.store(false, Ordering::Release);
                    let sent = base.elapsed().as_nanos() as u64;
                    if tx.send(next()).is_err() {
                        // The reader stopped on an error, which its join reports.
                        return Ok(());
                    }
                    // (A reader that died without saying so is reported by its join.)
                    while !done.load(Ordering::Acquire) && !reader.is_finished() {
                        std::hint::black_box(busy_work(Duration::from_micros(20)));
                    }
                    let (end, start) =
                        (base.elapsed().as_nanos() as u64, woke.load(Ordering::Acquire));
                    wake_ns += start.saturating_sub(sent);
                    read_ns += end.saturating_sub(start.max(sent));
                }
                if round > 0 {
                    alone.push(a);
                    overlapped.push(read_ns as f64 / 1e9);
                    wakes.push(wake_ns as f64 / f64::from(objects.max(1)));
                }
            }
            Ok(())
        };
        let ran = run();
        drop(tx);
        reader.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        ran?;
        Ok(ReadTimes { alone_s: mean(alone), overlapped_s: mean(overlapped), wake_ns: mean(wakes) })
    })
}

/// Size of the largest CPU cache (sysfs), or 32 MiB when it cannot be read.
fn last_level_cache_bytes() -> u64 {
    let mut best = (0u32, 32u64 << 20);
    for i in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
        let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).ok();
        let (Some(level), Some(size)) = (read("level"), read("size")) else { continue };
        let Ok(level) = level.trim().parse::<u32>() else { continue };
        let size = size.trim();
        let (num, unit) =
            size.split_at(size.find(|c: char| !c.is_ascii_digit()).unwrap_or(size.len()));
        let Ok(n) = num.parse::<u64>() else { continue };
        let bytes = n
            << match unit {
                "K" => 10,
                "M" => 20,
                "G" => 30,
                _ => 0,
            };
        if level > best.0 {
            best = (level, bytes);
        }
    }
    best.1
}

/// The tier a throttle produces over a measured device: the slower of the two in every field.
pub fn emulate(measured: &TierCost, p: &ThrottleProfile) -> TierCost {
    TierCost {
        read_bw: measured.read_bw.min(p.read_bw),
        write_bw: measured.write_bw.min(p.write_bw),
        read_latency_ns: measured.read_latency_ns.max(p.read_latency_ns),
        write_latency_ns: measured.write_latency_ns.max(p.write_latency_ns),
        overlapped_read_bw: measured.overlapped_read_bw.map(|bw| bw.min(p.read_bw)),
        prefetch_wake_ns: measured.prefetch_wake_ns,
    }
}

fn tempdir_in(parent: &std::path::Path) -> Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!("hetier-calibrate-{}-{nanos}", std::process::id());
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}

/// Calibrates DRAM and the PM tier and returns the cost model (with no op times yet).
pub fn calibrate(opts: &CalibrationOptions) -> Result<CostModel> {
    let dram = calibrate_dram(opts.dram_bytes);
    let pm = calibrate_pm(opts)?;
    let backend = if opts.direct { "O_DIRECT" } else { "mmap" };
    let (label, emulated) = match &opts.throttle {
        Some(p) => (format!("{} ({backend}) + {}", opts.label, p.name), true),
        None => (format!("{} ({backend})", opts.label), false),
    };
    let m = CostModel {
        dram,
        pm,
        pm_description: PmDescription { label, emulated },
        ops_ns: Default::default(),
    };
    m.validate()?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrates_a_small_pool() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = CalibrationOptions::new(dir.path(), false, "tmp");
        o.dram_bytes = 4 << 20;
        o.object_bytes = 1 << 20;
        o.objects = 2;
        o.read_set_bytes = 3 << 20;
        let m = calibrate(&o).unwrap();
        assert!(m.dram.read_bw > 1e8 && m.pm.read_bw > 1e6 && m.dram.read_latency_ns > 0.0);
        // Reads overlapped with busy work are measured too (the prefetch rate).
        assert!(m.pm.overlapped_read_bw.is_some_and(|bw| bw > 1e6), "{:?}", m.pm);
        assert!(m.pm.prefetch_wake_ns > 0.0, "{:?}", m.pm);
        assert!(!m.pm_description.emulated);
        o.throttle = Some(ThrottleProfile::optane_dcpmm());
        let m = calibrate(&o).unwrap();
        assert!(m.pm.read_bw <= 6.6e9 && m.pm.read_latency_ns >= 305.0);
        assert!(m.pm.overlapped_read_bw.is_some_and(|bw| bw <= 6.6e9));
        assert!(m.pm_description.to_string().ends_with("(emulated)"));
        // Nothing left behind in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        o.objects = 0;
        assert!(matches!(calibrate(&o), Err(Error::InvalidConfig { .. })));
    }
}
