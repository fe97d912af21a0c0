//! A client-side session over the batch executor: encrypt a batch of samples element by
//! element (slot b = sample b), run the plan over the store, decrypt and read each sample's
//! logits — what `hetier run --layout batch` and the batch accuracy tests drive.

use std::sync::Arc;
use std::time::Instant;

use hetier_tiering::TieredStore;

use super::{BatchExecutor, BatchPlan};
use crate::ckks::{Context, Decryptor, Encoder, Encryptor, KeyGenerator, SecretKey, Seed};
use crate::error::{Error as CoreError, Result as CoreResult};
use crate::exec::error::Result;
use crate::exec::{derivable_damage, KeyReport, KeySetId, RunReport};
use crate::model::Model;

/// What one batch run returned.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOutput {
    /// Logits of each sample, in input order.
    pub logits: Vec<Vec<f64>>,
    /// Client time to encode, encrypt and put the inputs (seconds).
    pub encrypt_seconds: f64,
    /// Server time of the run over the store (seconds).
    pub run_seconds: f64,
    /// Client time to decrypt and decode the outputs (seconds).
    pub decrypt_seconds: f64,
    /// The executor's report.
    pub report: RunReport,
}

/// Keys and an executor ready to run batches of one model.
pub struct BatchSession<'s> {
    model: &'s Model,
    plan: &'s BatchPlan,
    store: &'s TieredStore,
    ctx: Arc<Context>,
    sk: SecretKey,
    encoder: Encoder,
    executor: BatchExecutor<'s>,
    kg: KeyGenerator,
    keyset: KeySetId,
    /// What preparing the keys did.
    pub keys: KeyReport,
    /// One line per damaged object regenerated since the last [`BatchSession::take_healed`].
    healed: Vec<String>,
}

impl<'s> BatchSession<'s> {
    /// Derives the secret key from `sk_seed`, makes sure the relinearisation key is in `store`
    /// (reusing one an earlier process left) and prepares the executor.
    pub fn new(
        model: &'s Model,
        plan: &'s BatchPlan,
        store: &'s TieredStore,
        sk_seed: Seed,
    ) -> Result<Self> {
        let ctx = Context::new(plan.params())?;
        let mut kg = KeyGenerator::with_seed(&ctx, sk_seed);
        let sk = kg.secret_key();
        let keyset = KeySetId::from_seed(&sk_seed);
        let mut executor = BatchExecutor::real(plan, keyset, store, &ctx)?;
        // Before any key is made: a budget too small fails now, naming the smallest budget
        // whose plan (compiled within it, as this one was) fits it.
        let key_pin = executor.key_pin_bytes();
        let (needed, _) = TieredStore::working_set_need(plan.working_sets(&key_pin));
        if needed > store.budget() {
            let from = store.budget().max(needed);
            let (needed, step) =
                BatchPlan::smallest_budget_within(model, plan.params(), from, &key_pin)?;
            let budget = store.budget();
            return Err(hetier_tiering::Error::BudgetTooSmall { budget, needed, step }.into());
        }
        let keys = executor.prepare_keys(Some(&mut kg), Some(&sk), keyset)?;
        Ok(Self {
            model,
            plan,
            store,
            encoder: Encoder::new(&ctx),
            ctx,
            sk,
            executor,
            kg,
            keyset,
            keys,
            healed: Vec::new(),
        })
    }

    /// The lines describing each damaged object regenerated since the last call.
    pub fn take_healed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.healed)
    }

    /// Encrypts `images` (raw samples, at most N/2) batch-major, runs the plan and returns every
    /// sample's logits with the timings.
    pub fn infer(&mut self, images: &[&[u8]]) -> Result<BatchOutput> {
        let p = self.ctx.params();
        if images.is_empty() || images.len() > p.slots() {
            return Err(CoreError::InvalidParameter {
                name: "batch",
                reason: format!("{} samples, one run takes 1..={}", images.len(), p.slots()),
            }
            .into());
        }
        let xs =
            images.iter().map(|r| self.model.prepare_input(r)).collect::<CoreResult<Vec<_>>>()?;
        let elems = self.plan.inputs().len();
        if xs[0].len() != elems {
            return Err(CoreError::ModelInput { expected: elems, found: xs[0].len() }.into());
        }
        // A damaged relinearisation key is regenerated and the batch run again (once: a pool
        // that keeps damaging what is written to it must not loop).
        let mut healed = 0;
        loop {
            let r = self.attempt(&xs, images.len());
            match derivable_damage(&r) {
                Some((id, _)) if healed == 0 => {
                    let line = self.executor.heal(id, &mut self.kg, &self.sk, self.keyset)?;
                    self.healed.push(line);
                    healed += 1;
                }
                _ => {
                    let mut out = r?;
                    out.report.healed = healed;
                    return Ok(out);
                }
            }
        }
    }

    /// One encrypt–run–decrypt pass over the prepared samples `xs`.
    fn attempt(&mut self, xs: &[Vec<f64>], samples: usize) -> Result<BatchOutput> {
        let p = self.ctx.params();
        let elems = self.plan.inputs().len();
        let t0 = Instant::now();
        // One plaintext and one ciphertext buffer, scratch of the store's budget, serve every
        // element in turn: the client holds nothing the size of a ciphertext outside the store.
        let words = ((p.max_level() + 1) * p.n()) as u64 * 8;
        let (mut pt_buf, mut ct_buf) = (self.store.scratch(words)?, self.store.scratch(2 * words)?);
        let mut encryptor = Encryptor::new(&self.ctx);
        for f in 0..elems {
            let slots: Vec<f64> = xs.iter().map(|x| x[f]).collect();
            let pt =
                self.encoder.encode_real_into(&slots, p.max_level(), p.scale(), &mut pt_buf)?;
            let ct = encryptor.encrypt_sk_into(&self.sk, &pt, &mut ct_buf)?;
            self.executor.put_input(f, &ct)?;
        }
        drop((pt_buf, ct_buf));
        let encrypt_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let report = self.executor.run()?;
        let run_seconds = t1.elapsed().as_secs_f64();
        let t2 = Instant::now();
        let dec = Decryptor::new(&self.ctx, &self.sk)?;
        let mut logits = vec![Vec::with_capacity(self.plan.outputs().len()); samples];
        for k in 0..self.plan.outputs().len() {
            // Decrypted from where the output lies into a scratch buffer of the budget: no
            // copy of the ciphertext (or its plaintext) on the heap.
            let v = self.executor.output_with(k, |ct| {
                let words = (ct.level() + 1) * p.n();
                let pt = dec.decrypt_into(ct, self.store.scratch(words as u64 * 8)?)?;
                Ok(self.encoder.decode_real_in_place(pt)?)
            })?;
            for (b, l) in logits.iter_mut().enumerate() {
                l.push(v[b]);
            }
        }
        self.executor.finish()?;
        let decrypt_seconds = t2.elapsed().as_secs_f64();
        Ok(BatchOutput { logits, encrypt_seconds, run_seconds, decrypt_seconds, report })
    }

    /// The executor (for its trace).
    pub fn executor(&self) -> &BatchExecutor<'s> {
        &self.executor
    }
}
