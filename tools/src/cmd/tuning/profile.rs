//! `hetier profile`: where a model's memory goes. Plans the model (or runs it for real with
//! `--run`), records the access trace, and reports per layer the ops, key switches,
//! bootstraps, compute time and bytes read and written by kind; the footprint by kind; the
//! objects with the most bytes × uses; and the PM traffic the cost model predicts at a DRAM
//! budget. Plots the live bytes by kind and the PM bandwidth over time.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use hetier_allocator::{Backend, Pool, PoolOptions};
use hetier_he::exec::Session;
use hetier_tiering::sim::{predict_timeline, PredictOptions};
use hetier_tiering::{PolicyConfig, PrefetchRule, TieredStore, Trace};
use serde::Serialize;

use super::analysis::{bandwidth, layer_rows, live_timeline, op_layers, top_objects};
use super::analysis::{Footprint, LayerRow, TopObject};
use super::costs::CostsArg;
use super::plot::{write_svg, Chart};
use super::{hoist_charge, mib, note, plan_trace, progress, Loaded, ModelArgs, OutputArgs};
use crate::fmt;

/// Flags of `hetier profile`.
#[derive(Args, Debug)]
pub struct ProfileArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    costs: CostsArg,
    /// Run the model for real (all-DRAM, a temporary pool) and profile its measured trace.
    #[arg(long, conflicts_with = "plan")]
    run: bool,
    /// Plan the model (no cryptography; op times from the cost file). The default.
    #[arg(long)]
    plan: bool,
    /// Inferences to trace.
    #[arg(long, default_value_t = 1)]
    images: usize,
    /// DRAM budget for the predicted PM traffic, MiB (default: half the peak live set).
    #[arg(long)]
    dram_mib: Option<f64>,
    /// Policy for the predicted PM traffic (lru, alpha, planned).
    #[arg(long, default_value = "planned")]
    policy: String,
    /// Objects to list by bytes × uses.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Write the access trace (JSON lines, tiering trace format) here (default: DIR/trace.jsonl
    /// with --svg DIR).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Write memory_timeline.svg and pm_bandwidth.svg into this directory.
    #[arg(long, value_name = "DIR")]
    svg: Option<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Serialize)]
struct ProfileReport {
    model: String,
    log_n: u32,
    mode: &'static str,
    images: usize,
    pm: String,
    footprint: Footprint,
    budget_mib: f64,
    policy: String,
    predicted_seconds: f64,
    pm_read_mib: f64,
    pm_write_mib: f64,
    layers: Vec<LayerRow>,
    top_objects: Vec<TopObject>,
    trace_file: Option<String>,
    plots: Vec<String>,
}

/// The trace of a real all-DRAM run of `images` inferences in a temporary pool.
fn real_trace(l: &Loaded, images: usize, quiet: bool) -> Result<Trace> {
    let tests = match (l.embedded, &l.file) {
        (Some(m), _) => m.test_set()?,
        (None, _) => l.model.test_set()?,
    };
    let tmp = tempfile::tempdir()?;
    let opts = PoolOptions::default().backend(Backend::Direct).segment_size(64 << 20);
    let pool = Pool::create(tmp.path().join("pool"), opts)?;
    let store = TieredStore::builder()
        .dram_budget(u64::MAX / 4)
        .pool(pool)
        .policy(PolicyConfig::planned(PrefetchRule::Conservative))
        .build()?;
    note(quiet, &format!("profile: keys and weights of {} (real run) ...", l.name));
    // The pool is a throwaway temp dir: a throwaway random key (decrypted in this process only).
    let seed = zeroize::Zeroizing::new(hetier_he::ckks::os_seed());
    let mut s = Session::new(&l.model, &l.compiled, &store, *seed)?;
    let bar = progress(images as u64, quiet, "encrypted inferences");
    for i in 0..images {
        s.infer(tests.image(i % tests.len()))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(s.executor().trace())
}

/// Runs `hetier profile`.
pub fn run(args: &ProfileArgs, json: bool) -> Result<()> {
    let quiet = args.output.quiet || json;
    if args.images == 0 {
        bail!("--images must be at least 1");
    }
    if let Some(b) = args.dram_mib.filter(|b| !(b.is_finite() && *b > 0.0)) {
        bail!("--dram-mib {b}: a DRAM budget must be more than 0 MiB");
    }
    let policy = PolicyConfig::parse(&args.policy)
        .with_context(|| format!("unknown policy {:?} (lru, alpha, planned)", args.policy))?;
    let costs = args.costs.load()?;
    let l = args.model.load()?;
    let trace = if args.run {
        real_trace(&l, args.images, quiet)?
    } else {
        plan_trace(&l, costs.ops(l.params.log_n(), &args.costs.costs)?, args.images)?
    };
    let (live, fp) = live_timeline(&trace, 2000);
    let budget = match args.dram_mib {
        Some(m) => (m * (1u64 << 20) as f64) as u64,
        None => fp.peak_live_bytes / 2,
    };
    let opts = PredictOptions { migrator_threads: 2, reuse_durable: true };
    // The store's budget less the hoisted decomposition the executor charges to it.
    let room = budget.saturating_sub(hoist_charge(&l)).max(1);
    let (p, tl) = predict_timeline(&trace, &costs.tiers, &policy, room, &opts)
        .with_context(|| format!("predicting {} at {:.2} MiB", args.policy, mib(budget)))?;
    let layers = op_layers(&l.compiled.program, args.images);
    let rows = layer_rows(&trace, l.compiled.program.layers(), &layers, args.images, Some(&tl));
    let top = top_objects(&trace, args.top);

    let trace_file = match (&args.trace, &args.svg) {
        (Some(f), _) => Some(f.clone()),
        (None, Some(d)) => Some(d.join("trace.jsonl")),
        (None, None) => None,
    };
    let mut plots = Vec::new();
    if let Some(dir) = &args.svg {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("memory_timeline.svg");
        let title = format!("{}: live bytes by kind ({} inference(s))", l.name, args.images);
        let x_label =
            if args.run { "compute time (s, measured)" } else { "time in the all-DRAM run (s)" };
        write_svg(
            &path,
            &Chart {
                title: &title,
                x_label,
                y_label: "live bytes (MiB)",
                series: live,
                log_y: false,
            },
        )?;
        plots.push(path.display().to_string());
        let path = dir.join("pm_bandwidth.svg");
        let title = format!(
            "{}: PM traffic, {} at {:.1} MiB (predicted)",
            l.name,
            args.policy,
            mib(budget)
        );
        write_svg(
            &path,
            &Chart {
                title: &title,
                x_label: "time (s)",
                y_label: "bandwidth (GB/s)",
                series: bandwidth(&tl, p.total_ns, 120),
                log_y: false,
            },
        )?;
        plots.push(path.display().to_string());
    }
    if let Some(f) = &trace_file {
        if let Some(parent) = f.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        trace.save(f).with_context(|| format!("writing {}", f.display()))?;
    }
    let report = ProfileReport {
        model: l.name.clone(),
        log_n: l.params.log_n(),
        mode: if args.run { "run" } else { "plan" },
        images: args.images,
        pm: costs.tiers.pm_description.to_string(),
        footprint: fp,
        budget_mib: mib(budget),
        policy: args.policy.clone(),
        predicted_seconds: p.total_ns * 1e-9,
        pm_read_mib: mib(p.pm_read_bytes),
        pm_write_mib: mib(p.pm_write_bytes),
        layers: rows,
        top_objects: top,
        trace_file: trace_file.map(|f| f.display().to_string()),
        plots,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print_report(&report);
    Ok(())
}

fn print_report(r: &ProfileReport) {
    println!(
        "hetier profile — {} at log N = {} ({} mode, {} inference(s)); PM: {}",
        r.model, r.log_n, r.mode, r.images, r.pm
    );
    let f = &r.footprint;
    println!();
    fmt::table(
        &["keys_mib", "weights_mib", "peak_ciphertexts_mib", "peak_live_mib"],
        &[vec![
            format!("{:.2}", f.keys_mib),
            format!("{:.2}", f.weights_mib),
            format!("{:.2}", f.peak_ciphertexts_mib),
            format!("{:.2}", f.peak_live_mib),
        ]],
    );
    println!(
        "\nper layer (per inference; PM traffic predicted for {} at {:.2} MiB over the whole run: \
         {:.3} s, {:.2} MiB read, {:.2} MiB written)",
        r.policy, r.budget_mib, r.predicted_seconds, r.pm_read_mib, r.pm_write_mib
    );
    let rows: Vec<Vec<String>> = r
        .layers
        .iter()
        .map(|x| {
            vec![
                x.layer.clone(),
                x.ops.to_string(),
                x.key_switches.to_string(),
                x.bootstraps.to_string(),
                format!("{:.4}", x.seconds),
                format!("{:.2}", x.keys_read_mib),
                format!("{:.2}", x.weights_read_mib),
                format!("{:.2}", x.ciphertexts_read_mib),
                format!("{:.2}", x.ciphertexts_written_mib),
                format!("{:.2}", x.pm_read_mib),
                format!("{:.2}", x.pm_write_mib),
            ]
        })
        .collect();
    fmt::table(
        &[
            "layer",
            "ops",
            "key_switches",
            "bootstraps",
            "seconds",
            "keys_read_mib",
            "weights_read_mib",
            "ciphertexts_read_mib",
            "ciphertexts_written_mib",
            "pm_read_mib",
            "pm_write_mib",
        ],
        &rows,
    );
    println!("\ntop objects by bytes × uses");
    let rows: Vec<Vec<String>> = r
        .top_objects
        .iter()
        .map(|o| {
            vec![
                o.id.clone(),
                o.kind.into(),
                format!("{:.2}", o.mib),
                o.uses.to_string(),
                format!("{:.2}", o.mib_x_uses),
            ]
        })
        .collect();
    fmt::table(&["id", "kind", "mib", "uses", "mib_x_uses"], &rows);
    if let Some(t) = &r.trace_file {
        println!("\ntrace: {t}");
    }
    for p in &r.plots {
        println!("plot: {p}");
    }
}
