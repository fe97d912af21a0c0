//! The placement-tuning commands (issue #16): `hetier calibrate` measures the host into a cost
//! file, `hetier profile` shows where a model's memory goes, `hetier tune` finds the smallest
//! DRAM budget that meets a slowdown target (and `--verify` runs it for real). This module
//! holds what they share: the model and output flags, the plan-mode trace of a model, and the
//! progress bar.

pub mod analysis;
pub mod calibrate;
pub mod costs;
pub mod kernel;
pub mod models;
pub mod plot;
pub mod profile;
pub mod tune;
mod verify;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use hetier_he::ckks::Params;
use hetier_he::exec::{weights_tag, Executor, KeySetId, OpCosts};
use hetier_he::model::{Compiled, Model};
use hetier_tiering::Trace;
use indicatif::{ProgressBar, ProgressStyle};

use models::NamedModel;

/// Output flags every tuning command takes (`--json` is global).
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// No progress and no notes on stderr (errors are still printed).
    #[arg(long, short)]
    pub quiet: bool,
}

/// Which model, and at which ring size.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A model compiled into the binary (default: digits).
    #[arg(long, value_enum, conflicts_with = "model_file")]
    pub model: Option<NamedModel>,
    /// A model description (JSON) with its weights beside it, instead of a built-in model.
    #[arg(long, value_name = "FILE")]
    pub model_file: Option<PathBuf>,
    /// log2 N (13..=16; default: the smallest preset with enough levels for the model, 16 with
    /// bootstrapping for a deeper one such as resnet20).
    #[arg(long)]
    pub log_n: Option<u32>,
}

/// A model compiled for its parameters.
pub struct Loaded {
    /// The model.
    pub model: Model,
    /// Its name.
    pub name: String,
    /// The built-in model it is, if any.
    pub embedded: Option<NamedModel>,
    /// The description file it came from, if any.
    pub file: Option<PathBuf>,
    /// The CKKS parameters.
    pub params: Params,
    /// The compiled program.
    pub compiled: Compiled,
    /// The bootstrapper of a model deeper than every preset (weights are then encoded just
    /// before their products, as `hetier run --model resnet20` does).
    pub bootstrapper: Option<std::sync::Arc<hetier_he::ckks::bootstrap::Bootstrapper>>,
}

impl ModelArgs {
    /// Loads and compiles the model.
    pub fn load(&self) -> Result<Loaded> {
        let (model, embedded) = match &self.model_file {
            Some(p) => {
                if !p.exists() {
                    bail!("model file {} does not exist", p.display());
                }
                (Model::load(p).with_context(|| format!("loading model {}", p.display()))?, None)
            }
            None => {
                let m = self.model.unwrap_or(NamedModel::Digits);
                (m.load()?, Some(m))
            }
        };
        let c = models::compile_for(&model, self.log_n)?;
        Ok(Loaded {
            name: model.name().to_owned(),
            model,
            embedded,
            file: self.model_file.clone(),
            params: c.params,
            compiled: c.compiled,
            bootstrapper: c.bootstrapper,
        })
    }
}

/// The plan-mode trace of `images` inferences (keys and weights put once, durable; then each
/// inference's ciphertexts, ops and removals), with op times from `ops`.
pub fn plan_trace(l: &Loaded, ops: &OpCosts, images: usize) -> Result<Trace> {
    if ops.log_n != l.params.log_n() {
        bail!("op times are for log N = {}, the model runs at {}", ops.log_n, l.params.log_n());
    }
    // Plans do no cryptography: the key set only names the key objects, so a throwaway
    // random seed serves (a fixed one would be a published secret if it ever left a plan).
    if l.compiled.program.bootstraps() > 0 && !ops.top_ns.contains_key("bootstrap_key") {
        bail!(
            "{} bootstraps, and the cost file has no measured bootstrap at log N = {}: run \
             hetier calibrate --log-n {} --bootstrap",
            l.name,
            ops.log_n,
            ops.log_n
        );
    }
    let keyset = KeySetId::from_seed(&hetier_he::ckks::os_seed());
    let tag = weights_tag(l.model.weights_hash(), l.params.id());
    let mut ex = Executor::plan(&l.compiled.program, tag, keyset, ops.clone());
    if l.bootstrapper.is_some() {
        // A bootstrapped network's encoded weights would be tens of GB: encoded on the fly.
        ex = ex.encode_weights_on_the_fly();
    }
    ex.prepare_keys(None, None, keyset)?;
    ex.prepare_weights()?;
    for _ in 0..images.max(1) {
        ex.run(None)?;
        ex.finish()?;
    }
    Ok(ex.trace())
}

/// The largest DRAM one step of the model holds at once as the store checks it before a run
/// (operands, results and scratch such as a hoisted decomposition; keys with their stored
/// form), in whole pages: no store budget below it can run the model.
pub fn working_set_bytes(l: &Loaded, ops: &OpCosts) -> u64 {
    let keyset = KeySetId::from_seed(&hetier_he::ckks::os_seed());
    let mut ex = Executor::plan(&l.compiled.program, 0, keyset, ops.clone());
    if l.bootstrapper.is_some() {
        ex = ex.encode_weights_on_the_fly();
    }
    ex.working_sets()
        .iter()
        .map(|set| set.iter().map(|b| b.next_multiple_of(4096)).sum::<u64>())
        .max()
        .unwrap_or(0)
}

/// The most the executor borrows from the store's budget in one step beside the trace's
/// objects (whole pages per buffer): the hoisted decomposition with its c_0 and key-switch
/// buffers, a rotation's key-switch buffers, or mul_relin's key-switch buffers and degree-2
/// product, plus, for a model that bootstraps, the bootstrap's buffers it holds for the whole
/// run ([`Executor::scratch_charge`]). A real run reserves it for the whole run, so the store
/// has this much less room for objects than the trace shows, at every step.
pub fn hoist_charge(l: &Loaded) -> u64 {
    let keyset = KeySetId::from_seed(&hetier_he::ckks::os_seed());
    let costs = OpCosts { log_n: 0, q_len: 0, p_len: 0, top_ns: Default::default() };
    Executor::plan(&l.compiled.program, 0, keyset, costs).scratch_charge()
}

/// A progress bar on stderr, hidden under `--quiet`, `--json` or when stderr is no terminal.
pub fn progress(len: u64, quiet: bool, what: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:40} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Prints a note on stderr unless quiet.
pub fn note(quiet: bool, msg: &str) {
    if !quiet {
        eprintln!("{msg}");
    }
}

/// Bytes in MiB with two decimals, the unit every tuning table uses.
pub fn mib(b: u64) -> f64 {
    (b as f64 / (1u64 << 20) as f64 * 100.0).round() / 100.0
}
