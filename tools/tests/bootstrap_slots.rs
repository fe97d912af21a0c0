//! `hetier bootstrap --slots`: a sparse bootstrap at a test size against its plaintext, and a
//! bad slot count refused with the numbers.

use std::process::Command;

fn bootstrap(slots: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hetier"))
        .args(["--json", "bootstrap", "--log-n", "12", "--levels", "1", "--insecure-test-params"])
        .args(["--slots", slots])
        .output()
        .unwrap()
}

#[test]
fn a_sparse_bootstrap_reports_its_slots_and_precision() {
    let out = bootstrap("64");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["slots"], 64);
    assert_eq!(r["levels_after"], 1);
    assert!(r["precision_bits"].as_f64().unwrap() >= 20.0, "{r}");
}

#[test]
fn a_slot_count_that_is_not_a_power_of_two_is_refused() {
    let out = bootstrap("100");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("100 slots") && err.contains("2048"), "{err}");
}
