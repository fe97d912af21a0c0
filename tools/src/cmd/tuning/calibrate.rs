//! `hetier calibrate`: measures DRAM and the PM tier (bandwidth, latency) and the CKKS op
//! times at one or more ring sizes, says what the PM tier physically is, and writes the cost
//! file that `plan`, `profile` and `tune` read with `--costs`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use hetier_he::ckks::bootstrap::BootstrapPreset;
use hetier_he::ckks::Preset;
use hetier_he::exec::OpCosts;
use hetier_tiering::calibrate::{
    calibrate_dram, calibrate_paging, calibrate_pm, emulate, CalibrationOptions,
};
use hetier_tiering::{CostModel, PmDescription, ThrottleProfile};
use serde::Serialize;

use super::costs::{CostFile, FORMAT, VERSION};
use super::{note, progress, OutputArgs};
use crate::fmt;

/// Flags of `hetier calibrate`.
#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// Directory on the PM tier (a disk, tmpfs or DAX mount); a temporary pool is made there
    /// and removed.
    #[arg(long, value_name = "PM_DIR", default_value = "/var/tmp")]
    dir: PathBuf,
    /// Ring sizes (log2 N, 13..=16) to time the CKKS ops at; 16 takes about a minute.
    #[arg(long, value_delimiter = ',', default_value = "13,14")]
    log_n: Vec<u32>,
    /// Where to write the cost file.
    #[arg(long, value_name = "FILE", default_value = "costs.json")]
    out: PathBuf,
    /// Measure the pool through mmap instead of O_DIRECT.
    #[arg(long)]
    mmap: bool,
    /// Lay an emulated device over the measured one (`optane`, `cxl`); always reported.
    #[arg(long, value_name = "PROFILE")]
    emulate: Option<String>,
    /// Times each op kind is measured (the cost file keeps the median: one sample on a busy
    /// machine can be off by a factor of two).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Also time one bootstrap at each ring (n16_deep at 16, insecure test parameters below),
    /// for plan mode of bootstrapped networks (about a minute at 16: its keys come first).
    #[arg(long)]
    bootstrap: bool,
    /// Size of each of the 4 PM test objects, MiB.
    #[arg(long, default_value_t = 64)]
    object_mib: u64,
    #[command(flatten)]
    output: OutputArgs,
}

/// What the filesystem holding `dir` is, from /proc/mounts: (kind, details).
fn pm_kind(dir: &Path) -> (String, String) {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let best = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| (f[0], f[1], f[2], f[3]))
        })
        .filter(|(_, mp, _, _)| dir.starts_with(mp))
        .max_by_key(|(_, mp, _, _)| mp.len());
    match best {
        Some((dev, mp, fs, opts)) => {
            let kind = if fs == "tmpfs" || fs == "ramfs" {
                "tmpfs"
            } else if opts.split(',').any(|o| o == "dax" || o == "dax=always") {
                "dax"
            } else {
                "disk"
            };
            (kind.to_owned(), format!("{fs} on {dev} mounted at {mp}"))
        }
        None => ("disk".to_owned(), "unknown filesystem".to_owned()),
    }
}

/// Per op kind, the median of several measurements (same parameters in all).
fn median(mut runs: Vec<OpCosts>) -> OpCosts {
    let mut out = runs.swap_remove(0);
    for (op, ns) in out.top_ns.iter_mut() {
        let mut v: Vec<f64> = runs.iter().filter_map(|r| r.top_ns.get(op).copied()).collect();
        v.push(*ns);
        v.sort_by(f64::total_cmp);
        *ns = v[v.len() / 2];
    }
    out
}

#[derive(Serialize)]
struct Row {
    tier: &'static str,
    read_gb_per_s: f64,
    write_gb_per_s: f64,
    read_latency_us: f64,
    write_latency_us: f64,
}

/// The kernel-paging costs as the table shows them.
#[derive(Serialize)]
struct PagingRow {
    fault_seq_read_gb_per_s: f64,
    fault_random_us: f64,
    readaround_kib: u64,
    writeback_gb_per_s: f64,
    mapped_copy_gb_per_s: f64,
}

#[derive(Serialize)]
struct OpRow {
    log_n: u32,
    op: String,
    top_level_ms: f64,
}

#[derive(Serialize)]
struct Report {
    out: String,
    pm_kind: String,
    pm: String,
    tiers: Vec<Row>,
    paging: PagingRow,
    ops: Vec<OpRow>,
}

/// Runs `hetier calibrate`.
pub fn run(args: &CalibrateArgs, json: bool) -> Result<()> {
    let quiet = args.output.quiet || json;
    for &n in &args.log_n {
        Preset::for_log_n(n).with_context(|| format!("--log-n {n}: presets exist for 13..=16"))?;
    }
    if args.object_mib == 0 || args.repeats == 0 {
        anyhow::bail!("--object-mib and --repeats must be at least 1");
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating the PM directory {}", args.dir.display()))?;
    let steps = 3 + (args.log_n.len() * args.repeats) as u64;
    let bar = progress(steps, quiet, "DRAM bandwidth and latency");
    let (kind, details) = pm_kind(&args.dir);
    let mut o = CalibrationOptions::new(&args.dir, !args.mmap, format!("{kind}: {details}"));
    o.object_bytes = args.object_mib << 20;
    let dram = calibrate_dram(o.dram_bytes);
    bar.inc(1);
    bar.set_message(format!("PM tier in {}", args.dir.display()));
    let measured = calibrate_pm(&o)
        .with_context(|| format!("measuring the PM tier in {}", args.dir.display()))?;
    let backend = if args.mmap { "mmap" } else { "O_DIRECT" };
    let (pm, label, emulated, pm_kind) = match &args.emulate {
        Some(name) => {
            let p = ThrottleProfile::named(name, &dram)
                .with_context(|| format!("--emulate {name}: known profiles are optane, cxl"))?;
            let label = format!("{} via {backend} + {}", o.label, p.label());
            (emulate(&measured, &p), label, true, format!("emulated {} over {kind}", p.name))
        }
        None => (measured, format!("{} via {backend}", o.label), false, kind),
    };
    bar.inc(1);
    // Kernel paging goes through the real device, never the emulated one.
    bar.set_message(format!("page faults through a mapping in {}", args.dir.display()));
    let paging = calibrate_paging(&args.dir, args.object_mib << 20)
        .with_context(|| format!("measuring mapped-file paging in {}", args.dir.display()))?;
    bar.inc(1);
    let tiers = CostModel {
        dram,
        pm,
        pm_description: PmDescription { label, emulated },
        ops_ns: Default::default(),
    };
    tiers.validate()?;
    let mut op_costs = Vec::new();
    for &n in &args.log_n {
        bar.set_message(format!("CKKS op times at log N = {n}"));
        let params = Preset::for_log_n(n).context("preset")?.params()?;
        let mut runs = Vec::new();
        for _ in 0..args.repeats {
            runs.push(OpCosts::calibrate(&params)?);
            bar.inc(1);
        }
        let mut ops = median(runs);
        if args.bootstrap {
            // The deep run's preset at 16; smaller rings only have insecure test presets.
            let preset = match n {
                16 => BootstrapPreset::n16_deep(),
                _ => BootstrapPreset::insecure_test(n, 3),
            };
            bar.set_message(format!("one bootstrap at log N = {n} (keys first)"));
            ops.calibrate_bootstrap(&preset)?;
        }
        op_costs.push(ops);
    }
    bar.finish_and_clear();
    let file = CostFile {
        format: FORMAT.into(),
        version: VERSION,
        pm_kind,
        tiers,
        op_costs,
        paging: Some(paging.clone()),
    };
    file.save(&args.out)?;
    let t = |tier: &'static str, c: &hetier_tiering::TierCost| Row {
        tier,
        read_gb_per_s: c.read_bw / 1e9,
        write_gb_per_s: c.write_bw / 1e9,
        read_latency_us: c.read_latency_ns / 1e3,
        write_latency_us: c.write_latency_ns / 1e3,
    };
    let report = Report {
        out: args.out.display().to_string(),
        pm_kind: file.pm_kind.clone(),
        pm: file.tiers.pm_description.to_string(),
        tiers: vec![t("dram", &file.tiers.dram), t("pm", &file.tiers.pm)],
        paging: PagingRow {
            fault_seq_read_gb_per_s: paging.fault_seq_read_bw / 1e9,
            fault_random_us: paging.fault_random_ns / 1e3,
            readaround_kib: paging.readaround_bytes >> 10,
            writeback_gb_per_s: paging.writeback_bw / 1e9,
            mapped_copy_gb_per_s: paging.mapped_copy_bw / 1e9,
        },
        ops: file
            .op_costs
            .iter()
            .flat_map(|oc| {
                oc.top_ns.iter().map(|(op, ns)| OpRow {
                    log_n: oc.log_n,
                    op: op.clone(),
                    top_level_ms: ns / 1e6,
                })
            })
            .collect(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("hetier calibrate — PM tier: {} [{}]", report.pm, report.pm_kind);
    let rows: Vec<Vec<String>> = report
        .tiers
        .iter()
        .map(|r| {
            vec![
                r.tier.into(),
                format!("{:.2}", r.read_gb_per_s),
                format!("{:.2}", r.write_gb_per_s),
                format!("{:.2}", r.read_latency_us),
                format!("{:.2}", r.write_latency_us),
            ]
        })
        .collect();
    fmt::table(
        &["tier", "read_gb_per_s", "write_gb_per_s", "read_latency_us", "write_latency_us"],
        &rows,
    );
    println!("\nkernel paging (a mapped pool file, measured on the real device)");
    let pg = &report.paging;
    fmt::table(
        &[
            "fault_seq_read_gb_per_s",
            "fault_random_us",
            "readaround_kib",
            "writeback_gb_per_s",
            "mapped_copy_gb_per_s",
        ],
        &[vec![
            format!("{:.2}", pg.fault_seq_read_gb_per_s),
            format!("{:.1}", pg.fault_random_us),
            pg.readaround_kib.to_string(),
            format!("{:.2}", pg.writeback_gb_per_s),
            format!("{:.2}", pg.mapped_copy_gb_per_s),
        ]],
    );
    println!();
    let rows: Vec<Vec<String>> = report
        .ops
        .iter()
        .map(|r| vec![r.log_n.to_string(), r.op.clone(), format!("{:.3}", r.top_level_ms)])
        .collect();
    fmt::table(&["log_n", "op", "top_level_ms"], &rows);
    note(args.output.quiet, &format!("\nwrote {} (read it with --costs)", args.out.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_takes_the_middle_sample_per_op() {
        let oc = |a: f64, b: f64| OpCosts {
            log_n: 13,
            q_len: 3,
            p_len: 1,
            top_ns: [("add".to_owned(), a), ("rotate".to_owned(), b)].into(),
        };
        let m = median(vec![oc(5.0, 100.0), oc(1.0, 300.0), oc(3.0, 200.0)]);
        assert_eq!((m.top_ns["add"], m.top_ns["rotate"]), (3.0, 200.0));
    }
}
