//! Pool throughput against same-run baselines:
//! - `direct` backend on the real disk: sequential put/get of large objects vs a plain aligned
//!   O_DIRECT pwrite (with and without a final fdatasync) / pread loop over a file of the same size in the same directory;
//! - `mmap` backend on /dev/shm: get (and put) vs a plain memcpy of the same size.
//!
//! Run: `cargo bench -p hetier-allocator --bench pool -- --measurement-time 3 --warm-up-time 1`
//! (set HETIER_BENCH_DIR to choose the disk directory; default: the cargo target dir). After the
//! criterion output it prints a table of GB/s and ratios from criterion's own (median) estimates.

use std::fs::OpenOptions;
use std::hint::black_box;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput};
use hetier_allocator::{Backend, DramTier, Durability, ObjectId, ObjectKind, Pool, PoolOptions};

const MIB: usize = 1 << 20;
const SIZES: [usize; 2] = [4 * MIB, 32 * MIB];
const CHUNK: usize = 8 * MIB;

fn disk_dir() -> PathBuf {
    std::env::var_os("HETIER_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

fn shm_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for w in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        w.copy_from_slice(&b[..w.len()]);
    }
}

fn pool_opts(backend: Backend) -> PoolOptions {
    PoolOptions::default().backend(backend).segment_size(128 << 20).table_slots(1024)
}

fn bench_direct(c: &mut Criterion, tier: &DramTier) {
    let mut g = c.benchmark_group("direct");
    g.sample_size(10);
    for &size in &SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let dir = tempfile::tempdir_in(disk_dir()).expect("bench dir");
        let mut src = tier.alloc(size).expect("budget");
        fill(&mut src, 1);
        let mut dst = tier.alloc(size).expect("budget");

        // Baseline: the same bytes through plain aligned O_DIRECT calls, in the same chunks.
        let path = dir.path().join("raw.bin");
        let raw = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .expect("O_DIRECT file");
        let write_raw = |f: &std::fs::File, sync: bool| {
            for (i, c) in src.chunks(CHUNK).enumerate() {
                f.write_all_at(c, (i * CHUNK) as u64).expect("pwrite");
            }
            if sync {
                f.sync_data().expect("fdatasync");
            }
        };
        write_raw(&raw, true);
        g.bench_function(BenchmarkId::new("raw_pwrite", size / MIB), |b| {
            b.iter(|| write_raw(&raw, false))
        });
        // A durable write also needs the drive's cache flushed; the pool's durable put flushes
        // twice (data, then table entry).
        g.bench_function(BenchmarkId::new("raw_pwrite_fdatasync", size / MIB), |b| {
            b.iter(|| write_raw(&raw, true))
        });
        let read_raw = |dst: &mut [u8]| {
            for (i, c) in dst.chunks_mut(CHUNK).enumerate() {
                raw.read_exact_at(c, (i * CHUNK) as u64).expect("pread");
            }
        };
        read_raw(&mut dst);
        assert!(dst[..] == src[..], "raw O_DIRECT read back wrong bytes");
        g.bench_function(BenchmarkId::new("raw_pread", size / MIB), |b| {
            b.iter(|| read_raw(black_box(&mut dst)))
        });

        let pool = Pool::create(dir.path().join("pool"), pool_opts(Backend::Direct)).expect("pool");
        let id = ObjectId(1);
        pool.put(id, ObjectKind::Ciphertext, Durability::Durable, &src).expect("put");
        dst.fill(0);
        pool.read_into(id, &mut dst).expect("get");
        assert!(dst[..] == src[..], "direct pool read back wrong bytes");
        g.bench_function(BenchmarkId::new("pool_put", size / MIB), |b| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    let _ = pool.remove(id);
                    let start = Instant::now();
                    pool.put(id, ObjectKind::Ciphertext, Durability::Durable, &src).expect("put");
                    t += start.elapsed();
                }
                t
            })
        });
        // Scratch puts skip both flushes: the pool's write path against the plain pwrite loop.
        g.bench_function(BenchmarkId::new("pool_put_scratch", size / MIB), |b| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    let _ = pool.remove(id);
                    let start = Instant::now();
                    pool.put(id, ObjectKind::Ciphertext, Durability::Scratch, &src).expect("put");
                    t += start.elapsed();
                }
                t
            })
        });
        g.bench_function(BenchmarkId::new("pool_get", size / MIB), |b| {
            b.iter(|| black_box(pool.read_into(id, &mut dst).expect("get")))
        });
        let mut pool = pool;
        pool.set_io_threads(2);
        g.bench_function(BenchmarkId::new("pool_get_2threads", size / MIB), |b| {
            b.iter(|| black_box(pool.read_into(id, &mut dst).expect("get")))
        });
    }
    g.finish();
}

fn bench_mmap(c: &mut Criterion, tier: &DramTier) {
    let mut g = c.benchmark_group("mmap_shm");
    g.sample_size(10);
    for &size in &SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let mut src = tier.alloc(size).expect("budget");
        fill(&mut src, 2);
        let mut dst = tier.alloc(size).expect("budget");
        g.bench_function(BenchmarkId::new("memcpy", size / MIB), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(&dst);
            })
        });
        let dir = tempfile::tempdir_in(shm_dir()).expect("shm dir");
        let pool = Pool::create(dir.path(), pool_opts(Backend::Mmap)).expect("pool");
        let id = ObjectId(1);
        pool.put(id, ObjectKind::Ciphertext, Durability::Scratch, &src).expect("put");
        dst.fill(0);
        pool.read_into(id, &mut dst).expect("get");
        assert!(dst[..] == src[..], "mmap pool read back wrong bytes");
        g.bench_function(BenchmarkId::new("pool_put_scratch", size / MIB), |b| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    let _ = pool.remove(id);
                    let start = Instant::now();
                    pool.put(id, ObjectKind::Ciphertext, Durability::Scratch, &src).expect("put");
                    t += start.elapsed();
                }
                t
            })
        });
        g.bench_function(BenchmarkId::new("pool_get", size / MIB), |b| {
            b.iter(|| black_box(pool.read_into(id, &mut dst).expect("get")))
        });
        let mut pool = pool;
        pool.set_io_threads(2);
        g.bench_function(BenchmarkId::new("pool_get_2threads", size / MIB), |b| {
            b.iter(|| black_box(pool.read_into(id, &mut dst).expect("get")))
        });
    }
    g.finish();
}

/// Median time per iteration (ns) from criterion's `new/estimates.json`, if that file was
/// written by this run (the median, because the shared machine's disk is noisy).
fn median_ns(group: &str, bench: &str, size_mib: usize, since: SystemTime) -> Option<f64> {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).parent()?.join("criterion");
    let path = root.join(group).join(bench).join(size_mib.to_string()).join("new/estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let mean = &text[text.find("\"median\"")?..];
    let pe = &mean[mean.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = pe.find([',', '}'])?;
    pe[..end].trim().parse().ok()
}

fn summary(since: SystemTime) {
    let rows = [
        ("direct", "pool_put", "raw_pwrite", "put (durable)"),
        ("direct", "pool_put", "raw_pwrite_fdatasync", "put (durable)"),
        ("direct", "pool_put_scratch", "raw_pwrite", "put (scratch)"),
        ("direct", "pool_get", "raw_pread", "get"),
        ("direct", "pool_get_2threads", "raw_pread", "get, 2 threads"),
        ("mmap_shm", "pool_put_scratch", "memcpy", "put (scratch)"),
        ("mmap_shm", "pool_get", "memcpy", "get"),
        ("mmap_shm", "pool_get_2threads", "memcpy", "get, 2 threads"),
    ];
    println!("\n| size | backend | op | pool GB/s | baseline | baseline GB/s | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for &size in &SIZES {
        for (group, bench, base, op) in rows {
            let mib = size / MIB;
            let (Some(p), Some(b)) =
                (median_ns(group, bench, mib, since), median_ns(group, base, mib, since))
            else {
                continue;
            };
            let gbs = |ns: f64| size as f64 / ns;
            println!(
                "| {mib} MiB | {group} | {op} | {:.2} | {base} | {:.2} | {:.0}% |",
                gbs(p),
                gbs(b),
                100.0 * b / p
            );
        }
    }
}

fn main() {
    let since = SystemTime::now();
    let tier = DramTier::new(4 * 32 * MIB).expect("DRAM arena");
    let mut c = Criterion::default().configure_from_args();
    bench_direct(&mut c, &tier);
    bench_mmap(&mut c, &tier);
    c.final_summary();
    summary(since);
}
