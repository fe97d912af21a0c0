//! `hetier inspect`: what a pool holds, by kind and durability, plus a full checksum pass.
//! It exits non-zero when the pass finds a problem, so scripts can detect corruption;
//! `--repair` removes the damaged objects, so the next `hetier run` rebuilds the derivable
//! ones (evaluation keys, encoded weights) from their sources.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use hetier_allocator::{FsckReport, ObjectId, ObjectKind, ObjectMeta, Pool, PoolOptions};
use serde::Serialize;

use crate::fmt;

/// Flags of `hetier inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The pool directory.
    dir: PathBuf,
    /// Skip reading every object to verify its checksum.
    #[arg(long, conflicts_with = "repair")]
    no_fsck: bool,
    /// Remove every object whose checksum fails (a later run regenerates evaluation keys and
    /// weights; a damaged ciphertext is lost).
    #[arg(long)]
    repair: bool,
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
    /// Damaged objects removed by `--repair`.
    repaired: Vec<String>,
}

/// An object as a person knows it: its kind and role, then its id.
fn describe(meta: Option<ObjectMeta>, id: ObjectId) -> String {
    match meta.map(|m| m.kind) {
        Some(ObjectKind::EvalKey { galois_element: 0, .. }) => {
            format!("the relinearisation key (object {id})")
        }
        Some(ObjectKind::EvalKey { galois_element, .. }) => {
            format!("the Galois key for element {galois_element} (object {id})")
        }
        Some(ObjectKind::Plaintext) => format!("an encoded weight plaintext (object {id})"),
        Some(ObjectKind::Ciphertext) => format!("a durable ciphertext (object {id})"),
        Some(_) => format!("a blob such as a key-set manifest (object {id})"),
        None => format!("object {id}"),
    }
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
    let corrupt: Vec<(ObjectId, String)> = fsck
        .as_ref()
        .map(|f| {
            // The allocator's text names the id and both checksums; lead with the role.
            f.corrupt.iter().map(|(id, e)| (*id, format!("{}: {e}", describe(pool.meta(*id), *id))))
        })
        .into_iter()
        .flatten()
        .collect();
    let mut repaired = Vec::new();
    if args.repair {
        for (id, _) in &corrupt {
            let what = describe(pool.meta(*id), *id);
            pool.remove(*id).with_context(|| format!("removing {what}"))?;
            repaired.push(what);
        }
    }
    let out = InspectReport {
        pool_bytes: stats.pool_bytes,
        used_bytes: stats.used_bytes,
        free_bytes: stats.free_bytes,
        durable_objects: stats.durable_objects,
        scratch_dropped_on_open: report.dropped_scratch.len() as u64,
        by_kind,
        fsck_objects_checked: fsck.as_ref().map(|f| f.objects_checked),
        fsck_corrupt: corrupt.iter().map(|(_, line)| line.clone()).collect(),
        fsck_space_consistent: fsck.as_ref().map(|f| f.space_consistent),
        repaired,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_table(args, &out, fsck.as_ref());
    }
    let space_ok = out.fsck_space_consistent != Some(false);
    let unrepaired = out.fsck_corrupt.len() - out.repaired.len();
    if !space_ok {
        bail!("pool {}: the space accounting does not add up", args.dir.display());
    }
    if unrepaired > 0 {
        bail!(
            "pool {}: {unrepaired} damaged object(s); `hetier inspect --repair {}` removes them \
             and the next run regenerates the keys and weights among them",
            args.dir.display(),
            args.dir.display()
        );
    }
    Ok(())
}

fn print_table(args: &InspectArgs, out: &InspectReport, fsck: Option<&FsckReport>) {
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
    match (fsck, out.fsck_corrupt.is_empty()) {
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
    for what in &out.repaired {
        println!("repaired: removed {what}");
    }
}
