//! `hetier demo`: the allocator's end-to-end job on an embedded default — a pool in a temporary
//! directory, durable "key" objects and scratch "ciphertext" objects, a clean reopen that drops
//! the scratch ones, and a verified read-back, all timed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use clap::{Args, ValueEnum};
use hetier_allocator::{Backend, Durability, ObjectId, ObjectKind, Pool, PoolOptions};
use serde::Serialize;

use crate::fmt;

/// Flags of `hetier demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Pool directory (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Device backend of the pool.
    #[arg(long, value_enum, default_value_t = BackendArg::Mmap)]
    backend: BackendArg,
    /// Durable objects to put (stand-ins for evaluation keys).
    #[arg(long, default_value_t = 8)]
    durable: u64,
    /// Scratch objects to put (stand-ins for intermediate ciphertexts).
    #[arg(long, default_value_t = 8)]
    scratch: u64,
    /// Size of each object in MiB.
    #[arg(long, default_value_t = 16)]
    object_mib: u64,
}

/// The device backends selectable on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BackendArg {
    /// Shared mappings of the segment files.
    Mmap,
    /// O_DIRECT reads and writes that bypass the page cache.
    Direct,
}

impl From<BackendArg> for Backend {
    fn from(b: BackendArg) -> Backend {
        match b {
            BackendArg::Mmap => Backend::Mmap,
            BackendArg::Direct => Backend::Direct,
        }
    }
}

#[derive(Serialize)]
struct Phase {
    phase: &'static str,
    objects: u64,
    bytes: u64,
    seconds: f64,
}

#[derive(Serialize)]
struct DemoReport {
    pool_dir: String,
    backend: &'static str,
    phases: Vec<Phase>,
    scratch_dropped_on_reopen: u64,
    durable_after_reopen: u64,
    fsck_clean: bool,
}

/// A reproducible byte pattern per object, so the read-back checks content, not just checksums.
fn fill(id: u64, buf: &mut [u8]) {
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Run the demo.
pub fn run(args: &DemoArgs, json: bool) -> Result<()> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new().prefix("hetier-demo-").tempdir()?;
            tmp.path().join("pool")
        }
    };
    let len = (args.object_mib << 20) as usize;
    ensure!(len > 0, "--object-mib must be at least 1");
    let opts = PoolOptions::default().backend(args.backend.into());
    let mut phases = Vec::new();
    let mut buf = vec![0u8; len];

    let pool = Pool::create(&dir, opts).with_context(|| format!("creating {}", dir.display()))?;
    let start = Instant::now();
    for i in 0..args.durable {
        fill(i, &mut buf);
        // Object 0 plays the relinearisation key, the rest rotation keys by 1, 2, 3, ...
        let galois_element = if i == 0 { 0 } else { 5u64.pow(i as u32 % 16) };
        let kind = ObjectKind::EvalKey { galois_element, level: 0, digit: 0 };
        pool.put(ObjectId(i), kind, Durability::Durable, &buf)?;
    }
    phases.push(Phase {
        phase: "put durable (flushed)",
        objects: args.durable,
        bytes: args.durable * len as u64,
        seconds: start.elapsed().as_secs_f64(),
    });
    let start = Instant::now();
    for i in 0..args.scratch {
        let id = 1_000_000 + i;
        fill(id, &mut buf);
        pool.put(ObjectId(id), ObjectKind::Ciphertext, Durability::Scratch, &buf)?;
    }
    phases.push(Phase {
        phase: "put scratch (not flushed)",
        objects: args.scratch,
        bytes: args.scratch * len as u64,
        seconds: start.elapsed().as_secs_f64(),
    });
    drop(pool);

    let start = Instant::now();
    let (pool, report) = Pool::open(&dir, opts).context("reopening the pool")?;
    phases.push(Phase {
        phase: "reopen (verify table)",
        objects: report.durable_objects,
        bytes: 0,
        seconds: start.elapsed().as_secs_f64(),
    });
    ensure!(
        report.dropped_scratch.len() as u64 == args.scratch,
        "reopen dropped {} scratch objects, expected {}",
        report.dropped_scratch.len(),
        args.scratch
    );

    let mut expect = vec![0u8; len];
    let start = Instant::now();
    for i in 0..args.durable {
        let n = pool.read_into(ObjectId(i), &mut buf)?;
        fill(i, &mut expect);
        ensure!(n == len && buf == expect, "object {i} came back different");
    }
    phases.push(Phase {
        phase: "read back + compare",
        objects: args.durable,
        bytes: args.durable * len as u64,
        seconds: start.elapsed().as_secs_f64(),
    });
    let fsck = pool.fsck()?;

    let out = DemoReport {
        pool_dir: dir.display().to_string(),
        backend: pool.backend_name(),
        phases,
        scratch_dropped_on_reopen: report.dropped_scratch.len() as u64,
        durable_after_reopen: report.durable_objects,
        fsck_clean: fsck.is_clean(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("hetier demo — pool {} ({} backend)", out.pool_dir, out.backend);
        let rows: Vec<Vec<String>> = out
            .phases
            .iter()
            .map(|p| {
                vec![
                    p.phase.to_string(),
                    p.objects.to_string(),
                    fmt::bytes(p.bytes),
                    format!("{:.1} ms", p.seconds * 1e3),
                    if p.bytes > 0 { fmt::gbps(p.bytes, p.seconds) } else { "-".into() },
                ]
            })
            .collect();
        fmt::table(&["phase", "objects", "bytes", "time", "throughput"], &rows);
        println!(
            "  reopen dropped {} scratch objects, kept {} durable; fsck {}",
            out.scratch_dropped_on_reopen,
            out.durable_after_reopen,
            if out.fsck_clean { "clean" } else { "FOUND PROBLEMS" }
        );
    }
    ensure!(out.fsck_clean, "fsck found problems: {:?}", fsck);
    Ok(())
}
