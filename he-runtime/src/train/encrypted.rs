//! The encrypted run: the data owner packs and encrypts the samples, the compiled program runs
//! (here in memory; `exec::train` runs it over the tiered store), and the owner decrypts the
//! final weights and, for the report only, each iteration's residuals or margins.

use std::sync::Arc;
use std::time::Instant;

use super::compile::{compile, TrainProgram};
use super::config::{Task, TrainConfig};
use super::data::Dataset;
use super::plain::{design_rows, metrics};
use crate::ckks::{
    Ciphertext, Context, Decryptor, Encoder, Encryptor, KeyGenerator, Params, SecretKey, Seed,
};
use crate::error::{Error, Result};
use crate::nn::{Interpreter, KeyBundle};

/// One iteration of an encrypted run, as decrypted for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct IterationReport {
    /// Residuals (linreg) or margins (logreg) at the iteration's weights, decrypted.
    pub margins: Vec<f64>,
    /// Loss from those.
    pub loss: f64,
    /// Accuracy from those (logreg).
    pub accuracy: Option<f64>,
    /// Wall time of the phase that computed them and the next weights (the last entry: the
    /// final margins only).
    pub seconds: f64,
}

/// What an encrypted run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct EncryptedRun {
    /// Entries 0..=K: at the weights w_t.
    pub steps: Vec<IterationReport>,
    /// The final weights w_K, decrypted (bias first).
    pub weights: Vec<f64>,
    /// Wall time of the setup phase (doubling the rows).
    pub setup_seconds: f64,
    /// Wall time of packing and encrypting the data.
    pub encrypt_seconds: f64,
    /// Wall time of generating the evaluation keys (or of making sure they are in the store).
    pub keygen_seconds: f64,
    /// Bootstraps performed: always 0 (there is no bootstrapping yet; the depth is checked).
    pub bootstraps: usize,
}

/// The client's secret key and the compiled program for one data shape.
pub struct EncryptedTrainer {
    ctx: Arc<Context>,
    seed: Seed,
    sk: SecretKey,
    prog: TrainProgram,
}

impl EncryptedTrainer {
    /// Compiles `cfg` for `samples` samples with `features` features (plus the bias) and
    /// derives the secret key from `seed` (the evaluation keys are made by the run).
    pub fn new(
        params: &Params,
        cfg: &TrainConfig,
        samples: usize,
        features: usize,
        seed: Seed,
    ) -> Result<Self> {
        let prog = compile(params, cfg, samples, features + 1)?;
        let ctx = Context::new(params)?;
        let sk = KeyGenerator::with_seed(&ctx, seed).secret_key();
        Ok(Self { ctx, seed, sk, prog })
    }

    /// A key generator in the state right after the secret key was drawn (the evaluation keys
    /// it makes belong to this trainer's secret key), with that key.
    pub fn key_generator(&self) -> (KeyGenerator, SecretKey) {
        let mut kg = KeyGenerator::with_seed(&self.ctx, self.seed);
        let sk = kg.secret_key();
        (kg, sk)
    }

    /// The secret-key seed.
    pub fn seed(&self) -> &Seed {
        &self.seed
    }

    /// The compiled program.
    pub fn program(&self) -> &TrainProgram {
        &self.prog
    }

    /// The CKKS context.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Encrypts `data` (normalised) as the program's named inputs.
    pub fn encrypt(&self, data: &Dataset) -> Result<Vec<(String, Ciphertext)>> {
        let p = self.ctx.params();
        let encoder = Encoder::new(&self.ctx);
        let mut enc = Encryptor::new(&self.ctx);
        pack_inputs(&self.prog, data)?
            .into_iter()
            .map(|(name, v)| {
                let pt = encoder.encode_real(&v, p.max_level(), p.scale())?;
                Ok((name, enc.encrypt_sk(&self.sk, &pt)?))
            })
            .collect()
    }

    /// Generates the evaluation keys, encrypts `data`, runs every phase in memory and decrypts
    /// the report.
    pub fn run(&self, data: &Dataset) -> Result<EncryptedRun> {
        let t0 = Instant::now();
        let (mut kg, sk) = self.key_generator();
        let keys = KeyBundle::generate(&mut kg, &sk, &self.prog.program)?;
        let keygen_seconds = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let inputs = self.encrypt(data)?;
        let encrypt_seconds = t0.elapsed().as_secs_f64();
        let mut it = Interpreter::new(&self.ctx, &self.prog.program, &keys)?;
        for (name, ct) in inputs {
            it.set_input(&name, ct)?;
        }
        let mut seconds = Vec::with_capacity(self.prog.phases.len());
        for r in &self.prog.phases {
            let t = Instant::now();
            it.run_ops(r.clone())?;
            seconds.push(t.elapsed().as_secs_f64());
        }
        let mut run = self.decrypt_run(|name| it.output(name).cloned(), &seconds)?;
        run.encrypt_seconds = encrypt_seconds;
        run.keygen_seconds = keygen_seconds;
        Ok(run)
    }

    /// Decrypts a finished run's outputs (looked up by name, with any error type that a core
    /// error converts into — an executor's, say) into the report; `seconds` holds the wall
    /// time of each of the program's phases.
    pub fn decrypt_run<E: From<Error>>(
        &self,
        output: impl Fn(&str) -> std::result::Result<Ciphertext, E>,
        seconds: &[f64],
    ) -> std::result::Result<EncryptedRun, E> {
        let dec = Decryptor::new(&self.ctx, &self.sk)?;
        let dec = &dec;
        let encoder = Encoder::new(&self.ctx);
        let slots =
            |ct: &Ciphertext| -> Result<Vec<f64>> { encoder.decode_real(&dec.decrypt(ct)?) };
        let p = &self.prog.packing;
        let task = self.prog.config.task;
        let mut steps = Vec::with_capacity(self.prog.config.iters + 1);
        for t in 0..=self.prog.config.iters {
            let cts = (0..p.cts)
                .map(|c| Ok(slots(&output(&TrainProgram::margins_name(t, c))?)?))
                .collect::<std::result::Result<Vec<_>, E>>()?;
            let margins = p.first_of_rows(&cts)?;
            let (loss, accuracy) = metrics(&task, &margins);
            let seconds = seconds.get(t + 1).copied().unwrap_or(0.0);
            steps.push(IterationReport { margins, loss, accuracy, seconds });
        }
        let w = slots(&output(TrainProgram::WEIGHTS)?)?;
        if w.len() < p.width {
            return Err(Error::TrainData { reason: "decoded weights too short".into() }.into());
        }
        Ok(EncryptedRun {
            steps,
            weights: w[..p.width].to_vec(),
            setup_seconds: seconds.first().copied().unwrap_or(0.0),
            encrypt_seconds: 0.0,
            keygen_seconds: 0.0,
            bootstraps: 0,
        })
    }
}

/// The slot vectors of a program's inputs for `data`: the packed rows z (x̃ for linreg,
/// y·x̃ for logreg) and, for linreg, the targets repeated over each row's first half.
pub fn pack_inputs(prog: &TrainProgram, data: &Dataset) -> Result<Vec<(String, Vec<f64>)>> {
    let p = &prog.packing;
    if data.features() + 1 != p.width {
        return Err(Error::FeatureCount { row: 0, expected: p.width - 1, found: data.features() });
    }
    if data.len() != p.samples {
        return Err(Error::TrainData {
            reason: format!("{} samples for a program compiled for {}", data.len(), p.samples),
        });
    }
    let task = prog.config.task;
    let mut vecs = p.pack_rows(&design_rows(&task, data))?;
    if task == Task::LinReg {
        vecs.extend(p.pack_repeated(&data.y)?);
    }
    Ok(prog.input_names().into_iter().zip(vecs).collect())
}

/// Largest |difference| between two equally long vectors (∞ when the lengths differ).
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}
