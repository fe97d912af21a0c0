//! Full-size plans: valid traces, bootstraps, nothing leaked, weights stored or encoded on the fly.

use super::*;
use crate::ckks::Preset;

fn costs() -> OpCosts {
    let top_ns = [
        ("rotate", 4e8),
        ("rotate_hoisted", 3e8),
        ("hoist", 2e8),
        ("mul_relin", 4e8),
        ("conjugate", 4e8),
        ("rescale", 5e7),
        ("mul_plain", 1e7),
        ("add", 5e6),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    OpCosts { log_n: 16, q_len: 31, p_len: 11, top_ns }
}

#[test]
#[ignore = "plans MobileNetV2 and ResNet-50 at full size (a few seconds each)"]
fn large_tables_plan() {
    let params = Preset::N16.params().unwrap();
    let c = costs();
    for name in ["mobilenet_v2_1.0_224", "resnet50_v1.5"] {
        let table = LayerTable::load(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../models/tables/{name}.json")),
        )
        .unwrap();
        let (trace, s) = FullPlanner::new(&params, &c).unwrap().plan(&table).unwrap();
        trace.validate().unwrap();
        eprintln!("{s:#?} events {}", trace.events.len());
    }
}

#[test]
fn resnet20_plan_is_a_valid_trace_with_bootstraps() {
    let table = LayerTable::load(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../models/tables/resnet20_cifar10.json"),
    )
    .unwrap();
    let params = Preset::N16.params().unwrap();
    let c = costs();
    let (trace, s) = FullPlanner::new(&params, &c).unwrap().plan(&table).unwrap();
    trace.validate().unwrap();
    eprintln!("{s:#?}");
    assert!(s.bootstraps > 0);
    assert!(s.rotation_keys > 10);
    assert_eq!(s.peak_live_bytes, trace.footprint());
    // Every ciphertext written is removed by the end (nothing leaks).
    let puts = trace
        .events
        .iter()
        .filter(|e| matches!(e, TraceEvent::Put { kind: ObjectClass::Ciphertext, .. }))
        .count();
    let removes = trace.events.iter().filter(|e| matches!(e, TraceEvent::Remove { .. })).count();
    assert_eq!(puts, removes);
    let key = SizeModel::new(&params).key();
    assert_eq!(s.key_bytes, key * (s.rotation_keys as u64 + 2));
}

#[test]
fn weights_encoded_on_the_fly_trade_encodes_for_memory() {
    let table = LayerTable::load(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../models/tables/resnet20_cifar10.json"),
    )
    .unwrap();
    let params = Preset::N16.params().unwrap();
    let c = costs();
    // Without an encode time the mode is refused rather than planned as free.
    assert!(matches!(
        FullPlanner::new(&params, &c).unwrap().with_weight_mode(WeightMode::OnTheFly),
        Err(Error::InvalidParameter { .. })
    ));
    let mut c_enc = c.clone();
    c_enc.top_ns.insert("encode".into(), 2e7);
    let (stored_trace, stored) = FullPlanner::new(&params, &c_enc).unwrap().plan(&table).unwrap();
    let (trace, s) = FullPlanner::new(&params, &c_enc)
        .unwrap()
        .with_weight_mode(WeightMode::OnTheFly)
        .unwrap()
        .plan(&table)
        .unwrap();
    trace.validate().unwrap();
    assert_eq!(s.weight_bytes, 0);
    // Same cryptographic work, one encode per plaintext product.
    assert_eq!(s.key_switches, stored.key_switches);
    let products = |t: &Trace| {
        t.events
            .iter()
            .filter(|e| matches!(e, TraceEvent::Op { name, .. } if name == "mul_plain"))
            .count()
    };
    assert_eq!(products(&trace), products(&stored_trace));
    assert_eq!(s.encodes as usize, products(&trace));
    // Raw weights: every table layer's parameters as f64, plus the bootstrapping stages.
    let table_params: u64 = table.layers.iter().map(|r| r.weights + r.bias).sum();
    let dft = 63 * params.slots() as u64 * 16;
    assert!(s.raw_weight_bytes >= table_params * 8);
    assert_eq!(
        (s.raw_weight_bytes - table_params * 8) % dft,
        0,
        "bootstrap stages are whole blobs"
    );
    // The encoded weights were most of the stored plan's peak; on the fly they are not stored.
    assert!(
        s.peak_live_bytes < stored.peak_live_bytes / 2,
        "{} vs {}",
        s.peak_live_bytes,
        stored.peak_live_bytes
    );
    assert!(s.compute_ns > stored.compute_ns);
}
