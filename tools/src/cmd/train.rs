//! `hetier train`: linear or logistic regression trained by gradient descent on encrypted
//! data, with the weights encrypted throughout; prints each iteration's loss (decrypted for
//! the report only) against the same iterations in plaintext, the held-out score of the
//! decrypted weights, time per iteration, bootstraps and peak RSS.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use hetier_allocator::{Backend, Pool, PoolOptions};
use hetier_he::exec::train::train_in_store;
use hetier_he::train::{
    deep_params, max_abs_diff, score, train_plain, Dataset, EncryptedTrainer, Normaliser,
    Optimizer, SigmoidApprox, Task, TrainConfig,
};
use hetier_tiering::{PolicyConfig, PrefetchRule, TieredStore};
use serde::Serialize;

use crate::cmd::rss;
use crate::fmt;

/// The vendored data sets, compiled in so that a clean clone trains without the data folder.
const EMBEDDED: [(&str, &[u8]); 3] = [
    ("diabetes", include_bytes!("../../../data/diabetes.csv.gz")),
    ("breast-cancer", include_bytes!("../../../data/breast_cancer.csv.gz")),
    ("digits01", include_bytes!("../../../data/digits.csv.gz")),
];

/// Tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TaskArg {
    /// Linear regression (mean squared error).
    Linreg,
    /// Logistic regression (sigmoid replaced by a polynomial, see `--sigmoid`).
    Logreg,
}

/// Sigmoid polynomials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SigmoidArg {
    /// Degree-3 least-squares fit on [−range, range] (3 levels an iteration).
    Lsq3,
    /// Degree-5 least-squares fit on [−range, range] (4 levels an iteration).
    Lsq5,
    /// 1/2 + x/4 − x³/48 + x⁵/480 (4 levels an iteration).
    Taylor5,
}

/// Optimisers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptArg {
    /// Plain gradient descent.
    Gd,
    /// Nesterov's accelerated gradient.
    Nesterov,
}

/// Flags of `hetier train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// What to train.
    #[arg(long, value_enum)]
    pub(crate) task: TaskArg,
    /// Data set: diabetes (regression), breast-cancer or digits01 (classification).
    #[arg(long)]
    pub(crate) data: String,
    /// Gradient-descent iterations.
    #[arg(long, default_value_t = 10)]
    pub(crate) iters: usize,
    /// Optimiser.
    #[arg(long, value_enum, default_value_t = OptArg::Nesterov)]
    pub(crate) optimizer: OptArg,
    /// Learning rate (default: 0.5 for linreg, 1 for logreg with a least-squares sigmoid,
    /// 0.5 with the Taylor one).
    #[arg(long)]
    pub(crate) lr: Option<f64>,
    /// Sigmoid polynomial (logreg).
    #[arg(long, value_enum, default_value_t = SigmoidArg::Lsq3)]
    pub(crate) sigmoid: SigmoidArg,
    /// Half-width of the least-squares fitting interval.
    #[arg(long, default_value_t = 8.0)]
    pub(crate) range: f64,
    /// log2 N. 16 (default) uses the deepest chain within the 128-bit bound; smaller rings
    /// need `--insecure-test-params`.
    #[arg(long, default_value_t = 16)]
    pub(crate) log_n: u32,
    /// Allow parameters above the 128-bit bound (small rings, for tests only).
    #[arg(long)]
    pub(crate) insecure_test_params: bool,
    /// Fraction of the samples held out for the final score.
    #[arg(long, default_value_t = 0.2)]
    pub(crate) test_fraction: f64,
    /// Use at most this many training samples.
    #[arg(long)]
    pub(crate) max_samples: Option<usize>,
    /// Read the data set from this folder instead of the copy compiled in.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Keep every ciphertext and key in process memory instead of the tiered store.
    #[arg(long)]
    pub(crate) in_memory: bool,
    /// DRAM budget of the store in MiB (keys and ciphertexts beyond it live in the pool).
    #[arg(long, default_value_t = 1024)]
    pub(crate) dram_mib: u64,
    /// Pool directory (default: a fresh temporary directory, removed afterwards). Reusing a
    /// directory reuses the evaluation keys of the same `--seed`.
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Map the pool files instead of O_DIRECT I/O.
    #[arg(long)]
    pub(crate) mmap: bool,
    /// Secret-key seed as one byte repeated (default: a fresh seed from the OS).
    #[arg(long)]
    pub(crate) seed: Option<u8>,
}

/// The store a training run uses, with the temporary directory that must outlive it.
fn open_store(args: &TrainArgs) -> Result<(TieredStore, String, Option<tempfile::TempDir>)> {
    let (dir, tmp) = match &args.dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::tempdir()?;
            (t.path().join("pool"), Some(t))
        }
    };
    let backend = if args.mmap { Backend::Mmap } else { Backend::Direct };
    let opts = PoolOptions::default().backend(backend).segment_size(256 << 20);
    let pool = if dir.read_dir().map(|mut d| d.next().is_some()).unwrap_or(false) {
        Pool::open(&dir, opts).with_context(|| format!("opening pool {}", dir.display()))?.0
    } else {
        Pool::create(&dir, opts).with_context(|| format!("creating pool {}", dir.display()))?
    };
    let store = TieredStore::builder()
        .dram_budget(args.dram_mib << 20)
        .pool(pool)
        .policy(PolicyConfig::planned(PrefetchRule::Conservative))
        .build()?;
    let desc = format!("{} ({})", dir.display(), store.pm_description());
    Ok((store, desc, tmp))
}

/// One row of the iteration table.
#[derive(Debug, Serialize)]
struct IterRow {
    iteration: usize,
    loss_encrypted: f64,
    loss_plain: f64,
    accuracy_encrypted: Option<f64>,
    accuracy_plain: Option<f64>,
    seconds: f64,
}

/// The whole report.
#[derive(Debug, Serialize)]
struct Report {
    task: String,
    optimizer: &'static str,
    data: String,
    train_samples: usize,
    test_samples: usize,
    features: usize,
    lr: f64,
    iters: usize,
    log_n: u32,
    levels: usize,
    levels_used: usize,
    secure: bool,
    ciphertexts: usize,
    rotation_keys: usize,
    iterations: Vec<IterRow>,
    weights_encrypted: Vec<f64>,
    weights_plain: Vec<f64>,
    weights_max_abs_diff: f64,
    loss_max_abs_diff: f64,
    test_metric: &'static str,
    test_encrypted: f64,
    test_plain: f64,
    seconds_per_iteration: f64,
    keygen_seconds: f64,
    encrypt_seconds: f64,
    setup_seconds: f64,
    bootstraps: usize,
    peak_rss_bytes: u64,
    /// "memory" or the pool the store used.
    ciphertexts_in: String,
    store_dram_budget: Option<u64>,
    store_peak_dram: Option<u64>,
    store_bytes_pm_to_dram: Option<u64>,
    store_bytes_dram_to_pm: Option<u64>,
}

fn load(args: &TrainArgs) -> Result<Dataset> {
    match &args.data_dir {
        Some(dir) => Ok(Dataset::named(&args.data, dir)?),
        None => {
            let Some((_, bytes)) = EMBEDDED.iter().find(|(n, _)| *n == args.data) else {
                let known: Vec<&str> = EMBEDDED.iter().map(|e| e.0).collect();
                bail!("unknown data set {:?} (known: {known:?})", args.data);
            };
            Ok(Dataset::named_from_gz(&args.data, bytes)?)
        }
    }
}

/// Runs `hetier train`.
pub fn run(args: &TrainArgs, json: bool) -> Result<()> {
    let linreg = args.task == TaskArg::Linreg;
    let task = if linreg {
        Task::LinReg
    } else {
        Task::LogReg(match args.sigmoid {
            SigmoidArg::Taylor5 => SigmoidApprox::Taylor5,
            SigmoidArg::Lsq3 => SigmoidApprox::least_squares(3, args.range)?,
            SigmoidArg::Lsq5 => SigmoidApprox::least_squares(5, args.range)?,
        })
    };
    let optimizer = match args.optimizer {
        OptArg::Gd => Optimizer::Gd,
        OptArg::Nesterov => Optimizer::Nesterov,
    };
    let lr = args.lr.unwrap_or(match (linreg, args.sigmoid) {
        (true, _) | (false, SigmoidArg::Taylor5) => 0.5,
        _ => 1.0,
    });
    let cfg = TrainConfig { task, optimizer, lr, iters: args.iters };

    let all = load(args)?;
    if !linreg && !all.has_sign_labels() {
        bail!("{}: logistic regression needs labels ±1 (use a classification data set)", all.name);
    }
    let (train, test) = all.split(args.test_fraction, 0)?;
    let train = match args.max_samples {
        Some(n) => train.head(n),
        None => train,
    };
    let norm = Normaliser::fit(&train, linreg)?;
    let (train, test) = (norm.apply(&train)?, norm.apply(&test)?);

    let params = if args.insecure_test_params {
        deep_params(args.log_n, Some(cfg.levels_needed()), true)?
    } else {
        deep_params(args.log_n, None, false)
            .context("no secure chain at this ring degree (use --log-n 16)")?
    };
    cfg.check(params.max_level())?;
    if !json {
        eprintln!(
            "{} on {} ({} train / {} test samples, {} features): log N = {}, L = {}{}; generating keys…",
            task.name(),
            args.data,
            train.len(),
            test.len(),
            train.features(),
            params.log_n(),
            params.max_level(),
            if params.is_secure() { "" } else { " (INSECURE test parameters)" },
        );
    }
    if args.seed.is_some() {
        eprintln!(
            "WARNING: the secret key of this run comes from --seed and is NOT secret: for \
             reproducible tests and benchmarks only"
        );
    }
    let seed = args.seed.map_or_else(hetier_he::ckks::os_seed, |b| [b; 32]);
    let trainer = EncryptedTrainer::new(&params, &cfg, train.len(), train.features(), seed)?;
    let t0 = Instant::now();
    let (enc, store_info) = if args.in_memory {
        (trainer.run(&train)?, None)
    } else {
        let (store, desc, _tmp) = open_store(args)?;
        let out = train_in_store(&trainer, &store, &train)?;
        (out.run, Some((desc, store.stats())))
    };
    let total = t0.elapsed().as_secs_f64();
    let plain = train_plain(&cfg, &train)?;

    let iterations: Vec<IterRow> = enc
        .steps
        .iter()
        .zip(&plain.steps)
        .enumerate()
        .map(|(t, (e, p))| IterRow {
            iteration: t,
            loss_encrypted: e.loss,
            loss_plain: p.loss,
            accuracy_encrypted: e.accuracy,
            accuracy_plain: p.accuracy,
            seconds: e.seconds,
        })
        .collect();
    let iter_secs: f64 = enc.steps[..cfg.iters].iter().map(|s| s.seconds).sum();
    let prog = trainer.program();
    let report = Report {
        task: task.name(),
        optimizer: optimizer.name(),
        data: args.data.clone(),
        train_samples: train.len(),
        test_samples: test.len(),
        features: train.features(),
        lr,
        iters: cfg.iters,
        log_n: params.log_n(),
        levels: params.max_level(),
        levels_used: cfg.levels_needed(),
        secure: params.is_secure(),
        ciphertexts: prog.packing.cts,
        rotation_keys: prog.program.rotation_steps().len(),
        loss_max_abs_diff: iterations
            .iter()
            .map(|r| (r.loss_encrypted - r.loss_plain).abs())
            .fold(0.0, f64::max),
        iterations,
        weights_max_abs_diff: max_abs_diff(&enc.weights, plain.weights()),
        test_metric: if linreg { "R²" } else { "accuracy" },
        test_encrypted: score(&task, &enc.weights, &test)?,
        test_plain: score(&task, plain.weights(), &test)?,
        weights_encrypted: enc.weights,
        weights_plain: plain.weights().to_vec(),
        seconds_per_iteration: iter_secs / cfg.iters as f64,
        keygen_seconds: enc.keygen_seconds,
        encrypt_seconds: enc.encrypt_seconds,
        setup_seconds: enc.setup_seconds,
        bootstraps: enc.bootstraps,
        peak_rss_bytes: rss::sample("end").hwm,
        ciphertexts_in: store_info
            .as_ref()
            .map_or("memory".into(), |(d, _)| format!("store, pool {d}")),
        store_dram_budget: store_info.as_ref().map(|_| args.dram_mib << 20),
        store_peak_dram: store_info.as_ref().map(|(_, st)| st.peak_dram),
        store_bytes_pm_to_dram: store_info.as_ref().map(|(_, st)| st.bytes_pm_to_dram),
        store_bytes_dram_to_pm: store_info.as_ref().map(|(_, st)| st.bytes_dram_to_pm),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let acc = |a: Option<f64>| a.map_or("-".into(), |a| format!("{a:.4}"));
    let rows: Vec<Vec<String>> = report
        .iterations
        .iter()
        .map(|r| {
            vec![
                r.iteration.to_string(),
                format!("{:.6}", r.loss_encrypted),
                format!("{:.6}", r.loss_plain),
                format!("{:.1e}", (r.loss_encrypted - r.loss_plain).abs()),
                acc(r.accuracy_encrypted),
                acc(r.accuracy_plain),
                if r.iteration < cfg.iters { format!("{:.2}", r.seconds) } else { "-".into() },
            ]
        })
        .collect();
    println!(
        "{} / {} on {}: lr {lr}, {} iterations, {} ciphertext(s) of data, {} rotation keys",
        report.task,
        report.optimizer,
        report.data,
        cfg.iters,
        report.ciphertexts,
        report.rotation_keys
    );
    fmt::table(
        &["iter", "loss (encrypted)", "loss (plain)", "|Δ|", "acc (enc)", "acc (plain)", "s"],
        &rows,
    );
    let summary = vec![
        vec![
            "final weights".into(),
            format!("max |encrypted − plain| = {:.2e}", report.weights_max_abs_diff),
        ],
        vec![
            format!("held-out {}", report.test_metric),
            format!(
                "{:.4} encrypted, {:.4} plain ({} samples)",
                report.test_encrypted, report.test_plain, report.test_samples
            ),
        ],
        vec![
            "time per iteration".into(),
            format!(
                "{:.2} s{}",
                report.seconds_per_iteration,
                if args.in_memory { "" } else { " (compute; store pins and waits in the total)" }
            ),
        ],
        vec![
            "setup".into(),
            format!(
                "keys {:.1} s, encrypt {:.2} s, row doubling {:.2} s, total run {total:.1} s",
                report.keygen_seconds, report.encrypt_seconds, report.setup_seconds
            ),
        ],
        vec![
            "levels".into(),
            format!(
                "{} of {} used (log N = {}, {})",
                report.levels_used,
                report.levels,
                report.log_n,
                if report.secure { "128-bit secure" } else { "INSECURE test parameters" }
            ),
        ],
        vec![
            "bootstraps".into(),
            "0 (training does not bootstrap yet: the iterations must fit the chain)".into(),
        ],
        vec!["peak RSS".into(), fmt::bytes(report.peak_rss_bytes)],
        vec!["ciphertexts and keys".into(), report.ciphertexts_in.clone()],
    ];
    let mut summary = summary;
    if let Some((_, st)) = &store_info {
        summary.push(vec![
            "store DRAM".into(),
            format!(
                "budget {}, peak {}",
                fmt::bytes(args.dram_mib << 20),
                fmt::bytes(st.peak_dram)
            ),
        ]);
        summary.push(fmt::bytes_moved_row(st));
    }
    fmt::table(&["", ""], &summary);
    Ok(())
}
