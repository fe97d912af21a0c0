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
