//! `profile` and `tune` on a bootstrapped network: a reduced ResNet (two basic blocks, one
//! strided with a 1×1 shortcut, pooling, dense) deeper than the log N = 13 preset, compiled with
//! the real bootstrapper's keys at log N = 13 (insecure test parameters) and planned with its
//! bootstrap steps; and, `#[ignore]`d, ResNet-20 at log N = 16 run for real by `tune --verify`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hetier_he::model::zoo;

fn hetier() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hetier"))
}

fn ok(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The reduced ResNet saved as a model file in `dir`; returns the description's path.
fn tiny_resnet(dir: &Path) -> PathBuf {
    zoo::reduced_resnet().unwrap().save(dir).unwrap()
}

#[test]
fn profile_and_tune_plan_a_bootstrapped_network() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_resnet(&dir.path().join("model"));
    let costs = dir.path().join("costs.json");
    // Op times and one bootstrap at log N = 13, measured here.
    let out = hetier()
        .args(["calibrate", "-q", "--log-n", "13", "--bootstrap", "--repeats", "1"])
        .args(["--object-mib", "4", "--dir"])
        .arg(dir.path())
        .arg("--out")
        .arg(&costs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = dir.path().join("svg");
    let v = ok(&hetier()
        .args(["--json", "profile", "--plan", "--log-n", "13", "--model-file"])
        .arg(&model)
        .arg("--costs")
        .arg(&costs)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap());
    let layers = v["layers"].as_array().unwrap();
    let boots: u64 = layers.iter().map(|l| l["bootstraps"].as_u64().unwrap()).sum();
    // Counted once each (not once per key step), as the program lists them.
    assert!((3..=20).contains(&boots), "the reduced ResNet bootstraps several times: {boots}");
    // Every layer's ops are attributed (a bootstrap's key steps included): per-layer key
    // bytes add up to those the trace pins.
    assert!(layers.iter().all(|l| l["ops"].as_u64().unwrap() > 0));
    assert!(v["footprint"]["keys_mib"].as_f64().unwrap() > 0.0);
    assert_eq!(v["footprint"]["weights_mib"], 0.0, "weights are encoded on the fly");
    assert!(svg.join("memory_timeline.svg").exists());

    let v = ok(&hetier()
        .args(["--json", "tune", "--log-n", "13", "--points", "6", "--images", "2"])
        .arg("--model-file")
        .arg(&model)
        .arg("--costs")
        .arg(&costs)
        .output()
        .unwrap());
    let curve = v["curve"].as_array().unwrap();
    let lines: std::collections::BTreeSet<&str> =
        curve.iter().map(|r| r["policy"].as_str().unwrap()).collect();
    assert_eq!(lines, ["alpha", "kernel", "lru", "planned"].into_iter().collect());
    let rec = &v["recommended"];
    assert!(rec["slowdown"].as_f64().unwrap() <= 1.10, "{rec}");
    // Missing bootstrap costs: the error says how to measure them.
    let plain = dir.path().join("plain.json");
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&costs).unwrap()).unwrap();
    let ops = file["op_costs"][0]["top_ns"].as_object_mut().unwrap();
    assert!(ops.remove("bootstrap_key").is_some());
    std::fs::write(&plain, file.to_string()).unwrap();
    let out = hetier()
        .args(["tune", "--log-n", "13", "--model-file"])
        .arg(&model)
        .arg("--costs")
        .arg(&plain)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--bootstrap"), "{err}");
}

/// ResNet-20 at log N = 16 with bootstrapping: `tune` plans the real program, recommends a
/// budget, and `--verify` runs it for real in cgroups (hours on a loaded 2-core machine: keys
/// first, then about 200 s per image and run):
///
/// ```text
/// hetier calibrate --log-n 16 --bootstrap --out /var/tmp/costs16.json
/// hetier tune --model resnet20 --target-slowdown 1.10 --images 2 --verify \
///     --costs /var/tmp/costs16.json --dir /var/tmp/hetier-tune-resnet20
/// cargo test --release -p hetier-cli --test tune_deep -- --ignored resnet20_verify
/// ```
#[test]
#[ignore = "ResNet-20 at log N = 16 for real, hours: cargo test --release -p hetier-cli --test tune_deep -- --ignored resnet20_verify"]
fn resnet20_verify() {
    let dir = PathBuf::from("/var/tmp/hetier-tune-resnet20");
    let costs = PathBuf::from("/var/tmp/costs16.json");
    if !costs.exists() {
        let out = hetier()
            .args(["calibrate", "-q", "--log-n", "16", "--bootstrap", "--out"])
            .arg(&costs)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let v = ok(&hetier()
        .args(["--json", "tune", "--model", "resnet20", "--target-slowdown", "1.10"])
        .args(["--images", "2", "--verify", "--costs"])
        .arg(&costs)
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap());
    let runs = v["verify"].as_array().unwrap();
    let rec = &runs[1];
    assert_eq!(rec["run"], "recommended");
    assert_eq!(rec["outputs_equal_all_dram"], true, "{rec}");
    let error = v["stated_error"].as_f64().unwrap();
    let m = rec["compute_normalised_slowdown"].as_f64().expect("the run finished");
    assert!(m <= v["target_slowdown"].as_f64().unwrap() + error, "{rec}");
}
