//! `hetier tune --verify`: the recommended budget (and the step below it) run for real, each a
//! `bench-model` child process over a prepared pool, in its own cgroup v1 memory limit (budget
//! plus headroom) unless told otherwise, against an all-DRAM child of the same kind.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hetier_tiering::PolicyConfig;
use serde::Serialize;

use super::costs::CostFile;
use super::{mib, note, Loaded};
use crate::cmd::bench_model::cgroup::{run_child, Cgroup, Observed};
use crate::cmd::bench_model::child::JobKey;
use crate::cmd::bench_model::child::{ChildReport, ImageRun, Job, JobMode};
use crate::cmd::rss::OutsideStore;
use crate::secret::SecretArgs;

/// How the verifying runs are made.
pub struct VerifyOptions {
    /// Pool directory (keys and weights generated there once).
    pub dir: PathBuf,
    /// Inferences per run (the last is timed).
    pub images: usize,
    /// Run each child in a cgroup v1 memory limit.
    pub cgroup: bool,
    /// Bytes the cgroup allows above the store's budget.
    pub headroom: u64,
    /// The store budget of the all-DRAM run (the peak live set and slack for what the plan
    /// does not show, such as the hoisted decomposition).
    pub all_dram_budget: u64,
    /// No progress notes.
    pub quiet: bool,
}

/// Kernel-paging runs to make after the store's: the model over the mapped pool at the
/// store's smallest budget, in a cgroup of each DRAM budget plus the process's own memory
/// (measured in the all-DRAM run), its files dropped from the page cache first.
pub struct KernelRuns<'a> {
    /// DRAM budgets (store copies + page cache), bytes.
    pub budgets: Vec<u64>,
    /// The store's budget in these runs.
    pub store_budget: u64,
    /// The prediction for a page cache of the given bytes (the cgroup limit less the run's
    /// peak anonymous memory, known only after it ran).
    pub predict: &'a dyn Fn(u64) -> Result<Expected>,
}

/// What `tune` predicts for one verifying run.
pub struct Expected {
    /// The store's DRAM budget, bytes.
    pub budget: u64,
    /// Predicted slowdown against all-DRAM.
    pub slowdown: Option<f64>,
    /// Predicted PM → DRAM bytes per inference in the steady state.
    pub pm_read_per_image: Option<u64>,
}

/// One verifying run against its prediction.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyRow {
    /// `all-DRAM`, `recommended` or `step below`.
    pub run: String,
    /// The store's DRAM budget, MiB.
    pub budget_mib: f64,
    /// The cgroup's hard limit, MiB (none without cgroups).
    pub cgroup_limit_mib: Option<f64>,
    /// Median wall time of the inferences after the first, seconds (`None`: the run failed).
    pub measured_seconds: Option<f64>,
    /// That time over the all-DRAM run's.
    pub measured_slowdown: Option<f64>,
    /// The same with each run's time divided by its own compute time first (median over the
    /// inferences of wall / compute, over the all-DRAM run's): the store's stalls alone, which
    /// is what the simulator predicts, and robust to the machine's load changing between runs.
    pub compute_normalised_slowdown: Option<f64>,
    /// What `tune` predicted.
    pub predicted_slowdown: Option<f64>,
    /// Compute-normalised measured minus predicted slowdown.
    pub error: Option<f64>,
    /// Predicted PM → DRAM MiB per inference (steady state).
    pub predicted_pm_read_mib: Option<f64>,
    /// Measured PM → DRAM MiB per inference (median of the inferences after the first): the
    /// store's own counter, independent of the machine's load.
    pub measured_pm_read_mib: Option<f64>,
    /// Whether every inference's output ciphertext is bit-equal to the all-DRAM run's.
    pub outputs_equal_all_dram: Option<bool>,
    /// Peak RSS of the child (VmHWM, sampled from outside), MiB.
    pub peak_rss_mib: Option<f64>,
    /// The cgroup's peak usage (RSS + page cache), MiB.
    pub cgroup_max_mib: Option<f64>,
    /// Whether the compute-normalised slowdown is within the target.
    pub target_held: Option<bool>,
    /// The kernel's OOM killer ended the run.
    pub oom_killed: bool,
    /// Objects the store prefetched and evicted before any pin used them (whole run): each is
    /// read again, bytes the simulator does not predict.
    pub prefetch_evicted_unused: Option<u64>,
    /// Pins that waited for an object already on its way (whole run).
    pub pin_waits: Option<u64>,
}

fn child(job: &Job, name: &str, limit: Option<u64>) -> Result<(Option<ChildReport>, Observed)> {
    let cg = match limit {
        Some(l) => {
            Some(Cgroup::create(&format!("hetier-tune-{}-{name}", std::process::id()), Some(l))?)
        }
        None => None,
    };
    let args = vec!["bench-model-child".to_owned(), serde_json::to_string(job)?];
    let (out, obs) = run_child(&args, cg.as_ref())?;
    let report = match out {
        Some(line) => {
            Some(serde_json::from_str(&line).with_context(|| format!("{name}: parsing {line:?}"))?)
        }
        None => None,
    };
    Ok((report, obs))
}

/// The median of `f` over every inference but the first (or the one run).
fn steady(images: &[ImageRun], f: impl Fn(&ImageRun) -> f64) -> Option<f64> {
    let rest = if images.len() > 1 { &images[1..] } else { images };
    let mut v: Vec<f64> = rest.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Runs the model at each of `runs` with `policy`, after a setup and an all-DRAM run, and
/// compares.
pub fn verify(
    l: &Loaded,
    costs_path: &Path,
    policy: &PolicyConfig,
    runs: &[Expected],
    target: f64,
    o: &VerifyOptions,
    kernel: Option<&KernelRuns<'_>>,
) -> Result<Vec<VerifyRow>> {
    if o.cgroup && !Cgroup::available() {
        bail!(
            "--verify needs the cgroup v1 memory controller at /sys/fs/cgroup/memory (and root); \
             pass --no-cgroup to run without a memory limit"
        );
    }
    // The children read tier costs as tiering's cost model: hand them the file's tiers.
    let tiers = tempfile::NamedTempFile::new()?;
    CostFile::load(costs_path)?.tiers.save(tiers.path())?;
    std::fs::create_dir_all(&o.dir).with_context(|| format!("creating {}", o.dir.display()))?;
    // The client's key lives in a 0600 file beside the pool (random on first use); the
    // children get its path, never the key.
    let secret = SecretArgs::default().resolve(&o.dir)?;
    let key_file = secret
        .origin
        .key_file()
        .context("verify keeps its secret key in a key file")?
        .to_path_buf();
    drop(secret);
    let mut job = Job {
        mode: JobMode::Setup,
        pool_dir: o.dir.clone(),
        model_file: l.file.clone(),
        log_n: l.params.log_n(),
        budget: o.all_dram_budget,
        policy: PolicyConfig::Lru,
        images: o.images,
        key: JobKey::KeyFile(key_file),
        direct: true,
        cost_model: Some(tiers.path().to_path_buf()),
        model: l.embedded,
    };
    note(o.quiet, &format!("verify: keys and weights of {} into {} ...", l.name, o.dir.display()));
    let (setup, _) = child(&job, "setup", None)?;
    setup.context("the setup child failed (see its error above)")?;
    job.mode = JobMode::Run;
    let all_dram =
        Expected { budget: o.all_dram_budget, slowdown: Some(1.0), pm_read_per_image: Some(0) };
    let mut plan = vec![("all-DRAM".to_owned(), PolicyConfig::Lru, &all_dram)];
    for (i, e) in runs.iter().enumerate() {
        let name = if i == 0 { "recommended" } else { "step below" };
        plan.push((name.to_owned(), policy.clone(), e));
    }
    let mut rows = Vec::new();
    let (mut base, mut base_stall): (Option<f64>, Option<f64>) = (None, None);
    let mut base_hashes: Option<Vec<u64>> = None;
    // The all-DRAM process's memory outside the store (context, buffers, the hoisted
    // decomposition): what a kernel-paging run needs beside its budget.
    let mut own_memory = 0u64;
    for (name, pol, expected) in plan {
        let budget = expected.budget;
        job.policy = pol;
        job.budget = budget;
        let limit = o.cgroup.then_some(budget + o.headroom);
        note(
            o.quiet,
            &format!(
                "verify: {name} at {:.2} MiB ({} policy), cgroup limit {} ...",
                mib(budget),
                job.policy.name(),
                limit.map_or("none".into(), |l| format!("{:.0} MiB", mib(l)))
            ),
        );
        let (rep, obs) = child(&job, &name.replace(' ', "-"), limit)?;
        let secs = rep.as_ref().and_then(|r| steady(&r.images, |i| i.seconds));
        // Wall over the run's own compute: the store's stalls, whatever the machine's load.
        let stall = rep
            .as_ref()
            .and_then(|r| steady(&r.images, |i| i.seconds / i.compute_seconds.max(1e-9)));
        let hashes: Option<Vec<u64>> =
            rep.as_ref().map(|r| r.images.iter().map(|i| i.output_hash).collect());
        if name == "all-DRAM" {
            (base, base_stall, base_hashes) = (secs, stall, hashes.clone());
            own_memory = rep.as_ref().map_or(obs.peak_anon, |r| {
                OutsideStore::measure(obs.peak_anon, &r.stats).outside_store_bytes
            });
        }
        let pm_read = rep.as_ref().and_then(|r| steady(&r.images, |i| i.pm_to_dram as f64));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let measured = ratio(secs, base);
        let normalised = ratio(stall, base_stall);
        let predicted = expected.slowdown;
        rows.push(VerifyRow {
            run: name,
            budget_mib: mib(budget),
            cgroup_limit_mib: limit.map(mib),
            measured_seconds: secs,
            measured_slowdown: measured,
            compute_normalised_slowdown: normalised,
            predicted_slowdown: predicted,
            error: normalised.zip(predicted).map(|(m, p)| m - p),
            predicted_pm_read_mib: expected.pm_read_per_image.map(mib),
            measured_pm_read_mib: pm_read.map(|b| mib(b as u64)),
            outputs_equal_all_dram: hashes.zip(base_hashes.as_ref()).map(|(h, b)| &h == b),
            peak_rss_mib: (obs.hwm > 0).then(|| mib(obs.hwm)),
            cgroup_max_mib: obs.cgroup_max.map(mib),
            target_held: normalised.map(|m| m <= target),
            oom_killed: obs.oom_killed,
            prefetch_evicted_unused: rep.as_ref().map(|r| r.stats.prefetch_evicted_unused),
            pin_waits: rep.as_ref().map(|r| r.stats.pin_waits),
        });
    }
    if base.is_none() {
        bail!("the all-DRAM verifying run failed (see its error above)");
    }
    match kernel {
        Some(k) if o.cgroup => {
            let base = Base { secs: base, stall: base_stall, hashes: base_hashes.as_deref() };
            for &d in &k.budgets {
                rows.push(kernel_run(&mut job, k, d, own_memory, &base, target, o)?);
            }
        }
        Some(_) => note(o.quiet, "verify: kernel paging needs a cgroup limit; not run"),
        None => {}
    }
    Ok(rows)
}

/// The all-DRAM run's numbers the others are compared with.
struct Base<'a> {
    secs: Option<f64>,
    stall: Option<f64>,
    hashes: Option<&'a [u64]>,
}

/// One kernel-paging run at DRAM budget `d`.
fn kernel_run(
    job: &mut Job,
    k: &KernelRuns<'_>,
    d: u64,
    own_memory: u64,
    base: &Base<'_>,
    target: f64,
    o: &VerifyOptions,
) -> Result<VerifyRow> {
    job.policy = PolicyConfig::Lru;
    job.budget = k.store_budget;
    job.direct = false;
    let limit = d + own_memory;
    // Pages an earlier process cached would be free hits charged to no one.
    hetier_allocator::drop_page_cache(&o.dir)
        .with_context(|| format!("dropping {} from the page cache", o.dir.display()))?;
    note(
        o.quiet,
        &format!(
            "verify: kernel paging at {:.2} MiB (mapped pool, store {:.2} MiB), cgroup limit \
             {:.0} MiB ({:.0} MiB of it the process's own memory) ...",
            mib(d),
            mib(k.store_budget),
            mib(limit),
            mib(own_memory)
        ),
    );
    let (rep, obs) = child(job, "kernel-paging", Some(limit))?;
    job.direct = true;
    let secs = rep.as_ref().and_then(|r| steady(&r.images, |i| i.seconds));
    let stall =
        rep.as_ref().and_then(|r| steady(&r.images, |i| i.seconds / i.compute_seconds.max(1e-9)));
    let hashes: Option<Vec<u64>> =
        rep.as_ref().map(|r| r.images.iter().map(|i| i.output_hash).collect());
    // The page cache the run had: what its anonymous memory left of the limit.
    let cache = limit.saturating_sub(obs.peak_anon);
    let expected = (k.predict)(cache)?;
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let normalised = ratio(stall, base.stall);
    Ok(VerifyRow {
        run: "kernel paging".into(),
        budget_mib: mib(d),
        cgroup_limit_mib: Some(mib(limit)),
        measured_seconds: secs,
        measured_slowdown: ratio(secs, base.secs),
        compute_normalised_slowdown: normalised,
        predicted_slowdown: expected.slowdown,
        error: normalised.zip(expected.slowdown).map(|(m, p)| m - p),
        predicted_pm_read_mib: None,
        measured_pm_read_mib: None,
        outputs_equal_all_dram: hashes.zip(base.hashes).map(|(h, b)| h == b),
        peak_rss_mib: (obs.hwm > 0).then(|| mib(obs.hwm)),
        cgroup_max_mib: obs.cgroup_max.map(mib),
        target_held: normalised.map(|m| m <= target),
        oom_killed: obs.oom_killed,
        prefetch_evicted_unused: rep.as_ref().map(|r| r.stats.prefetch_evicted_unused),
        pin_waits: rep.as_ref().map(|r| r.stats.pin_waits),
    })
}
