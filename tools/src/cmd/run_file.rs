//! `hetier run --model-file PATH`: runs any model description or ONNX file encrypted over the
//! tiered store, on the samples of a `.npy` file or on random inputs, and compares every
//! decrypted output with the plaintext reference of the same (lowered) model.

use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use hetier_he::ckks::bootstrap::{BootstrapPreset, Bootstrapper};
use hetier_he::ckks::{Context, Params};
use hetier_he::exec::Session;
use hetier_he::model::{argmax, onnx, Compiled, Model, DEFAULT_MARGIN};
use hetier_he::nn::BootstrapSpec;
use serde::Serialize;

use super::run_setup::{open_store, PrefetchReport, RunArgs};
use crate::cmd::rss::{self, OutsideStore};
use crate::{fmt, npy};

#[derive(Serialize)]
struct FileRunReport {
    model: String,
    model_file: String,
    log_n: u32,
    insecure_test_params: bool,
    depth: usize,
    /// Bootstrap ops per input (`--bootstrap-levels`; 0 without).
    bootstraps: usize,
    /// Of all inputs' bootstraps, those whose EvalMod halves ran side by side (two threads or
    /// more, and room in the budget for a second set of bootstrap buffers).
    eval_mods_side_by_side: u64,
    inputs: usize,
    random_inputs: bool,
    /// Decrypted outputs, one row per input.
    outputs: Vec<Vec<f64>>,
    /// The plaintext reference (float64 forward pass of the lowered model), one row per input.
    reference: Vec<Vec<f64>>,
    max_abs_error: f64,
    argmax_agree: usize,
    setup_seconds: f64,
    seconds_per_input: f64,
    keys_generated: usize,
    keys_reused: usize,
    dram_budget: u64,
    store_peak_dram: u64,
    bytes_pm_to_dram: u64,
    bytes_dram_to_pm: u64,
    peak_rss: Option<u64>,
    /// Peak RSS less the store's resident bound: the memory held outside the store.
    outside_store: Option<OutsideStore>,
    policy: &'static str,
    #[serde(flatten)]
    prefetch: PrefetchReport,
}

/// Compiles `model` with bootstrapping at log N = 12 (insecure test parameters), `levels`
/// levels between bootstraps.
fn compile_bootstrapped(
    model: &Model,
    levels: usize,
) -> Result<(Params, Compiled, Arc<Bootstrapper>)> {
    let preset = BootstrapPreset::insecure_test(12, levels);
    let params = preset.params()?;
    let ctx = Context::new(&params)?;
    let bs = Arc::new(Bootstrapper::new(&ctx, &preset.config)?);
    let compiled = model
        .compile_bootstrapped(&params, &BootstrapSpec::of(&bs), DEFAULT_MARGIN)
        .with_context(|| format!("compiling with bootstrapping, {levels} levels between"))?;
    Ok((params, compiled, bs))
}

/// Uniform values in [lo, hi) from a small xorshift generator.
fn random_values(n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut s =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

/// Runs `hetier run --model-file`.
pub fn run(args: &RunArgs, json: bool, path: &Path) -> Result<()> {
    let imp = args.import.load(path)?;
    let model = imp.model;
    let insecure = args.import.insecure_test_params;
    let (params, compiled, bs) = match args.bootstrap_levels {
        Some(levels) if insecure => {
            let (p, c, bs) = compile_bootstrapped(&model, levels)?;
            (p, c, Some(bs))
        }
        Some(_) => bail!("--bootstrap-levels runs with --insecure-test-params only"),
        None => {
            let (p, c) = onnx::compile_smallest(&model, insecure)?;
            (p, c, None)
        }
    };
    if insecure && !json {
        eprintln!("warning: --insecure-test-params: log N = 12, NOT SECURE — for tests only");
    }
    let input = &model.desc().input;
    let per: usize = input.shape.iter().product();
    let raw = input.dtype == "uint8";
    let (rows, random) = match &args.inputs {
        Some(p) => (npy::read(p)?.samples(per)?, false),
        None => {
            let n = args.images.max(1);
            let (lo, hi) = if raw { (0.0, 256.0) } else { (-1.0, 1.0) };
            let mut v = random_values(n * per, lo, hi);
            if raw {
                v.iter_mut().for_each(|x| *x = x.floor());
            }
            (v.chunks(per).map(<[f64]>::to_vec).collect(), true)
        }
    };
    let xs: Vec<Vec<f64>> = if raw {
        rows.iter().map(|r| r.iter().map(|&v| v * input.scale + input.offset).collect()).collect()
    } else {
        rows
    };
    if xs.is_empty() {
        bail!("no inputs");
    }
    let (store, dir, _tmp, policy) = open_store(args)?;
    let t0 = Instant::now();
    let secret = args.secret.resolve(&dir)?;
    // The session takes the bootstrapper: the executor keeps a copy without the diagonals'
    // coefficients (they go to the store), and this one is dropped with it.
    let mut session = match bs {
        Some(bs) => Session::with_bootstrapper(
            &model,
            &compiled,
            &store,
            *secret.seed,
            bs,
            false,
            args.key_form.into(),
        ),
        None => Session::new(&model, &compiled, &store, *secret.seed),
    }
    .context("preparing keys and weights")?;
    let setup = t0.elapsed().as_secs_f64();
    let (mut outputs, mut reference) = (Vec::new(), Vec::new());
    let (mut max_err, mut agree, mut side_by_side) = (0.0f64, 0, 0);
    let t1 = Instant::now();
    for x in &xs {
        let (y, report) = session.infer_values(x)?;
        side_by_side += report.eval_mods_side_by_side;
        let want = model.forward(x)?;
        max_err = y.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(max_err, f64::max);
        agree += usize::from(argmax(&y) == argmax(&want));
        outputs.push(y);
        reference.push(want);
    }
    let secs = t1.elapsed().as_secs_f64();
    let st = store.stats();
    let (peak_rss, outside_store) = rss::peak_beside_store(&st);
    let out = FileRunReport {
        model: model.name().into(),
        model_file: path.display().to_string(),
        log_n: params.log_n(),
        insecure_test_params: insecure,
        depth: model.depth(),
        bootstraps: compiled.program.bootstraps(),
        eval_mods_side_by_side: side_by_side,
        inputs: xs.len(),
        random_inputs: random,
        outputs,
        reference,
        max_abs_error: max_err,
        argmax_agree: agree,
        setup_seconds: setup,
        seconds_per_input: secs / xs.len() as f64,
        keys_generated: session.keys.generated,
        keys_reused: session.keys.reused,
        dram_budget: args.dram_mib << 20,
        store_peak_dram: st.peak_dram,
        bytes_pm_to_dram: st.bytes_pm_to_dram,
        bytes_dram_to_pm: st.bytes_dram_to_pm,
        peak_rss,
        outside_store,
        policy: policy.name(),
        prefetch: PrefetchReport::of(&policy),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "hetier run — encrypted {} from {} (log N = {}{}, depth {}), {} policy",
        out.model,
        out.model_file,
        out.log_n,
        if insecure { ", INSECURE test parameters" } else { "" },
        out.depth,
        out.policy
    );
    let mut rows = vec![
        vec![
            "agreement with plaintext".into(),
            format!(
                "{}/{} argmax, max |error| {:.2e} ({} inputs)",
                agree,
                out.inputs,
                max_err,
                if random { "random" } else { "given" }
            ),
        ],
        vec![
            "setup (keys, weights)".into(),
            format!(
                "{setup:.2} s — {} keys generated, {} reused",
                out.keys_generated, out.keys_reused
            ),
        ],
        vec!["time".into(), format!("{:.3} s/input", out.seconds_per_input)],
        vec![
            "store DRAM budget".into(),
            format!(
                "{} (store peak {})",
                fmt::bytes(out.dram_budget),
                fmt::bytes(out.store_peak_dram)
            ),
        ],
        vec!["process peak RSS".into(), out.peak_rss.map_or("unknown".into(), fmt::bytes)],
        fmt::bytes_moved_row(&st),
    ];
    if let Some(o) = &out.outside_store {
        rows.push(o.row(out.dram_budget));
    }
    if out.bootstraps > 0 {
        rows.push(vec!["bootstraps".into(), format!("{} per input", out.bootstraps)]);
    }
    fmt::table(&["", "value"], &rows);
    Ok(())
}
