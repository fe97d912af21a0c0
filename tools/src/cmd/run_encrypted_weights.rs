//! `hetier run --encrypted-weights`: the model run twice over fresh stores — with its weights
//! encoded as plaintexts and with every weight a durable ciphertext (ct × ct products with
//! relinearisation) — agreement with the plaintext model and the time and memory of both side
//! by side.

use std::time::Instant;

use anyhow::{Context, Result};
use hetier_he::exec::Session;
use hetier_he::model::{argmax, Compiled, Model, TestSet};
use hetier_he::nn::{encrypt_weights, Role};
use serde::Serialize;

use super::run_setup::{open_store, RunArgs};
use crate::cmd::rss;
use crate::fmt;

/// One of the two runs.
#[derive(Debug, Serialize)]
struct Side {
    weights: &'static str,
    images: usize,
    agree_with_plaintext: usize,
    max_logit_error: f64,
    setup_seconds: f64,
    seconds_per_image: f64,
    weight_objects: usize,
    weight_bytes: u64,
    store_peak_dram: u64,
    bytes_pm_to_dram: u64,
    process_peak_rss_so_far: u64,
}

fn side(
    args: &RunArgs,
    label: &'static str,
    model: &Model,
    compiled: &Compiled,
    tests: &TestSet,
    n: usize,
) -> Result<Side> {
    let (store, dir, _tmp, _) = open_store(args)?;
    let t0 = Instant::now();
    let secret = args.secret.resolve(&dir)?;
    let mut session = Session::new(model, compiled, &store, *secret.seed)
        .with_context(|| format!("preparing keys and {label} weights"))?;
    let setup_seconds = t0.elapsed().as_secs_f64();
    let (mut agree, mut max_err) = (0, 0.0f64);
    let t1 = Instant::now();
    for i in 0..n {
        let (y, _) = session.infer(tests.image(i))?;
        let want = tests.reference_logits(i);
        max_err = max_err.max(y.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max));
        agree += usize::from(argmax(&y) == argmax(want));
    }
    let secs = t1.elapsed().as_secs_f64();
    let weights: Vec<u64> = compiled
        .program
        .objects()
        .iter()
        .filter(|o| o.role == Role::Weight)
        .map(|o| o.bytes)
        .collect();
    let st = store.stats();
    Ok(Side {
        weights: label,
        images: n,
        agree_with_plaintext: agree,
        max_logit_error: max_err,
        setup_seconds,
        seconds_per_image: secs / n.max(1) as f64,
        weight_objects: weights.len(),
        weight_bytes: weights.iter().sum(),
        store_peak_dram: st.peak_dram,
        bytes_pm_to_dram: st.bytes_pm_to_dram,
        process_peak_rss_so_far: rss::sample(label).hwm,
    })
}

/// Runs both sides and prints them.
pub(crate) fn run(
    args: &RunArgs,
    json: bool,
    model: &Model,
    compiled: &Compiled,
    tests: &TestSet,
) -> Result<()> {
    let n = if args.all { tests.len() } else { args.images.min(tests.len()) };
    let mut enc = compiled.clone();
    enc.program = encrypt_weights(&compiled.program)?;
    let sides = [
        side(args, "plaintext", model, compiled, tests, n)?,
        side(args, "encrypted", model, &enc, tests, n)?,
    ];
    if json {
        println!("{}", serde_json::to_string_pretty(&sides)?);
        return Ok(());
    }
    println!(
        "hetier run --encrypted-weights — {} (log N = {}), {} images, DRAM budget {}",
        model.name(),
        compiled.program.params().log_n(),
        n,
        fmt::bytes(args.dram_mib << 20)
    );
    let row = |name: &str, f: &dyn Fn(&Side) -> String| {
        let mut r = vec![name.to_string()];
        r.extend(sides.iter().map(f));
        r
    };
    let rows = vec![
        row("agreement (argmax)", &|s| format!("{}/{}", s.agree_with_plaintext, s.images)),
        row("max logit error", &|s| format!("{:.2e}", s.max_logit_error)),
        row("time per image", &|s| format!("{:.3} s", s.seconds_per_image)),
        row("setup (keys, weights)", &|s| format!("{:.2} s", s.setup_seconds)),
        row("weight objects", &|s| {
            format!("{} ({})", s.weight_objects, fmt::bytes(s.weight_bytes))
        }),
        row("store peak DRAM", &|s| fmt::bytes(s.store_peak_dram)),
        row("PM→DRAM", &|s| fmt::bytes(s.bytes_pm_to_dram)),
        row("process peak RSS so far", &|s| fmt::bytes(s.process_peak_rss_so_far)),
    ];
    fmt::table(&["", "plaintext weights", "encrypted weights"], &rows);
    Ok(())
}
