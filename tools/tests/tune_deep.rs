//! `profile` and `tune` on a bootstrapped network: a reduced ResNet (two basic blocks, one
//! strided with a 1×1 shortcut, pooling, dense) deeper than the log N = 13 preset, compiled with
//! the real bootstrapper's keys at log N = 13 (insecure test parameters) and planned with its
//! bootstrap steps; and, `#[ignore]`d, ResNet-20 at log N = 16 run for real by `tune --verify`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hetier_he::model::{MaxAbs, Model, ModelDesc, Tensor};

fn hetier() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hetier"))
}

fn ok(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Deterministic pseudo-random values in [−1, 1).
fn noise(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

fn conv(
    name: &str,
    input: &str,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    hw: usize,
) -> String {
    let (p, o) = (k / 2, hw / stride);
    format!(
        r#"{{"name":"{name}","kind":"conv2d","inputs":["{input}"],"in_channels":{cin},
        "out_channels":{cout},"kernel":[{k},{k}],"stride":[{stride},{stride}],
        "padding":[{p},{p},{p},{p}],"groups":1,"weight":"{name}.weight","bias":"{name}.bias",
        "in_shape":[{cin},{hw},{hw}],"out_shape":[{cout},{o},{o}]}}"#
    )
}

fn act(name: &str, input: &str, c: usize, hw: usize) -> String {
    format!(
        r#"{{"name":"{name}","kind":"activation","inputs":["{input}"],
        "activation":{{"type":"poly","coeffs":[0.05,0.5,0.1]}},
        "in_shape":[{c},{hw},{hw}],"out_shape":[{c},{hw},{hw}]}}"#
    )
}

fn add(name: &str, a: &str, b: &str, c: usize, hw: usize) -> String {
    format!(
        r#"{{"name":"{name}","kind":"add","inputs":["{a}","{b}"],
        "in_shape":[{c},{hw},{hw}],"out_shape":[{c},{hw},{hw}]}}"#
    )
}

/// The reduced ResNet on 8×8 images (4 then 8 channels), its layer ranges recorded from the
/// reference pass, saved as a model file in `dir`; returns the description's path.
fn tiny_resnet(dir: &Path) -> PathBuf {
    let layers = [
        conv("conv0", "input", 1, 4, 3, 1, 8),
        act("act0", "conv0", 4, 8),
        conv("b1c1", "act0", 4, 4, 3, 1, 8),
        act("b1a1", "b1c1", 4, 8),
        conv("b1c2", "b1a1", 4, 4, 3, 1, 8),
        add("b1add", "b1c2", "act0", 4, 8),
        act("b1a2", "b1add", 4, 8),
        conv("b2c1", "b1a2", 4, 8, 3, 2, 8),
        act("b2a1", "b2c1", 8, 4),
        conv("b2c2", "b2a1", 8, 8, 3, 1, 4),
        conv("b2sc", "b1a2", 4, 8, 1, 2, 8),
        add("b2add", "b2c2", "b2sc", 8, 4),
        act("b2a2", "b2add", 8, 4),
        r#"{"name":"pool","kind":"avgpool","inputs":["b2a2"],"kernel":[4,4],"stride":[4,4],
           "padding":[0,0,0,0],"in_shape":[8,4,4],"out_shape":[8,1,1]}"#
            .to_owned(),
        r#"{"name":"flat","kind":"flatten","inputs":["pool"],"in_shape":[8,1,1],
           "out_shape":[8]}"#
            .to_owned(),
        r#"{"name":"fc","kind":"dense","inputs":["flat"],"in_features":8,"out_features":10,
           "weight":"fc.weight","bias":"fc.bias","in_shape":[8],"out_shape":[10]}"#
            .to_owned(),
    ];
    let json = format!(
        r#"{{"schema":"hetier-model/1","name":"tiny_resnet","description":"test",
        "input":{{"shape":[1,8,8],"dtype":"uint8","scale":0.00392156862745098,"offset":0.0,
        "layout":"8x8"}},"classes":10,"weights":"tiny_resnet.safetensors",
        "layers":[{}]}}"#,
        layers.join(",")
    );
    let mut desc = ModelDesc::from_json(&json).unwrap();
    let shapes: [(&str, Vec<usize>); 7] = [
        ("conv0", vec![4, 1, 3, 3]),
        ("b1c1", vec![4, 4, 3, 3]),
        ("b1c2", vec![4, 4, 3, 3]),
        ("b2c1", vec![8, 4, 3, 3]),
        ("b2c2", vec![8, 8, 3, 3]),
        ("b2sc", vec![8, 4, 1, 1]),
        ("fc", vec![10, 8]),
    ];
    let mut tensors = BTreeMap::new();
    for (i, (name, shape)) in shapes.iter().enumerate() {
        let fan_in: usize = shape[1..].iter().product();
        let w = noise(i as u64 + 1, shape.iter().product())
            .into_iter()
            .map(|v| v * 1.2 / (fan_in as f64).sqrt())
            .collect();
        tensors.insert(format!("{name}.weight"), Tensor { shape: shape.clone(), data: w });
        let b = noise(i as u64 + 50, shape[0]).into_iter().map(|v| 0.1 * v).collect();
        tensors.insert(format!("{name}.bias"), Tensor { shape: vec![shape[0]], data: b });
    }
    let m = Model::from_tensors(desc.clone(), tensors.clone()).unwrap();
    let mut ranges = vec![0.0f64; desc.layers.len()];
    for s in 0..8 {
        let x: Vec<f64> = noise(100 + s, 64).into_iter().map(|v| 0.5 + 0.5 * v).collect();
        for (r, y) in ranges.iter_mut().zip(m.forward_all(&x).unwrap()) {
            *r = y.iter().fold(*r, |a, v| a.max(v.abs()));
        }
    }
    for (l, r) in desc.layers.iter_mut().zip(ranges) {
        l.max_abs = Some(MaxAbs { train: r, test: r });
    }
    Model::from_tensors(desc, tensors).unwrap().save(dir).unwrap()
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
