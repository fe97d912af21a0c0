//! The child side of `hetier bench-model`: one process per run, started by the parent with a
//! JSON job. `setup` generates keys and encodes weights into the durable pool (reusing what is
//! already there); `run` opens the prepared pool under a DRAM budget and a policy, runs the
//! encrypted model on a few images with fixed encryption seeds and prints one JSON line.

use std::hash::{Hash, Hasher};
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use hetier_allocator::{Backend, ObjectKind, Pool, PoolOptions};
use hetier_he::ckks::{Context, Decryptor, Encoder, Encryptor, KeyGenerator, Seed};
use hetier_he::exec::{weights_tag, Executor, KeySetId};
use hetier_he::model::{Compiled, Model, ModelDesc, TestSet};
use hetier_he::nn::ObjKind;
use hetier_tiering::{CostModel, PolicyConfig, StoreStats, TieredStore};
use serde::{Deserialize, Serialize};

use crate::cmd::rss::{self, RssSample};
use crate::cmd::tuning::models::{compile_for, CompiledFor, NamedModel};
use crate::secret::{parse_seed, ClientSecret, Origin, SecretArgs};

/// The model the benchmark runs by default (compiled into the binary).
pub const DEFAULT_MODEL: (&str, &str, &[u8], &[u8]) = (
    "digits_wide",
    include_str!("../../../../models/digits_wide.json"),
    include_bytes!("../../../../models/digits_wide.safetensors"),
    include_bytes!("../../../../models/digits_wide.test.safetensors"),
);

/// The RSS sample taken once the process holds what stays outside its store for the whole
/// run: the model, its program, the CKKS context's tables and the client's secret key.
pub const CONSTANT_STAGE: &str = "CKKS context and secret key";

/// What a child does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobMode {
    /// Generate missing keys and encode missing weights into the pool.
    Setup,
    /// Run the model over the prepared pool.
    Run,
}

/// The client's secret key as a job names it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum JobKey {
    /// A 0600 key file (read by the child).
    KeyFile(PathBuf),
    /// An insecure `--sk-seed` seed, in hex (it is public anyway).
    InsecureSeed(String),
}

impl JobKey {
    fn seed(&self, pool_dir: &std::path::Path) -> Result<zeroize::Zeroizing<Seed>> {
        match self {
            JobKey::KeyFile(p) => {
                let args = SecretArgs { key_file: Some(p.clone()), sk_seed: None };
                match args.resolve(pool_dir)? {
                    ClientSecret { seed, origin: Origin::Loaded(_) } => Ok(seed),
                    _ => bail!("key file {} vanished during the benchmark", p.display()),
                }
            }
            JobKey::InsecureSeed(hex) => parse_seed(hex),
        }
    }
}

/// One child's instructions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// Setup or run.
    pub mode: JobMode,
    /// Pool directory.
    pub pool_dir: PathBuf,
    /// A model description to load instead of the embedded default.
    pub model_file: Option<PathBuf>,
    /// log2 N of the preset to compile for.
    pub log_n: u32,
    /// The store's DRAM budget in bytes.
    pub budget: u64,
    /// Placement policy.
    pub policy: PolicyConfig,
    /// Held-out images to run (the first `images`).
    pub images: usize,
    /// Where the secret key comes from (the key set in the pool belongs to it). A key file
    /// path, never the key itself: a job travels on the command line, which other users
    /// can read.
    pub key: JobKey,
    /// O_DIRECT pool backend (else mmap).
    pub direct: bool,
    /// The calibrated cost model (tier bandwidths) the policies use, as saved JSON.
    pub cost_model: Option<PathBuf>,
    /// A built-in model to run (when `model_file` is not given; default digits_wide).
    #[serde(default)]
    pub model: Option<NamedModel>,
}

/// Bytes of the pool's objects by kind.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Footprint {
    /// Evaluation keys (rotation + relinearisation).
    pub keys: u64,
    /// Number of evaluation keys.
    pub key_count: usize,
    /// Encoded weight plaintexts.
    pub weights: u64,
    /// Number of weight plaintexts.
    pub weight_count: usize,
    /// Largest total of live ciphertexts during one inference (from the program).
    pub peak_live_ciphertexts: u64,
    /// Bytes of every ciphertext one inference writes (from the program).
    pub ciphertexts_written: u64,
}

impl Footprint {
    /// Keys + weights + the peak live ciphertexts: what must fit for nothing to move.
    pub fn total(&self) -> u64 {
        self.keys + self.weights + self.peak_live_ciphertexts
    }
}

/// One image of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRun {
    /// Index in the held-out split.
    pub index: usize,
    /// Wall time of the encrypted inference (run + fetching the output), seconds.
    pub seconds: f64,
    /// Sum of the steps' compute times, seconds (wall minus this is waiting for the store).
    pub compute_seconds: f64,
    /// Decrypted logits.
    pub logits: Vec<f64>,
    /// Hash of the output ciphertext's words, level and scale (equal runs give equal hashes).
    pub output_hash: u64,
    /// Bytes read PM → DRAM during this image.
    pub pm_to_dram: u64,
    /// Bytes written DRAM → PM during this image.
    pub dram_to_pm: u64,
}

/// What a child prints (one JSON line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildReport {
    /// log2 N and L of the parameters.
    pub log_n: u32,
    /// Top level L.
    pub max_level: usize,
    /// Keys + weights in the pool and the program's ciphertext sizes.
    pub footprint: Footprint,
    /// Seconds to open the pool and prepare keys/weights (generate or find).
    pub prepare_seconds: f64,
    /// Keys generated in this process.
    pub keys_generated: usize,
    /// Keys found in the pool.
    pub keys_reused: usize,
    /// Weights encoded in this process.
    pub weights_encoded: usize,
    /// The images run.
    pub images: Vec<ImageRun>,
    /// The store's counters at the end.
    pub stats: StoreStats,
    /// What the PM tier is.
    pub pm: String,
    /// The process's resident set at each stage, read by itself.
    pub rss: Vec<RssSample>,
}

fn load_model(job: &Job) -> Result<(Model, TestSet)> {
    match &job.model_file {
        Some(p) => {
            let m = Model::load(p).with_context(|| format!("loading {}", p.display()))?;
            let t = m.test_set()?;
            Ok((m, t))
        }
        None if job.model.is_some() => {
            let m = job.model.context("model")?;
            Ok((m.load()?, m.test_set()?))
        }
        None => {
            let (name, desc, weights, test) = DEFAULT_MODEL;
            let m = Model::from_parts(ModelDesc::from_json(desc)?, weights)?;
            let t = TestSet::from_bytes(&format!("{name}.test.safetensors"), test)?;
            Ok((m, t))
        }
    }
}

/// The pool options every child uses (the pool is created by `setup` and opened by `run`).
pub fn pool_options(direct: bool) -> PoolOptions {
    let backend = if direct { Backend::Direct } else { Backend::Mmap };
    PoolOptions::default().backend(backend).segment_size(256 << 20)
}

fn footprint(compiled: &Compiled, store: &TieredStore) -> Footprint {
    let mut f = Footprint::default();
    for m in store.pool().list() {
        match m.kind {
            ObjectKind::EvalKey { .. } => {
                f.keys += m.len;
                f.key_count += 1;
            }
            ObjectKind::Plaintext => {
                f.weights += m.len;
                f.weight_count += 1;
            }
            _ => {}
        }
    }
    let p = &compiled.program;
    f.peak_live_ciphertexts = p.peak_live_ciphertext_bytes();
    f.ciphertexts_written =
        p.objects().iter().filter(|o| o.kind == ObjKind::Ciphertext).map(|o| o.bytes).sum();
    f
}

fn output_hash(words: &[u64], level: usize, scale: f64) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    words.hash(&mut h);
    level.hash(&mut h);
    scale.to_bits().hash(&mut h);
    h.finish()
}

/// Runs the job given as JSON on the command line; prints one JSON line.
pub fn run(job_json: &str) -> Result<()> {
    let job: Job = serde_json::from_str(job_json).context("parsing the child's job")?;
    // The parent moves this process into its cgroup before answering.
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let mut rss = vec![rss::sample("start")];
    let (model, tests) = load_model(&job)?;
    // A model deeper than every preset (resnet20) is compiled with its bootstrapper.
    let CompiledFor { params, compiled, bootstrapper } = compile_for(&model, Some(job.log_n))?;
    let ctx = match &bootstrapper {
        Some(bs) => Arc::clone(bs.context()),
        None => Context::new(&params)?,
    };
    let on_the_fly = bootstrapper.is_some();
    // The client's secret key lives beside the context, never in the store (N words per prime
    // of Q·P: 22 MB at log N = 16), so it is measured with the context's tables.
    let sk_seed = job.key.seed(&job.pool_dir)?;
    let keyset = KeySetId::from_seed(&sk_seed);
    let mut kg = KeyGenerator::with_seed(&ctx, *sk_seed);
    let sk = kg.secret_key();
    rss.push(rss::sample(CONSTANT_STAGE));

    let t0 = Instant::now();
    let opts = pool_options(job.direct);
    let pool = match job.mode {
        JobMode::Setup if is_empty(&job.pool_dir) => Pool::create(&job.pool_dir, opts)?,
        _ => {
            Pool::open(&job.pool_dir, opts)
                .with_context(|| format!("opening pool {}", job.pool_dir.display()))?
                .0
        }
    };
    let mut builder =
        TieredStore::builder().dram_budget(job.budget).pool(pool).policy(job.policy.clone());
    if let Some(p) = &job.cost_model {
        let m = CostModel::load(p).with_context(|| format!("loading {}", p.display()))?;
        builder = builder.pm_label(m.pm_description.label.clone()).cost_model(m);
    }
    let store = builder.build()?;
    let tag = weights_tag(model.weights_hash(), params.id());
    let mut ex = Executor::real(&compiled.program, tag, keyset, &store, &ctx)?;
    if let Some(bs) = bootstrapper {
        ex = ex.with_bootstrapper(bs)?.encode_weights_on_the_fly();
    }
    if job.mode == JobMode::Run {
        check_prepared(&compiled, &ex, &store, on_the_fly)?;
    }
    let keys = ex.prepare_keys(Some(&mut kg), Some(&sk), keyset)?;
    drop(kg);
    let weights_encoded = ex.prepare_weights()?;
    let prepare_seconds = t0.elapsed().as_secs_f64();
    rss.push(rss::sample("keys and weights ready"));
    let fp = footprint(&compiled, &store);

    let mut images = Vec::new();
    if job.mode == JobMode::Run {
        let encoder = Encoder::new(&ctx);
        let dec = Decryptor::new(&ctx, &sk)?;
        for i in 0..job.images.min(tests.len()) {
            images.push(infer(
                &compiled, &model, &tests, i, &ctx, &encoder, &sk, &dec, &mut ex, &store,
            )?);
            rss.push(rss::sample(&format!("after image {i}")));
        }
    }
    let report = ChildReport {
        log_n: params.log_n(),
        max_level: params.max_level(),
        footprint: fp,
        prepare_seconds,
        keys_generated: keys.generated,
        keys_reused: keys.reused,
        weights_encoded,
        images,
        stats: store.stats(),
        pm: store.pm_description().to_string(),
        rss,
    };
    drop(ex);
    drop(store);
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn is_empty(dir: &std::path::Path) -> bool {
    dir.read_dir().map(|mut d| d.next().is_none()).unwrap_or(true)
}

/// Refuses to run over a pool that lacks a key or weight: generating keys inside the measured
/// (memory-limited) child would measure key generation, not the model.
fn check_prepared(
    compiled: &Compiled,
    ex: &Executor<'_>,
    store: &TieredStore,
    weights_on_the_fly: bool,
) -> Result<()> {
    let p = &compiled.program;
    for (i, o) in p.objects().iter().enumerate() {
        if o.kind == ObjKind::Ciphertext || (weights_on_the_fly && o.kind == ObjKind::Plaintext) {
            continue;
        }
        let id = ex.object_id(hetier_he::nn::ObjId(i as u32));
        // Keys are stored seed-compressed (smaller than the program's expanded size).
        let present = if o.kind == ObjKind::Plaintext {
            store.len_of(id) == Some(o.bytes)
        } else {
            store.contains(id)
        };
        if !present {
            bail!(
                "the pool lacks {} object {:#x} ({} bytes): run the setup first (hetier bench-model does)",
                if o.kind == ObjKind::Plaintext { "weight" } else { "key" },
                id.0,
                o.bytes
            );
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn infer(
    compiled: &Compiled,
    model: &Model,
    tests: &TestSet,
    i: usize,
    ctx: &Arc<Context>,
    encoder: &Encoder,
    sk: &hetier_he::ckks::SecretKey,
    dec: &Decryptor<'_>,
    ex: &mut Executor<'_>,
    store: &TieredStore,
) -> Result<ImageRun> {
    let p = ctx.params();
    let x = model.prepare_input(tests.image(i))?;
    // The client's plaintext and ciphertext are scratch buffers of the store's budget.
    let level = compiled.input_level()?;
    let words = ((level + 1) * p.n()) as u64 * 8;
    let pt = encoder.encode_real_into(
        &compiled.pack(&x, p.slots())?,
        level,
        p.scale(),
        store.scratch(words)?,
    )?;
    // A fixed seed per image: every run encrypts the same ciphertext, so equal computation
    // gives bit-equal outputs.
    let mut seed = [0xa5u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    let ct = Encryptor::with_seed(ctx, seed).encrypt_sk_into(sk, &pt, store.scratch(2 * words)?)?;
    drop(pt);
    let before = store.stats();
    let t = Instant::now();
    // The client's ciphertext gives its bytes back once put, as `hetier run`'s does.
    let rep = ex.run_owned(ct)?;
    // Hashed, decrypted and decoded where the output lies (the plaintext in a scratch buffer of
    // the budget): no copy of either on the heap.
    let (hash, values) = ex.output_with(&compiled.output_name, |out| {
        let hash = output_hash(out.as_words(), out.level(), out.scale());
        let pt = dec.decrypt_into(out, store.scratch(((out.level() + 1) * p.n()) as u64 * 8)?)?;
        Ok((hash, encoder.decode_real_in_place(pt)?))
    })?;
    ex.finish()?;
    let seconds = t.elapsed().as_secs_f64();
    let after = store.stats();
    let logits = compiled.output_layout.unpack(&values);
    Ok(ImageRun {
        index: i,
        seconds,
        compute_seconds: rep.compute_ns as f64 * 1e-9,
        logits,
        output_hash: hash,
        pm_to_dram: after.bytes_pm_to_dram - before.bytes_pm_to_dram,
        dram_to_pm: after.bytes_dram_to_pm - before.bytes_dram_to_pm,
    })
}
