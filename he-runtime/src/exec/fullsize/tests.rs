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
