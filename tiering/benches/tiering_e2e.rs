//! End-to-end benchmark: HE-shaped key-switch traces replayed under DRAM budgets, side by side
//! with all-DRAM, kernel paging (cgroup v1 limit), `lru`, `alpha` and `planned`.
//!
//! ```text
//! cargo bench -p hetier-tiering --bench tiering_e2e -- --quick
//! cargo bench -p hetier-tiering --bench tiering_e2e -- --scale 0.25 --ops 48 --dir /var/tmp
//! ```
//! Each op pins one ciphertext and one of `--keys` rotation keys (cyclic: LRU's worst case),
//! computes for `--compute-factor` × the calibrated time to read a key from the PM tier, and
//! writes a new ciphertext. Every configuration runs in its own child process so its peak
//! memory is observed from outside (sampled `/proc/<pid>/status`, the kernel's peak RSS of the
//! child when it is reaped (`wait4`), and on the disk tier the cgroup's
//! `memory.max_usage_in_bytes`, printed next to its limit: a store run is limited to its
//! budget + 64 MiB, so a store that overran its budget would be OOM-killed and say so). When
//! the benchmark itself runs in a memory cgroup, its limit and maximum are printed at the end.
//!
//! Kernel paging: the keys sit in one file (a one-segment pool written with O_DIRECT, so it
//! starts uncached), read through a shared memory mapping of it, by a process in a cgroup v1
//! memory group limited to the budget: the kernel's page cache, readahead and reclaim decide
//! what stays in DRAM.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hetier_allocator::{Backend, DramTier, Durability, ObjectId, ObjectKind, Pool, PoolOptions};
use hetier_tiering::busy::busy_work;
use hetier_tiering::calibrate::{calibrate, calibrate_dram, calibrate_pm, CalibrationOptions};
use hetier_tiering::replay::{replay_with, ReplayReport};
use hetier_tiering::sim::{physical_bound, predict, PredictOptions};
use hetier_tiering::{
    CostModel, ObjectClass, PolicyConfig, PrefetchRule, ThrottleProfile, TieredStore, Trace,
    TraceDurability, TraceHeader, TraceRecorder,
};
use serde::{Deserialize, Serialize};

/// What a store run may hold beyond its DRAM budget (binary, heap, thread stacks, the trace)
/// under its cgroup limit.
const STORE_SLACK: u64 = 64 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Tier {
    /// A file on the local disk through the O_DIRECT backend.
    Disk,
    /// tmpfs (/dev/shm) through the mmap backend, throttled to the Optane profile.
    Tmpfs,
}

#[derive(Debug)]
struct Args {
    quick: bool,
    scale: f64,
    keys: u64,
    ops: u64,
    budgets: Vec<u32>,
    tiers: Vec<Tier>,
    dir: PathBuf,
    compute_factor: f64,
    policies: Vec<String>,
    paging: bool,
}

fn parse_args(argv: &[String]) -> R<Args> {
    let mut a = Args {
        quick: false,
        scale: 1.0,
        keys: 24,
        ops: 48,
        budgets: vec![10, 25, 50, 100],
        tiers: vec![Tier::Disk, Tier::Tmpfs],
        dir: PathBuf::from("/var/tmp"),
        compute_factor: 1.2,
        policies: vec!["lru".into(), "alpha".into(), "planned".into()],
        paging: true,
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let mut val = || it.next().cloned().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--scale" => a.scale = val()?.parse()?,
            "--keys" => a.keys = val()?.parse()?,
            "--ops" => a.ops = val()?.parse()?,
            "--budgets" => {
                a.budgets = val()?.split(',').map(str::parse).collect::<Result<_, _>>()?
            }
            "--tiers" => {
                a.tiers = val()?
                    .split(',')
                    .map(|t| match t {
                        "disk" => Ok(Tier::Disk),
                        "tmpfs" => Ok(Tier::Tmpfs),
                        other => Err(format!("unknown tier {other}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--dir" => a.dir = PathBuf::from(val()?),
            "--compute-factor" => a.compute_factor = val()?.parse()?,
            "--policies" => a.policies = val()?.split(',').map(str::to_owned).collect(),
            "--no-paging" => a.paging = false,
            // cargo passes --bench to harness = false targets.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if a.quick {
        a.scale = a.scale.min(1.0 / 32.0);
        a.ops = a.ops.min(24);
        a.budgets = vec![25];
    }
    Ok(a)
}

/// Lengths rounded to whole 4 KiB pages.
fn scaled(bytes: f64, scale: f64) -> u64 {
    ((bytes * scale) as u64).div_ceil(4096).max(1) * 4096
}

fn main() -> R<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        Some("--child-store") => child_store(argv.get(1).ok_or("job path")?),
        Some("--child-paging") => child_paging(argv.get(1).ok_or("job path")?),
        _ => parent(parse_args(&argv)?),
    }
}

// ---------------------------------------------------------------- the workload

struct Workload {
    key_len: u64,
    ct_len: u64,
    keys: u64,
    ops: u64,
    footprint: u64,
}

const CT0: u64 = 1_000_000;

fn key_switch_trace(w: &Workload, compute_ns: u64) -> Trace {
    let mut ev = Vec::new();
    for k in 0..w.keys {
        ev.push(hetier_tiering::TraceEvent::Put {
            id: ObjectId(k),
            kind: ObjectClass::EvalKey,
            durability: TraceDurability::Durable,
            len: w.key_len,
        });
    }
    ev.push(hetier_tiering::TraceEvent::Put {
        id: ObjectId(CT0),
        kind: ObjectClass::Ciphertext,
        durability: TraceDurability::Scratch,
        len: w.ct_len,
    });
    for i in 0..w.ops {
        ev.push(hetier_tiering::TraceEvent::Op {
            name: "key_switch".into(),
            pins: vec![ObjectId(CT0 + i), ObjectId(i % w.keys)],
            compute_ns,
        });
        ev.push(hetier_tiering::TraceEvent::Put {
            id: ObjectId(CT0 + i + 1),
            kind: ObjectClass::Ciphertext,
            durability: TraceDurability::Scratch,
            len: w.ct_len,
        });
        ev.push(hetier_tiering::TraceEvent::Remove { id: ObjectId(CT0 + i) });
    }
    Trace {
        header: TraceHeader::new(format!(
            "synthetic key switches: {} keys x {} B cyclic, ciphertext {} B, {} ops",
            w.keys, w.key_len, w.ct_len, w.ops
        )),
        events: ev,
    }
}

// ---------------------------------------------------------------- child processes

#[derive(Serialize, Deserialize)]
struct StoreJob {
    trace: PathBuf,
    model: PathBuf,
    pool_dir: PathBuf,
    direct: bool,
    budget: u64,
    policy: PolicyConfig,
    throttle: Option<ThrottleProfile>,
    label: String,
}

#[derive(Serialize, Deserialize)]
struct StoreResult {
    report: ReplayReport,
}

fn wait_for_go() -> R<()> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(())
}

fn child_store(job: &str) -> R<()> {
    let job: StoreJob = serde_json::from_str(&std::fs::read_to_string(job)?)?;
    wait_for_go()?;
    let trace = Trace::load(&job.trace)?;
    let model = CostModel::load(&job.model)?;
    let backend = if job.direct { Backend::Direct } else { Backend::Mmap };
    let (pool, _) = Pool::open(&job.pool_dir, pool_options(backend))?;
    let mut b = TieredStore::builder()
        .dram_budget(job.budget)
        .pool(pool)
        .policy(job.policy)
        .cost_model(model.clone())
        .migrator_threads(2)
        .pm_label(job.label);
    if let Some(t) = job.throttle {
        b = b.throttle(t);
    }
    let store = b.build()?;
    // Setup, untimed: the budget's pages are faulted in once, so no run pays for fresh pages
    // in its timed phase (planned at 100% prefetched 145 MiB there into never-touched DRAM).
    store.prefault_dram()?;
    let report = replay_with(&store, &trace, &model, true)?;
    drop(store);
    println!("{}", serde_json::to_string(&StoreResult { report })?);
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct PagingJob {
    /// A pool whose one segment file holds every key, in 1 MiB chunk objects.
    pool_dir: PathBuf,
    key_len: u64,
    ct_len: u64,
    key_of_op: Vec<u64>,
    compute_ns: u64,
    warm_bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct PagingResult {
    wall_ns: u64,
}

/// Chunk objects of one key in the paging pool (the pool has no partial reads, and a private
/// copy of a whole key would take the page cache's room in the cgroup).
const PAGING_CHUNK: u64 = 1 << 20;
/// One segment big enough for every key: the objects live in one memory-mapped file.
const PAGING_SEGMENT: u64 = 1 << 30;

fn paging_chunks(key: u64, key_len: u64) -> impl Iterator<Item = (ObjectId, u64)> {
    (0..key_len.div_ceil(PAGING_CHUNK))
        .map(move |j| (ObjectId((key << 16) | j), (key_len - j * PAGING_CHUNK).min(PAGING_CHUNK)))
}

fn paging_pool_options(backend: Backend) -> PoolOptions {
    PoolOptions::default().backend(backend).segment_size(PAGING_SEGMENT).table_slots(4096)
}

/// Reads one key through the pool's shared mapping of its segment file: every page comes in
/// by a page fault (or the kernel's read-around) into the page cache, charged to the cgroup.
fn read_key(pool: &Pool, key: u64, key_len: u64, buf: &mut [u8]) -> R<u64> {
    let mut acc = 0u64;
    for (id, n) in paging_chunks(key, key_len) {
        let n = pool.read_into(id, &mut buf[..n as usize])?;
        for page in buf[..n].chunks(4096) {
            acc = acc.wrapping_add(page[0] as u64);
        }
    }
    Ok(acc)
}

fn child_paging(job: &str) -> R<()> {
    let job: PagingJob = serde_json::from_str(&std::fs::read_to_string(job)?)?;
    wait_for_go()?;
    let (pool, _) = Pool::open(&job.pool_dir, paging_pool_options(Backend::Mmap))?;
    let mut buf = vec![0u8; PAGING_CHUNK as usize];
    let mut sink = 0u64;
    // Warm-up outside the clock, like the store's initial prefetch: first keys in plan order.
    let mut warmed = Vec::new();
    for &k in &job.key_of_op {
        if warmed.contains(&k) {
            continue;
        }
        if (warmed.len() as u64 + 1) * job.key_len > job.warm_bytes {
            break;
        }
        sink = sink.wrapping_add(read_key(&pool, k, job.key_len, &mut buf)?);
        warmed.push(k);
    }
    let start = Instant::now();
    let mut ct = vec![1u8; job.ct_len as usize];
    // As in the replayer, writing an op's result counts as part of the next op's compute.
    let mut credit = Duration::ZERO;
    for (i, &k) in job.key_of_op.iter().enumerate() {
        sink = sink.wrapping_add(read_key(&pool, k, job.key_len, &mut buf)?);
        let op_start = Instant::now();
        for page in ct.chunks(4096) {
            sink = sink.wrapping_add(page[0] as u64);
        }
        let spent = op_start.elapsed() + std::mem::take(&mut credit);
        let rest = Duration::from_nanos(job.compute_ns).saturating_sub(spent);
        sink = sink.wrapping_add(busy_work(rest));
        // The result is anonymous memory: without swap the kernel cannot page it at all.
        let t = Instant::now();
        let mut next = vec![0u8; job.ct_len as usize];
        next.iter_mut().step_by(4096).for_each(|b| *b = i as u8);
        ct = next;
        credit = t.elapsed();
    }
    std::hint::black_box((sink, &ct));
    let wall_ns = start.elapsed().as_nanos() as u64;
    println!("{}", serde_json::to_string(&PagingResult { wall_ns })?);
    Ok(())
}

// ---------------------------------------------------------------- running children

#[path = "tiering_e2e/observe.rs"]
mod observe;
use observe::{fmt_opt, print_own_cgroup, run_child, Cgroup, Observed, MIB, R};

// ---------------------------------------------------------------- the parent

/// The store's pool: on the mmap backend (tmpfs) every key's pages are mapped at open, so a
/// key's first read in the run costs what every later one does, as calibration measures it.
fn pool_options(backend: Backend) -> PoolOptions {
    PoolOptions::default()
        .backend(backend)
        .segment_size(256 << 20)
        .table_slots(4096)
        .populate(backend == Backend::Mmap)
}

struct Row {
    budget_pct: u32,
    name: String,
    wall_s: Option<f64>,
    predicted_s: Option<f64>,
    bound_s: f64,
    pm_read_mb: Option<f64>,
    predicted_read_mb: Option<f64>,
    pm_write_mb: Option<f64>,
    predicted_write_mb: Option<f64>,
    wasted: Option<u64>,
    predicted_wasted: Option<u64>,
    /// DRAM the store faulted in (fresh pages) over the whole run, setup included.
    faulted_mb: Option<f64>,
    /// Timed pins: hits / misses / prefetch hits / waits for an in-flight transfer.
    pins: Option<(u64, u64, u64, u64)>,
    /// The PM read rate the store saw over the timed phase (bytes / time in reads), GB/s.
    read_gbs: Option<f64>,
    /// The PM read rate calibrated just before the run, which its prediction used, GB/s.
    calibrated_gbs: Option<f64>,
    obs: Observed,
    budget: u64,
    alpha: Option<f64>,
}

fn temp_dir_in(parent: &Path, tag: &str) -> R<PathBuf> {
    let d = parent.join(format!("hetier-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Writes every key, in chunk objects, into a one-segment pool through O_DIRECT: the file's
/// pages never enter the page cache here, so each paging child starts cold and every page it
/// caches is charged to its cgroup.
fn write_paging_pool(dir: &Path, w: &Workload) -> R<()> {
    let pool = Pool::create(dir, paging_pool_options(Backend::Direct))?;
    let tier = DramTier::new(PAGING_CHUNK as usize)?;
    let mut block = tier.alloc(PAGING_CHUNK as usize)?;
    for k in 0..w.keys {
        for (id, n) in paging_chunks(k, w.key_len) {
            block.as_bytes_mut().fill((id.0 as u8) | 1);
            pool.put(id, ObjectKind::Blob, Durability::Durable, &block.as_bytes()[..n as usize])?;
        }
    }
    Ok(())
}

fn prefill_pool(dir: &Path, backend: Backend, w: &Workload) -> R<()> {
    let pool = Pool::create(dir, pool_options(backend))?;
    let tier = DramTier::new(w.key_len as usize)?;
    let mut block = tier.alloc(w.key_len as usize)?;
    for k in 0..w.keys {
        for (i, x) in block.as_u64s_mut().iter_mut().enumerate() {
            *x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ k;
        }
        block.as_u64s_mut()[0] = k;
        pool.put(ObjectId(k), ObjectKind::Blob, Durability::Durable, block.as_bytes())?;
    }
    Ok(())
}

fn run_tier(a: &Args, tier: Tier, w: &Workload, dram: &hetier_tiering::TierCost) -> R<Vec<Row>> {
    let (base, direct, throttle, label) = match tier {
        Tier::Disk => {
            (a.dir.clone(), true, None, format!("file on local disk {}", a.dir.display()))
        }
        Tier::Tmpfs => (
            PathBuf::from("/dev/shm"),
            false,
            Some(ThrottleProfile::optane_dcpmm()),
            "tmpfs /dev/shm".to_owned(),
        ),
    };
    let work = temp_dir_in(&base, if direct { "disk" } else { "tmpfs" })?;
    let res = (|| -> R<Vec<Row>> {
        // Calibrate this PM tier (with the throttle for tmpfs) with objects the size of a key.
        let mut co = CalibrationOptions::new(&work, direct, label.clone());
        co.dram_bytes = 64 << 20;
        co.object_bytes = w.key_len.min(64 << 20);
        co.objects = if a.quick { 2 } else { 4 };
        co.throttle = throttle.clone();
        let mut model = calibrate(&co)?;
        model.dram = dram.clone();
        let compute_ns = (a.compute_factor * model.pm.read_ns(w.key_len)) as u64;
        model.ops_ns.insert("key_switch".into(), compute_ns as f64);
        println!(
            "\n## PM tier: {}\ncalibrated: PM read {:.2} GB/s (overlapping busy work, as a prefetch: \
             {:.2} GB/s after a migrator wake-up of {:.2} ms), write {:.2} GB/s, read latency {:.1} us; \
             DRAM copy {:.1} GB/s; op compute = {:.2} x key read = {:.1} ms",
            model.pm_description,
            model.pm.read_bw / 1e9,
            model.pm.overlapped_read_bw.unwrap_or(model.pm.read_bw) / 1e9,
            model.pm.prefetch_wake_ns / 1e6,
            model.pm.write_bw / 1e9,
            model.pm.read_latency_ns / 1e3,
            model.dram.read_bw / 1e9,
            a.compute_factor,
            compute_ns as f64 / 1e6
        );
        let trace = key_switch_trace(w, compute_ns);
        let trace_path = work.join("trace.jsonl");
        let mut rec = TraceRecorder::create(&trace_path, trace.header.clone())?;
        for e in &trace.events {
            rec.record(e)?;
        }
        rec.finish()?;
        let model_path = work.join("profile.json");
        model.save(&model_path)?;
        let pool_dir = work.join("pool");
        prefill_pool(&pool_dir, if direct { Backend::Direct } else { Backend::Mmap }, w)?;

        let mut rows = Vec::new();
        let store_run = |pct: u32, name: &str, budget: u64, policy: PolicyConfig| -> R<Row> {
            let job = StoreJob {
                trace: trace_path.clone(),
                model: model_path.clone(),
                pool_dir: pool_dir.clone(),
                direct,
                budget,
                policy: policy.clone(),
                throttle: throttle.clone(),
                label: label.clone(),
            };
            // The disk's read rate drifts (1.22 to 1.78 GB/s within one session here), so each
            // budgeted run is predicted, and alpha partitions, with the PM tier calibrated just
            // before it, as a deployment recalibrates before it tunes.
            let mut model = model.clone();
            if budget < w.footprint {
                model.pm = calibrate_pm(&co)?;
            }
            model.save(&model_path)?;
            let job_path = work.join("job.json");
            std::fs::write(&job_path, serde_json::to_string(&job)?)?;
            let cg = if direct {
                let limit = budget + STORE_SLACK;
                let name = format!("hetier-bench-{}-{name}-{pct}", std::process::id());
                Cgroup::create(&name, Some(limit)).ok()
            } else {
                None
            };
            let (out, mut obs) = run_child("--child-store", &job_path, cg.as_ref())?;
            if let Some(cg) = &cg {
                obs.killed |= cg.oom_killed();
            }
            let result: Option<StoreResult> = match out {
                Some(s) => Some(serde_json::from_str(&s)?),
                None => None,
            };
            let pred = predict(
                &trace,
                &model,
                &policy,
                budget,
                &PredictOptions { migrator_threads: 2, reuse_durable: true },
            )
            .ok();
            let bound = physical_bound(&trace, &model, budget);
            Ok(Row {
                budget_pct: pct,
                name: name.to_owned(),
                wall_s: result.as_ref().map(|r| r.report.wall_ns as f64 / 1e9),
                predicted_s: pred.as_ref().map(|p| p.total_ns / 1e9),
                bound_s: bound.bound_ns / 1e9,
                pm_read_mb: result.as_ref().map(|r| r.report.timed.pm_read_bytes as f64 / MIB),
                predicted_read_mb: pred.as_ref().map(|p| p.pm_read_bytes as f64 / MIB),
                pm_write_mb: result.as_ref().map(|r| r.report.timed.pm_write_bytes as f64 / MIB),
                predicted_write_mb: pred.as_ref().map(|p| p.pm_write_bytes as f64 / MIB),
                wasted: result.as_ref().map(|r| r.report.timed.prefetch_evicted_unused),
                predicted_wasted: pred.as_ref().map(|p| p.prefetch_evicted_unused),
                faulted_mb: result.as_ref().map(|r| r.report.stats.dram_faulted as f64 / MIB),
                pins: result.as_ref().map(|r| {
                    let t = &r.report.timed;
                    (t.hits, t.misses, t.prefetch_hits, t.pin_waits)
                }),
                read_gbs: result.as_ref().and_then(|r| {
                    let t = &r.report.timed;
                    (t.pm_read_ns > 0).then(|| t.pm_read_bytes as f64 / t.pm_read_ns as f64)
                }),
                calibrated_gbs: Some(model.pm.read_bw / 1e9),
                obs,
                budget,
                alpha: result.as_ref().and_then(|r| r.report.stats.policy.as_ref()?.alpha),
            })
        };
        // All-DRAM: a budget above the footprint, everything loaded before the clock starts.
        rows.push(store_run(
            100,
            "all-DRAM",
            w.footprint * 2,
            PolicyConfig::planned(PrefetchRule::Conservative),
        )?);
        for &pct in &a.budgets {
            let budget = w.footprint * pct as u64 / 100;
            for p in &a.policies {
                let cfg = PolicyConfig::parse(p).ok_or_else(|| format!("unknown policy {p}"))?;
                rows.push(store_run(pct, p, budget, cfg)?);
            }
            if a.paging && direct {
                rows.push(paging_run(a, w, &work, pct, budget, compute_ns, &trace, &model)?);
            }
        }
        Ok(rows)
    })();
    let _ = std::fs::remove_dir_all(&work);
    res
}

#[allow(clippy::too_many_arguments)]
fn paging_run(
    _a: &Args,
    w: &Workload,
    work: &Path,
    pct: u32,
    budget: u64,
    compute_ns: u64,
    trace: &Trace,
    model: &CostModel,
) -> R<Row> {
    let pool_dir = work.join("paging-pool");
    if !pool_dir.exists() {
        write_paging_pool(&pool_dir, w)?;
    }
    let job = PagingJob {
        pool_dir,
        key_len: w.key_len,
        ct_len: w.ct_len,
        key_of_op: (0..w.ops).map(|i| i % w.keys).collect(),
        compute_ns,
        warm_bytes: budget.saturating_sub(2 * w.ct_len),
    };
    let job_path = work.join("paging-job.json");
    std::fs::write(&job_path, serde_json::to_string(&job)?)?;
    let cg =
        Cgroup::create(&format!("hetier-bench-{}-paging-{pct}", std::process::id()), Some(budget))?;
    let (out, mut obs) = run_child("--child-paging", &job_path, Some(&cg))?;
    obs.killed |= cg.oom_killed();
    let result: Option<PagingResult> = match out {
        Some(s) => Some(serde_json::from_str(&s)?),
        None => None,
    };
    Ok(Row {
        budget_pct: pct,
        name: "kernel paging".into(),
        wall_s: result.map(|r| r.wall_ns as f64 / 1e9),
        predicted_s: None,
        bound_s: physical_bound(trace, model, budget).bound_ns / 1e9,
        pm_read_mb: None,
        predicted_read_mb: None,
        pm_write_mb: None,
        predicted_write_mb: None,
        wasted: None,
        predicted_wasted: None,
        faulted_mb: None,
        pins: None,
        read_gbs: None,
        calibrated_gbs: None,
        obs,
        budget,
        alpha: None,
    })
}

fn print_rows(rows: &[Row]) {
    let ideal = rows.iter().find(|r| r.name == "all-DRAM").and_then(|r| r.wall_s);
    println!(
        "| budget (MiB) | run | time s | x all-DRAM | x bound | predicted s | pred err | PM read MiB (pred) | PM write MiB (pred) | wasted prefetches (pred) | pins hit/miss/pref/wait | PM read GB/s in run (calibrated) | store faulted MiB | peak anon MiB | VmHWM MiB | peak RSS (wait4) MiB | cgroup limit MiB | cgroup max MiB | alpha |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut by_budget: HashMap<u32, Vec<&Row>> = HashMap::new();
    for r in rows {
        by_budget.entry(r.budget_pct).or_default().push(r);
    }
    for r in rows {
        let ratio = match (r.wall_s, ideal) {
            (Some(t), Some(i)) if i > 0.0 => format!("{:.3}", t / i),
            _ => "-".into(),
        };
        let xb = r.wall_s.map(|t| t / r.bound_s.max(1e-12));
        let err = match (r.wall_s, r.predicted_s) {
            (Some(t), Some(p)) if t > 0.0 => format!("{:+.1}%", (p - t) / t * 100.0),
            _ => "-".into(),
        };
        let time = if r.obs.killed { "killed".to_owned() } else { fmt_opt(r.wall_s, 3) };
        println!(
            "| {}% ({:.0}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} |",
            r.budget_pct,
            r.budget as f64 / MIB,
            r.name,
            time,
            ratio,
            fmt_opt(xb, 3),
            fmt_opt(r.predicted_s, 3),
            err,
            match r.pm_read_mb {
                Some(m) => format!("{m:.0} ({})", fmt_opt(r.predicted_read_mb, 0)),
                None => "-".into(),
            },
            match r.pm_write_mb {
                Some(m) => format!("{m:.0} ({})", fmt_opt(r.predicted_write_mb, 0)),
                None => "-".into(),
            },
            match r.wasted {
                Some(n) =>
                    format!("{n} ({})", r.predicted_wasted.map_or("-".into(), |p| p.to_string())),
                None => "-".into(),
            },
            r.pins.map_or("-".into(), |(h, m, p, w)| format!("{h}/{m}/{p}/{w}")),
            match r.read_gbs {
                Some(g) => format!("{g:.2} ({})", fmt_opt(r.calibrated_gbs, 2)),
                None => "-".into(),
            },
            fmt_opt(r.faulted_mb, 0),
            r.obs.peak_anon as f64 / MIB,
            r.obs.hwm as f64 / MIB,
            fmt_opt(r.obs.rusage_max.map(|b| b as f64 / MIB), 0),
            // An unlimited group reads as a page-rounded i64::MAX.
            match r.obs.cgroup_limit {
                Some(l) if l < 1 << 60 => format!("{:.0}", l as f64 / MIB),
                Some(_) => "none".into(),
                None => "-".into(),
            },
            fmt_opt(r.obs.cgroup_max.map(|b| b as f64 / MIB), 0),
            fmt_opt(r.alpha, 3),
        );
    }
    // Margins of planned over every other run at each budget below 100 %.
    let mut pcts: Vec<u32> = by_budget.keys().copied().filter(|p| *p < 100).collect();
    pcts.sort_unstable();
    for pct in pcts {
        let rs = &by_budget[&pct];
        let Some(planned) = rs.iter().find(|r| r.name == "planned").and_then(|r| r.wall_s) else {
            continue;
        };
        let margins: Vec<String> = rs
            .iter()
            .filter(|r| r.name != "planned")
            .map(|r| match r.wall_s {
                Some(t) => format!("{} {:.2}x", r.name, t / planned),
                None => format!("{} killed", r.name),
            })
            .collect();
        println!("budget {pct}%: planned is faster than: {}", margins.join(", "));
    }
}

fn parent(a: Args) -> R<()> {
    let w = {
        let key_len = scaled(122e6, a.scale);
        let ct_len = scaled(32e6, a.scale);
        Workload {
            key_len,
            ct_len,
            keys: a.keys,
            ops: a.ops,
            footprint: a.keys * key_len + 2 * ct_len,
        }
    };
    println!(
        "# hetier tiering e2e{}: {} keys x {:.1} MiB (cyclic), ciphertext {:.1} MiB, {} ops, footprint {:.0} MiB",
        if a.quick { " (quick)" } else { "" },
        w.keys,
        w.key_len as f64 / MIB,
        w.ct_len as f64 / MIB,
        w.ops,
        w.footprint as f64 / MIB
    );
    // Calibration runs here, in the parent: at the children's priority, or on a loaded machine
    // it measures the tiers under more contention than the runs it prices see. Before any
    // thread is spawned, so every later thread inherits it.
    let reniced = std::process::Command::new("renice")
        .args(["-n", "-10", "-p", &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!(
            "load average at start: {} (every run is a child at nice -10; calibration {})",
            l.trim(),
            if reniced { "at nice -10 too" } else { "at the default nice: renice failed" }
        );
    }
    let dram = calibrate_dram(64 << 20);
    for &tier in &a.tiers {
        let rows = run_tier(&a, tier, &w, &dram)?;
        print_rows(&rows);
    }
    print_own_cgroup();
    Ok(())
}
