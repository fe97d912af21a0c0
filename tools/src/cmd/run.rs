//! `hetier run`: the main job. Runs an encrypted model on its held-out images with every
//! ciphertext, weight and evaluation key in the tiered store — by default the digits model on
//! an embedded copy, a pool in a temporary directory and a small DRAM budget — and reports
//! agreement with the plaintext model, time, the budget, peak RSS and the bytes moved.

use std::time::Instant;

use anyhow::{Context, Result};
use hetier_he::ckks::Preset;
use hetier_he::exec::{KeySetId, Session};
use hetier_he::model::{argmax, Model, ModelDesc, TestSet};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::cmd::rss::{self, OutsideStore, RssSample};
use crate::cmd::run_setup::{
    eval_key_fingerprint, open_store, LayoutArg, ModelArg, PrefetchReport, RunArgs,
};
use crate::fmt;

/// The models compiled into the binary (description, weights, test set).
pub(crate) const EMBEDDED: [(&str, &str, &[u8], &[u8]); 2] = [
    (
        "digits",
        include_str!("../../../models/digits.json"),
        include_bytes!("../../../models/digits.safetensors"),
        include_bytes!("../../../models/digits.test.safetensors"),
    ),
    (
        "cryptonets",
        include_str!("../../../models/cryptonets.json"),
        include_bytes!("../../../models/cryptonets.safetensors"),
        include_bytes!("../../../models/cryptonets.test.safetensors"),
    ),
];

#[derive(Serialize)]
struct RunReport {
    model: String,
    log_n: u32,
    depth: usize,
    images: usize,
    agree_with_plaintext: usize,
    correct_labels: usize,
    max_logit_error: f64,
    setup_seconds: f64,
    seconds_per_image: f64,
    images_per_second: f64,
    dram_budget: u64,
    store_peak_dram: u64,
    /// The most DRAM the store's borrowed scratch buffers held at once (key switching,
    /// products, the client's ciphertext); part of `store_peak_dram`.
    store_scratch_peak: u64,
    peak_rss: Option<u64>,
    /// Memory held outside the store at the peak (peak RSS less the store's peak), and the
    /// budget plus it: what the whole process needs.
    outside_store: Option<OutsideStore>,
    /// The process's memory at each stage (VmRSS, VmHWM, anonymous and file-backed pages).
    rss: Vec<RssSample>,
    bytes_pm_to_dram: u64,
    bytes_dram_to_pm: u64,
    keys_generated: usize,
    keys_reused: usize,
    weights_encoded: usize,
    /// Damaged keys and weights regenerated from their source during the run.
    objects_healed: usize,
    /// The client's key file (`None`: an insecure `--sk-seed` key).
    key_file: Option<String>,
    /// A fingerprint of the relinearisation key (public material) in the pool.
    eval_key_fingerprint: Option<String>,
    policy: &'static str,
    #[serde(flatten)]
    prefetch: PrefetchReport,
    pool: String,
}

/// Runs `hetier run`.
pub fn run(args: &RunArgs, json: bool) -> Result<()> {
    if let Some(path) = &args.model_file {
        return super::run_file::run(args, json, path);
    }
    if matches!(args.model, ModelArg::Resnet20 | ModelArg::Resnet20Relu) {
        return super::run_deep::run(args, json);
    }
    let name = args.model.name();
    let (_, desc_text, weights, test) =
        EMBEDDED.iter().find(|e| e.0 == name).copied().context("model not embedded")?;
    let model = Model::from_parts(ModelDesc::from_json(desc_text)?, weights)?;
    let tests = TestSet::from_bytes(&format!("{name}.test.safetensors"), test)?;
    if args.batch || args.layout == LayoutArg::Batch {
        return crate::cmd::run_batch::run(args, json, &model, &tests);
    }
    // The smallest 128-bit preset with enough levels.
    let preset = [Preset::N13, Preset::N14, Preset::N15, Preset::N16]
        .into_iter()
        .find(|p| p.depth() >= model.depth())
        .context("no preset has enough levels")?;
    let params = preset.params()?;
    let compiled = model.compile(&params)?;
    if args.encrypted_weights {
        return super::run_encrypted_weights::run(args, json, &model, &compiled, &tests);
    }

    let (store, dir, _tmp, policy) = open_store(args)?;
    let budget = args.dram_mib << 20;

    let mut stages = vec![rss::sample("store ready")];
    let t0 = Instant::now();
    let secret = args.secret.resolve(&dir)?;
    let mut session = Session::new(&model, &compiled, &store, *secret.seed)
        .context("preparing keys and weights")?;
    let setup = t0.elapsed().as_secs_f64();
    stages.push(rss::sample("keys and weights ready"));

    let n = if args.all { tests.len() } else { args.images.min(tests.len()) };
    let bar = if json { ProgressBar::hidden() } else { ProgressBar::new(n as u64) };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images, {elapsed} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("encrypted {name}"));
    let (mut agree, mut correct, mut max_err, mut healed) = (0, 0, 0.0f64, 0);
    let t1 = Instant::now();
    for i in 0..n {
        let (y, r) = session.infer(tests.image(i))?;
        healed += r.healed;
        for line in session.take_healed() {
            bar.suspend(|| eprintln!("{line}"));
        }
        let want = tests.reference_logits(i);
        max_err = max_err.max(y.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max));
        agree += usize::from(argmax(&y) == argmax(want));
        correct += usize::from(argmax(&y).map(|a| a as i64) == Some(tests.labels[i]));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let secs = t1.elapsed().as_secs_f64();
    stages.push(rss::sample("after the images"));
    let st = store.stats();
    let (peak_rss, outside_store) = rss::peak_beside_store(&st);
    let out = RunReport {
        model: name.into(),
        log_n: params.log_n(),
        depth: model.depth(),
        images: n,
        agree_with_plaintext: agree,
        correct_labels: correct,
        max_logit_error: max_err,
        setup_seconds: setup,
        seconds_per_image: secs / n.max(1) as f64,
        images_per_second: n as f64 / secs.max(1e-9),
        dram_budget: budget,
        store_peak_dram: st.peak_dram,
        store_scratch_peak: st.scratch_peak,
        peak_rss,
        outside_store,
        rss: stages,
        bytes_pm_to_dram: st.bytes_pm_to_dram,
        bytes_dram_to_pm: st.bytes_dram_to_pm,
        keys_generated: session.keys.generated,
        keys_reused: session.keys.reused,
        weights_encoded: session.weights_encoded,
        objects_healed: healed + session.keys.manifests_healed,
        key_file: secret.origin.key_file().map(|p| p.display().to_string()),
        eval_key_fingerprint: eval_key_fingerprint(
            &store,
            KeySetId::from_seed(&secret.seed),
            params.id(),
            0,
        )?,
        policy: policy.name(),
        prefetch: PrefetchReport::of(&policy),
        pool: format!("{} ({})", dir.display(), store.pm_description()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "hetier run — encrypted {} (log N = {}, depth {}), {} policy, pool {}",
        out.model, out.log_n, out.depth, out.policy, out.pool
    );
    let rss = rss_summary(&out);
    let mut rows = vec![
        vec![
            "agreement with plaintext".into(),
            format!("{}/{} argmax, max logit error {:.2e}", agree, n, max_err),
        ],
        vec!["accuracy (labels)".into(), format!("{}/{}", correct, n)],
        vec![
            "setup (keys, weights)".into(),
            format!(
                "{:.2} s — {} keys generated, {} reused, {} weights encoded",
                setup, out.keys_generated, out.keys_reused, out.weights_encoded
            ),
        ],
        vec![
            "time".into(),
            format!(
                "{:.3} s/image, {:.2} images/s ({:.1} s total)",
                out.seconds_per_image, out.images_per_second, secs
            ),
        ],
        vec![
            "store DRAM budget".into(),
            format!(
                "{} (store peak {}: objects, and scratch up to {} — key switching, products, \
                 the client's ciphertext)",
                fmt::bytes(budget),
                fmt::bytes(st.peak_dram),
                fmt::bytes(st.scratch_peak)
            ),
        ],
        vec!["damaged objects healed".into(), out.objects_healed.to_string()],
        vec!["process peak RSS".into(), rss],
        fmt::bytes_moved_row(&st),
    ];
    if let Some(o) = &out.outside_store {
        rows.insert(rows.len() - 1, o.row(budget));
    }
    fmt::table(&["", "value"], &rows);
    Ok(())
}

/// The process's peak RSS and what it is made of: the store's DRAM (≤ budget) is anonymous
/// memory; the rest is the CKKS context, key-switch scratch, key-generation transients of the
/// setup and the binary; file-backed pages are the binary and, with `--mmap`, the pool.
fn rss_summary(out: &RunReport) -> String {
    let Some(peak) = out.peak_rss else { return "unknown".into() };
    let at = |stage: &str| out.rss.iter().find(|r| r.stage == stage);
    let (Some(start), Some(setup), Some(end)) =
        (at("store ready"), at("keys and weights ready"), at("after the images"))
    else {
        return fmt::bytes(peak);
    };
    format!(
        "{} (VmHWM, read by the process) — at start {}, peak after setup {}, at the end {} anon + {} file-backed",
        fmt::bytes(peak),
        fmt::bytes(start.rss),
        fmt::bytes(setup.hwm),
        fmt::bytes(end.anon),
        fmt::bytes(end.file),
    )
}
