//! Per-op compute-time estimates for plan mode: each op kind's time per unit of work, measured
//! on this host under given parameters, scaled to the level an op runs at. Key-switching ops
//! scale with the number of Q+P limbs they touch, element-wise ops with the Q limbs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::ckks::bootstrap::{BootstrapKeys, BootstrapPreset, Bootstrapper, RecordingKeys};
use crate::ckks::{Complex64, Context, Encoder, Encryptor, Evaluator, KeyGenerator, Params};
use crate::error::Result;

/// Measured nanoseconds per op kind at the top level of one parameter set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpCosts {
    /// log2 N the times were measured at.
    pub log_n: u32,
    /// Q limbs at the top level (L + 1).
    pub q_len: usize,
    /// P limbs.
    pub p_len: usize,
    /// Time of each op kind (trace op names) at the top level, in nanoseconds.
    pub top_ns: BTreeMap<String, f64>,
}

fn is_key_switch(name: &str) -> bool {
    matches!(name, "rotate" | "conjugate" | "mul_relin" | "hoist" | "rotate_hoisted")
}

impl OpCosts {
    /// Estimated time of op `name` on operands at `level` (nanoseconds, rounded). A bootstrap
    /// always runs at the top of the chain: its steps ("bootstrap" up to the first key,
    /// "bootstrap_key" per key use) are not scaled by the level.
    pub fn estimate(&self, name: &str, level: usize) -> u64 {
        let top = self.top_ns.get(name).copied().unwrap_or(0.0);
        if matches!(name, "bootstrap" | "bootstrap_key") {
            return top.round() as u64;
        }
        let ratio = if is_key_switch(name) {
            (level + 1 + self.p_len) as f64 / (self.q_len + self.p_len) as f64
        } else {
            (level + 1) as f64 / self.q_len as f64
        };
        (top * ratio).round() as u64
    }

    /// Measures one bootstrap of `preset` on this host (its keys generated first: about half a
    /// minute at log N = 16) and records its steps as plan mode prices them: `bootstrap`, the
    /// time before the first key use (encapsulation, ModRaise), and `bootstrap_key`, the mean
    /// time from one key use to the next. Returns the bootstrap's total seconds.
    pub fn calibrate_bootstrap(&mut self, preset: &BootstrapPreset) -> Result<f64> {
        let params = preset.params()?;
        let ctx: Arc<Context> = Context::new(&params)?;
        let bs = Bootstrapper::new(&ctx, &preset.config)?;
        let mut kg = KeyGenerator::new(&ctx);
        let sk = kg.secret_key();
        let keys = BootstrapKeys::generate(&mut kg, &sk, &bs)?;
        let vals: Vec<f64> = (0..params.slots()).map(|i| (i as f64 * 0.01).sin()).collect();
        let pt = Encoder::new(&ctx).encode_real(&vals, 0, params.scale())?;
        let ct = Encryptor::new(&ctx).encrypt_sk(&sk, &pt)?;
        let mut scratch = Evaluator::new(&ctx).scratch();
        let recorder = RecordingKeys::new(&keys);
        let start = Instant::now();
        bs.bootstrap(&ct, &recorder, &mut scratch)?;
        let total = start.elapsed();
        let uses = recorder.into_uses();
        let first = uses.first().map_or(total, |&(_, t)| t - start);
        let per_key = (total - first).as_nanos() as f64 / uses.len().max(1) as f64;
        self.top_ns.insert("bootstrap".to_owned(), first.as_nanos() as f64);
        self.top_ns.insert("bootstrap_key".to_owned(), per_key);
        Ok(total.as_secs_f64())
    }

    /// Times every op kind once (after a warm-up) at the top level of `params`. Generates one
    /// rotation key and the relinearisation key, so it costs a few key generations.
    pub fn calibrate(params: &Params) -> Result<Self> {
        let ctx: Arc<Context> = Context::new(params)?;
        let mut kg = KeyGenerator::new(&ctx);
        let sk = kg.secret_key();
        let rot = kg.rotation_key(&sk, 1)?;
        let conj = kg.conjugation_key(&sk)?;
        let rk = kg.relin_key(&sk)?;
        let enc = Encoder::new(&ctx);
        let eval = Evaluator::new(&ctx);
        let mut scratch = eval.scratch();
        let vals: Vec<f64> = (0..params.slots()).map(|i| (i as f64 * 0.01).sin()).collect();
        let top = params.max_level();
        let pt = enc.encode_real(&vals, top, params.scale())?;
        let ct = Encryptor::new(&ctx).encrypt_sk(&sk, &pt)?;
        let mut top_ns = BTreeMap::new();
        let mut time = |name: &str, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
            f()?;
            let t = Instant::now();
            f()?;
            top_ns.insert(name.to_owned(), t.elapsed().as_nanos() as f64);
            Ok(())
        };
        time("rotate", &mut || eval.rotate(&ct, 1, &rot, &mut scratch).map(drop))?;
        time("conjugate", &mut || eval.conjugate(&ct, &conj, &mut scratch).map(drop))?;
        time("mul_relin", &mut || eval.mul_relin(&ct, &ct, &rk, &mut scratch).map(drop))?;
        time("hoist", &mut || eval.hoist(&ct, &mut scratch).map(drop))?;
        let h = eval.hoist(&ct, &mut scratch)?;
        time("rotate_hoisted", &mut || eval.rotate_hoisted(&h, 1, &rot, &mut scratch).map(drop))?;
        time("encode", &mut || enc.encode_real(&vals, top, params.scale()).map(drop))?;
        time("rescale", &mut || eval.rescale(&ct).map(drop))?;
        time("mul_plain", &mut || eval.mul_plain(&ct, &pt).map(drop))?;
        time("add_plain", &mut || eval.add_plain(&ct, &pt).map(drop))?;
        time("add", &mut || eval.add(&ct, &ct).map(drop))?;
        time("sub", &mut || eval.sub(&ct, &ct).map(drop))?;
        time("mul_const", &mut || eval.mul_const(&ct, 0.5, params.scale()).map(drop))?;
        time("mul_int", &mut || eval.mul_integer(&ct, 3).map(drop))?;
        time("add_const", &mut || eval.add_const(&ct, Complex64::new(0.5, 0.0)).map(drop))?;
        time("level_drop", &mut || eval.drop_to_level(&ct, top - 1).map(drop))?;
        let prod = eval.mul(&ct, &ct)?;
        time("square", &mut || eval.mul(&ct, &ct).map(drop))?;
        time("relinearize", &mut || eval.relinearize(&prod, &rk, &mut scratch).map(drop))?;
        // One weight·ciphertext term of a batch-major linear combination (16 terms, averaged).
        let n = params.n();
        let words = ct.as_words();
        let mut acc = vec![0u64; words.len()];
        time("lincomb_16", &mut || {
            for (t, a) in acc.chunks_mut(n).enumerate() {
                let m = &ctx.prime(t % (top + 1)).modulus;
                let x = vec![&words[t * n..(t + 1) * n]; 16];
                crate::math::lincomb::lin_comb_acc(m, &x, &[3; 16], &mut [a])?;
            }
            Ok(())
        })?;
        time("relabel", &mut || {
            drop(ct.to_owned_ct());
            Ok(())
        })?;
        if let Some(t16) = top_ns.remove("lincomb_16") {
            top_ns.insert("lincomb_term".to_owned(), t16 / 16.0);
        }
        Ok(Self { log_n: params.log_n(), q_len: params.q().len(), p_len: params.p().len(), top_ns })
    }
}
