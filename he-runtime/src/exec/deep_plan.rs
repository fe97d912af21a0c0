//! Plan mode for a compiled program with bootstraps (a deep network from
//! [`crate::model::Model::compile_bootstrapped`]): the trace comes from the real program and
//! the real bootstrapper's key order, run by the plan-mode [`Executor`], so it is the trace a
//! real run records (tested at small N in the executor's tests). Only the op times are
//! estimates, from [`OpCosts`] — bootstrap steps from a measured bootstrap
//! ([`OpCosts::calibrate_bootstrap`]).

use hetier_tiering::Trace;
use serde::Serialize;

use super::costs::OpCosts;
use super::error::Result;
use super::executor::Executor;
use super::ids::KeySetId;
use crate::error::Error as CoreError;
use crate::model::Compiled;
use crate::nn::ObjKind;

/// Where a plan keeps its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum WeightMode {
    /// Every encoded diagonal is a durable plaintext object (encoded once, read per inference).
    #[default]
    Stored,
    /// Raw weights stay as they are; each diagonal is encoded just before its product into a
    /// transient plaintext (an encode per product for the memory of the encoded weights).
    OnTheFly,
}

/// Summary of a full-size plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanSummary {
    /// Network name.
    pub model: String,
    /// log2 N.
    pub log_n: u32,
    /// Top level L.
    pub max_level: usize,
    /// Distinct rotation keys (plus the relinearisation and conjugation keys, counted apart).
    pub rotation_keys: usize,
    /// Bytes of all evaluation keys (expanded).
    pub key_bytes: u64,
    /// How weights are kept.
    pub weight_mode: WeightMode,
    /// Bytes of all stored encoded weight plaintexts; zero when weights are encoded on the fly.
    pub weight_bytes: u64,
    /// Bytes of the raw weights (on-the-fly mode).
    pub raw_weight_bytes: u64,
    /// Plaintexts encoded during the inference (on-the-fly mode).
    pub encodes: u64,
    /// Bytes of all ciphertexts ever written.
    pub ciphertext_bytes_written: u64,
    /// Largest total size of live ciphertexts.
    pub peak_live_ciphertext_bytes: u64,
    /// Largest total size of live objects (keys + weights + ciphertexts).
    pub peak_live_bytes: u64,
    /// Key switches (rotations, conjugations, relinearisations, hoisted rotations).
    pub key_switches: u64,
    /// Bootstraps (one per ciphertext refresh).
    pub bootstraps: u64,
    /// Trace ops.
    pub ops: u64,
    /// Sum of the estimated op times (ns).
    pub compute_ns: u64,
}

/// The trace of one inference of `compiled` and its summary. `raw_weight_bytes` is the size of
/// the model's own weights (f64), what on-the-fly encoding keeps instead of the diagonals.
pub fn plan_compiled(
    name: &str,
    compiled: &Compiled,
    costs: &OpCosts,
    mode: WeightMode,
    raw_weight_bytes: u64,
) -> Result<(Trace, PlanSummary)> {
    let p = &compiled.program;
    if p.bootstraps() > 0 && !costs.top_ns.contains_key("bootstrap_key") {
        return Err(CoreError::InvalidParameter {
            name: "costs",
            reason: format!(
                "no measured bootstrap at log N = {}: run hetier calibrate --log-n {} --bootstrap",
                costs.log_n, costs.log_n
            ),
        }
        .into());
    }
    let keyset = KeySetId(0);
    let mut ex = Executor::plan(p, 0, keyset, costs.clone());
    if mode == WeightMode::OnTheFly {
        ex = ex.encode_weights_on_the_fly();
    }
    ex.prepare_keys(None, None, keyset)?;
    ex.prepare_weights()?;
    let report = ex.run_named(&[])?;
    ex.finish()?;
    let objects = p.objects();
    let key_bytes: u64 = objects.iter().filter(|o| o.kind.is_key()).map(|o| o.bytes).sum();
    let plaintexts: Vec<_> = objects.iter().filter(|o| o.kind == ObjKind::Plaintext).collect();
    let weight_bytes = match mode {
        WeightMode::Stored => plaintexts.iter().map(|o| o.bytes).sum(),
        WeightMode::OnTheFly => 0,
    };
    let written: u64 =
        objects.iter().filter(|o| o.kind == ObjKind::Ciphertext).map(|o| o.bytes).sum();
    let live = p.peak_live_ciphertext_bytes();
    let summary = PlanSummary {
        model: name.to_owned(),
        log_n: p.params().log_n(),
        max_level: p.params().max_level(),
        rotation_keys: p.rotation_steps().len(),
        key_bytes,
        weight_mode: mode,
        weight_bytes,
        raw_weight_bytes: if mode == WeightMode::OnTheFly { raw_weight_bytes } else { 0 },
        encodes: if mode == WeightMode::OnTheFly { plaintexts.len() as u64 } else { 0 },
        ciphertext_bytes_written: written,
        peak_live_ciphertext_bytes: live,
        peak_live_bytes: key_bytes + weight_bytes + live,
        key_switches: p.key_switches() as u64,
        bootstraps: p.bootstraps() as u64,
        ops: report.steps as u64,
        compute_ns: report.compute_ns,
    };
    Ok((ex.trace(), summary))
}
