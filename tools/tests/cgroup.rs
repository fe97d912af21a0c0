//! `hetier run` as a child in a cgroup v1 memory group limited to its DRAM budget + 64 MiB, for
//! the digits model and CryptoNets in the slot and batch layouts: each run completes without an
//! OOM kill, agrees with the plaintext model, and the group's measured maximum stays within the
//! limit; and digits compiled with bootstrapping (insecure test parameters) at its smallest
//! workable budget. Skipped, with the reason printed, only where the memory controller cannot be
//! written.

mod common;

use common::MemoryGroup;

const MIB: u64 = 1 << 20;
/// What the process may hold beside its store's budget.
const HEADROOM: u64 = 64 * MIB;

/// Runs `hetier --json run --dram-mib <budget> <args>` in a group limited to budget + 64 MiB
/// and checks it: no OOM kill, success, every image agrees with the plaintext model, the
/// group's maximum and the peak RSS within the limit, and the printed memory outside the store
/// consistent with them.
fn run_under_limit(label: &str, budget_mib: u64, images: usize, args: &[&str]) {
    let budget = budget_mib * MIB;
    let limit = budget + HEADROOM;
    let name = format!("hetier-cgroup-test-{label}-{}", std::process::id());
    let Some(group) = MemoryGroup::create_or_skip(&name, limit) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = group
        .command(env!("CARGO_BIN_EXE_hetier"))
        .args(["--json", "run", "--dram-mib", &budget_mib.to_string()])
        .args(["--images", &images.to_string()])
        .args(args)
        .arg("--dir")
        .arg(dir.path().join("pool"))
        .output()
        .unwrap();
    let max = group.max_usage();
    let killed = group.oom_killed();
    assert!(!killed, "{label}: OOM-killed under {} MiB (max {} MiB)", limit / MIB, max / MIB);
    assert!(out.status.success(), "{label}: {}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["agree_with_plaintext"], images, "{label}");
    assert!(r["max_logit_error"].as_f64().unwrap() <= 1e-3, "{label}: {}", r["max_logit_error"]);
    common::check_outside_store(label, &r, budget, limit, HEADROOM, max);
}

#[test]
fn run_digits_fits_budget_plus_64_mib_under_a_cgroup_limit() {
    run_under_limit("digits", 32, 4, &[]);
}

#[test]
fn run_cryptonets_slot_layout_fits_budget_plus_64_mib_under_a_cgroup_limit() {
    run_under_limit("cryptonets-slot", 32, 2, &["--model", "cryptonets"]);
}

#[test]
fn run_cryptonets_batch_layout_fits_budget_plus_64_mib_under_a_cgroup_limit() {
    run_under_limit("cryptonets-batch", 32, 8, &["--model", "cryptonets", "--layout", "batch"]);
}

#[test]
fn run_digits_batch_layout_fits_budget_plus_64_mib_under_a_cgroup_limit() {
    run_under_limit("digits-batch", 32, 64, &["--model", "digits", "--layout", "batch"]);
}

/// The first `n` held-out digits images as a `.npy` file (`|u1`, `[n, 64]`) in `dir`.
fn digits_images(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/digits.test.safetensors");
    let tests = hetier_he::model::TestSet::from_bytes(file, &std::fs::read(file).unwrap()).unwrap();
    let mut header = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({n}, 64), }}");
    // The magic, version and length (10 bytes), the header and its newline: 64-byte aligned.
    header.push_str(&" ".repeat(63 - (10 + header.len()) % 64));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    (0..n).for_each(|i| bytes.extend(tests.image(i)));
    let path = dir.join("digits.npy");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The smallest model that bootstraps: digits compiled with a bootstrap every two levels at
/// log N = 12 (insecure test parameters; two bootstraps per image), whose bootstraps take every
/// buffer from the store's budget. A budget one MiB below the smallest workable one (the
/// bootstrap's buffers included) is refused with it before any key is made. At that budget on
/// two threads the EvalMod halves run one after the other, and 64 MiB more lets them run side
/// by side. At the smallest budget, in a group limited to it + 64 MiB, two held-out images run
/// without an OOM kill, agree with the plaintext model, and the group's maximum stays within
/// the limit.
#[test]
fn run_bootstrapping_digits_fits_budget_plus_64_mib_under_a_cgroup_limit() {
    let dir = tempfile::tempdir().unwrap();
    let images = digits_images(dir.path(), 2);
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/digits.json");
    let run = |group: Option<&MemoryGroup>, budget_mib: u64, pool: &str| {
        let hetier = env!("CARGO_BIN_EXE_hetier");
        let mut cmd =
            group.map_or_else(|| std::process::Command::new(hetier), |g| g.command(hetier));
        // Two threads on any machine: EvalMod's halves may then run side by side.
        cmd.env("RAYON_NUM_THREADS", "2");
        cmd.args(["--json", "run", "--model-file", model, "--insecure-test-params"])
            .args(["--bootstrap-levels", "2", "--dram-mib", &budget_mib.to_string()])
            .arg("--inputs")
            .arg(&images)
            .arg("--dir")
            .arg(dir.path().join(pool))
            .output()
            .unwrap()
    };
    // The smallest workable budget, from the refusal of a budget below it.
    let small = run(None, 1, "small");
    assert!(!small.status.success());
    let needed = common::named_budget(&small.stderr);
    let budget_mib = needed.div_ceil(MIB);
    let below = run(None, budget_mib - 1, "below");
    let err = String::from_utf8_lossy(&below.stderr);
    assert!(!below.status.success() && err.contains(&needed.to_string()), "{err}");
    assert!(err.contains("too small for this plan"), "refused before any work: {err}");

    // At the smallest budget each EvalMod runs its halves one after the other; with room for a
    // second set of bootstrap buffers they run side by side (bit for bit the same arithmetic:
    // `eval_mod_halves_run_side_by_side_when_the_budget_holds_a_partner`).
    let json = |out: std::process::Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let tight = json(run(None, budget_mib, "tight"));
    let roomy = json(run(None, budget_mib + 64, "roomy"));
    assert_eq!(
        (tight["eval_mods_side_by_side"].as_u64(), tight["bootstraps"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(roomy["eval_mods_side_by_side"], 4, "two bootstraps of each of two images");
    // Each run makes its own random key, so the outputs differ by the noise alone.
    for r in [&tight, &roomy] {
        assert_eq!(r["argmax_agree"], 2);
        assert!(r["max_abs_error"].as_f64().unwrap() <= 1e-3, "{}", r["max_abs_error"]);
    }
    assert!(roomy["store_peak_dram"].as_u64().unwrap() <= (budget_mib + 64) * MIB);

    let budget = budget_mib * MIB;
    let limit = budget + HEADROOM;
    let name = format!("hetier-cgroup-test-bootstrapping-digits-{}", std::process::id());
    let Some(group) = MemoryGroup::create_or_skip(&name, limit) else { return };
    let out = run(Some(&group), budget_mib, "pool");
    let max = group.max_usage();
    assert!(!group.oom_killed(), "OOM-killed under {} MiB (max {} MiB)", limit / MIB, max / MIB);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["bootstraps"], 2);
    assert_eq!(r["argmax_agree"], 2);
    assert!(r["max_abs_error"].as_f64().unwrap() <= 1e-3, "{}", r["max_abs_error"]);
    assert!(r["store_peak_dram"].as_u64().unwrap() <= budget);
    let label = format!("bootstrapping digits (smallest workable budget {needed} B)");
    common::check_outside_store(&label, &r, budget, limit, HEADROOM, max);
}
