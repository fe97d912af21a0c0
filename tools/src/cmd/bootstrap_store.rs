//! The store side of `hetier bootstrap`: the pool its keys live in (a temporary directory, or
//! `--dir` to reuse them), the DRAM budget and policy, the client's secret key beside the pool,
//! and the keys as durable store objects pinned one step at a time.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};
use hetier_allocator::{Backend, Pool, PoolOptions};
use hetier_he::ckks::bootstrap::{Bootstrapper, PhaseTimes};
use hetier_he::ckks::{Context, KeyGenerator, SecretKey};
use hetier_he::exec::{
    bootstrap_working_set, pinned_diagonal_bytes, DiagonalStorage, Expansion, KeyForm, KeySetId,
    StoredBootstrapKeys, StoredCoefficients,
};
use hetier_tiering::{PolicyConfig, StoreStats, TieredStore};
use serde::Serialize;

use super::run_setup::{PolicyArg, PrefetchRuleArg};
use crate::secret::SecretArgs;

/// How the keys are written to the pool (`--key-form`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KeyFormArg {
    /// Seed-compressed in one pool object, expanded into a budgeted block when pinned.
    Seeded,
    /// Every word stored, used in place when pinned (twice the bytes to read).
    Expanded,
    /// Seed-compressed, one pool object per digit (the default): a switch below the top
    /// levels reads only the digits it uses (SlotToCoeff's keys: half their bytes), and an
    /// expansion holds one digit's object pinned instead of the whole key's.
    Digits,
}

/// When seed-compressed keys are expanded (`--expand`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExpandArg {
    /// `cached` if the DRAM budget holds the expanded key set, else `in-place` where its
    /// working set fits, else `in-place-all`.
    Auto,
    /// Once per process, kept as a scratch store object.
    Cached,
    /// At every pin, into a reused block charged to the budget.
    PerPin,
    /// Never: each key switch reads the key's pinned stored objects in place (no expansion
    /// block in the budget, no expanded words written and read back); the relinearisation key
    /// alone is cached.
    InPlace,
    /// Never, not even the relinearisation key: `in-place` without its cached copy, the
    /// smallest working set of all.
    InPlaceAll,
}

/// Where the bootstrap's linear-transform diagonals come from (`--diagonals`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiagonalsArg {
    /// `durable` with `--dir`; in a temporary pool `stored` if the DRAM budget holds the
    /// expanded key set and the diagonals with an eighth to spare, else `encode`.
    Auto,
    /// Encoded once per process into transient store objects, pinned per term.
    Stored,
    /// Encoded once per parameter set into durable pool objects, reused by later processes
    /// with `--dir` and read back from the pool when evicted, pinned per term.
    Durable,
    /// Encoded by each transform at every application, from their coefficients (kept in the
    /// store, 1/(level+1+K) of an encoding's bytes).
    Encode,
}

/// Flags of `hetier bootstrap` for its key store.
#[derive(Args, Debug)]
pub struct StoreFlags {
    /// Pool directory holding the keys (default: a fresh temporary directory, removed
    /// afterwards). Reusing a directory reuses its keys through the key-set manifest.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// DRAM budget of the store in MiB (default: the whole key set expanded and, unless
    /// `--diagonals encode`, the encoded diagonals, plus room for the bootstrap's own blocks:
    /// every key and diagonal stays in DRAM once read).
    #[arg(long)]
    pub dram_mib: Option<u64>,
    /// Placement policy of the store.
    #[arg(long, value_enum, default_value_t = PolicyArg::Planned)]
    pub policy: PolicyArg,
    /// When `planned`'s prefetches may evict. `aggressive` reads ahead as far as the budget
    /// holds: at a quarter budget on two threads it waited for keys a tenth as long as plain
    /// `conservative` (no lead) but read 23% more from the pool, beside the computing threads.
    /// Over 19 interleaved rounds it took 0.85–1.23× plain conservative's time (median 0.98).
    /// `conservative` with the default `--prefetch-lead-mib` reads ahead only that far, for 5%
    /// more reads (docs/bootstrapping.md; `benches/boot_rounds.sh` compares them).
    #[arg(long, value_enum, default_value_t = PrefetchRuleArg::Conservative)]
    pub prefetch_rule: PrefetchRuleArg,
    /// MiB of the plan ahead of the computation within which `conservative` prefetches as
    /// `aggressive` does, so the pool always has that much to read ahead instead of waiting
    /// for what was just used to become MIN's victim. At a quarter budget on two threads 256
    /// cut the store's waits about tenfold for 5% more reads (docs/bootstrapping.md,
    /// "A prefetch lead"). 0 is the plain rule.
    #[arg(long, default_value_t = 256)]
    pub prefetch_lead_mib: u64,
    /// How newly generated keys are stored (keys already in the pool keep their form).
    #[arg(long, value_enum, default_value_t = KeyFormArg::Digits)]
    pub key_form: KeyFormArg,
    /// When a seed-compressed key is expanded: at every pin into a reused budgeted block
    /// (`per-pin`), once per process into a scratch store object (`cached`: faster when the
    /// budget holds the expanded set; stalls under `planned` at tight budgets, not fixed), or
    /// never (`in-place`: each key switch reads the pinned stored objects; the relinearisation
    /// key alone is cached; `in-place-all`: that key too). `auto`: `cached` when the budget
    /// holds the expanded set with an eighth to spare, else `in-place` where its working set
    /// fits, else `in-place-all`.
    #[arg(long, value_enum, default_value_t = ExpandArg::Auto)]
    pub expand: ExpandArg,
    /// Where the diagonals of CoeffToSlot and SlotToCoeff come from: encoded once per process
    /// into store objects (`stored`, charged to the budget like keys), once per parameter set
    /// into durable pool objects (`durable`), or at every use from their coefficients in the
    /// store (`encode`).
    #[arg(long, value_enum, default_value_t = DiagonalsArg::Auto)]
    pub diagonals: DiagonalsArg,
    /// With `stored` or `durable` diagonals, the share of them (0 to 1, spread evenly) encoded
    /// at every use from their coefficients instead of read: at a budget below the diagonals,
    /// CPU work in place of pool reads where the cores would wait for them.
    #[arg(long, default_value_t = 0.0)]
    pub encode_share: f64,
    /// With `per-pin` expansion, do not run the helper thread that expands the next key while
    /// the current one is in use (it holds a second expanded block in the budget).
    #[arg(long)]
    pub no_expand_ahead: bool,
    /// With `per-pin` expansion, how many keys the helper keeps expanded ahead of the one in
    /// use, at most: each is one more expanded block in the budget, and fewer are kept where
    /// the budget does not hold them. Bursts of keys (CoeffToSlot's baby steps) wait less with
    /// two than with one (docs/bootstrapping.md).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub expand_ahead_keys: u16,
    /// Map the pool files instead of O_DIRECT (touched pool pages then count in RSS).
    #[arg(long)]
    pub mmap: bool,
    /// The client's secret key (a 0600 key file beside the pool, or an insecure seed).
    #[command(flatten)]
    pub secret: SecretArgs,
}

/// What the store did for one `hetier bootstrap` run.
#[derive(Debug, Serialize)]
pub struct StoreReport {
    /// Pool directory (absent for a temporary one).
    pub dir: Option<PathBuf>,
    /// DRAM budget in bytes.
    pub dram_budget: u64,
    /// Policy name.
    pub policy: String,
    /// When `planned`'s prefetches could evict (`conservative` or `aggressive`; absent for
    /// other policies).
    pub prefetch_rule: Option<String>,
    /// Bytes of the plan ahead within which `conservative` prefetched as `aggressive` does
    /// (absent for other policies).
    pub prefetch_lead_bytes: Option<u64>,
    /// When seed-compressed keys were expanded.
    pub expand: String,
    /// Where the diagonals came from (`stored`, `durable` or `encode`).
    pub diagonals: String,
    /// The stored diagonals' costs and use (absent when encoded).
    pub diagonal_store: Option<hetier_he::exec::DiagonalReport>,
    /// Keys generated by this run.
    pub keys_generated: usize,
    /// Keys found in the pool and reused.
    pub keys_reused: usize,
    /// Pool objects holding the keys (one per digit of each key stored by digit).
    pub key_objects: usize,
    /// Seconds pinning keys spent waiting for the store (summed over every pin).
    pub key_wait_seconds: f64,
    /// Seconds every pin (keys, diagonals, coefficients) waited for the store, by the
    /// bootstrap phase the wait fell in, summed over the run's bootstraps.
    pub phase_wait_seconds: PhaseTimes,
    /// Seconds spent expanding seed-compressed keys (summed over every pin).
    pub key_expand_seconds: f64,
    /// Keys pinned.
    pub key_pins: u64,
    /// Pins that found their key already expanded (ahead, or by its previous pin).
    pub key_pins_reused: u64,
    /// Whether a helper thread expanded keys ahead of their pins.
    pub expand_ahead: bool,
    /// How many keys it kept expanded ahead of the one in use.
    pub expand_ahead_keys: usize,
    /// Keys the helper expanded ahead, and the seconds it spent (off the critical path).
    pub keys_expanded_ahead: u64,
    /// Seconds the helper spent expanding.
    pub expand_ahead_seconds: f64,
    /// Of which the helper waited for stored objects.
    pub expand_ahead_wait_seconds: f64,
    /// The store's counters after the run.
    pub stats: StoreStats,
}

/// The opened store and what must outlive it.
pub struct OpenStore {
    /// The store.
    pub store: TieredStore,
    /// The pool directory.
    pub dir: PathBuf,
    /// The temporary directory holding a default pool (removed on drop).
    pub _tmp: Option<tempfile::TempDir>,
    policy: String,
    /// The placement policy the store was built with (its prefetch rule and lead).
    config: PolicyConfig,
    temporary: bool,
}

impl StoreFlags {
    /// Opens (or creates) the pool with a budget of `--dram-mib` MiB or `default_budget`.
    pub fn open(&self, default_budget: u64) -> Result<OpenStore> {
        let (dir, tmp) = match &self.dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::tempdir()?;
                (t.path().join("pool"), Some(t))
            }
        };
        let backend = if self.mmap { Backend::Mmap } else { Backend::Direct };
        let opts = PoolOptions::default().backend(backend).segment_size(256 << 20);
        let pool = if dir.read_dir().map(|mut d| d.next().is_some()).unwrap_or(false) {
            Pool::open(&dir, opts).with_context(|| format!("opening pool {}", dir.display()))?.0
        } else {
            Pool::create(&dir, opts).with_context(|| format!("creating pool {}", dir.display()))?
        };
        let config = self.policy.config(self.prefetch_rule, self.prefetch_lead_mib);
        let budget = self.dram_mib.map_or(default_budget, |m| m << 20);
        let store =
            TieredStore::builder().dram_budget(budget).pool(pool).policy(config.clone()).build()?;
        let policy = format!("{:?}", self.policy).to_lowercase();
        let temporary = tmp.is_some();
        Ok(OpenStore { store, dir, _tmp: tmp, policy, config, temporary })
    }
}

impl OpenStore {
    /// The client's secret key: from `--sk-seed`, or the key file beside the pool (created
    /// with a random key on first use, so a reused `--dir` keeps its key).
    pub fn secret_key(
        &self,
        flags: &StoreFlags,
        ctx: &Arc<Context>,
    ) -> Result<(SecretKey, KeyGenerator, KeySetId)> {
        let secret = flags.secret.resolve(&self.dir)?;
        let mut kg = KeyGenerator::with_seed(ctx, *secret.seed);
        let sk = kg.secret_key();
        // Key generation after the secret key draws fresh randomness: only the secret key is
        // derived from the seed.
        let kg = KeyGenerator::new(ctx);
        Ok((sk, kg, KeySetId::from_seed(&secret.seed)))
    }

    /// Makes sure every key of `bs` is in the pool; returns them and the seconds it took.
    pub fn keys<'s>(
        &'s self,
        flags: &StoreFlags,
        ctx: &Arc<Context>,
        kg: &mut KeyGenerator,
        sk: &SecretKey,
        keyset: KeySetId,
        bs: &mut Bootstrapper,
    ) -> Result<(StoredBootstrapKeys<'s>, hetier_he::exec::KeyReport, f64)> {
        let form = match flags.key_form {
            KeyFormArg::Seeded => KeyForm::Seeded,
            KeyFormArg::Expanded => KeyForm::Expanded,
            KeyFormArg::Digits => KeyForm::Digits,
        };
        // Diagonals (or their coefficients) in the store are pinned one at a time: part of the
        // working set.
        let pinned = match flags.diagonals {
            DiagonalsArg::Auto if !self.temporary => DiagonalStorage::Durable,
            DiagonalsArg::Stored | DiagonalsArg::Durable => DiagonalStorage::Transient,
            DiagonalsArg::Auto | DiagonalsArg::Encode => DiagonalStorage::Coefficients,
        };
        // Keys read in place, the relinearisation key too, hold the least: every digit of one
        // key, no expansion block and no cached copy.
        let mut least = bootstrap_working_set(bs, form, 0, false);
        least.push(pinned_diagonal_bytes(bs, pinned));
        // A budget too small for one bootstrap fails here, before any key is made (the least
        // it needs; checked again below for the expansion mode and the keys found).
        self.store
            .check_working_sets([least])
            .context("the DRAM budget (--dram-mib) cannot hold one bootstrap's working set")?;
        let clock = Instant::now();
        // The diagonals' coefficients go to the store before any key is made, and the
        // bootstrapper's own copy goes: they are never on the heap beside the keys.
        let coefficients = StoredCoefficients::put(&self.store, bs)?;
        bs.release_diagonal_coefficients();
        let (keys, report) =
            StoredBootstrapKeys::ensure_in_form(&self.store, ctx, kg, sk, keyset, bs, form)?;
        let keys =
            keys.with_coefficients(coefficients).with_encode_share(bs, flags.encode_share)?;
        // The diagonals first: which expansion fits depends on the one pinned at a time.
        let both = keys.expanded_bytes() + bs.diagonal_bytes();
        let keys = match flags.diagonals {
            // A pool that outlives this run keeps them for the next one (and a budget below
            // them reads them back instead of encoding them at every use).
            DiagonalsArg::Auto if !self.temporary => keys.with_durable_diagonals(bs)?,
            DiagonalsArg::Auto if both + both / 8 <= self.store.budget() => {
                keys.with_stored_diagonals(bs)?
            }
            DiagonalsArg::Stored => keys.with_stored_diagonals(bs)?,
            DiagonalsArg::Durable => keys.with_durable_diagonals(bs)?,
            // Encoded at every use from the coefficients the keys hold.
            DiagonalsArg::Auto | DiagonalsArg::Encode => keys,
        };
        let fits = keys.expanded_bytes() + keys.expanded_bytes() / 8 <= self.store.budget();
        let expansion = match flags.expand {
            ExpandArg::Auto if fits => Expansion::Cached,
            ExpandArg::Cached => Expansion::Cached,
            ExpandArg::PerPin => Expansion::PerPin,
            ExpandArg::InPlace => Expansion::InPlace,
            ExpandArg::InPlaceAll => Expansion::InPlaceAll,
            // In place holds every digit of a key and the relinearisation key's cached copy;
            // where that does not fit, the same without the copy, the smallest set of any mode
            // (per pin adds an expanded block): a budget below it is refused below, naming it.
            ExpandArg::Auto
                if keys.working_set_bytes_in(bs, Expansion::InPlace, 0) <= self.store.budget() =>
            {
                Expansion::InPlace
            }
            ExpandArg::Auto => Expansion::InPlaceAll,
        };
        // Expanding ahead takes an expanded-key block per key: as many as the budget holds.
        let most = if flags.no_expand_ahead { 0 } else { usize::from(flags.expand_ahead_keys) };
        let ahead_keys = (1..=most)
            .rev()
            .find(|&k| keys.working_set_bytes_in(bs, expansion, k) <= self.store.budget())
            .unwrap_or(0);
        let keys = keys.with_expansion(expansion)?.with_expand_ahead_keys(ahead_keys)?;
        // Keys reused from the pool may be in the other form: checked again for what is there.
        keys.check_budget(bs)
            .context("the DRAM budget (--dram-mib) cannot hold one bootstrap's working set")?;
        Ok((keys, report, clock.elapsed().as_secs_f64()))
    }

    /// What the store did.
    pub fn report(
        &self,
        keys: &StoredBootstrapKeys<'_>,
        made: &hetier_he::exec::KeyReport,
    ) -> StoreReport {
        let t = keys.pin_times();
        StoreReport {
            dir: (!self.temporary).then(|| self.dir.clone()),
            dram_budget: self.store.budget(),
            policy: self.policy.clone(),
            prefetch_rule: self.config.prefetch_rule().map(|r| r.name().to_owned()),
            prefetch_lead_bytes: self.config.prefetch_lead(),
            expand: format!("{:?}", keys.expansion()).to_lowercase(),
            diagonals: match keys.diagonal_report().map(|d| d.storage) {
                Some(DiagonalStorage::Transient) => "stored",
                Some(DiagonalStorage::Durable) => "durable",
                Some(DiagonalStorage::Coefficients) | None => "encode",
            }
            .into(),
            diagonal_store: keys.diagonal_report(),
            keys_generated: made.generated,
            keys_reused: made.reused,
            key_objects: keys.stored_object_count(),
            key_wait_seconds: t.wait_ns.load(Ordering::Relaxed) as f64 * 1e-9,
            phase_wait_seconds: keys.phase_wait_seconds(),
            key_expand_seconds: t.expand_ns.load(Ordering::Relaxed) as f64 * 1e-9,
            key_pins: t.pins.load(Ordering::Relaxed),
            key_pins_reused: t.reused.load(Ordering::Relaxed),
            expand_ahead: keys.expands_ahead(),
            expand_ahead_keys: keys.expand_ahead_keys(),
            keys_expanded_ahead: t.ahead.load(Ordering::Relaxed),
            expand_ahead_seconds: t.ahead_ns.load(Ordering::Relaxed) as f64 * 1e-9,
            expand_ahead_wait_seconds: t.ahead_wait_ns.load(Ordering::Relaxed) as f64 * 1e-9,
            stats: self.store.stats(),
        }
    }
}
