//! The CLI end to end: the demo leaves a pool that `inspect` reads back and checks.

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

#[test]
fn inspect_of_a_missing_pool_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = hetier().arg("inspect").arg(dir.path().join("nope")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("opening pool"));
}

#[test]
fn run_digits_agrees_with_plaintext_and_reuses_pooled_keys() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let run = || {
        let out = hetier()
            .args(["--json", "run", "--images", "2", "--dram-mib", "24", "--dir"])
            .arg(&pool)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
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
            "op_costs":[{"log_n":16,"q_len":31,"p_len":11,"top_ns":{"rotate":4e8,"rotate_hoisted":3e8,"hoist":2e8,"mul_relin":4e8,"conjugate":4e8,"rescale":5e7,"mul_plain":1e7,"add":5e6}}]}"#,
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
    assert_eq!(first["setup"]["keys_generated"], 31);
    let runs = first["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for r in runs {
        assert_eq!(r["outputs_equal_all_dram"], true, "{}", r["name"]);
        assert!(r["hwm"].as_u64().unwrap() > 0);
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
    assert_eq!(second["setup"]["keys_reused"], 31);
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
    for policy in ["lru", "alpha", "planned"] {
        let out = hetier()
            .args(["--json", "run", "--images", "1", "--dram-mib", "24", "--policy", policy])
            .output()
            .unwrap();
        assert!(out.status.success(), "{policy}: {}", String::from_utf8_lossy(&out.stderr));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["agree_with_plaintext"], 1, "{policy}");
        assert_eq!(r["policy"], policy);
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
