//! `hetier serve-bench`: a load test of the serving API. One server per (policy, concurrency)
//! cell over the same pool (keys and weights put once, by the first), `--concurrency` client
//! threads each sending the next request as soon as its last one returned (closed loop), every
//! response decrypted and checked against the plaintext model's argmax. Reports throughput,
//! p50/p99 latency, peak RSS and failed requests per cell. Each cell's server first serves one
//! untimed request, so it is measured warm; counters are those of the timed requests.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use hetier_allocator::{Backend, Pool, PoolOptions};
use hetier_he::ckks::{Ciphertext, Preset};
use hetier_he::exec::{Client, Server, ServerOptions};
use hetier_he::model::{argmax, Compiled, Model, ModelDesc, TestSet};
use hetier_tiering::{PolicyConfig, TieredStore};
use serde::Serialize;

use crate::cmd::rss;
use crate::cmd::run_setup::ModelArg;
use crate::fmt;

/// Flags of `hetier serve-bench`.
#[derive(Args, Debug)]
pub struct ServeBenchArgs {
    /// Which model to serve.
    #[arg(long, value_enum, default_value_t = ModelArg::Digits)]
    model: ModelArg,
    /// Concurrency levels: client threads sending requests at once.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    concurrency: Vec<usize>,
    /// Requests per cell.
    #[arg(long, default_value_t = 100)]
    requests: usize,
    /// DRAM budget of the tiered policies in MiB (default: a quarter of one request's
    /// footprint: every key, weight and ciphertext of the program).
    #[arg(long)]
    dram_mib: Option<u64>,
    /// Policies: `dram` (all-DRAM: a budget holding every object of every request in flight),
    /// `lru`, `alpha`, `planned`, `planned-noprefetch`.
    #[arg(long, value_delimiter = ',', default_value = "dram,lru,planned")]
    policies: Vec<String>,
    /// Threads each request's own parallel loops use (1: single-threaded requests, so
    /// concurrency alone uses the cores).
    #[arg(long, default_value_t = 1)]
    threads_per_request: usize,
    /// Distinct encrypted inputs, cycled through by the requests (each request is independent;
    /// this only bounds the memory the inputs take).
    #[arg(long, default_value_t = 16)]
    inputs: usize,
}

/// One cell of the table.
#[derive(Debug, Serialize)]
struct Cell {
    policy: String,
    budget: u64,
    concurrency: usize,
    requests: usize,
    seconds: f64,
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_queued_ms: f64,
    peak_rss: u64,
    failed: usize,
    wrong: usize,
    bytes_pm_to_dram: u64,
    prefetches: u64,
    prefetch_evicted_unused: u64,
    peak_waiting: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    model: &'static str,
    log_n: u32,
    pm_tier: String,
    request_footprint: u64,
    request_pinned_set: u64,
    threads_per_request: usize,
    cores: usize,
    cells: Vec<Cell>,
}

/// Resets the peak resident set (VmHWM) so each cell reports its own; false where the kernel
/// does not allow it (then peaks carry over from earlier cells).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn open(dir: &Path, budget: u64, policy: PolicyConfig) -> Result<Arc<TieredStore>> {
    let opts = PoolOptions::default().backend(Backend::Direct).segment_size(64 << 20);
    let pool = if dir.exists() {
        Pool::open(dir, opts).with_context(|| format!("opening pool {}", dir.display()))?.0
    } else {
        Pool::create(dir, opts).with_context(|| format!("creating pool {}", dir.display()))?
    };
    let store = TieredStore::builder().dram_budget(budget).pool(pool).policy(policy).build()?;
    Ok(Arc::new(store))
}

/// What one cell needs besides its policy and concurrency.
struct Bench<'a> {
    model: &'a Model,
    compiled: &'a Compiled,
    client: &'a Client,
    inputs: &'a [(usize, Ciphertext)],
    tests: &'a TestSet,
    dir: &'a Path,
    requests: usize,
    threads_per_request: usize,
}

impl Bench<'_> {
    fn cell(&self, name: &str, policy: PolicyConfig, budget: u64, conc: usize) -> Result<Cell> {
        let store = open(self.dir, budget, policy)?;
        let server = Server::new(
            self.model,
            self.compiled.clone(),
            Arc::clone(&store),
            self.client.keyset(),
            None,
            ServerOptions::default(),
        )
        .context("opening the server over the pool's keys and weights")?;
        // One request first, untimed: the cell starts with what a running server has in DRAM
        // rather than with every key and weight only in the pool.
        server.infer(&self.inputs[0].1).context("the warm-up request")?;
        let before = store.stats();
        reset_peak_rss();
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<(f64, f64, bool, bool)>> = Mutex::new(Vec::new());
        let t0 = Instant::now();
        std::thread::scope(|s| -> Result<()> {
            let mut handles = Vec::new();
            for _ in 0..conc {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(self.threads_per_request)
                    .build()
                    .context("building a request's thread pool")?;
                let (server, next, results) = (&server, &next, &results);
                handles.push(s.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= self.requests {
                        break;
                    }
                    let (sample, ct) = &self.inputs[i % self.inputs.len()];
                    let t = Instant::now();
                    let r = pool.install(|| server.infer(ct));
                    let latency = t.elapsed().as_secs_f64() * 1e3;
                    let (ok, right, queued) = match r {
                        Ok(resp) => {
                            let right =
                                self.client.decrypt(self.compiled, &resp.output).is_ok_and(|y| {
                                    argmax(&y) == argmax(self.tests.reference_logits(*sample))
                                });
                            (true, right, resp.queued.as_secs_f64() * 1e3)
                        }
                        Err(e) => {
                            eprintln!("request {i} failed: {e}");
                            (false, false, 0.0)
                        }
                    };
                    let mut g = results.lock().unwrap_or_else(|p| p.into_inner());
                    g.push((latency, queued, ok, right));
                }));
            }
            for h in handles {
                if h.join().is_err() {
                    bail!("a client thread panicked");
                }
            }
            Ok(())
        })?;
        let seconds = t0.elapsed().as_secs_f64();
        let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut lat: Vec<f64> = results.iter().filter(|r| r.2).map(|r| r.0).collect();
        lat.sort_by(f64::total_cmp);
        let st = store.stats();
        let failed = results.iter().filter(|r| !r.2).count();
        Ok(Cell {
            policy: name.to_owned(),
            budget,
            concurrency: conc,
            requests: results.len(),
            seconds,
            throughput: (results.len() - failed) as f64 / seconds,
            p50_ms: percentile(&lat, 0.50),
            p99_ms: percentile(&lat, 0.99),
            max_queued_ms: results.iter().map(|r| r.1).fold(0.0, f64::max),
            peak_rss: rss::sample("cell").hwm,
            failed,
            wrong: results.iter().filter(|r| r.2 && !r.3).count(),
            bytes_pm_to_dram: st.bytes_pm_to_dram - before.bytes_pm_to_dram,
            prefetches: st.prefetches - before.prefetches,
            prefetch_evicted_unused: st.prefetch_evicted_unused - before.prefetch_evicted_unused,
            peak_waiting: server.stats().admission.peak_waiting,
        })
    }
}

/// Runs `hetier serve-bench`.
pub fn run(args: &ServeBenchArgs, json: bool) -> Result<()> {
    if args.requests == 0 || args.inputs == 0 || args.threads_per_request == 0 {
        bail!("--requests, --inputs and --threads-per-request must be at least 1");
    }
    if args.concurrency.contains(&0) {
        bail!("every --concurrency level must be at least 1");
    }
    let name = args.model.name();
    let (_, desc, weights, test) = crate::cmd::run::EMBEDDED
        .iter()
        .find(|e| e.0 == name)
        .copied()
        .context("model not embedded")?;
    let model = Model::from_parts(ModelDesc::from_json(desc)?, weights)?;
    let tests = TestSet::from_bytes(&format!("{name}.test.safetensors"), test)?;
    let preset = [Preset::N13, Preset::N14, Preset::N15, Preset::N16]
        .into_iter()
        .find(|p| p.depth() >= model.depth())
        .context("no preset has enough levels")?;
    let params = preset.params()?;
    let compiled = model.compile(&params)?;
    let footprint: u64 = compiled.program.objects().iter().map(|o| o.bytes).sum();

    // The client: a fresh random secret key (the bench keeps no key file; nothing outlives
    // the run).
    let mut client = Client::new(&params)?;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("pool");
    let need = {
        // Keys and weights go into the pool once; every cell's server reuses them.
        let store = open(&dir, footprint * 2, PolicyConfig::Lru)?;
        let keys = client.evaluation_keys(&compiled)?;
        let server = Server::new(
            &model,
            compiled.clone(),
            store,
            client.keyset(),
            Some(keys),
            ServerOptions::default(),
        )?;
        server.request_need()
    };
    let inputs: Vec<(usize, Ciphertext)> = (0..args.inputs.min(tests.len()))
        .map(|i| Ok((i, client.encrypt(&compiled, &model.prepare_input(tests.image(i))?)?)))
        .collect::<Result<_>>()?;
    let tiered = args.dram_mib.map_or(footprint / 4, |m| m << 20);
    let bench = Bench {
        model: &model,
        compiled: &compiled,
        client: &client,
        inputs: &inputs,
        tests: &tests,
        dir: &dir,
        requests: args.requests,
        threads_per_request: args.threads_per_request,
    };
    let mut cells = Vec::new();
    for p in &args.policies {
        for &c in &args.concurrency {
            let (policy, budget) = match p.as_str() {
                "dram" => (PolicyConfig::Lru, footprint * (c as u64 + 1)),
                other => (
                    PolicyConfig::parse(other).with_context(|| {
                        format!("unknown policy {other:?} (dram, lru, alpha, planned, planned-noprefetch)")
                    })?,
                    tiered,
                ),
            };
            if !json {
                eprintln!("{p} at concurrency {c}: {} requests ...", args.requests);
            }
            cells.push(bench.cell(p, policy, budget, c)?);
        }
    }
    let report = Report {
        model: name,
        log_n: params.log_n(),
        pm_tier: format!("pool files under {} (O_DIRECT)", tmp.path().display()),
        request_footprint: footprint,
        request_pinned_set: need,
        threads_per_request: args.threads_per_request,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cells,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print_table(&report);
    Ok(())
}

fn print_table(r: &Report) {
    println!(
        "serve-bench: {} at log N = {}, {} request threads x {} thread(s) each on {} cores",
        r.model,
        r.log_n,
        r.cells.iter().map(|c| c.concurrency).max().unwrap_or(0),
        r.threads_per_request,
        r.cores
    );
    println!(
        "one request: footprint {}, pinned set {}; PM tier: {}",
        fmt::bytes(r.request_footprint),
        fmt::bytes(r.request_pinned_set),
        r.pm_tier
    );
    let base = |policy: &str| {
        r.cells.iter().find(|c| c.policy == policy && c.concurrency == 1).map(|c| c.throughput)
    };
    let dram = |conc: usize| {
        r.cells.iter().find(|c| c.policy == "dram" && c.concurrency == conc).map(|c| c.throughput)
    };
    let rows: Vec<Vec<String>> = r
        .cells
        .iter()
        .map(|c| {
            vec![
                c.policy.clone(),
                fmt::bytes(c.budget),
                c.concurrency.to_string(),
                c.requests.to_string(),
                format!("{:.2}", c.throughput),
                base(&c.policy).map_or("-".into(), |b| format!("{:.2}x", c.throughput / b)),
                dram(c.concurrency).map_or("-".into(), |d| format!("{:.2}x", d / c.throughput)),
                format!("{:.0}", c.p50_ms),
                format!("{:.0}", c.p99_ms),
                format!("{:.0}", c.max_queued_ms),
                fmt::bytes(c.peak_rss),
                c.failed.to_string(),
                c.wrong.to_string(),
                fmt::bytes(c.bytes_pm_to_dram),
                c.prefetch_evicted_unused.to_string(),
            ]
        })
        .collect();
    fmt::table(
        &[
            "policy",
            "budget",
            "conc",
            "reqs",
            "req/s",
            "vs conc 1",
            "dram/this",
            "p50 ms",
            "p99 ms",
            "max queued ms",
            "peak RSS",
            "failed",
            "wrong",
            "PM->DRAM",
            "prefetch wasted",
        ],
        &rows,
    );
}
