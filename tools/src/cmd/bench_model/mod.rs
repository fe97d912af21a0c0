//! `hetier bench-model`: the model-larger-than-DRAM benchmark (issue #6, section 5), an
//! end-to-end run rather than a criterion suite.
//!
//! 1. A `setup` child generates the evaluation keys and encodes the weights into a durable
//!    pool (O_DIRECT by default) once; later invocations find them and generate nothing.
//! 2. An all-DRAM child (budget ≥ footprint) runs the encrypted model on a few held-out images
//!    with fixed encryption seeds: the baseline time and the reference output ciphertexts.
//! 3. One child per policy (`lru`, `alpha`, `planned`) runs the same images under the small
//!    budget, each in its own cgroup v1 memory group whose hard limit is the budget plus a
//!    headroom for what lives outside the store (the CKKS context's tables, the client's secret
//!    key, the binary, the program): 64 MiB by default — every buffer the size of a ciphertext
//!    or evaluation key is in the store — or, where the model, program, context and secret key
//!    alone take more than half of that (log N = 16), those plus 32 MiB, or what the all-DRAM
//!    run measured outside its store plus an eighth if that is more, printed with the excess.
//!
//! Memory is observed from outside (sampled VmHWM and the group's max usage). The output
//! ciphertexts of every run must hash equal to the all-DRAM run's; the decrypted logits are
//! also compared with the plaintext model. The result is printed as a markdown table.

pub(crate) mod cgroup;
pub(crate) mod child;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use hetier_he::model::{argmax, Model, TestSet};
use hetier_tiering::calibrate::{calibrate, CalibrationOptions};
use hetier_tiering::{CostModel, PolicyConfig};
use serde::Serialize;

use cgroup::{run_child, Cgroup, Observed};
use child::{ChildReport, Job, JobKey, JobMode, CONSTANT_STAGE};

use crate::cmd::rss::OutsideStore;
use crate::cmd::tuning::costs::CostFile;
use crate::cmd::tuning::plot::{write_svg, Chart, Series};
use crate::fmt;
use crate::secret::SecretArgs;

pub use child::run as child_main;

/// Flags of `hetier bench-model`.
#[derive(Args, Debug)]
pub struct BenchModelArgs {
    /// Pool directory: keys and weights are generated there once and reused by later runs.
    #[arg(long, default_value = "/var/tmp/hetier-bench-model")]
    dir: PathBuf,
    /// The store's DRAM budget for the tiered runs, MiB.
    #[arg(long, default_value_t = 1024)]
    dram_mib: u64,
    /// Memory the cgroup allows above the budget (process memory outside the store), MiB.
    /// Default: 64, or — where the model, program, CKKS context and secret key (measured by
    /// the setup child) leave less than half of that for the rest of the process, as at log N = 16 —
    /// those plus 32 MiB; the budget runs then get what the all-DRAM run measured outside its
    /// store plus an eighth if that is more. The output says which, and the excess over 64.
    #[arg(long)]
    headroom_mib: Option<u64>,
    /// Policies to run under the budget (comma-separated: lru, alpha, planned,
    /// planned-noprefetch).
    #[arg(long, default_value = "lru,alpha,planned")]
    policies: String,
    /// Held-out images per run (the first is cold: keys and weights start in the pool).
    #[arg(long, default_value_t = 2)]
    images: usize,
    /// log2 N (the preset of that size: 16 is L = 30, dnum 3).
    #[arg(long, default_value_t = 16)]
    log_n: u32,
    /// A model description to run instead of the embedded digits_wide.
    #[arg(long)]
    model_file: Option<PathBuf>,
    /// Use the mmap pool backend (its page cache counts against the cgroup) instead of O_DIRECT.
    #[arg(long)]
    mmap: bool,
    /// Run without cgroups (no limit; memory still sampled from /proc).
    #[arg(long)]
    no_cgroup: bool,
    /// Cost file from `hetier calibrate --out FILE` for the policies' tier costs (default:
    /// calibrate next to the pool once and keep it as `<dir>.cost-model.json`).
    #[arg(long, value_name = "FILE")]
    costs: Option<PathBuf>,
    /// Write bench_model_images.svg (wall seconds of each inference, one line per run) here.
    #[arg(long, value_name = "DIR")]
    svg: Option<PathBuf>,
    /// Only prepare the pool (keys and weights), then stop.
    #[arg(long)]
    setup_only: bool,
    /// The client's secret key (a 0600 key file beside the pool, or an insecure seed).
    #[command(flatten)]
    secret: SecretArgs,
    #[command(flatten)]
    output: crate::cmd::tuning::OutputArgs,
}

#[derive(Serialize)]
struct RunRow {
    name: String,
    policy: String,
    budget: u64,
    cgroup_limit: Option<u64>,
    report: Option<ChildReport>,
    hwm: u64,
    peak_anon: u64,
    cgroup_max: Option<u64>,
    cgroup_failcnt: Option<u64>,
    failed: bool,
    oom_killed: bool,
    outputs_equal_all_dram: Option<bool>,
    /// Peak RSS (observed from outside) less the store's peak: what the child held outside
    /// the store.
    outside_store: Option<u64>,
}

/// The default headroom: what the process holds outside its store besides the context's
/// tables has been ~20 MiB at log N = 13–14 (binary, thread stacks, program, small buffers;
/// docs/measurements.md), so 32 MiB is allowed for it.
const REST_OF_PROCESS: u64 = 32 << 20;
/// The headroom the issue asks for.
const DEFAULT_HEADROOM: u64 = 64 << 20;

/// The context's tables from the setup child's own samples.
fn context_tables(setup: &ChildReport) -> u64 {
    let at = |stage: &str| setup.rss.iter().find(|r| r.stage == stage).map(|r| r.rss);
    match (at("start"), at(CONSTANT_STAGE)) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => 0,
    }
}

/// The headroom: the flag's, else 64 MiB, else (where the tables leave less than
/// [`REST_OF_PROCESS`] of it) the tables plus [`REST_OF_PROCESS`].
fn headroom_for(flag_mib: Option<u64>, context_tables: u64) -> u64 {
    match flag_mib {
        Some(m) => m << 20,
        None => DEFAULT_HEADROOM.max(context_tables + REST_OF_PROCESS),
    }
}

/// The headroom the budget runs need after the all-DRAM run held `outside` outside its store:
/// that plus an eighth, rounded up to a MiB.
fn measured_headroom(outside: u64) -> u64 {
    (outside + outside / 8).div_ceil(1 << 20) << 20
}

/// Says that the measured constant sets the budget runs' headroom, and by how much it exceeds
/// 64 MiB.
fn measured_line(headroom: u64, outside: u64) -> String {
    format!(
        "the all-DRAM run held {} outside its store: the budget runs' cgroup limit is budget + {} \
         (that plus an eighth), {} above budget + 64 MiB",
        fmt::bytes(outside),
        fmt::bytes(headroom),
        fmt::bytes(headroom.saturating_sub(DEFAULT_HEADROOM))
    )
}

/// Says what the headroom is made of, and by how much it exceeds 64 MiB when it does.
fn headroom_line(headroom: u64, context_tables: u64) -> String {
    let over = headroom.saturating_sub(DEFAULT_HEADROOM);
    let mut line = format!(
        "cgroup limit = budget + {} (the model, its program, the CKKS context's tables and the \
         client's secret key take {}, measured by the setup child)",
        fmt::bytes(headroom),
        fmt::bytes(context_tables)
    );
    if over > 0 {
        line += &format!(
            "; 64 MiB is not enough here: those alone take {} of it, so the limit is {} \
             above budget + 64 MiB",
            fmt::bytes(context_tables),
            fmt::bytes(over)
        );
    }
    line
}

#[derive(Serialize)]
struct BenchReport {
    model: String,
    pool: String,
    setup: ChildReport,
    setup_hwm: u64,
    /// The CKKS context's tables and the client's secret key: the setup child's resident set
    /// after making both less before (measured by the process).
    context_tables: u64,
    /// What each run's cgroup allows above its budget.
    headroom: u64,
    runs: Vec<RunRow>,
    plaintext_agreement: Vec<(String, usize, usize, f64)>,
}

fn child_args(job: &Job) -> Result<Vec<String>> {
    Ok(vec!["bench-model-child".into(), serde_json::to_string(job)?])
}

fn run_one(job: &Job, name: &str, limit: Option<u64>) -> Result<(Option<ChildReport>, Observed)> {
    let cg = match limit {
        Some(l) => Some(Cgroup::create(
            &format!("hetier-bench-model-{}-{name}", std::process::id()),
            Some(l),
        )?),
        None => None,
    };
    let (out, obs) = run_child(&child_args(job)?, cg.as_ref())?;
    let report = match out {
        Some(line) => {
            Some(serde_json::from_str(&line).with_context(|| format!("{name}: parsing {line:?}"))?)
        }
        None => None,
    };
    Ok((report, obs))
}

fn model_name(args: &BenchModelArgs) -> Result<String> {
    Ok(match &args.model_file {
        Some(p) => Model::load(p)?.name().to_owned(),
        None => child::DEFAULT_MODEL.0.to_owned(),
    })
}

fn test_set(args: &BenchModelArgs) -> Result<TestSet> {
    Ok(match &args.model_file {
        Some(p) => Model::load(p)?.test_set()?,
        None => {
            let (name, _, _, test) = child::DEFAULT_MODEL;
            TestSet::from_bytes(&format!("{name}.test.safetensors"), test)?
        }
    })
}

/// The tier cost model the policies use: calibrated once next to the pool (a few seconds of
/// large-object reads and writes through the same backend) and reused by later invocations.
fn cost_model(
    args: &BenchModelArgs,
    json: bool,
) -> Result<(PathBuf, Option<tempfile::NamedTempFile>)> {
    if let Some(f) = &args.costs {
        let tmp = tempfile::NamedTempFile::new()?;
        CostFile::load(f)?.tiers.save(tmp.path())?;
        return Ok((tmp.path().to_path_buf(), Some(tmp)));
    }
    let path = args.dir.with_extension("cost-model.json");
    if CostModel::load(&path).is_ok() {
        return Ok((path, None));
    }
    let parent = args.dir.parent().map_or_else(|| PathBuf::from("."), |p| p.to_path_buf());
    if !json {
        eprintln!("calibrating DRAM and the PM tier in {} ...", parent.display());
    }
    let o = CalibrationOptions::new(&parent, !args.mmap, format!("file in {}", parent.display()));
    let m = calibrate(&o)?;
    m.save(&path)?;
    Ok((path, None))
}

/// Runs `hetier bench-model`.
pub fn run(args: &BenchModelArgs, json: bool) -> Result<()> {
    // Notes on stderr: none under --json or --quiet.
    let quiet = json || args.output.quiet;
    let policies: Vec<(String, PolicyConfig)> = args
        .policies
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            PolicyConfig::parse(s)
                .map(|p| (s.to_owned(), p))
                .context(format!("unknown policy {s:?}"))
        })
        .collect::<Result<_>>()?;
    if args.images == 0 {
        bail!("--images must be at least 1");
    }
    let use_cgroup = !args.no_cgroup;
    if use_cgroup && !Cgroup::available() {
        bail!("no cgroup v1 memory controller at /sys/fs/cgroup/memory (pass --no-cgroup)");
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let budget = args.dram_mib << 20;
    let secret = args.secret.resolve(&args.dir)?;
    let key = match (&secret.origin.key_file(), &args.secret.sk_seed) {
        (Some(p), _) => JobKey::KeyFile(p.to_path_buf()),
        (None, Some(hex)) => JobKey::InsecureSeed(hex.clone()),
        (None, None) => bail!("no secret key: neither a key file nor --sk-seed"),
    };
    drop(secret);
    let mut job = Job {
        mode: JobMode::Setup,
        pool_dir: args.dir.clone(),
        model_file: args.model_file.clone(),
        log_n: args.log_n,
        budget: budget.max(1 << 30),
        policy: PolicyConfig::Lru,
        images: args.images,
        key,
        direct: !args.mmap,
        cost_model: None,
        model: None,
    };
    let name = model_name(args)?;
    if !quiet {
        eprintln!(
            "setup: keys and weights of {name} at log N = {} into {} ...",
            args.log_n,
            args.dir.display()
        );
    }
    let (setup, setup_obs) = run_one(&job, "setup", None)?;
    let setup = setup.context("the setup child failed")?;
    let fp = setup.footprint;
    if !quiet {
        eprintln!(
            "setup: {} keys generated, {} reused, {} weights encoded in {:.1} s; footprint {}",
            setup.keys_generated,
            setup.keys_reused,
            setup.weights_encoded,
            setup.prepare_seconds,
            fmt::bytes(fp.total())
        );
    }
    let context_tables = context_tables(&setup);
    let mut headroom = headroom_for(args.headroom_mib, context_tables);
    if !quiet {
        eprintln!("{}", headroom_line(headroom, context_tables));
    }
    if args.setup_only {
        return Ok(());
    }

    job.mode = JobMode::Run;
    let (tiers, _keep) = cost_model(args, quiet)?;
    job.cost_model = Some(tiers);
    // Room for everything at once, plus the ciphertexts being written and slack.
    let all_dram = fp.total() + fp.total() / 20 + (256 << 20);
    let mut plan = vec![("all-DRAM".to_owned(), PolicyConfig::Lru, all_dram)];
    plan.extend(policies.into_iter().map(|(n, p)| (n, p, budget)));
    let mut rows: Vec<RunRow> = Vec::new();
    for (run_name, policy, b) in plan {
        job.policy = policy.clone();
        job.budget = b;
        let limit = use_cgroup.then_some(b + headroom);
        if !quiet {
            eprintln!(
                "run {run_name}: budget {}, cgroup limit {} ...",
                fmt::bytes(b),
                limit.map_or("none".into(), fmt::bytes)
            );
        }
        let (report, obs) = run_one(&job, &run_name, limit)?;
        let outside_store =
            report.as_ref().map(|r| OutsideStore::measure(obs.hwm, &r.stats).outside_store_bytes);
        if rows.is_empty() && args.headroom_mib.is_none() {
            // The all-DRAM child measured the constant: the budget runs get room for it.
            if let Some(need) = outside_store.map(measured_headroom).filter(|&h| h > headroom) {
                headroom = need;
                if !quiet {
                    eprintln!("{}", measured_line(need, outside_store.unwrap_or(0)));
                }
            }
        }
        rows.push(RunRow {
            name: run_name,
            policy: policy.name().to_owned(),
            budget: b,
            cgroup_limit: limit,
            report,
            hwm: obs.hwm,
            peak_anon: obs.peak_anon,
            cgroup_max: obs.cgroup_max,
            cgroup_failcnt: obs.cgroup_failcnt,
            failed: obs.failed,
            oom_killed: obs.oom_killed,
            outputs_equal_all_dram: None,
            outside_store,
        });
    }
    let base_hashes: Option<Vec<u64>> =
        rows[0].report.as_ref().map(|r| r.images.iter().map(|i| i.output_hash).collect());
    for row in rows.iter_mut() {
        if let (Some(base), Some(r)) = (&base_hashes, &row.report) {
            let hashes: Vec<u64> = r.images.iter().map(|i| i.output_hash).collect();
            row.outputs_equal_all_dram = Some(&hashes == base);
        }
    }
    let tests = test_set(args)?;
    let agreement = rows
        .iter()
        .filter_map(|row| {
            let r = row.report.as_ref()?;
            let mut agree = 0;
            let mut err = 0.0f64;
            for im in &r.images {
                let want = tests.reference_logits(im.index);
                agree += usize::from(argmax(&im.logits) == argmax(want));
                err = im.logits.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(err, f64::max);
            }
            Some((row.name.clone(), agree, r.images.len(), err))
        })
        .collect();
    let pm = rows.iter().find_map(|r| r.report.as_ref()).map_or(setup.pm.clone(), |r| r.pm.clone());
    let report = BenchReport {
        model: name,
        pool: format!("{} ({pm})", args.dir.display()),
        setup,
        setup_hwm: setup_obs.hwm,
        context_tables,
        headroom,
        runs: rows,
        plaintext_agreement: agreement,
    };
    if let Some(dir) = &args.svg {
        plot_images(dir, &report)?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    let bad: Vec<&str> = report
        .runs
        .iter()
        .filter(|r| r.failed || r.outputs_equal_all_dram != Some(true))
        .map(|r| r.name.as_str())
        .collect();
    if !bad.is_empty() {
        bail!("runs failed or differ from the all-DRAM outputs: {}", bad.join(", "));
    }
    Ok(())
}

/// The wall time of every inference of every run, one line per run.
fn plot_images(dir: &std::path::Path, r: &BenchReport) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let series = r
        .runs
        .iter()
        .map(|run| {
            let pts = run.report.as_ref().map_or_else(Vec::new, |rep| {
                rep.images.iter().enumerate().map(|(i, im)| ((i + 1) as f64, im.seconds)).collect()
            });
            Series::line(format!("{} ({:.0} MiB)", run.name, run.budget as f64 / 1048576.0), pts)
        })
        .collect();
    let title = format!("{}: wall time of each encrypted inference", r.model);
    let chart = Chart {
        title: &title,
        x_label: "inference (1 = cold: keys and weights in the pool)",
        y_label: "wall time (s)",
        series,
        log_y: false,
    };
    write_svg(&dir.join("bench_model_images.svg"), &chart)
}

fn mib(b: u64) -> String {
    format!("{:.0}", b as f64 / (1u64 << 20) as f64)
}

fn gib(b: u64) -> String {
    format!("{:.2}", b as f64 / (1u64 << 30) as f64)
}

fn print_report(r: &BenchReport) {
    let headroom = r.headroom;
    let s = &r.setup;
    let fp = s.footprint;
    let budget = r.runs.get(1).map_or(0, |x| x.budget);
    println!(
        "## hetier bench-model — encrypted {} at log N = {} (L = {}), pool {}\n",
        r.model, s.log_n, s.max_level, r.pool
    );
    println!(
        "Footprint: keys {} ({} objects) + encoded weights {} ({} objects) + peak live ciphertexts {} \
         = **{}** ({} of ciphertexts written per inference); keys + ciphertexts alone {}. \
         DRAM budget {} → footprint **{:.1}×** the budget (keys + ciphertexts {:.1}×). \
         {}. Setup (this invocation): {} keys generated, {} reused, \
         {} weights encoded, {:.1} s.\n",
        fmt::bytes(fp.keys),
        fp.key_count,
        fmt::bytes(fp.weights),
        fp.weight_count,
        fmt::bytes(fp.peak_live_ciphertexts),
        fmt::bytes(fp.total()),
        fmt::bytes(fp.ciphertexts_written),
        fmt::bytes(fp.keys + fp.peak_live_ciphertexts),
        fmt::bytes(budget),
        fp.total() as f64 / budget.max(1) as f64,
        (fp.keys + fp.peak_live_ciphertexts) as f64 / budget.max(1) as f64,
        match r.runs.first().and_then(|x| x.outside_store) {
            Some(o) if headroom > headroom_for(None, r.context_tables) => {
                measured_line(headroom, o)
            }
            _ => headroom_line(headroom, r.context_tables),
        },
        s.keys_generated,
        s.keys_reused,
        s.weights_encoded,
        s.prepare_seconds,
    );
    let base = r
        .runs
        .first()
        .and_then(|x| x.report.as_ref())
        .and_then(|x| x.images.last())
        .map(|i| i.seconds);
    println!("| run | DRAM budget MiB | cgroup limit MiB | image 1 (cold) s | last image s | × all-DRAM | compute s | PM→DRAM GiB | DRAM→PM GiB | store peak MiB | peak RSS (VmHWM) MiB | cgroup max MiB | outside the store MiB | outputs = all-DRAM |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in &r.runs {
        let limit = row.cgroup_limit.map_or("–".into(), mib);
        let cg = row.cgroup_max.map_or("–".into(), mib);
        let Some(rep) = &row.report else {
            println!(
                "| {} | {} | {} | failed{} | | | | | | | {} | {} | | |",
                row.name,
                mib(row.budget),
                limit,
                if row.oom_killed { " (OOM-killed)" } else { "" },
                mib(row.hwm),
                cg
            );
            continue;
        };
        let first = rep.images.first();
        let last = rep.images.last();
        let moved_in: u64 = rep.images.iter().map(|i| i.pm_to_dram).sum();
        let moved_out: u64 = rep.images.iter().map(|i| i.dram_to_pm).sum();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            mib(row.budget),
            limit,
            first.map_or("–".into(), |i| format!("{:.1}", i.seconds)),
            last.map_or("–".into(), |i| format!("{:.1}", i.seconds)),
            match (last, base) {
                (Some(l), Some(b)) => format!("{:.2}", l.seconds / b),
                _ => "–".into(),
            },
            last.map_or("–".into(), |i| format!("{:.1}", i.compute_seconds)),
            gib(moved_in),
            gib(moved_out),
            mib(rep.stats.peak_dram),
            mib(row.hwm),
            cg,
            row.outside_store.map_or("–".into(), mib),
            match row.outputs_equal_all_dram {
                Some(true) => "yes (bit-equal)",
                Some(false) => "**NO**",
                None => "–",
            }
        );
    }
    println!();
    println!(
        "Times are wall seconds per encrypted image; × all-DRAM compares the last image (steady \
         state); compute is the sum of the steps' own times in that image (the rest is waiting \
         for the store). PM→DRAM / DRAM→PM are the store's bytes moved over all {} images of the \
         run. Peak RSS and cgroup max are read from outside the child. PM tier: {}.",
        r.runs.first().and_then(|x| x.report.as_ref()).map_or(0, |x| x.images.len()),
        r.pool
    );
    println!();
    for row in &r.runs {
        let Some(rep) = &row.report else { continue };
        let ctx = rep.rss.iter().find(|x| x.stage == CONSTANT_STAGE).map_or(0, |x| x.rss);
        println!(
            "- {}: process memory outside the store = peak RSS − store peak = {} MiB of the {} MiB \
             headroom (CKKS context, secret key and process start {} MiB; the rest is the \
             binary's pages, thread stacks and the program — key-switch scratch, products, the \
             result, its decryption and the client's ciphertext are in the store, whose scratch \
             peaked at {} MiB)",
            row.name,
            row.outside_store.map_or("–".into(), mib),
            mib(r.headroom),
            mib(ctx),
            mib(rep.stats.scratch_peak)
        );
    }
    for (name, agree, n, err) in &r.plaintext_agreement {
        println!("- {name}: argmax = plaintext on {agree}/{n} images, max logit error {err:.2e}");
    }
}
