//! The allocator end to end: put durable evaluation keys and scratch ciphertexts into a pool in a
//! temporary directory, close it, reopen it (the scratch objects are dropped and reported), read
//! every durable object back into DRAM blocks under a hard budget, verify, and print the numbers.
//!
//! `cargo run --release -p hetier-allocator --example pool_demo -- [--backend mmap|direct]
//!  [--keys N] [--scratch N] [--mib SIZE] [--dir PARENT]`

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use hetier_allocator::{Backend, DramTier, Durability, ObjectId, ObjectKind, Pool, PoolOptions};

struct Args {
    backend: Backend,
    keys: u64,
    scratch: u64,
    mib: usize,
    dir: Option<PathBuf>,
}

fn parse() -> Result<Args, Box<dyn Error>> {
    let mut a = Args { backend: Backend::Mmap, keys: 8, scratch: 4, mib: 8, dir: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => {
                a.backend = match value()?.as_str() {
                    "mmap" => Backend::Mmap,
                    "direct" => Backend::Direct,
                    other => return Err(format!("unknown backend {other:?} (mmap|direct)").into()),
                }
            }
            "--keys" => a.keys = value()?.parse()?,
            "--scratch" => a.scratch = value()?.parse()?,
            "--mib" => a.mib = value()?.parse()?,
            "--dir" => a.dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("pool_demo [--backend mmap|direct] [--keys N] [--scratch N] [--mib SIZE] [--dir PARENT]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    if a.mib == 0 || a.keys == 0 {
        return Err("--mib and --keys must be positive".into());
    }
    Ok(a)
}

/// Deterministic contents for object `id`, written as u64 limbs like an RNS polynomial.
fn fill(block: &mut [u64], id: u64) {
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for w in block {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *w = x;
    }
}

fn gbs(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e9
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse()?;
    let len = args.mib << 20;
    // By default the mmap backend runs on tmpfs (/dev/shm, standing in for a DAX mount) and the
    // direct backend on the system temp dir, which O_DIRECT needs to be a real file system.
    let parent = match (&args.dir, args.backend) {
        (Some(d), _) => d.clone(),
        (None, Backend::Mmap) if std::path::Path::new("/dev/shm").is_dir() => {
            PathBuf::from("/dev/shm")
        }
        (None, _) => std::env::temp_dir(),
    };
    let tmp = tempfile::Builder::new().prefix("hetier-pool-demo-").tempdir_in(&parent)?;
    let dir = tmp.path().join("pool");
    let opts = PoolOptions::default().backend(args.backend).segment_size(256 << 20);
    // Two blocks in flight at a time: the DRAM budget is a hard limit, not a hint.
    let dram = DramTier::new(2 * len)?;
    println!(
        "pool in {} ({:?} backend), {} durable keys + {} scratch ciphertexts of {} MiB, DRAM budget {} MiB",
        dir.display(),
        args.backend,
        args.keys,
        args.scratch,
        args.mib,
        dram.budget() >> 20
    );

    let pool = Pool::create(&dir, opts)?;
    let mut block = dram.alloc(len)?;
    let mut put_secs = 0.0;
    for k in 0..args.keys {
        fill(block.as_u64s_mut(), k);
        let t = Instant::now();
        let kind = ObjectKind::EvalKey {
            galois_element: 5u64.pow(k as u32 % 8),
            level: 10,
            digit: (k % 3) as u32,
        };
        pool.put(ObjectId(k), kind, Durability::Durable, &block)?;
        put_secs += t.elapsed().as_secs_f64();
    }
    let durable_bytes = args.keys * len as u64;
    println!(
        "put durable : {:>8} MiB in {:.3} s = {:.2} GB/s (each flushed before put returned)",
        durable_bytes >> 20,
        put_secs,
        gbs(durable_bytes, put_secs)
    );
    let mut secs = 0.0;
    for s in 0..args.scratch {
        fill(block.as_u64s_mut(), 1000 + s);
        let t = Instant::now();
        pool.put(ObjectId(1000 + s), ObjectKind::Ciphertext, Durability::Scratch, &block)?;
        secs += t.elapsed().as_secs_f64();
    }
    let scratch_bytes = args.scratch * len as u64;
    println!(
        "put scratch : {:>8} MiB in {:.3} s = {:.2} GB/s (never flushed)",
        scratch_bytes >> 20,
        secs,
        gbs(scratch_bytes, secs)
    );
    let s = pool.stats();
    println!(
        "before close: {} durable + {} scratch objects, pool {} MiB, used {} MiB, free {} MiB",
        s.durable_objects,
        s.scratch_objects,
        s.pool_bytes >> 20,
        s.used_bytes >> 20,
        s.free_bytes >> 20
    );
    drop(pool);

    let t = Instant::now();
    let (pool, report) = Pool::open(&dir, opts)?;
    println!(
        "reopen      : {:.1} ms; {} durable objects ({} MiB) kept, {} scratch objects ({} MiB) dropped",
        t.elapsed().as_secs_f64() * 1e3,
        report.durable_objects,
        report.durable_bytes >> 20,
        report.dropped_scratch.len(),
        report.dropped_scratch.iter().map(|m| m.len).sum::<u64>() >> 20
    );

    let mut expect = dram.alloc(len)?;
    let mut read_secs = 0.0;
    for k in 0..args.keys {
        let t = Instant::now();
        let n = pool.read_into(ObjectId(k), &mut block)?;
        read_secs += t.elapsed().as_secs_f64();
        fill(expect.as_u64s_mut(), k);
        if n != len || block.as_u64s() != expect.as_u64s() {
            return Err(format!("object {k} came back wrong").into());
        }
    }
    println!(
        "read back   : {:>8} MiB in {:.3} s = {:.2} GB/s (checksums verified, bytes compared)",
        durable_bytes >> 20,
        read_secs,
        gbs(durable_bytes, read_secs)
    );
    println!(
        "DRAM        : {} MiB in use of a {} MiB budget (peak {} MiB)",
        dram.in_use() >> 20,
        dram.budget() >> 20,
        dram.peak() >> 20
    );
    let fsck = pool.fsck()?;
    let s = pool.stats();
    println!("fsck        : {} objects, {} MiB checked, clean = {}; pool {} MiB = table + {} MiB used + {} MiB free",
        fsck.objects_checked, fsck.bytes_checked >> 20, fsck.is_clean(), s.pool_bytes >> 20, s.used_bytes >> 20, s.free_bytes >> 20);
    if !fsck.is_clean() || report.dropped_scratch.len() as u64 != args.scratch {
        return Err("pool verification failed".into());
    }
    Ok(())
}
