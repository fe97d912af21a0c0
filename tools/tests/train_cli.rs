//! `hetier train` end to end at a small ring (insecure test parameters): both tasks over the
//! tiered store, encrypted against plaintext, and the depth check as a clean failure.

use std::process::Command;

fn train(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hetier"))
        .args(["--json", "train", "--log-n", "12", "--insecure-test-params", "--seed", "9"])
        .args(args)
        .output()
        .unwrap()
}

fn report(args: &[&str]) -> serde_json::Value {
    let out = train(args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn linreg_and_logreg_agree_with_plaintext() {
    let lin =
        report(&["--task", "linreg", "--data", "diabetes", "--iters", "4", "--dram-mib", "32"]);
    assert!(lin["weights_max_abs_diff"].as_f64().unwrap() < 1e-3, "{lin}");
    assert!(lin["loss_max_abs_diff"].as_f64().unwrap() < 1e-3, "{lin}");
    assert_eq!(lin["iterations"].as_array().unwrap().len(), 5);
    assert_eq!(lin["bootstraps"], 0);
    assert!(lin["test_encrypted"].as_f64().unwrap() > 0.3, "R² {lin}");
    assert!(lin["store_bytes_pm_to_dram"].as_u64().unwrap() > 0, "{lin}");

    let log = report(&[
        "--task",
        "logreg",
        "--data",
        "digits01",
        "--iters",
        "3",
        "--max-samples",
        "96",
        "--in-memory",
    ]);
    assert!(log["weights_max_abs_diff"].as_f64().unwrap() < 1e-3, "{log}");
    assert!(log["test_encrypted"].as_f64().unwrap() > 0.9, "accuracy {log}");
    assert_eq!(log["ciphertexts_in"], "memory");
}

#[test]
fn too_many_iterations_fail_with_the_depth_in_the_message() {
    // The chain is sized for the run at small N, so ask at log N = 16 with secure parameters:
    // 40 iterations of linreg need 81 levels, the chain has 31.
    let out = Command::new(env!("CARGO_BIN_EXE_hetier"))
        .args(["train", "--task", "linreg", "--data", "diabetes", "--iters", "40"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("need 81 levels") && err.contains("at most 15 iteration"), "{err}");
}
