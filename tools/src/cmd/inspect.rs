//! `hetier inspect`: what a pool holds, by kind and durability, plus a full checksum pass.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use hetier_allocator::{ObjectKind, Pool, PoolOptions};
use serde::Serialize;

use crate::fmt;

/// Flags of `hetier inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The pool directory.
    dir: PathBuf,
    /// Skip reading every object to verify its checksum.
    #[arg(long)]
    no_fsck: bool,
}

#[derive(Serialize, Default)]
struct KindTotals {
    objects: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct InspectReport {
    pool_bytes: u64,
    used_bytes: u64,
    free_bytes: u64,
    durable_objects: u64,
    scratch_dropped_on_open: u64,
    by_kind: BTreeMap<&'static str, KindTotals>,
    fsck_objects_checked: Option<u64>,
    fsck_corrupt: Vec<String>,
    fsck_space_consistent: Option<bool>,
}

fn kind_name(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Ciphertext => "ciphertext",
        ObjectKind::EvalKey { galois_element: 0, .. } => "relinearisation key",
        ObjectKind::EvalKey { .. } => "galois key",
        ObjectKind::Plaintext => "plaintext",
        _ => "blob",
    }
}

/// Run the inspection. Opening the pool drops its scratch objects, as any open does.
pub fn run(args: &InspectArgs, json: bool) -> Result<()> {
    let (pool, report) = Pool::open(&args.dir, PoolOptions::default())
        .with_context(|| format!("opening pool {}", args.dir.display()))?;
    let stats = pool.stats();
    let mut by_kind: BTreeMap<&'static str, KindTotals> = BTreeMap::new();
    for meta in pool.list() {
        let t = by_kind.entry(kind_name(meta.kind)).or_default();
        t.objects += 1;
        t.bytes += meta.len;
    }
    let fsck = if args.no_fsck { None } else { Some(pool.fsck()?) };
    let out = InspectReport {
        pool_bytes: stats.pool_bytes,
        used_bytes: stats.used_bytes,
        free_bytes: stats.free_bytes,
        durable_objects: stats.durable_objects,
        scratch_dropped_on_open: report.dropped_scratch.len() as u64,
        by_kind,
        fsck_objects_checked: fsck.as_ref().map(|f| f.objects_checked),
        fsck_corrupt: fsck
            .as_ref()
            .map(|f| f.corrupt.iter().map(|(id, e)| format!("{id}: {e}")).collect())
            .unwrap_or_default(),
        fsck_space_consistent: fsck.as_ref().map(|f| f.space_consistent),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "pool {}: {} total, {} used, {} free; {} durable objects ({} scratch dropped on open)",
        args.dir.display(),
        fmt::bytes(out.pool_bytes),
        fmt::bytes(out.used_bytes),
        fmt::bytes(out.free_bytes),
        out.durable_objects,
        out.scratch_dropped_on_open
    );
    let rows: Vec<Vec<String>> = out
        .by_kind
        .iter()
        .map(|(k, t)| vec![k.to_string(), t.objects.to_string(), fmt::bytes(t.bytes)])
        .collect();
    fmt::table(&["kind", "objects", "bytes"], &rows);
    match (&fsck, out.fsck_corrupt.is_empty()) {
        (None, _) => println!("fsck skipped"),
        (Some(f), true) if f.space_consistent => {
            println!(
                "fsck clean: {} objects, {} read",
                f.objects_checked,
                fmt::bytes(f.bytes_checked)
            )
        }
        (Some(f), _) => {
            println!("fsck FOUND PROBLEMS (space consistent: {}):", f.space_consistent);
            for line in &out.fsck_corrupt {
                println!("  {line}");
            }
        }
    }
    Ok(())
}
