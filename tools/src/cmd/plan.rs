//! `hetier plan`: plan mode for the full-size networks. Emits the access trace of one encrypted
//! inference at log N = 16 and reports distinct rotation keys, bytes by kind, peak live set,
//! key switches and the cost model's predicted time at DRAM budgets from 5% to 100% of the peak
//! live set. Every network is compiled for real at `n16_deep` — the real packing, bootstraps
//! from the real bootstrapper — and walked by the plan-mode executor, so its trace is the one a
//! real run records: ResNet-20 (CIFAR) with the in-place channel packing, MobileNetV2 and
//! ResNet-50 at 224×224 with the multiplexed packing (space-to-depth input, depthwise and
//! strided layers that keep the ciphertexts dense), all with synthetic weights (the op
//! sequence depends on shapes only) and a polynomial activation.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use hetier_he::ckks::bootstrap::{BootstrapPreset, Bootstrapper};
use hetier_he::ckks::Context as CkksContext;
use hetier_he::exec::{plan_compiled, PlanSummary, WeightMode};
use hetier_he::model::{zoo, Activation, Packing, DEFAULT_MARGIN};
use hetier_he::nn::poly::{self, ChebPoly};
use hetier_he::nn::BootstrapSpec;
use hetier_tiering::sim::{predict, PredictOptions};
use hetier_tiering::{CostModel, PolicyConfig};
use serde::Serialize;

use crate::cmd::tuning::costs::CostsArg;
use crate::fmt;

/// Networks `hetier plan` compiles.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum NetArg {
    /// MobileNetV2 1.0 at 224×224 (ImageNet).
    Mobilenetv2,
    /// ResNet-50 v1.5 at 224×224 (ImageNet).
    Resnet50,
    /// ResNet-20 (CIFAR-10).
    Resnet20,
}

/// Flags of `hetier plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Which network.
    #[arg(long, value_enum)]
    model: NetArg,
    /// DRAM budgets, in percent of the peak live set.
    #[arg(long, value_delimiter = ',', default_value = "5,10,25,50,75,100")]
    budgets: Vec<f64>,
    #[command(flatten)]
    costs: CostsArg,
    /// Policies to predict with (`lru`, `alpha`, `planned`), each simulated with the store's own
    /// rules by the cost model's fast engine: about a second per budget for MobileNetV2,
    /// 3–60 s for ResNet-50's 1.4 M steps (`planned` the slowest).
    #[arg(long, value_delimiter = ',', default_value = "lru,alpha,planned")]
    policies: Vec<String>,
    /// Write the trace (JSON lines, tiering trace format) to this file.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Keep every encoded weight diagonal in the store (`stored`), or keep raw weights and
    /// encode each diagonal just before its product (`on-the-fly`: less memory, more compute).
    #[arg(long, value_enum, default_value = "stored")]
    weights: WeightArg,
    /// ResNet-20 only: input channels (3: CIFAR-10; 1: the MNIST model `hetier run` runs).
    #[arg(long, default_value_t = 3)]
    channels: usize,
    /// The activation's ReLU degree (Chebyshev on [-1, 1]); 0 = the degree-2 polynomial of
    /// the trained ResNet-20.
    #[arg(long, default_value_t = 0)]
    relu_degree: usize,
    #[command(flatten)]
    output: super::tuning::OutputArgs,
}

/// The network compiled for real at log N = 16 (`n16_deep`: bootstraps from the real
/// bootstrapper, the real packing), then walked by the plan-mode executor.
fn plan_model(
    args: &PlanArgs,
    file: &super::tuning::costs::CostFile,
    mode: WeightMode,
) -> Result<(hetier_tiering::Trace, PlanSummary)> {
    let preset = BootstrapPreset::n16_deep();
    let params = preset.params()?;
    let ctx = CkksContext::new(&params)?;
    let bs = Bootstrapper::new(&ctx, &preset.config)?;
    let act = match args.relu_degree {
        0 => Activation::Poly { coeffs: vec![0.0, 1.0, 0.1] },
        d => Activation::Chebyshev {
            func: "relu".into(),
            range: [-1.0, 1.0],
            degree: d,
            coeffs: ChebPoly::interpolate(poly::relu, -1.0, 1.0, d)?.coeffs,
        },
    };
    let (model, packing) = match args.model {
        NetArg::Resnet20 => (zoo::resnet20(args.channels, act)?, Packing::InPlace),
        NetArg::Mobilenetv2 => (zoo::mobilenetv2(act)?, Packing::Multiplexed),
        NetArg::Resnet50 => (zoo::resnet50(act)?, Packing::Multiplexed),
    };
    let spec = BootstrapSpec::of(&bs);
    let compiled = model.compile_packed(&params, &spec, DEFAULT_MARGIN, packing)?;
    let costs = file.ops(params.log_n(), &args.costs.costs)?;
    let raw: u64 = model.tensors().values().map(|t| t.data.len() as u64 * 8).sum();
    Ok(plan_compiled(model.name(), &compiled, costs, mode, raw)?)
}

/// Where the plan keeps weights.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum WeightArg {
    Stored,
    OnTheFly,
}

#[derive(Serialize)]
struct BudgetRow {
    percent: f64,
    budget: u64,
    policy: &'static str,
    predicted_seconds: f64,
    stall_seconds: f64,
    pm_read_bytes: u64,
}

#[derive(Serialize)]
struct PlanReport {
    summary: PlanSummary,
    pm: String,
    predictions: Vec<BudgetRow>,
    bootstrapping: &'static str,
}

/// Runs `hetier plan`.
pub fn run(args: &PlanArgs, json: bool) -> Result<()> {
    if let Some(b) = args.budgets.iter().find(|b| !(b.is_finite() && **b > 0.0)) {
        anyhow::bail!("--budgets {b}: a DRAM budget must be more than 0% of the peak live set");
    }
    let file = args.costs.load()?;
    let model: CostModel = file.tiers.clone();
    let policies = args
        .policies
        .iter()
        .map(|p| PolicyConfig::parse(p).with_context(|| format!("unknown policy {p:?}")))
        .collect::<Result<Vec<_>>>()?;
    let t = Instant::now();
    let mode = match args.weights {
        WeightArg::Stored => WeightMode::Stored,
        WeightArg::OnTheFly => WeightMode::OnTheFly,
    };
    let (trace, summary) = plan_model(args, &file, mode)?;
    let bootstrapping =
        "computed: the real bootstrapper's key order and the real packing (n16_deep)";
    let plan_secs = t.elapsed().as_secs_f64();
    if let Some(p) = &args.trace {
        trace.save(p)?;
    }
    let mut predictions = Vec::new();
    for &pct in &args.budgets {
        let budget = (summary.peak_live_bytes as f64 * pct / 100.0) as u64;
        for policy in &policies {
            let t = Instant::now();
            // Keys and weights were put by an earlier process: they start in the pool (PM).
            let opts = PredictOptions { migrator_threads: 2, reuse_durable: true };
            let p = predict(&trace, &model, policy, budget, &opts)?;
            // Progress: only on a terminal, and not under --json or --quiet.
            if !json && !args.output.quiet && std::io::stderr().is_terminal() {
                eprintln!(
                    "  predicted {pct}% / {}: {:.1} s ({:.1} s to simulate)",
                    policy.name(),
                    p.total_ns / 1e9,
                    t.elapsed().as_secs_f64()
                );
            }
            predictions.push(BudgetRow {
                percent: pct,
                budget,
                policy: policy.name(),
                predicted_seconds: p.total_ns / 1e9,
                stall_seconds: p.stall_ns / 1e9,
                pm_read_bytes: p.pm_read_bytes,
            });
        }
    }
    let out =
        PlanReport { summary, pm: model.pm_description.to_string(), predictions, bootstrapping };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let s = &out.summary;
    println!(
        "hetier plan — {} at log N = {}, L = {} (planned in {plan_secs:.1} s; bootstrapping {})",
        s.model,
        s.log_n,
        s.max_level,
        out.bootstrapping.split(':').next().unwrap_or_default()
    );
    let rows = vec![
        vec![
            "distinct rotation keys".into(),
            format!("{} (+ relinearisation, conjugation)", s.rotation_keys),
        ],
        vec!["evaluation keys".into(), fmt::bytes(s.key_bytes)],
        vec!["encoded weights (stored)".into(), fmt::bytes(s.weight_bytes)],
        vec![
            "raw weights (encoded on the fly)".into(),
            format!("{} ({} encodes)", fmt::bytes(s.raw_weight_bytes), s.encodes),
        ],
        vec!["ciphertexts written".into(), fmt::bytes(s.ciphertext_bytes_written)],
        vec!["peak live ciphertexts".into(), fmt::bytes(s.peak_live_ciphertext_bytes)],
        vec!["peak live set".into(), fmt::bytes(s.peak_live_bytes)],
        vec!["key switches".into(), s.key_switches.to_string()],
        vec!["bootstraps".into(), s.bootstraps.to_string()],
        vec![
            "ops / compute".into(),
            format!("{} ops, {:.1} s of compute", s.ops, s.compute_ns as f64 / 1e9),
        ],
    ];
    fmt::table(&["", "value"], &rows);
    println!("\npredicted time (PM: {})", out.pm);
    let rows: Vec<Vec<String>> = out
        .predictions
        .iter()
        .map(|r| {
            vec![
                format!("{:.0}%", r.percent),
                fmt::bytes(r.budget),
                r.policy.into(),
                format!("{:.1} s", r.predicted_seconds),
                format!("{:.1} s", r.stall_seconds),
                fmt::bytes(r.pm_read_bytes),
            ]
        })
        .collect();
    fmt::table(&["budget", "bytes", "policy", "predicted", "stall", "PM reads"], &rows);
    Ok(())
}
