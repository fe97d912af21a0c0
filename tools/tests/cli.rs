//! The CLI end to end: the demo leaves a pool that `inspect` reads back and checks.

use std::path::Path;

use hetier_allocator::{ObjectKind, ObjectMeta, Pool, PoolOptions};
use std::process::Command;

fn hetier() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hetier"))
}

#[test]
fn demo_then_inspect_reports_the_durable_objects_only() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let out = hetier()
        .args(["--json", "demo", "--durable", "3", "--scratch", "2", "--object-mib", "1"])
        .arg("--dir")
        .arg(&pool)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let demo: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(demo["scratch_dropped_on_reopen"], 2);
    assert_eq!(demo["durable_after_reopen"], 3);
    assert_eq!(demo["fsck_clean"], true);

    let out = hetier().args(["--json", "inspect"]).arg(&pool).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspect["durable_objects"], 3);
    assert_eq!(inspect["by_kind"]["galois key"]["objects"], 2);
    assert_eq!(inspect["by_kind"]["relinearisation key"]["objects"], 1);
    assert_eq!(inspect["fsck_objects_checked"], 3);
    assert_eq!(inspect["fsck_corrupt"].as_array().unwrap().len(), 0);
}

/// Flips one bit in the middle of each object `pick` selects, in the pool files under `dir`
/// (closed); returns how many objects it damaged.
fn damage(dir: &Path, mut pick: impl FnMut(&ObjectMeta) -> bool) -> usize {
    use std::os::unix::fs::FileExt;
    let (pool, _) = Pool::open(dir, PoolOptions::default()).unwrap();
    let seg = pool.superblock().segment_size;
    let victims: Vec<ObjectMeta> = pool.list().into_iter().filter(|m| pick(m)).collect();
    drop(pool);
    for m in &victims {
        let at = m.offset.0 + m.len / 2;
        let path = dir.join(format!("segment-{:06}.hpool", at / seg));
        let f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at % seg).unwrap();
        b[0] ^= 0x10;
        f.write_all_at(&b, at % seg).unwrap();
        f.sync_all().unwrap();
    }
    victims.len()
}

#[test]
fn inspect_fails_on_a_damaged_object_and_repair_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let out = hetier()
        .args(["--json", "demo", "--durable", "3", "--scratch", "0", "--object-mib", "1"])
        .arg("--dir")
        .arg(&pool)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let galois = |m: &ObjectMeta| matches!(m.kind, ObjectKind::EvalKey { galois_element, .. } if galois_element != 0);
    assert_eq!(damage(&pool, |m| galois(m) && m.id.0 == 2), 1);
    let inspect = |extra: &[&str]| {
        hetier().args(["--json", "inspect"]).args(extra).arg(&pool).output().unwrap()
    };
    let out = inspect(&[]);
    assert!(!out.status.success(), "inspect of a damaged pool exited 0");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let corrupt = v["fsck_corrupt"].as_array().unwrap();
    assert_eq!(corrupt.len(), 1);
    assert!(corrupt[0].as_str().unwrap().contains("Galois key for element"), "{corrupt:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--repair"));

    let out = inspect(&["--repair"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["repaired"].as_array().unwrap().len(), 1);

    let out = inspect(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["durable_objects"], 2);
    assert_eq!(v["fsck_corrupt"].as_array().unwrap().len(), 0);
}

#[test]
fn a_kept_pool_with_damaged_keys_and_weights_heals_on_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let first = json_of(&run_digits(&pool, &[]));
    assert_eq!(first["objects_healed"], 0);
    // Flip a bit in two evaluation keys and two encoded weights.
    let (mut keys, mut weights) = (0, 0);
    let n = damage(&pool, |m| match m.kind {
        ObjectKind::EvalKey { .. } if keys < 2 => {
            keys += 1;
            true
        }
        ObjectKind::Plaintext if weights < 2 => {
            weights += 1;
            true
        }
        _ => false,
    });
    assert_eq!(n, 4);
    let inspect = || hetier().args(["--json", "inspect"]).arg(&pool).output().unwrap();
    assert!(!inspect().status.success(), "inspect of a damaged pool exited 0");

    let out = run_digits(&pool, &[]);
    let second = json_of(&out);
    assert_eq!(second["objects_healed"], 4);
    assert_eq!(second["agree_with_plaintext"], 2);
    assert!(second["max_logit_error"].as_f64().unwrap() <= 1e-3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("healed: ")).collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    assert_eq!(lines.iter().filter(|l| l.contains("weight plaintext")).count(), 2, "{stderr}");
    assert_eq!(lines.iter().filter(|l| l.contains(" key")).count(), 2, "{stderr}");
    // Replaced durably: the pool is clean, and a third run heals nothing.
    let out = inspect();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let third = json_of(&run_digits(&pool, &[]));
    assert_eq!(third["objects_healed"], 0);
    assert_eq!(third["keys_generated"], 0);
}

#[test]
fn the_batch_layout_heals_a_damaged_relinearisation_key() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let run = || {
        hetier()
            .args(["--json", "run", "--batch", "--images", "8", "--dram-mib", "32", "--dir"])
            .arg(&pool)
            .output()
            .unwrap()
    };
    let first = json_of(&run());
    let relin = |m: &ObjectMeta| matches!(m.kind, ObjectKind::EvalKey { galois_element: 0, .. });
    assert_eq!(damage(&pool, relin), 1);
    let out = run();
    let second = json_of(&out);
    assert_eq!(second["objects_healed"], 1);
    assert_eq!(second["agree_with_plaintext"], 8);
    // The key generator is deterministic from the key file: the regenerated key is the same.
    assert_eq!(second["eval_key_fingerprint"], first["eval_key_fingerprint"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("healed: the relinearisation key was damaged"), "{stderr}");
    assert_eq!(json_of(&run())["objects_healed"], 0);
}

#[test]
fn inspect_of_a_missing_pool_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = hetier().arg("inspect").arg(dir.path().join("nope")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("opening pool"));
}

fn run_digits(pool: &Path, extra: &[&str]) -> std::process::Output {
    hetier()
        .args(["--json", "run", "--images", "2", "--dram-mib", "24", "--dir"])
        .arg(pool)
        .args(extra)
        .output()
        .unwrap()
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
}

/// Whether any file under `dir` contains `needle`.
fn any_file_contains(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

#[test]
fn run_digits_agrees_with_plaintext_and_reuses_pooled_keys() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let run = || json_of(&run_digits(&pool, &[]));
    let first = run();
    assert_eq!(first["images"], 2);
    assert_eq!(first["agree_with_plaintext"], 2);
    assert!(first["max_logit_error"].as_f64().unwrap() <= 1e-3);
    assert!(first["store_peak_dram"].as_u64().unwrap() <= 24 << 20);
    assert!(first["keys_generated"].as_u64().unwrap() > 0);
    // A second process over the same pool reuses the durable keys and weights.
    let second = run();
    assert_eq!(second["keys_generated"], 0);
    assert_eq!(second["keys_reused"], first["keys_generated"]);
    assert_eq!(second["weights_encoded"], 0);
    assert_eq!(second["agree_with_plaintext"], 2);
    assert_eq!(second["eval_key_fingerprint"], first["eval_key_fingerprint"]);
}

#[test]
fn run_without_a_seed_keeps_a_random_0600_key_outside_the_pool() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let ra = json_of(&run_digits(&a, &[]));
    let rb = json_of(&run_digits(&b, &[]));
    // Two fresh pools, two random secret keys: different public keys.
    let (fa, fb) = (&ra["eval_key_fingerprint"], &rb["eval_key_fingerprint"]);
    assert!(fa.is_string() && fb.is_string(), "{fa} {fb}");
    assert_ne!(fa, fb);
    let key_file = dir.path().join("a.secret");
    assert_eq!(ra["key_file"], key_file.display().to_string());
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // The pool holds public material only: neither the seed nor its hex is in any pool file,
    // and every object is a key, a weight or a manifest.
    let text = std::fs::read_to_string(&key_file).unwrap();
    let hex = text.lines().nth(1).unwrap().to_owned();
    let seed: Vec<u8> =
        (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
    assert!(!any_file_contains(&a, &seed));
    assert!(!any_file_contains(&a, hex.as_bytes()));
    let out = hetier().args(["--json", "inspect"]).arg(&a).output().unwrap();
    let inspect = json_of(&out);
    let kinds: Vec<&String> = inspect["by_kind"].as_object().unwrap().keys().collect();
    for k in kinds {
        assert!(["relinearisation key", "galois key", "plaintext", "blob"].contains(&k.as_str()));
    }
    // A key file others can read is refused.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = run_digits(&a, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mode 0640"));
    // --sk-seed works, says loudly that its key is not secret, and writes no key file.
    let c = dir.path().join("c");
    let out = run_digits(&c, &["--sk-seed", &"ab".repeat(32)]);
    let rc = json_of(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT secret"));
    assert!(rc["key_file"].is_null());
    assert!(!dir.path().join("c.secret").exists());
}

#[test]
fn run_batch_layout_agrees_with_plaintext_and_reuses_the_pooled_key() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let run = || {
        let out = hetier()
            .args(["--json", "run", "--batch", "--images", "24", "--dram-mib", "32", "--dir"])
            .arg(&pool)
            .arg("--trace")
            .arg(dir.path().join("trace.jsonl"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = run();
    assert_eq!(first["layout"], "batch");
    assert_eq!(first["log_n"], 13);
    assert_eq!(first["images"], 24);
    assert_eq!(first["runs"], 1);
    assert_eq!(first["agree_with_plaintext"], 24);
    assert!(first["max_logit_error"].as_f64().unwrap() <= 1e-3);
    assert!(first["images_per_second"].as_f64().unwrap() > 0.0);
    assert!(first["store_peak_dram"].as_u64().unwrap() <= 32 << 20);
    assert_eq!(first["keys_generated"], 1);
    let trace = std::fs::read_to_string(dir.path().join("trace.jsonl")).unwrap();
    assert!(trace.lines().count() > 100, "{} trace lines", trace.lines().count());
    let second = run();
    assert_eq!(second["keys_generated"], 0);
    assert_eq!(second["keys_reused"], 1);
}

#[test]
fn plan_resnet20_reports_keys_bytes_and_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let costs = dir.path().join("costs.json");
    std::fs::write(
        &costs,
        r#"{"format":"hetier-costs","version":1,"pm_kind":"disk",
            "tiers":{"dram":{"read_bw":1e10,"write_bw":1e10,"read_latency_ns":100,"write_latency_ns":100},
              "pm":{"read_bw":2e9,"write_bw":1e9,"read_latency_ns":10000,"write_latency_ns":10000},
              "pm_description":{"label":"test","emulated":true}},
            "op_costs":[{"log_n":16,"q_len":31,"p_len":11,"top_ns":{"rotate":4e8,"rotate_hoisted":3e8,"hoist":2e8,"mul_relin":4e8,"conjugate":4e8,"rescale":5e7,"mul_plain":1e7,"add":5e6,"bootstrap":1e8,"bootstrap_key":2e8}}]}"#,
    )
    .unwrap();
    let out = hetier()
        .args(["--json", "plan", "--model", "resnet20", "--budgets", "10,100", "--costs"])
        .arg(&costs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["summary"];
    assert!(s["rotation_keys"].as_u64().unwrap() > 10);
    assert!(s["bootstraps"].as_u64().unwrap() > 0);
    let preds = v["predictions"].as_array().unwrap();
    // Every policy (lru, alpha, planned by default) at each budget, budgets in order.
    assert_eq!(preds.len(), 6);
    let secs = |i: usize| preds[i]["predicted_seconds"].as_f64().unwrap();
    for k in 0..3 {
        assert_eq!(preds[k]["policy"], preds[k + 3]["policy"]);
        // A smaller budget can only move more bytes and take longer.
        assert!(secs(k) >= secs(k + 3), "{} < {}", secs(k), secs(k + 3));
    }
    // Knowing the plan beats reacting to it at 10 %.
    assert_eq!(preds[2]["policy"], "planned");
    assert!(secs(2) <= secs(0), "planned {} > lru {}", secs(2), secs(0));
    assert!(
        preds[0]["pm_read_bytes"].as_u64().unwrap() >= preds[3]["pm_read_bytes"].as_u64().unwrap()
    );
    // ResNet-20 is compiled for real: its bootstraps are computed, not modelled.
    assert!(v["bootstrapping"].as_str().unwrap().starts_with("computed"));

    // MobileNetV2 at 224×224 is compiled too (multiplexed packing): its keys are a small
    // fraction of the 74.2 GiB the layer-table plan needed.
    let out = hetier()
        .args(["--json", "plan", "--model", "mobilenetv2", "--budgets", "25"])
        .args(["--policies", "lru,planned", "--weights", "on-the-fly", "--costs"])
        .arg(&costs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["summary"];
    let key_gib = s["key_bytes"].as_u64().unwrap() as f64 / (1u64 << 30) as f64;
    assert!(key_gib * 4.0 <= 74.2, "{key_gib} GiB of keys");
    assert!(s["bootstraps"].as_u64().unwrap() > 50);
    assert!(v["bootstrapping"].as_str().unwrap().starts_with("computed"));
    assert_eq!(v["predictions"].as_array().unwrap().len(), 2);

    // Without a measured bootstrap the plan says how to get one.
    let text = std::fs::read_to_string(&costs).unwrap();
    std::fs::write(&costs, text.replace(r#","bootstrap":1e8,"bootstrap_key":2e8"#, "")).unwrap();
    let out =
        hetier().args(["plan", "--model", "resnet20", "--costs"]).arg(&costs).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("calibrate --log-n 16 --bootstrap"), "{err}");
}

#[test]
fn bench_model_runs_every_policy_to_the_all_dram_outputs_and_reuses_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let run = |extra: &[&str]| {
        let out = hetier()
            .args(["--json", "bench-model", "--log-n", "14", "--dram-mib", "40", "--images", "1"])
            .args(["--no-cgroup", "--policies", "lru,alpha,planned", "--dir"])
            .arg(&pool)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = run(&[]);
    // digits_wide: 20 keys (a dense layer's giant steps share one key, Horner-style).
    assert_eq!(first["setup"]["keys_generated"], 20);
    let runs = first["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    // What each run held outside its store is at least what the setup child measured staying
    // outside for the whole run (context tables, secret key), and within 64 MiB at log N 14.
    let constant = first["context_tables"].as_u64().unwrap();
    assert!(constant > 1 << 20, "{constant}");
    for r in runs {
        assert_eq!(r["outputs_equal_all_dram"], true, "{}", r["name"]);
        assert!(r["hwm"].as_u64().unwrap() > 0);
        let outside = r["outside_store"].as_u64().unwrap();
        assert!(outside >= constant && outside <= 64 << 20, "{}: {outside}", r["name"]);
    }
    // Under the small budget the store stays within it and moves bytes; all-DRAM moves none back.
    let lru = &runs[1]["report"]["stats"];
    assert!(lru["peak_dram"].as_u64().unwrap() <= 40 << 20);
    assert!(lru["bytes_pm_to_dram"].as_u64().unwrap() > 0);
    assert_eq!(runs[0]["report"]["stats"]["writebacks"], 0);
    for a in first["plaintext_agreement"].as_array().unwrap() {
        assert_eq!(a[1], a[2], "{a}");
    }
    // A second invocation finds every key and weight in the durable pool, and plots each run.
    let svg = dir.path().join("svg");
    let second = run(&["--svg", svg.to_str().unwrap()]);
    let text = std::fs::read_to_string(svg.join("bench_model_images.svg")).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).map(str::trim).collect();
    for label in ["wall time (s)", "all-DRAM", "lru (40 MiB)", "alpha (40 MiB)", "planned (40 MiB)"]
    {
        assert!(texts.iter().any(|t| t.starts_with(label)), "{label}: {texts:?}");
    }
    // One marker per run's inference (one each), in the run's colour.
    assert_eq!(doc.descendants().filter(|n| n.has_tag_name("circle")).count(), 4);
    assert_eq!(second["setup"]["keys_generated"], 0);
    assert_eq!(second["setup"]["keys_reused"], 20);
    assert_eq!(second["setup"]["weights_encoded"], 0);
}

#[test]
fn bench_model_refuses_an_unknown_policy() {
    let dir = tempfile::tempdir().unwrap();
    let out = hetier()
        .args(["bench-model", "--no-cgroup", "--policies", "fifo", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown policy"));
}

#[test]
fn run_with_every_policy_stays_in_budget_and_reports_rss_by_stage() {
    // The prefetch rule and lead (MiB) each run asks for (`None`: the default) and the ones it
    // reports.
    let runs = [
        ("lru", None, None, None, None),
        ("alpha", None, None, None, None),
        ("planned", None, None, Some("conservative"), Some(0)),
        ("planned", Some("aggressive"), None, Some("aggressive"), Some(0)),
        ("planned", None, Some(8u64), Some("conservative"), Some(8 << 20)),
    ];
    for (policy, rule, lead, reported, reported_lead) in runs {
        let mut cmd = hetier();
        cmd.args(["--json", "run", "--images", "1", "--dram-mib", "24", "--policy", policy]);
        if let Some(rule) = rule {
            cmd.args(["--prefetch-rule", rule]);
        }
        if let Some(mib) = lead {
            cmd.args(["--prefetch-lead-mib", &mib.to_string()]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{policy}: {}", String::from_utf8_lossy(&out.stderr));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["agree_with_plaintext"], 1, "{policy}");
        assert_eq!(r["policy"], policy);
        assert_eq!(r["prefetch_rule"].as_str(), reported, "{policy} {rule:?}");
        assert_eq!(r["prefetch_lead_bytes"].as_u64(), reported_lead, "{policy} {lead:?}");
        assert!(r["store_peak_dram"].as_u64().unwrap() <= 24 << 20);
        // O_DIRECT by default: no pool page is mapped into the process.
        assert!(r["pool"].as_str().unwrap().contains("direct"), "{}", r["pool"]);
        let stages: Vec<&str> =
            r["rss"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
        assert_eq!(stages, ["store ready", "keys and weights ready", "after the images"]);
        let end = &r["rss"][2];
        assert!(end["hwm"].as_u64().unwrap() >= end["rss"].as_u64().unwrap());
    }
}

/// The store waits a `hetier --json bootstrap` report splits by phase are every wait it
/// counts (keys, diagonals, their coefficients), none negative.
fn phase_waits_add_up(report: &serde_json::Value) {
    let store = &report["store"];
    let w = &store["phase_wait_seconds"];
    let phases = ["mod_raise", "coeff_to_slot", "eval_mod", "slot_to_coeff"];
    let by_phase: Vec<f64> = phases.iter().map(|p| w[p].as_f64().unwrap()).collect();
    assert!(by_phase.iter().all(|&s| s >= 0.0), "{w}");
    let d = &store["diagonal_store"];
    let total = store["key_wait_seconds"].as_f64().unwrap()
        + d["wait_seconds"].as_f64().unwrap_or(0.0)
        + d["coefficient_wait_seconds"].as_f64().unwrap_or(0.0);
    let sum: f64 = by_phase.iter().sum();
    assert!((sum - total).abs() < 1e-6, "phases {sum} s, every pin {total} s: {store}");
}

/// `hetier bootstrap --dir`: the first run puts the seed-compressed keys in the pool (its
/// secret key in a 0600 file beside it), a later run at a quarter of the stored key set (or the
/// bootstrap's working set, its buffers being in the budget too, if that is more) reuses every
/// key and still bootstraps to the precision bound; test-size rings need the opt-in flag. With
/// `--diagonals auto` and `--dir` the first run encodes the transforms' diagonals into the pool
/// and every one is pinned, none encoded; the later run reads every one back (`--diagonals
/// encode` encodes them at every use, `--encode-share 0.5` every other one; without `--dir`
/// they are stored for the run only).
#[test]
fn bootstrap_keeps_its_keys_in_a_pool_and_reuses_them_at_a_quarter_budget() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let boot = |extra: &[&str]| {
        let out = hetier()
            .args(["--json", "bootstrap", "--log-n", "12", "--levels", "1"])
            .arg("--dir")
            .arg(&pool)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        json_of(&out)
    };
    let first = boot(&["--insecure-test-params"]);
    assert_eq!((first["preset"].as_str(), first["dnum"].as_u64()), (Some("test"), Some(3)));
    let count = first["key_count"].as_u64().unwrap();
    assert_eq!(first["store"]["keys_generated"].as_u64(), Some(count));
    // Stored one object per digit by default (dnum 3 here).
    let key_count = count;
    assert_eq!(first["store"]["key_objects"].as_u64(), Some(3 * key_count));
    let stored = first["key_bytes_stored"].as_u64().unwrap();
    let expanded = first["key_bytes"].as_u64().unwrap();
    assert!(stored * 2 < expanded, "{stored} stored, {expanded} expanded");
    for field in ["seconds", "precision_bits", "levels_after", "peak_rss"] {
        assert!(first[field].as_f64().unwrap() > 0.0, "{field}");
    }
    let diagonal_bytes = first["diagonal_bytes"].as_u64().unwrap();
    assert!(diagonal_bytes > 0);
    assert_eq!(first["store"]["diagonals"], "durable");
    let d = &first["store"]["diagonal_store"];
    assert_eq!(d["bytes"].as_u64(), Some(diagonal_bytes));
    assert_eq!(d["reused"].as_u64(), Some(0));
    assert_eq!(d["encoded_on_the_fly"].as_u64(), Some(0));
    assert_eq!(d["pins"], d["count"], "{d}");
    assert!(first["store"]["dram_budget"].as_u64().unwrap() >= expanded + diagonal_bytes);
    // With every key in DRAM and two threads, EvalMod's halves ran side by side: their partner
    // scratch is part of the run's working set.
    let (set, partner) = (first["working_set_bytes"].as_u64(), first["partner_bytes"].as_u64());
    if first["threads"].as_u64().unwrap() >= 2 {
        assert!(partner.unwrap() > 0 && partner < set, "partner {partner:?} of {set:?}");
    }
    let mode = std::fs::metadata(dir.path().join("pool.secret")).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);

    // A budget below the expanded key set reads the keys in place (the first run's default
    // budget held every key expanded, with EvalMod's halves side by side: a larger working
    // set): no expansion block, only the relinearisation key's cached copy, so less than
    // expanding per pin needs.
    let need = first["in_place_working_set_bytes"].as_u64().unwrap();
    let per_pin = first["per_pin_working_set_bytes"].as_u64().unwrap();
    assert!(need > 0 && need < per_pin && need < stored, "in place {need} B, per pin {per_pin} B");
    // Per pin, the default window (two keys ahead) holds one expanded key more.
    let window = first["expand_ahead_working_set_bytes"].as_u64().unwrap();
    assert_eq!(window - per_pin, expanded / count, "{window} B with the window, {per_pin} B");
    let budget = (stored / 4).max(need).div_ceil(1 << 20) << 20;
    let mib = (budget >> 20).to_string();
    let again = boot(&["--insecure-test-params", "--dram-mib", &mib, "--policy", "planned"]);
    assert_eq!(again["store"]["expand"], "inplace");
    assert_eq!(again["store"]["prefetch_rule"], "conservative");
    // The default lead of the plan prefetched ahead under the aggressive rule.
    assert_eq!(again["store"]["prefetch_lead_bytes"].as_u64(), Some(256 << 20));
    assert_eq!(again["store"]["keys_reused"].as_u64(), Some(count));
    assert_eq!(again["store"]["keys_generated"].as_u64(), Some(0));
    assert!(again["store"]["stats"]["peak_dram"].as_u64().unwrap() <= budget);
    assert!(again["precision_bits"].as_f64().unwrap() > 15.0, "{again}");
    // The diagonals the first run left in the pool are read back, none encoded.
    assert_eq!(again["store"]["diagonals"], "durable");
    let d = &again["store"]["diagonal_store"];
    assert_eq!(d["reused"], d["count"], "{d}");
    assert_eq!(d["encoded_on_the_fly"].as_u64(), Some(0));
    assert_eq!(d["pins"], d["count"], "{d}");

    // Prefetches that never wait for what MIN would evict: the same bootstrap in the budget.
    let rule = ["--prefetch-rule", "aggressive"];
    let ahead = boot(&[&["--insecure-test-params", "--dram-mib", &mib][..], &rule].concat());
    assert_eq!(ahead["store"]["prefetch_rule"], "aggressive");
    assert!(ahead["store"]["stats"]["peak_dram"].as_u64().unwrap() <= budget);
    assert!(ahead["precision_bits"].as_f64().unwrap() > 15.0, "{ahead}");

    // The plain conservative rule, without a lead: the same bootstrap in the budget.
    let lead = ["--prefetch-lead-mib", "0"];
    let plain = boot(&[&["--insecure-test-params", "--dram-mib", &mib][..], &lead].concat());
    assert_eq!(plain["store"]["prefetch_lead_bytes"].as_u64(), Some(0));
    assert!(plain["store"]["stats"]["peak_dram"].as_u64().unwrap() <= budget);
    assert!(plain["precision_bits"].as_f64().unwrap() > 15.0, "{plain}");

    // Half the durable diagonals (every other id) encoded at every use, the rest read back.
    let shared = ["--insecure-test-params", "--dram-mib", &mib, "--policy", "planned"];
    let half = boot(&[&shared[..], &["--encode-share", "0.5"]].concat());
    let d = &half["store"]["diagonal_store"];
    let count = d["count"].as_u64().unwrap();
    assert_eq!(d["encode_share"].as_f64(), Some(0.5), "{d}");
    assert_eq!(d["encoded_on_the_fly"].as_u64(), Some(count / 2), "{d}");
    assert_eq!(d["pins"].as_u64(), Some(count - count / 2), "{d}");
    assert!(half["precision_bits"].as_f64().unwrap() > 15.0, "{half}");
    phase_waits_add_up(&half);
    let out = hetier()
        .args(["bootstrap", "--log-n", "12", "--levels", "1", "--encode-share", "1.5", "--dir"])
        .arg(&pool)
        .args(shared)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("encode_share"));

    let encode = boot(&["--insecure-test-params", "--dram-mib", &mib, "--diagonals", "encode"]);
    assert_eq!(encode["store"]["diagonals"], "encode");
    phase_waits_add_up(&encode);
    // Encoded at every use from their coefficients, which are in the store (none on the heap).
    let d = &encode["store"]["diagonal_store"];
    assert_eq!(d["storage"], "coefficients", "{d}");
    assert_eq!(d["encoded_on_the_fly"], d["count"], "{d}");
    assert_eq!(d["pins"], d["count"], "{d}");
    // 8 bytes per coefficient, N = 4,096 coefficients per diagonal at log N 12.
    assert_eq!(d["bytes"].as_u64(), Some(d["count"].as_u64().unwrap() * 8 * 4096), "{d}");
    assert!(encode["precision_bits"].as_f64().unwrap() > 15.0, "{encode}");

    // A budget that does not hold the relinearisation key's cached copy reads that key in
    // place too (`auto` picks it): the smallest working set of any mode.
    let all = encode["in_place_all_working_set_bytes"].as_u64().unwrap();
    let some = encode["in_place_working_set_bytes"].as_u64().unwrap();
    let tight = all.div_ceil(1 << 20) << 20;
    assert!(tight < some, "in place {some} B, the relinearisation key too {all} B");
    let mib = (tight >> 20).to_string();
    let small = boot(&["--insecure-test-params", "--dram-mib", &mib, "--diagonals", "encode"]);
    assert_eq!(small["store"]["expand"], "inplaceall");
    assert_eq!(small["store"]["key_expand_seconds"].as_f64(), Some(0.0), "{small}");
    assert!(small["store"]["stats"]["peak_dram"].as_u64().unwrap() <= tight);
    // At the smallest budget no partner fits: the run's working set is the smallest one.
    assert_eq!(small["partner_bytes"].as_u64(), Some(0), "{small}");
    assert_eq!(small["working_set_bytes"].as_u64(), Some(all), "{small}");
    assert!(small["precision_bits"].as_f64().unwrap() > 15.0, "{small}");

    // Without `--dir` the pool is temporary: the diagonals are encoded once into it, in DRAM.
    // `--key-form seeded` stores each key in one object.
    let out = hetier()
        .args(["--json", "bootstrap", "--log-n", "12", "--levels", "1", "--insecure-test-params"])
        .args(["--key-form", "seeded"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let temporary = json_of(&out);
    assert_eq!(temporary["store"]["diagonals"], "stored");
    assert_eq!(temporary["store"]["key_objects"].as_u64(), Some(key_count));

    let out = hetier()
        .args(["bootstrap", "--log-n", "12", "--levels", "1", "--dir"])
        .arg(&pool)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insecure-test-params"));
}

/// `--preset` names a log N 16 set: refused below log N 16 and together with `--levels`, each
/// before any key is made.
#[test]
fn bootstrap_presets_are_refused_where_they_do_not_apply() {
    let refused = |args: &[&str], says: &str| {
        let out = hetier().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    };
    let small = ["bootstrap", "--log-n", "12", "--insecure-test-params", "--preset", "precise"];
    refused(&small, "--preset is for log N 16");
    refused(&["bootstrap", "--preset", "precise", "--levels", "3"], "cannot be used with");
    refused(&["bootstrap", "--preset", "widest"], "invalid value 'widest'");
}

/// The messages of an anyhow report on stderr (`Error: …`, then `Caused by:` and its numbered
/// or lone causes), without the backtrace.
fn error_chain(stderr: &str) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for line in stderr.lines() {
        if let Some(m) = line.strip_prefix("Error: ") {
            parts.push(m.trim().to_owned());
            continue;
        }
        let t = line.trim();
        if t.starts_with("Stack backtrace") {
            break;
        }
        if parts.is_empty() || t.is_empty() || t == "Caused by:" {
            continue;
        }
        let numbered = t.split_once(": ").filter(|(n, _)| n.chars().all(|c| c.is_ascii_digit()));
        parts.push(numbered.map_or(t, |(_, m)| m).to_owned());
    }
    parts
}

#[test]
fn a_pool_damaged_in_its_structure_says_each_thing_once_and_what_to_do() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    json_of(&run_digits(&pool, &[]));
    // One bit of the superblock: nothing in the pool can be trusted to find its objects.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(pool.join("segment-000000.hpool"))
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 40).unwrap();
    f.write_all_at(&[b[0] ^ 0x10], 40).unwrap();
    drop(f);
    let out = hetier()
        .env("RUST_BACKTRACE", "0")
        .args(["--json", "run", "--images", "2", "--dram-mib", "24", "--dir"])
        .arg(&pool)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let chain = error_chain(&stderr);
    assert_eq!(chain.len(), 2, "{stderr}");
    assert!(chain[0].contains("remove the directory and run again"), "{stderr}");
    assert!(chain[1].starts_with("superblock checksum mismatch"), "{stderr}");
    for (i, a) in chain.iter().enumerate() {
        for b in &chain[i + 1..] {
            assert!(!a.contains(b.as_str()) && !b.contains(a.as_str()), "said twice: {stderr}");
        }
    }
    // The remedy works: the next run derives the pool again from the key file and the model.
    std::fs::remove_dir_all(&pool).unwrap();
    assert_eq!(json_of(&run_digits(&pool, &[]))["agree_with_plaintext"], 2);
}
