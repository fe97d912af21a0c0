//! The flags of `hetier run` and what both of its layouts build from them: the pool and the
//! store, the client's secret key, the peak-RSS probe. `run.rs` (slot layout) and `run_batch.rs`
//! (batch layout) both import this file and not each other's.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use hetier_allocator::{Backend, Pool, PoolOptions};
use hetier_he::exec::ids::key_id;
use hetier_he::exec::KeySetId;
use hetier_tiering::calibrate::{calibrate, CalibrationOptions};
use hetier_tiering::{PolicyConfig, PrefetchRule, TieredStore};
use serde::Serialize;

use crate::secret::SecretArgs;

/// Models `hetier run` knows.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModelArg {
    /// 8×8 digits MLP (dense 64→32, square, dense 32→10).
    Digits,
    /// The CryptoNets network on 28×28 MNIST.
    Cryptonets,
    /// ResNet-20 (CIFAR form) on MNIST padded to 32×32, degree-2 activations, bootstrapped
    /// at log N = 16 (minutes per image; see the README).
    Resnet20,
    /// ResNet-20 with ReLU approximated by a degree-≥15 Chebyshev interpolant.
    Resnet20Relu,
}

impl ModelArg {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ModelArg::Digits => "digits",
            ModelArg::Cryptonets => "cryptonets",
            ModelArg::Resnet20 => "resnet20",
            ModelArg::Resnet20Relu => "resnet20_relu",
        }
    }
}

/// Data layouts `hetier run` can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// Slot-packed: one image per ciphertext (the latency layout).
    Slot,
    /// Batch-major: one ciphertext per tensor element, slot b = image b (the throughput
    /// layout; up to N/2 images per run).
    Batch,
}

/// Placement policies selectable on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PolicyArg {
    /// Least recently used, no prefetch.
    Lru,
    /// Static α-partition from the hinted profile.
    Alpha,
    /// Belady eviction and prefetch over the hinted plan.
    Planned,
}

impl PolicyArg {
    /// The store's policy; `rule` says when `planned`'s prefetches may evict, and `lead_mib`
    /// how far ahead of the computation they follow `aggressive` regardless.
    pub(crate) fn config(self, rule: PrefetchRuleArg, lead_mib: u64) -> PolicyConfig {
        match self {
            PolicyArg::Lru => PolicyConfig::Lru,
            PolicyArg::Alpha => PolicyConfig::Alpha { reserve_bytes: None },
            PolicyArg::Planned => PolicyConfig::planned(match rule {
                PrefetchRuleArg::Conservative => PrefetchRule::Conservative,
                PrefetchRuleArg::Aggressive => PrefetchRule::Aggressive,
            })
            .with_lead(lead_mib << 20),
        }
    }
}

/// What a run reports of its planned prefetching (both absent for other policies).
#[derive(Serialize)]
pub(crate) struct PrefetchReport {
    /// The rule `planned`'s prefetches followed.
    prefetch_rule: Option<&'static str>,
    /// Bytes of the plan ahead within which `planned` prefetched as `aggressive` does.
    prefetch_lead_bytes: Option<u64>,
}

impl PrefetchReport {
    /// The report of a store built with `policy`.
    pub(crate) fn of(policy: &PolicyConfig) -> Self {
        Self {
            prefetch_rule: policy.prefetch_rule().map(PrefetchRule::name),
            prefetch_lead_bytes: policy.prefetch_lead(),
        }
    }
}

/// When `planned`'s prefetches may evict ([`PrefetchRule`]).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PrefetchRuleArg {
    /// Wait for objects used before the prefetched one: the pool reads of Belady's MIN.
    Conservative,
    /// Read ahead as far as the budget holds: more pool reads, fewer waits for them.
    Aggressive,
}

/// Flags of `hetier run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Which model to run.
    #[arg(long, value_enum, default_value_t = ModelArg::Digits)]
    pub(crate) model: ModelArg,
    /// Number of held-out images to run (default: 32; the whole split with `--all`).
    #[arg(long, default_value_t = 32)]
    pub(crate) images: usize,
    /// Run the whole held-out split.
    #[arg(long)]
    pub(crate) all: bool,
    /// Data layout: `slot` (one image per ciphertext) or `batch` (every slot an image).
    #[arg(long, value_enum, default_value_t = LayoutArg::Slot)]
    pub(crate) layout: LayoutArg,
    /// Shorthand for `--layout batch`. `--images` beyond the held-out split cycle through it.
    #[arg(long)]
    pub(crate) batch: bool,
    /// log2 N of the batch layout (13: 4096 images per run; 14: 8192 and more precision).
    #[arg(long, default_value_t = 13)]
    pub(crate) log_n: u32,
    /// DRAM budget of the store in MiB.
    #[arg(long, default_value_t = 32)]
    pub(crate) dram_mib: u64,
    /// Placement policy.
    #[arg(long, value_enum, default_value_t = PolicyArg::Planned)]
    pub(crate) policy: PolicyArg,
    /// When `planned`'s prefetches may evict: `aggressive` reads ahead as far as the budget
    /// holds, at the price of more pool reads (measured on bootstraps only:
    /// docs/bootstrapping.md).
    #[arg(long, value_enum, default_value_t = PrefetchRuleArg::Conservative)]
    pub(crate) prefetch_rule: PrefetchRuleArg,
    /// MiB of the plan ahead of the computation within which `conservative` prefetches as
    /// `aggressive` does (`hetier bootstrap --prefetch-lead-mib`; 0 is the plain rule). ResNet-20
    /// at 2,200 MiB read the same bytes and waited as long with 256 as with 0
    /// (docs/measurements.md, "Seventeenth session"), so the default stays 0.
    #[arg(long, default_value_t = 0)]
    pub(crate) prefetch_lead_mib: u64,
    /// Pool directory (default: a fresh temporary directory, removed afterwards). Reusing a
    /// directory reuses its keys and encoded weights.
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Write the access trace of the batch-layout run (tiering trace format, JSON lines).
    #[arg(long)]
    pub(crate) trace: Option<PathBuf>,
    /// Use O_DIRECT for the pool (the default: the page cache cannot hold "PM" data in DRAM,
    /// and the process's RSS is then the store's budget plus its own working memory).
    #[arg(long, hide = true, conflicts_with = "mmap")]
    pub(crate) direct: bool,
    /// Map the pool files instead (faster on tmpfs/DAX; touched pool pages then count in RSS).
    #[arg(long)]
    pub(crate) mmap: bool,
    /// The client's secret key (a 0600 key file beside the pool, or an insecure seed).
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
    /// Run this model file instead (an ONNX file or a hetier-model JSON description).
    #[arg(long)]
    pub(crate) model_file: Option<PathBuf>,
    /// Inputs for `--model-file` (.npy, `[N, *input shape]`); default: `--images` random ones.
    #[arg(long, requires = "model_file")]
    pub(crate) inputs: Option<PathBuf>,
    /// Compile `--model-file` with bootstrapping, this many levels between bootstraps, at log
    /// N = 12 (with `--insecure-test-params` only: a test of the executor's bootstraps).
    #[arg(long, requires_all = ["model_file", "insecure_test_params"])]
    pub(crate) bootstrap_levels: Option<usize>,
    #[command(flatten)]
    pub(crate) import: super::import::ImportFlags,
    /// Run with the weights encrypted too (ct × ct products), side by side with plaintext
    /// weights (slot layout).
    #[arg(long)]
    pub(crate) encrypted_weights: bool,
    /// How a deep model's keys are put in the pool (`--model resnet20`): `expanded` (pinned in
    /// place; ResNet-20 uses its keys 2,000+ times per image) or `seeded` (half the bytes,
    /// expanded at every pin).
    #[arg(long, value_enum, default_value_t = KeyFormArg::Expanded)]
    pub(crate) key_form: KeyFormArg,
}

/// Key forms on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KeyFormArg {
    /// Every word expanded.
    Expanded,
    /// Seed-compressed.
    Seeded,
}

impl From<KeyFormArg> for hetier_he::exec::KeyForm {
    fn from(k: KeyFormArg) -> Self {
        match k {
            KeyFormArg::Expanded => Self::Expanded,
            KeyFormArg::Seeded => Self::Seeded,
        }
    }
}

/// Opens (or creates) the pool and the store `hetier run` uses; returns the store, the pool
/// directory and the temporary directory that must outlive it.
pub(crate) fn open_store(
    args: &RunArgs,
) -> Result<(TieredStore, PathBuf, Option<tempfile::TempDir>, PolicyConfig)> {
    let mut tmp = None;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            let t = tempfile::tempdir()?;
            let d = t.path().join("pool");
            tmp = Some(t);
            d
        }
    };
    let backend = if args.mmap { Backend::Mmap } else { Backend::Direct };
    let opts = PoolOptions::default().backend(backend).segment_size(64 << 20);
    let pool = if dir.read_dir().map(|mut d| d.next().is_some()).unwrap_or(false) {
        Pool::open(&dir, opts).map_err(|e| open_error(e, &dir))?.0
    } else {
        Pool::create(&dir, opts).with_context(|| format!("creating pool {}", dir.display()))?
    };
    let policy = args.policy.config(args.prefetch_rule, args.prefetch_lead_mib);
    let mut builder =
        TieredStore::builder().dram_budget(args.dram_mib << 20).pool(pool).policy(policy.clone());
    if matches!(policy, PolicyConfig::Alpha { .. }) {
        // α prices DRAM against PM: calibrate both tiers briefly next to the pool.
        let parent = dir.parent().map_or_else(std::env::temp_dir, |p| p.to_path_buf());
        let label = format!("file in {}", parent.display());
        let mut o = CalibrationOptions::new(&parent, backend == Backend::Direct, label);
        (o.dram_bytes, o.object_bytes) = (32 << 20, 16 << 20);
        builder = builder.cost_model(calibrate(&o).context("calibrating the tiers for alpha")?);
    }
    let store = builder.build()?;
    Ok((store, dir, tmp, policy))
}

/// A fingerprint of the public evaluation key of `keyset` for Galois element `g` (0: the
/// relinearisation key) as the pool holds it: two clients with different secret keys have
/// different fingerprints. `None` when the pool does not hold that key.
pub(crate) fn eval_key_fingerprint(
    store: &TieredStore,
    keyset: KeySetId,
    params_id: u64,
    g: u64,
) -> Result<Option<String>> {
    let id = key_id(keyset, params_id, g);
    if !store.contains(id) {
        return Ok(None);
    }
    let pin = store.pin(id)?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    pin.as_bytes().hash(&mut h);
    Ok(Some(format!("{:016x}", h.finish())))
}

/// Says what to do about a pool that does not open: one whose own structure (superblock,
/// object table) is damaged holds nothing a run cannot derive again, so removing it is the
/// remedy. The allocator's message follows once, as the cause.
fn open_error(e: hetier_allocator::Error, dir: &std::path::Path) -> anyhow::Error {
    use hetier_allocator::Error as E;
    let damaged = matches!(
        e,
        E::SuperblockChecksum { .. }
            | E::CorruptSuperblock { .. }
            | E::CorruptEntry { .. }
            | E::Truncated { .. }
    );
    let context = if damaged {
        format!(
            "pool {} is damaged in its own structure, where no object can be rebuilt; it holds \
             only evaluation keys and encoded weights, which the next run derives again from \
             the key file and the model: remove the directory and run again",
            dir.display()
        )
    } else {
        format!("opening pool {}", dir.display())
    };
    anyhow::Error::new(e).context(context)
}
