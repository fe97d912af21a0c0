//! `hetier run --model resnet20`: a deep network for real, at log N = 16 with bootstrapping.
//! Every ciphertext and evaluation key (the bootstrap's included) is a store object; weight
//! plaintexts are encoded just before their product (the encoded diagonals of a ResNet would
//! be tens of GB). Reports agreement with the plaintext model, the time per image split into
//! bootstrapping, convolutions, activations, the rest of the layers and waiting for the
//! store, the key set, the footprint against the budget, and peak RSS.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use hetier_he::ckks::bootstrap::{BootstrapPreset, Bootstrapper};
use hetier_he::ckks::{switch_key_stored_len, Context};
use hetier_he::exec::Session;
use hetier_he::model::{argmax, Compiled, LayerKind, Model, DEFAULT_MARGIN};
use hetier_he::nn::{BootstrapSpec, ObjKind};
use serde::Serialize;

use crate::cmd::rss::{self, OutsideStore};
use crate::cmd::run_setup::{open_store, PrefetchReport, RunArgs};
use crate::fmt;

/// Where the models of this checkout live (the repository's `models/`).
fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// The plan facts of a compiled deep model: what the store must hold.
#[derive(Serialize)]
struct Footprint {
    bootstraps: usize,
    keys: usize,
    key_bytes_expanded: u64,
    /// The seed-compressed set as the store holds it (`--key-form seeded`): per key, the b
    /// halves bit-packed to their primes' widths and the seed of the a halves.
    key_bytes_seeded: u64,
    weight_plaintexts: usize,
    weight_bytes_if_stored: u64,
    peak_live_ciphertext_bytes: u64,
    /// Keys + live ciphertexts (weights are encoded on the fly).
    peak_footprint: u64,
}

fn footprint(c: &Compiled, ctx: &Context) -> Footprint {
    let p = &c.program;
    let keys: Vec<_> = p.objects().iter().filter(|o| o.kind.is_key()).collect();
    let weights: Vec<_> = p.objects().iter().filter(|o| o.kind == ObjKind::Plaintext).collect();
    let key_bytes: u64 = keys.iter().map(|o| o.bytes).sum();
    let live = p.peak_live_ciphertext_bytes();
    Footprint {
        bootstraps: p.bootstraps(),
        keys: keys.len(),
        key_bytes_expanded: key_bytes,
        key_bytes_seeded: keys.len() as u64 * switch_key_stored_len(ctx),
        weight_plaintexts: weights.len(),
        weight_bytes_if_stored: weights.iter().map(|o| o.bytes).sum(),
        peak_live_ciphertext_bytes: live,
        peak_footprint: key_bytes + live,
    }
}

/// Seconds per image by part.
#[derive(Serialize, Default)]
struct Split {
    bootstrapping: f64,
    convolutions: f64,
    activations: f64,
    other_layers: f64,
    waiting_for_store: f64,
}

#[derive(Serialize)]
struct DeepReport {
    model: String,
    log_n: u32,
    levels_after_bootstrap: usize,
    images: usize,
    agree_with_plaintext: usize,
    correct_labels: usize,
    max_logit_error: f64,
    /// Of all images' bootstraps, those whose EvalMod halves ran side by side (two threads or
    /// more, and room in the budget for a second set of bootstrap buffers).
    eval_mods_side_by_side: u64,
    bootstrapper_seconds: f64,
    compile_seconds: f64,
    setup_seconds: f64,
    seconds_per_image: f64,
    split_per_image: Split,
    footprint: Footprint,
    dram_budget: u64,
    budget_fraction_of_footprint: f64,
    store_peak_dram: u64,
    peak_rss: Option<u64>,
    /// Memory outside the store at the run's peak (the setup's: key generation), and what the
    /// whole process needs at this budget.
    outside_store: Option<OutsideStore>,
    /// The same while the images ran (the peak reset after the setup), where the kernel
    /// allows the reset.
    outside_store_images: Option<OutsideStore>,
    bytes_pm_to_dram: u64,
    bytes_dram_to_pm: u64,
    keys_generated: usize,
    keys_reused: usize,
    /// How keys are stored: seed-compressed (expanded at every pin) or expanded.
    key_form: String,
    policy: &'static str,
    #[serde(flatten)]
    prefetch: PrefetchReport,
    pool: String,
}

/// Runs `hetier run --model resnet20` (or its ReLU variant).
pub fn run(args: &RunArgs, json: bool) -> Result<()> {
    let name = args.model.name();
    let path = models_dir().join(format!("{name}.json"));
    let model = Model::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let tests = model.test_set()?;
    let preset = BootstrapPreset::n16_deep();
    let params = preset.params()?;
    let t = Instant::now();
    let ctx = Context::new(&params)?;
    let bs = Arc::new(Bootstrapper::new(&ctx, &preset.config)?);
    let bootstrapper_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let compiled = model.compile_bootstrapped(&params, &BootstrapSpec::of(&bs), DEFAULT_MARGIN)?;
    let compile_seconds = t.elapsed().as_secs_f64();
    let fp = footprint(&compiled, &ctx);
    if !json {
        println!(
            "{name}: {} ops, {} bootstraps, {} keys ({} expanded, {} seed-compressed), peak \
             live ciphertexts {}, {} weight plaintexts encoded on the fly (would be {} stored)",
            compiled.program.ops().len(),
            fp.bootstraps,
            fp.keys,
            fmt::bytes(fp.key_bytes_expanded),
            fmt::bytes(fp.key_bytes_seeded),
            fmt::bytes(fp.peak_live_ciphertext_bytes),
            fp.weight_plaintexts,
            fmt::bytes(fp.weight_bytes_if_stored),
        );
    }

    let (store, dir, _tmp, policy) = open_store(args)?;
    let budget = args.dram_mib << 20;
    let t = Instant::now();
    let secret = args.secret.resolve(&dir)?;
    let levels_after_bootstrap = bs.output_level();
    // The session takes the bootstrapper: the executor keeps a copy without the diagonals'
    // coefficients (they go to the store), and this one is dropped with it.
    let mut session = Session::with_bootstrapper(
        &model,
        &compiled,
        &store,
        *secret.seed,
        bs,
        true,
        args.key_form.into(),
    )
    .context("preparing keys")?;
    let setup_seconds = t.elapsed().as_secs_f64();
    let setup_peak = rss::sample("setup").hwm;
    let peak_was_reset = rss::reset_peak();

    let kinds: HashMap<&str, &LayerKind> =
        model.layers().iter().map(|l| (l.name.as_str(), &l.kind)).collect();
    let layer_names = compiled.program.layers().to_vec();
    let n = args.images.min(tests.len());
    let (mut agree, mut correct, mut max_err, mut side_by_side) = (0, 0, 0.0f64, 0);
    let mut split = Split::default();
    let t = Instant::now();
    for i in 0..n {
        let start = Instant::now();
        let (y, report) = session.infer(tests.image(i))?;
        let wall = start.elapsed().as_secs_f64();
        let want = tests.reference_logits(i);
        let err = y.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        max_err = max_err.max(err);
        agree += usize::from(argmax(&y) == argmax(want));
        correct += usize::from(argmax(&y).map(|a| a as i64) == Some(tests.labels[i]));
        split.bootstrapping += report.bootstrap_ns as f64 * 1e-9;
        side_by_side += report.eval_mods_side_by_side;
        for (ns, layer) in session.executor().layer_compute_ns().iter().zip(&layer_names) {
            let s = *ns as f64 * 1e-9;
            match kinds.get(layer.as_str()) {
                Some(LayerKind::Conv2d { .. }) => split.convolutions += s,
                Some(LayerKind::Activation(_)) => split.activations += s,
                _ => split.other_layers += s,
            }
        }
        split.waiting_for_store += (wall - report.compute_ns as f64 * 1e-9).max(0.0);
        if !json {
            eprintln!(
                "image {i}: {wall:.1} s ({:.1} s bootstrapping), max logit error {err:.2e}, \
                 argmax {} (plaintext {})",
                report.bootstrap_ns as f64 * 1e-9,
                argmax(&y).map_or(-1, |a| a as i64),
                argmax(want).map_or(-1, |a| a as i64),
            );
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let per = 1.0 / n.max(1) as f64;
    for v in [
        &mut split.bootstrapping,
        &mut split.convolutions,
        &mut split.activations,
        &mut split.other_layers,
        &mut split.waiting_for_store,
    ] {
        *v *= per;
    }
    let st = store.stats();
    let images_peak = rss::sample("images").hwm;
    let whole_peak = setup_peak.max(images_peak);
    let measured = whole_peak > 0;
    let out = DeepReport {
        model: name.into(),
        log_n: params.log_n(),
        levels_after_bootstrap,
        images: n,
        agree_with_plaintext: agree,
        correct_labels: correct,
        max_logit_error: max_err,
        eval_mods_side_by_side: side_by_side,
        bootstrapper_seconds,
        compile_seconds,
        setup_seconds,
        seconds_per_image: secs * per,
        split_per_image: split,
        budget_fraction_of_footprint: budget as f64 / fp.peak_footprint.max(1) as f64,
        footprint: fp,
        dram_budget: budget,
        store_peak_dram: st.peak_dram,
        peak_rss: measured.then_some(whole_peak),
        outside_store: measured.then(|| OutsideStore::measure(whole_peak, &st)),
        outside_store_images: (measured && peak_was_reset)
            .then(|| OutsideStore::measure(images_peak, &st)),
        bytes_pm_to_dram: st.bytes_pm_to_dram,
        bytes_dram_to_pm: st.bytes_dram_to_pm,
        keys_generated: session.keys.generated,
        keys_reused: session.keys.reused,
        key_form: format!("{:?}", args.key_form).to_lowercase(),
        policy: policy.name(),
        prefetch: PrefetchReport::of(&policy),
        pool: format!("{} ({})", dir.display(), store.pm_description()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let s = &out.split_per_image;
    let mut rows = vec![
        vec![
            "agreement with plaintext".into(),
            format!("{agree}/{n} argmax, max logit error {max_err:.2e}"),
        ],
        vec!["accuracy (labels)".into(), format!("{correct}/{n}")],
        vec![
            "time per image".into(),
            format!(
                "{:.1} s: bootstrapping {:.1}, convolutions {:.1}, activations {:.1}, other \
                 layers {:.1}, waiting for the store {:.1}",
                out.seconds_per_image,
                s.bootstrapping,
                s.convolutions,
                s.activations,
                s.other_layers,
                s.waiting_for_store
            ),
        ],
        vec![
            "setup".into(),
            format!(
                "bootstrapper {:.1} s, compile {:.1} s, keys {:.1} s ({} generated, {} reused)",
                out.bootstrapper_seconds,
                out.compile_seconds,
                out.setup_seconds,
                out.keys_generated,
                out.keys_reused
            ),
        ],
        vec![
            "budget".into(),
            format!(
                "{} = {:.2} of the peak footprint {} (store peak {})",
                fmt::bytes(budget),
                out.budget_fraction_of_footprint,
                fmt::bytes(out.footprint.peak_footprint),
                fmt::bytes(st.peak_dram)
            ),
        ],
        vec!["process peak RSS".into(), out.peak_rss.map_or("unknown".into(), fmt::bytes)],
        fmt::bytes_moved_row(&st),
    ];
    let at = rows.len() - 1;
    if let Some(o) = &out.outside_store_images {
        rows.insert(at, o.row_of(budget, "context tables, secret key, binary; images only"));
    }
    if let Some(o) = &out.outside_store {
        rows.insert(at, o.row_of(budget, "context tables, secret key, binary, key generation"));
    }
    println!(
        "hetier run — encrypted {} (log N = {}, {} levels after a bootstrap), {} policy, pool {}",
        out.model, out.log_n, out.levels_after_bootstrap, out.policy, out.pool
    );
    fmt::table(&["", "value"], &rows);
    Ok(())
}
