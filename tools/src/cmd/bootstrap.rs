//! `hetier bootstrap`: generate a bootstrapping key set into a pool (or reuse it) and bootstrap
//! random data with every key in the tiered store, reporting time by phase, precision against
//! the plaintext, levels left, keys (stored and expanded) and peak memory.

use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::{Args, ValueEnum};
use hetier_he::ckks::bootstrap::{BootstrapPreset, Bootstrapper, PhaseTimes};
use hetier_he::ckks::{
    switch_key_expanded_words, Complex64, Context, Decryptor, Encoder, Encryptor,
};
use hetier_he::exec::{DiagonalStorage, Expansion};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::bootstrap_store::{DiagonalsArg, StoreFlags, StoreReport};
use super::rss::{self, OutsideStore};
use crate::fmt;

/// Flags of `hetier bootstrap`.
#[derive(Args, Debug)]
pub struct BootstrapArgs {
    /// log2 of the ring degree; 16 is the secure size, 12..=15 need --insecure-test-params.
    #[arg(long, default_value_t = 16)]
    pub log_n: u32,
    /// Levels a bootstrapped ciphertext keeps for computation: 9 (deep) or 3 (latency). At
    /// log N 16 this picks the `deep` or `fast` preset unless `--preset` names one.
    #[arg(long, default_value_t = 9)]
    pub levels: usize,
    /// The log N 16 parameter set (default: by `--levels`). `precise` leaves 9 levels at the
    /// 24-bit precision of `fast`, with keys ~21% larger than `deep`'s.
    #[arg(long, value_enum, conflicts_with = "levels")]
    pub preset: Option<PresetArg>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Bootstraps to time (the first is reported separately as a warm-up when > 1).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Slots to bootstrap: a power of two up to N/2 (default: N/2); fewer is sparse packing.
    #[arg(long)]
    pub slots: Option<usize>,
    /// Real-valued inputs (default: complex, both halves in [−1, 1]).
    #[arg(long)]
    pub real: bool,
    /// Accept a ring below N = 2^16 (far from 128-bit security): for tests only.
    #[arg(long)]
    pub insecure_test_params: bool,
    /// Where the keys live: pool, DRAM budget, policy, key form, secret key.
    #[command(flatten)]
    pub store: StoreFlags,
}

/// The secure (log N 16) bootstrapping presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// 9 levels left, Δ = 2^40, dnum 4: the smallest keys for a ResNet's depth (~23 bits).
    Deep,
    /// 3 levels left, Δ = 2^42, dnum 3: the lowest latency (~24.5 bits).
    Fast,
    /// 9 levels left, Δ = 2^42, dnum 5: the depth of `deep` at the precision of `fast`.
    Precise,
}

impl PresetArg {
    fn preset(self) -> BootstrapPreset {
        match self {
            PresetArg::Deep => BootstrapPreset::n16_deep(),
            PresetArg::Fast => BootstrapPreset::n16_fast(),
            PresetArg::Precise => BootstrapPreset::n16_precise(),
        }
    }
}

/// What one `hetier bootstrap` run measured.
#[derive(Debug, Serialize)]
pub struct BootstrapReport {
    /// log2 N.
    pub log_n: u32,
    /// The parameter set: `deep`, `fast` or `precise` at log N 16, `test` below.
    pub preset: String,
    /// Key-switching digits of its keys.
    pub dnum: usize,
    /// Slots bootstrapped.
    pub slots: usize,
    /// Worker threads.
    pub threads: usize,
    /// Seconds of the (last) bootstrap.
    pub seconds: f64,
    /// Its phases.
    pub phases: PhaseTimes,
    /// −log2 of the largest slot error.
    pub precision_bits: f64,
    /// −log2 of the mean slot error.
    pub mean_precision_bits: f64,
    /// Levels of the bootstrapped ciphertext.
    pub levels_after: usize,
    /// Evaluation keys (relinearisation, Galois, switching).
    pub key_count: usize,
    /// Their bytes, expanded.
    pub key_bytes: u64,
    /// Their bytes as the pool stores them (seed-compressed: `b` parts bit-packed, the seed of
    /// every `a` part).
    pub key_bytes_stored: u64,
    /// Seconds to generate (or find) the keys and put them in the pool.
    pub keygen_seconds: f64,
    /// Seconds of every timed bootstrap, in order (the first reads its keys from the pool).
    pub all_seconds: Vec<f64>,
    /// CPU seconds (user + system, all threads) of the (last) bootstrap: the work it did, a
    /// measure that survives a loaded machine, unlike `seconds`.
    pub cpu_seconds: f64,
    /// CPU seconds of every timed bootstrap, in order.
    pub all_cpu_seconds: Vec<f64>,
    /// Bytes of every diagonal of CoeffToSlot and SlotToCoeff as the store holds them (one
    /// word per run of equal words; `store.diagonals` says where they came from), or encoded
    /// in full when they are encoded at every use.
    pub diagonal_bytes: u64,
    /// The key store.
    pub store: StoreReport,
    /// log2(QP) of the parameters.
    pub log_qp: f64,
    /// Peak resident set of the process, bytes.
    pub peak_rss: u64,
    /// What one bootstrap held at its peak in this run's mode: its key-switch and transform
    /// buffers, its pinned key objects and expansion blocks, and EvalMod's partner scratch when
    /// the halves ran side by side (`partner_bytes` of it). The smallest budget of any mode is
    /// `in_place_all_working_set_bytes`.
    pub working_set_bytes: u64,
    /// The partner scratch of EvalMod's halves side by side within `working_set_bytes` (0 when
    /// they ran in turn).
    pub partner_bytes: u64,
    /// The smallest budget for seed-compressed keys read in place (the mode a budget below the
    /// expanded key set runs in by default): what a memory-bound run should be given at least.
    pub in_place_working_set_bytes: u64,
    /// The same with the relinearisation key read in place too (`--expand in-place-all`): the
    /// smallest budget of any mode.
    pub in_place_all_working_set_bytes: u64,
    /// The smallest budget for seed-compressed keys expanded per pin with the next key
    /// expanded ahead (`--expand per-pin`).
    pub per_pin_working_set_bytes: u64,
    /// The same with as many keys expanded ahead as `--expand-ahead-keys` asks for (one
    /// expanded block more per key past the first): the budget that keeps the whole window.
    pub expand_ahead_working_set_bytes: u64,
    /// What the process held outside the store's budget at its peak (peak RSS less the store's
    /// peak): the constant a memory limit must allow beside `--dram-mib`.
    pub outside_store: OutsideStore,
}

/// Runs `hetier bootstrap`.
pub fn run(args: &BootstrapArgs, json: bool) -> Result<()> {
    let report = measure(args)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let p = &report.phases;
    fmt::table(
        &["what", "value"],
        &[
            vec!["ring".into(), format!("N = 2^{}, {} slots", report.log_n, report.slots)],
            vec!["preset".into(), format!("{} (dnum {})", report.preset, report.dnum)],
            vec!["threads".into(), report.threads.to_string()],
            vec![
                "bootstrap".into(),
                format!("{:.3} s ({:.2} CPU s)", report.seconds, report.cpu_seconds),
            ],
            vec!["  ModRaise".into(), format!("{:.3} s", p.mod_raise)],
            vec!["  CoeffToSlot".into(), format!("{:.3} s", p.coeff_to_slot)],
            vec!["  EvalMod".into(), format!("{:.3} s", p.eval_mod)],
            vec!["  SlotToCoeff".into(), format!("{:.3} s", p.slot_to_coeff)],
            vec![
                "precision".into(),
                format!(
                    "{:.1} bits max error, {:.1} bits mean",
                    report.precision_bits, report.mean_precision_bits
                ),
            ],
            vec!["levels after".into(), report.levels_after.to_string()],
            vec![
                "keys".into(),
                format!(
                    "{} keys, {} expanded, {} seed-compressed",
                    report.key_count,
                    fmt::bytes(report.key_bytes),
                    fmt::bytes(report.key_bytes_stored)
                ),
            ],
            vec![
                "diagonals".into(),
                match &report.store.diagonal_store {
                    Some(d) => {
                        let mut line = format!(
                            "{}: {} diagonals, {}, {} reused, put in {:.2} s; {} pins, {:.2} s \
                             waiting for the store",
                            report.store.diagonals,
                            d.count,
                            fmt::bytes(d.bytes),
                            d.reused,
                            d.encode_seconds,
                            d.pins,
                            d.wait_seconds
                        );
                        if d.encode_share > 0.0 {
                            line += &format!(
                                "; {:.0}% encoded at every use: {} encodings, {:.2} s waiting \
                                 for coefficients",
                                d.encode_share * 100.0,
                                d.encoded_on_the_fly,
                                d.coefficient_wait_seconds
                            );
                        }
                        line
                    }
                    None => {
                        format!(
                            "encoded at every use ({} if stored)",
                            fmt::bytes(report.diagonal_bytes)
                        )
                    }
                },
            ],
            vec![
                "key generation".into(),
                format!(
                    "{:.1} s ({} generated, {} reused)",
                    report.keygen_seconds, report.store.keys_generated, report.store.keys_reused
                ),
            ],
            vec![
                "store".into(),
                format!(
                    "{} budget, {}{}, PM→DRAM {}",
                    fmt::bytes(report.store.dram_budget),
                    report.store.policy,
                    report
                        .store
                        .prefetch_rule
                        .as_ref()
                        .map_or(String::new(), |r| format!(" ({r})")),
                    fmt::bytes(report.store.stats.bytes_pm_to_dram)
                ),
            ],
            vec![
                "key pins".into(),
                format!(
                    "{} pins ({} already expanded): {:.2} s waiting for the store, {:.2} s \
                     expanding; {} expanded ahead in {:.2} s",
                    report.store.key_pins,
                    report.store.key_pins_reused,
                    report.store.key_wait_seconds,
                    report.store.key_expand_seconds,
                    report.store.keys_expanded_ahead,
                    report.store.expand_ahead_seconds
                ),
            ],
            vec!["store waits".into(), {
                let w = &report.store.phase_wait_seconds;
                format!(
                    "{:.2} s ModRaise, {:.2} s CoeffToSlot, {:.2} s EvalMod, {:.2} s \
                         SlotToCoeff (every pin, all bootstraps)",
                    w.mod_raise, w.coeff_to_slot, w.eval_mod, w.slot_to_coeff
                )
            }],
            vec!["log2 QP".into(), format!("{:.1}", report.log_qp)],
            vec!["peak RSS".into(), fmt::bytes(report.peak_rss)],
            vec![
                "working set".into(),
                format!(
                    "{} (buffers, pinned keys; EvalMod's partner {})",
                    fmt::bytes(report.working_set_bytes),
                    fmt::bytes(report.partner_bytes)
                ),
            ],
            vec![
                "smallest workable budget".into(),
                format!(
                    "{} (--expand in-place-all)",
                    fmt::bytes(report.in_place_all_working_set_bytes)
                ),
            ],
            // Every ciphertext temporary of the bootstrap is in the store's budget: what is
            // left is fixed per parameter set, and the result ciphertext.
            report.outside_store.row_of(
                report.store.dram_budget,
                "context tables, the bootstrapper's diagonals, binary, setup, the result",
            ),
        ],
    );
    Ok(())
}

fn measure(args: &BootstrapArgs) -> Result<BootstrapReport> {
    if args.log_n < 16 && !args.insecure_test_params {
        bail!(
            "log N = {} is far below 128-bit security; pass --insecure-test-params to run it anyway",
            args.log_n
        );
    }
    if args.log_n < 16 {
        eprintln!("WARNING: insecure test parameters (log N = {}): for tests only", args.log_n);
    }
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .context("setting the thread count")?;
    }
    let chosen = match (args.log_n, args.preset, args.levels) {
        (16, Some(p), _) => Some(p),
        (16, None, 9) => Some(PresetArg::Deep),
        (16, None, 3) => Some(PresetArg::Fast),
        (16, None, l) => bail!("--levels {l}: the log N = 16 presets leave 9 or 3 levels"),
        (n, Some(_), _) => bail!("--preset is for log N 16 (got --log-n {n})"),
        (_, None, _) => None,
    };
    let mut preset = match chosen {
        Some(p) => p.preset(),
        None => BootstrapPreset::insecure_test(args.log_n, args.levels),
    };
    // The name the flag takes, as clap spells it.
    let preset_name = chosen
        .and_then(|p| p.to_possible_value())
        .map_or_else(|| "test".to_owned(), |v| v.get_name().to_owned());
    preset.config.slots = args.slots;
    let params = preset.params()?;
    let ctx = Context::new(&params)?;
    let mut bs = Bootstrapper::new(&ctx, &preset.config)?;
    // Default budget: the whole key set expanded (and the diagonals, unless they are encoded
    // at every use) plus room for the bootstrap's own blocks.
    let key_count =
        bs.galois_elements().len() + 1 + 2 * usize::from(preset.config.sparse_secret.is_some());
    let expanded_key = switch_key_expanded_words(&ctx) as u64 * 8;
    let diagonals = match args.store.diagonals {
        DiagonalsArg::Encode => 0,
        DiagonalsArg::Auto | DiagonalsArg::Stored | DiagonalsArg::Durable => bs.diagonal_bytes(),
    };
    let open =
        args.store.open((key_count as u64 * expanded_key + diagonals) * 5 / 4 + (256 << 20))?;
    let (sk, mut kg, keyset) = open.secret_key(&args.store, &ctx)?;
    // The store takes every diagonal encoded, or the coefficients to encode it from: the
    // bootstrapper's own copy would only add to the memory outside the budget.
    let (keys, made, keygen_seconds) =
        open.keys(&args.store, &ctx, &mut kg, &sk, keyset, &mut bs)?;

    let slots = bs.slots();
    let mut rng = rand_chacha::ChaCha8Rng::from_entropy();
    let sparse: Vec<Complex64> = (0..slots)
        .map(|_| {
            let im = if args.real { 0.0 } else { rng.gen_range(-1.0..1.0) };
            Complex64::new(rng.gen_range(-1.0..1.0), im)
        })
        .collect();
    // A sparsely packed message is its n values repeated over all N/2 slots.
    let z: Vec<Complex64> = sparse.iter().copied().cycle().take(params.slots()).collect();
    let enc = Encoder::new(&ctx);
    let ct = Encryptor::new(&ctx).encrypt_sk(&sk, &enc.encode(&z, 0, params.scale())?)?;
    // Key-switch buffers and the transforms' spares in the store's budget, like every key.
    let mut scratch = keys.scratch(&bs)?;
    let mut last = None;
    let mut all_seconds = Vec::new();
    let mut all_cpu_seconds = Vec::new();
    // Every bootstrap's key order, so `planned` prefetches the whole sequence.
    for _ in 0..args.repeat {
        // Re-hinted each time: after the first, the keys' expanded copies are what is pinned.
        keys.hint(&bs, args.repeat - all_seconds.len())?;
        let (clock, cpu) = (Instant::now(), rss::cpu_seconds());
        let (out, phases) = keys.ahead(|| bs.bootstrap_timed(&ct, &keys, &mut scratch))?;
        let seconds = clock.elapsed().as_secs_f64();
        all_seconds.push(seconds);
        all_cpu_seconds.push(rss::cpu_seconds() - cpu);
        last = Some((out, phases, seconds));
    }
    let Some((out, phases, seconds)) = last else { bail!("no bootstrap ran") };
    let got = enc.decode(&Decryptor::new(&ctx, &sk)?.decrypt(&out)?)?;
    let errs: Vec<f64> = got.iter().zip(&z).map(|(a, b)| (*a - *b).abs()).collect();
    let max = errs.iter().fold(0.0f64, |m, &e| m.max(e));
    let mean = errs.iter().sum::<f64>() / errs.len() as f64;
    let store = open.report(&keys, &made);
    let peak_rss = rss::sample("bootstrap").hwm;
    let outside_store = OutsideStore::measure(peak_rss, &store.stats);
    Ok(BootstrapReport {
        log_n: args.log_n,
        preset: preset_name,
        dnum: params.dnum(),
        slots,
        threads: rayon::current_num_threads(),
        seconds,
        phases,
        precision_bits: -max.log2(),
        mean_precision_bits: -mean.log2(),
        levels_after: out.level(),
        key_count: keys.count(),
        key_bytes: keys.expanded_bytes(),
        key_bytes_stored: keys.bytes(),
        keygen_seconds,
        all_seconds,
        cpu_seconds: all_cpu_seconds.last().copied().unwrap_or(0.0),
        all_cpu_seconds,
        diagonal_bytes: match keys.diagonal_report() {
            Some(d) if d.storage != DiagonalStorage::Coefficients => d.bytes,
            _ => bs.diagonal_bytes(),
        },
        store,
        log_qp: params.log_qp(),
        peak_rss,
        working_set_bytes: keys.working_set_bytes(&bs),
        partner_bytes: keys.partner_bytes(&bs),
        in_place_working_set_bytes: keys.working_set_bytes_in(&bs, Expansion::InPlace, 0),
        in_place_all_working_set_bytes: keys.working_set_bytes_in(&bs, Expansion::InPlaceAll, 0),
        per_pin_working_set_bytes: keys.working_set_bytes_in(&bs, Expansion::PerPin, 1),
        expand_ahead_working_set_bytes: keys.working_set_bytes_in(
            &bs,
            Expansion::PerPin,
            usize::from(args.store.expand_ahead_keys),
        ),
        outside_store,
    })
}
