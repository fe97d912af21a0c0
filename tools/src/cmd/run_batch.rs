//! `hetier run --layout batch` (or `--batch`): the throughput layout. Every tensor element is
//! one ciphertext whose slot b holds image b, so one run serves N/2 images (4096 at
//! log N = 13); inputs and intermediates are scratch objects of the tiered store and the
//! relinearisation key a durable one. Reports agreement with the plaintext model, the
//! server-side throughput, the latency of a whole batch, the DRAM budget, peak RSS and the
//! bytes moved.

use std::time::Instant;

use anyhow::{Context, Result};
use hetier_he::exec::batched::batch_params;
use hetier_he::exec::{BatchPlan, BatchSession};
use hetier_he::model::{argmax, Model, TestSet};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use hetier_he::exec::KeySetId;

use super::run_setup::{eval_key_fingerprint, open_store, RunArgs};
use crate::cmd::rss::{self, OutsideStore};
use crate::fmt;

#[derive(Serialize)]
struct BatchReport {
    model: String,
    layout: &'static str,
    log_n: u32,
    log_scale: f64,
    depth: usize,
    images: usize,
    distinct_images: usize,
    runs: usize,
    images_per_run: usize,
    agree_with_plaintext: usize,
    correct_labels: usize,
    max_logit_error: f64,
    setup_seconds: f64,
    encrypt_seconds: f64,
    run_seconds: f64,
    decrypt_seconds: f64,
    batch_latency_seconds: f64,
    images_per_second: f64,
    images_per_second_with_client: f64,
    dram_budget: u64,
    store_peak_dram: u64,
    plan_peak_live_bytes: u64,
    /// The most DRAM the store's borrowed scratch buffers held at once (running sums,
    /// key switching, the client's ciphertext); part of `store_peak_dram`.
    store_scratch_peak: u64,
    peak_rss: Option<u64>,
    /// Memory held outside the store at the peak (peak RSS less the store's peak), and the
    /// budget plus it: what the whole process needs.
    outside_store: Option<OutsideStore>,
    bytes_pm_to_dram: u64,
    bytes_dram_to_pm: u64,
    keys_generated: usize,
    keys_reused: usize,
    /// Damaged objects regenerated from their source during the run.
    objects_healed: usize,
    /// The client's key file (`None`: an insecure `--sk-seed` key).
    key_file: Option<String>,
    /// A fingerprint of the relinearisation key (public material) in the pool.
    eval_key_fingerprint: Option<String>,
    policy: &'static str,
    pool: String,
}

/// Runs the batch layout (called by `hetier run` when `--layout batch` or `--batch` is given).
pub(crate) fn run(args: &RunArgs, json: bool, model: &Model, tests: &TestSet) -> Result<()> {
    let name = args.model.name();
    let params = batch_params(args.log_n, model.depth())
        .with_context(|| format!("parameters for log N = {}", args.log_n))?;
    let budget = args.dram_mib << 20;
    // The sums and pins of a step are sized to the budget (they are charged to it).
    let plan = BatchPlan::compile_within(model, &params, budget)?;
    let (store, dir, _tmp, policy) = open_store(args)?;

    let t0 = Instant::now();
    let secret = args.secret.resolve(&dir)?;
    let mut session =
        BatchSession::new(model, &plan, &store, *secret.seed).context("preparing keys")?;
    let setup = t0.elapsed().as_secs_f64();

    // Beyond the held-out split, images cycle through it (to fill every slot).
    let n = if args.all { tests.len() } else { args.images };
    let cap = plan.batch_capacity();
    let runs = n.div_ceil(cap);
    let bar = if json { ProgressBar::hidden() } else { ProgressBar::new(n as u64) };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("encrypted {name}, batch layout"));
    let (mut agree, mut correct, mut max_err, mut healed) = (0, 0, 0.0f64, 0);
    let (mut enc, mut srv, mut dec) = (0.0, 0.0, 0.0);
    for r in 0..runs {
        let range = r * cap..((r + 1) * cap).min(n);
        let imgs: Vec<&[u8]> = range.clone().map(|i| tests.image(i % tests.len())).collect();
        let out = session.infer(&imgs)?;
        healed += out.report.healed;
        for line in session.take_healed() {
            bar.suspend(|| eprintln!("{line}"));
        }
        for (i, y) in range.zip(&out.logits) {
            let k = i % tests.len();
            let want = tests.reference_logits(k);
            let err = y.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            max_err = max_err.max(err);
            agree += usize::from(argmax(y) == argmax(want));
            correct += usize::from(argmax(y).map(|a| a as i64) == Some(tests.labels[k]));
        }
        enc += out.encrypt_seconds;
        srv += out.run_seconds;
        dec += out.decrypt_seconds;
        bar.inc(imgs.len() as u64);
    }
    bar.finish_and_clear();
    if let Some(path) = &args.trace {
        // A key reused from the pool has no put in this process's trace.
        let trace = session.executor().trace();
        trace.save(path).with_context(|| format!("writing {}", path.display()))?;
    }
    let st = store.stats();
    let (peak_rss, outside_store) = rss::peak_beside_store(&st);
    let out = BatchReport {
        model: name.into(),
        layout: "batch",
        log_n: params.log_n(),
        log_scale: params.log_scale(),
        depth: model.depth(),
        images: n,
        distinct_images: n.min(tests.len()),
        runs,
        images_per_run: n.min(cap),
        agree_with_plaintext: agree,
        correct_labels: correct,
        max_logit_error: max_err,
        setup_seconds: setup,
        encrypt_seconds: enc,
        run_seconds: srv,
        decrypt_seconds: dec,
        batch_latency_seconds: (enc + srv + dec) / runs.max(1) as f64,
        images_per_second: n as f64 / srv.max(1e-9),
        images_per_second_with_client: n as f64 / (enc + srv + dec).max(1e-9),
        dram_budget: budget,
        store_peak_dram: st.peak_dram,
        plan_peak_live_bytes: plan.peak_live_bytes(),
        store_scratch_peak: st.scratch_peak,
        peak_rss,
        outside_store,
        bytes_pm_to_dram: st.bytes_pm_to_dram,
        bytes_dram_to_pm: st.bytes_dram_to_pm,
        keys_generated: session.keys.generated,
        keys_reused: session.keys.reused,
        objects_healed: healed + session.keys.manifests_healed,
        key_file: secret.origin.key_file().map(|p| p.display().to_string()),
        eval_key_fingerprint: eval_key_fingerprint(
            &store,
            KeySetId::from_seed(&secret.seed),
            params.id(),
            0,
        )?,
        policy: policy.name(),
        pool: format!("{} ({})", dir.display(), store.pm_description()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "hetier run — encrypted {} in the batch layout (log N = {}, scale 2^{}, depth {}), {} \
         policy, pool {}",
        out.model, out.log_n, out.log_scale, out.depth, out.policy, out.pool
    );
    let rss = out.peak_rss.map_or_else(|| "unknown".into(), fmt::bytes);
    let cycled = if n > tests.len() {
        format!(" ({} distinct held-out images, cycled)", tests.len())
    } else {
        String::new()
    };
    let mut rows = vec![
        vec!["images".into(), format!("{n}{cycled} in {runs} run(s) of up to {cap}")],
        vec![
            "agreement with plaintext".into(),
            format!("{agree}/{n} argmax, max logit error {max_err:.2e}"),
        ],
        vec!["accuracy (labels)".into(), format!("{correct}/{n}")],
        vec![
            "setup (keys)".into(),
            format!("{setup:.2} s — {} generated, {} reused", out.keys_generated, out.keys_reused),
        ],
        vec![
            "throughput".into(),
            format!(
                "{:.0} images/s server-side ({srv:.2} s), {:.0} images/s with client encrypt \
                 {enc:.2} s + decrypt {dec:.2} s",
                out.images_per_second, out.images_per_second_with_client
            ),
        ],
        vec![
            "latency of a batch".into(),
            format!("{:.2} s (encrypt + run + decrypt)", out.batch_latency_seconds),
        ],
        vec![
            "DRAM budget".into(),
            format!(
                "{} (store peak {}, scratch up to {} — running sums, key switching, the \
                 client's ciphertext; live ciphertexts peak {})",
                fmt::bytes(budget),
                fmt::bytes(st.peak_dram),
                fmt::bytes(st.scratch_peak),
                fmt::bytes(out.plan_peak_live_bytes)
            ),
        ],
        vec!["damaged objects healed".into(), out.objects_healed.to_string()],
        vec!["peak RSS".into(), rss],
        fmt::bytes_moved_row(&st),
    ];
    if let Some(o) = &out.outside_store {
        rows.insert(rows.len() - 1, o.row(budget));
    }
    fmt::table(&["", "value"], &rows);
    Ok(())
}
