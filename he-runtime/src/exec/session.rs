//! A client-side session over the real executor: encrypt a sample, run the program over the
//! store, decrypt and unpack the logits — what `hetier run` and the accuracy tests drive.

use std::sync::Arc;

use hetier_tiering::TieredStore;

use super::{derivable_damage, weights_tag, Executor, KeyForm, KeyReport, KeySetId, RunReport};
use crate::ckks::bootstrap::Bootstrapper;
use crate::ckks::{Context, Decryptor, Encoder, Encryptor, KeyGenerator, SecretKey, Seed};
use crate::exec::error::Result;
use crate::model::{Compiled, Model};
use crate::nn::encrypted_weights::is_encrypted_weight;

/// Mixed into the weights hash of a model whose weights are ciphertexts ("encweigh").
const ENCRYPTED_WEIGHTS_TAG: u64 = 0x656e_6377_6569_6768;

/// The weights tag of `model` compiled as `compiled`: encrypted weights get their own, since
/// their objects differ from the encoded ones.
pub(super) fn model_weights_tag(model: &Model, compiled: &Compiled) -> u64 {
    let encrypted = compiled.program.objects().iter().any(is_encrypted_weight);
    let hash = model.weights_hash() ^ if encrypted { ENCRYPTED_WEIGHTS_TAG } else { 0 };
    weights_tag(hash, compiled.program.params().id())
}

/// Keys, weights and an executor ready to run one model sample after sample.
pub struct Session<'s> {
    model: &'s Model,
    compiled: &'s Compiled,
    store: &'s TieredStore,
    ctx: Arc<Context>,
    sk: SecretKey,
    encoder: Encoder,
    encryptor: Encryptor,
    executor: Executor<'s>,
    kg: KeyGenerator,
    keyset: KeySetId,
    /// What preparing the keys did (generated or reused from the pool).
    pub keys: KeyReport,
    /// Weight plaintexts encoded (or weight ciphertexts encrypted) and put (0 when all were
    /// reused).
    pub weights_encoded: usize,
    /// One line per damaged object regenerated since the last [`Session::take_healed`].
    healed: Vec<String>,
}

impl<'s> Session<'s> {
    /// Derives the secret key from `sk_seed`, makes sure every key and weight is in `store`
    /// (reusing what an earlier process left), and prepares the executor. A store whose budget
    /// cannot hold some step of the program fails first, with `BudgetTooSmall` naming the
    /// smallest workable budget ([`Executor::working_sets`]).
    pub fn new(
        model: &'s Model,
        compiled: &'s Compiled,
        store: &'s TieredStore,
        sk_seed: Seed,
    ) -> Result<Self> {
        Self::open(model, compiled, store, sk_seed, None, false, KeyForm::Expanded)
    }

    /// As [`Session::new`] for a program with bootstrap ops, run by `bs` (whose context the
    /// session shares); the bootstrap's keys join the key set. With `weights_on_the_fly`
    /// every weight plaintext is encoded just before its product (see
    /// [`Executor::encode_weights_on_the_fly`]); keys are put in `key_form`
    /// ([`Executor::put_keys_as`]).
    pub fn with_bootstrapper(
        model: &'s Model,
        compiled: &'s Compiled,
        store: &'s TieredStore,
        sk_seed: Seed,
        bs: Arc<Bootstrapper>,
        weights_on_the_fly: bool,
        key_form: KeyForm,
    ) -> Result<Self> {
        Self::open(model, compiled, store, sk_seed, Some(bs), weights_on_the_fly, key_form)
    }

    fn open(
        model: &'s Model,
        compiled: &'s Compiled,
        store: &'s TieredStore,
        sk_seed: Seed,
        bs: Option<Arc<Bootstrapper>>,
        weights_on_the_fly: bool,
        key_form: KeyForm,
    ) -> Result<Self> {
        let params = compiled.program.params();
        let ctx = match &bs {
            Some(bs) => Arc::clone(bs.context()),
            None => Context::new(params)?,
        };
        let mut kg = KeyGenerator::with_seed(&ctx, sk_seed);
        let sk = kg.secret_key();
        let keyset = KeySetId::from_seed(&sk_seed);
        let tag = model_weights_tag(model, compiled);
        let mut executor =
            Executor::real(&compiled.program, tag, keyset, store, &ctx)?.put_keys_as(key_form);
        if let Some(bs) = bs {
            executor = executor.with_bootstrapper(bs)?;
        }
        if weights_on_the_fly {
            executor = executor.encode_weights_on_the_fly();
        }
        // A budget no step of the plan fits (the bootstrap's buffers included) fails here with
        // the smallest workable budget, before any key is made; a run checks again with the
        // keys as loaded.
        store.check_working_sets(executor.working_sets())?;
        let keys = executor.prepare_keys(Some(&mut kg), Some(&sk), keyset)?;
        let weights_encoded =
            executor.prepare_weights()? + executor.prepare_encrypted_weights(Some(&sk))?;
        Ok(Self {
            model,
            compiled,
            store,
            encoder: Encoder::new(&ctx),
            encryptor: Encryptor::new(&ctx),
            ctx,
            sk,
            executor,
            kg,
            keyset,
            keys,
            weights_encoded,
            healed: Vec::new(),
        })
    }

    /// Encrypts one raw sample, runs the program over the store and returns the decrypted
    /// logits with the run's report.
    pub fn infer(&mut self, raw: &[u8]) -> Result<(Vec<f64>, RunReport)> {
        let x = self.model.prepare_input(raw)?;
        self.infer_values(&x)
    }

    /// As [`Session::infer`] for a sample already in network values (a `float32`-input model,
    /// e.g. an imported ONNX one).
    pub fn infer_values(&mut self, x: &[f64]) -> Result<(Vec<f64>, RunReport)> {
        self.model.check_values(x)?;
        let p = self.ctx.params();
        let slots = self.compiled.pack(x, p.slots())?;
        // The client's plaintext and ciphertext are scratch buffers of the store's budget.
        let level = self.compiled.input_level()?;
        let words = ((level + 1) * p.n()) as u64 * 8;
        // A damaged key or weight is regenerated and the run repeated; each object at most
        // once per call, so a pool that keeps damaging what is written to it cannot loop. Each
        // attempt encrypts afresh: the run drops the ciphertext once it is put, so its budget
        // is free for the run.
        let mut healed: Vec<hetier_tiering::ObjectId> = Vec::new();
        let mut report = loop {
            let pt = self.store.scratch(words)?;
            let pt = self.encoder.encode_real_into(&slots, level, p.scale(), pt)?;
            let ct = self.store.scratch(2 * words)?;
            let ct = self.encryptor.encrypt_sk_into(&self.sk, &pt, ct)?;
            drop(pt);
            let r = self.executor.run_owned(ct);
            match derivable_damage(&r) {
                Some((id, _)) if !healed.contains(&id) => {
                    let line =
                        self.executor.heal(id, Some(&mut self.kg), Some(&self.sk), self.keyset)?;
                    self.healed.push(line);
                    healed.push(id);
                }
                _ => break r?,
            }
        };
        report.healed = healed.len();
        // Decrypted where the output lies, into a scratch buffer of the budget, and decoded
        // there: no copy of it on the heap.
        let decryptor = Decryptor::new(&self.ctx, &self.sk)?;
        let values = self.executor.output_with(&self.compiled.output_name, |out| {
            let words = (out.level() + 1) * p.n();
            let dec = decryptor.decrypt_into(out, self.store.scratch(words as u64 * 8)?)?;
            Ok(self.encoder.decode_real_in_place(dec)?)
        })?;
        self.executor.finish()?;
        Ok((self.compiled.unpack_output(&values), report))
    }

    /// The lines describing each damaged object regenerated since the last call (for the
    /// caller to report, one line each).
    pub fn take_healed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.healed)
    }

    /// The executor (for its trace).
    pub fn executor(&self) -> &Executor<'s> {
        &self.executor
    }
}
