//! `hetier run --encrypted-weights`: both sides agree with the plaintext model, and the
//! encrypted side's weight objects are ciphertexts (twice the bytes of the plaintexts).

use std::process::Command;

#[test]
fn digits_side_by_side() {
    let out = Command::new(env!("CARGO_BIN_EXE_hetier"))
        .args(["--json", "run", "--encrypted-weights", "--images", "2", "--dram-mib", "48"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (plain, enc) = (&v[0], &v[1]);
    assert_eq!(
        (plain["weights"].as_str(), enc["weights"].as_str()),
        (Some("plaintext"), Some("encrypted"))
    );
    for s in [plain, enc] {
        assert_eq!(s["agree_with_plaintext"], 2, "{s}");
        assert!(s["max_logit_error"].as_f64().unwrap() < 1e-3, "{s}");
    }
    assert_eq!(plain["weight_objects"], enc["weight_objects"]);
    assert_eq!(enc["weight_bytes"].as_u64().unwrap(), 2 * plain["weight_bytes"].as_u64().unwrap());
}
