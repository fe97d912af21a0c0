use std::collections::HashMap;
use std::path::PathBuf;

use safetensors::tensor::TensorView;
use safetensors::Dtype;

use super::*;
use crate::ckks::Preset;
use crate::error::{Error, Result};

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn json(name: &str) -> String {
    std::fs::read_to_string(models_dir().join(format!("{name}.json"))).unwrap()
}

fn weights(name: &str) -> Vec<u8> {
    std::fs::read(models_dir().join(format!("{name}.safetensors"))).unwrap()
}

fn load_variant(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Result<Model> {
    let mut v: serde_json::Value = serde_json::from_str(&json(name)).unwrap();
    edit(&mut v);
    let desc = ModelDesc::from_json(&v.to_string())?;
    Model::from_parts(desc, &weights(name))
}

/// Rewrites the digits weights with `edit` applied to the (name → (shape, f32 values)) map.
fn digits_with_tensors(
    edit: impl FnOnce(&mut HashMap<String, (Vec<usize>, Vec<u8>)>),
) -> Result<Model> {
    let bytes = weights("digits");
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut m: HashMap<String, (Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, (v.shape().to_vec(), v.data().to_vec())))
        .collect();
    edit(&mut m);
    let views: Vec<(String, TensorView<'_>)> = m
        .iter()
        .map(|(n, (s, d))| (n.clone(), TensorView::new(Dtype::F32, s.clone(), d).unwrap()))
        .collect();
    let out = safetensors::serialize(views, &None).unwrap();
    Model::from_parts(ModelDesc::from_json(&json("digits")).unwrap(), &out)
}

#[test]
fn committed_models_load_and_reproduce_reference_logits() {
    // (name, depth, layers, test images checked): the ResNet-20s are checked on their first 100
    // test images only, to keep the debug-free reference pass (40 M MACs an image) quick.
    // ResNet-20 depth: conv1 + act1 (1 + d), nine blocks of conv, act, conv, add, act
    // (2 + 2d each, the shortcut is shallower), pool and fc (2); d = 2 for the degree-2
    // polynomial, 5 for the degree-31 ReLU interpolant.
    for (name, depth, layers, images) in [
        ("digits", 3, 3, usize::MAX),
        ("digits_wide", 5, 5, usize::MAX),
        ("cryptonets", 5, 6, usize::MAX),
        ("resnet20", 59, 52, 100),
        ("resnet20_relu", 116, 52, 100),
    ] {
        let m = Model::load(models_dir().join(format!("{name}.json"))).unwrap();
        assert_eq!(m.name(), name);
        assert_eq!(m.depth(), depth, "{name}");
        assert_eq!(m.layers().len(), layers);
        let ts = m.test_set().unwrap();
        let mut correct = 0;
        let mut worst = 0.0f64;
        let n = ts.len().min(images);
        for i in 0..n {
            let x = m.prepare_input(ts.image(i)).unwrap();
            let y = m.forward(&x).unwrap();
            for (a, b) in y.iter().zip(ts.reference_logits(i)) {
                worst = worst.max((a - b).abs());
            }
            if argmax(&y) == Some(ts.labels[i] as usize) {
                correct += 1;
            }
        }
        assert!(worst < 1e-9, "{name}: logits differ by {worst}");
        let acc = correct as f64 / n as f64;
        assert!(acc > 0.95, "{name}: accuracy {acc}");
    }
}

#[test]
fn depth_check_names_the_layer_that_runs_out() {
    let m = Model::load(models_dir().join("digits.json")).unwrap();
    m.check_depth(&Preset::N14.params().unwrap()).unwrap();
    let err = m.check_depth(&Preset::N13.params().unwrap()).unwrap_err();
    assert_eq!(err, Error::ModelTooDeep { layer: "fc2".into(), needed: 1, available: 0 });
    let c = Model::load(models_dir().join("cryptonets.json")).unwrap();
    let err = c.check_depth(&Preset::N13.params().unwrap()).unwrap_err();
    assert_eq!(err, Error::ModelTooDeep { layer: "fc1".into(), needed: 1, available: 0 });
}

#[test]
fn malformed_descriptions_are_typed_errors() {
    let text = json("digits");
    assert!(matches!(
        ModelDesc::from_json(&text[..text.len() / 2]),
        Err(Error::ModelFormat { .. })
    ));
    let err = load_variant("digits", |v| v["schema"] = "hetier-model/9".into()).unwrap_err();
    assert!(matches!(err, Error::ModelFormat { reason } if reason.contains("hetier-model/9")));
    let err = load_variant("digits", |v| {
        v["layers"][1]["kind"] = "maxpool".into();
    })
    .unwrap_err();
    assert_eq!(err, Error::UnknownLayerKind { layer: "act1".into(), kind: "maxpool".into() });
    // A dense layer without its weight field.
    let err = load_variant("digits", |v| {
        v["layers"][0].as_object_mut().unwrap().remove("weight");
    })
    .unwrap_err();
    assert!(matches!(err, Error::ModelLayer { layer, .. } if layer == "fc1"));
    // Declared shapes that do not follow from the layer.
    let err = load_variant("digits", |v| v["layers"][2]["out_shape"] = serde_json::json!([11]))
        .unwrap_err();
    assert!(matches!(err, Error::ModelLayer { layer, .. } if layer == "fc2"));
    let err = load_variant("digits", |v| {
        v["layers"][2]["in_features"] = 31.into();
        v["layers"][2]["in_shape"] = serde_json::json!([31]);
    })
    .unwrap_err();
    assert!(matches!(err, Error::ModelLayer { layer, .. } if layer == "fc2"));
    let err = load_variant("digits", |v| v["layers"][1]["inputs"] = serde_json::json!(["nope"]))
        .unwrap_err();
    assert!(matches!(err, Error::ModelLayer { layer, .. } if layer == "act1"));
    let err = load_variant("digits", |v| v["layers"][1]["name"] = "fc1".into()).unwrap_err();
    assert!(matches!(err, Error::ModelLayer { reason, .. } if reason.contains("duplicate")));
    let err = load_variant("digits", |v| {
        v["layers"][1]["activation"] =
            serde_json::json!({"type": "chebyshev", "fn": "relu", "range": [-1, 1], "degree": 3, "coeffs": [1, 2]});
    })
    .unwrap_err();
    assert!(matches!(err, Error::ModelLayer { layer, .. } if layer == "act1"));
    let err = load_variant("cryptonets", |v| v["layers"][0]["stride"] = serde_json::json!([0, 2]))
        .unwrap_err();
    assert!(matches!(err, Error::ModelLayer { layer, .. } if layer == "conv1"));
}

#[test]
fn missing_and_misshaped_tensors_name_the_layer() {
    let err = load_variant("digits", |v| v["layers"][2]["bias"] = "fc9.bias".into()).unwrap_err();
    assert_eq!(err, Error::MissingTensor { layer: "fc2".into(), tensor: "fc9.bias".into() });
    let err = digits_with_tensors(|m| {
        m.remove("fc1.weight");
    })
    .unwrap_err();
    assert_eq!(err, Error::MissingTensor { layer: "fc1".into(), tensor: "fc1.weight".into() });
    let err = digits_with_tensors(|m| {
        let (s, _) = m.get_mut("fc2.weight").unwrap();
        *s = vec![32, 10];
    })
    .unwrap_err();
    assert_eq!(
        err,
        Error::TensorShape {
            layer: "fc2".into(),
            tensor: "fc2.weight".into(),
            expected: vec![10, 32],
            found: vec![32, 10],
        }
    );
    let err = digits_with_tensors(|m| {
        let (_, d) = m.get_mut("fc1.bias").unwrap();
        d[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    })
    .unwrap_err();
    assert!(matches!(err, Error::ModelLayer { layer, .. } if layer == "fc1"));
    let err =
        Model::from_parts(ModelDesc::from_json(&json("digits")).unwrap(), b"garbage").unwrap_err();
    assert!(matches!(err, Error::WeightsFormat { .. }));
    assert!(matches!(Model::load("/nonexistent/m.json"), Err(Error::ModelIo { .. })));
}

#[test]
fn activations_match_their_definitions() {
    let sig = Activation::Poly { coeffs: vec![0.5, 0.25, 0.0, -1.0 / 48.0, 0.0, 1.0 / 480.0] };
    assert_eq!(sig.depth(), 3);
    assert!((sig.eval(1.0) - (0.5 + 0.25 - 1.0 / 48.0 + 1.0 / 480.0)).abs() < 1e-15);
    assert_eq!(Activation::Square.depth(), 1);
    // T_0 + 2 T_1 + 3 T_2 on [0, 2] at x = 1.5: t = 0.5, T_2 = -0.5.
    let ch = Activation::Chebyshev {
        func: "relu".into(),
        range: [0.0, 2.0],
        degree: 2,
        coeffs: vec![1.0, 2.0, 3.0],
    };
    assert!((ch.eval(1.5) - (1.0 + 1.0 - 1.5)).abs() < 1e-15);
    assert_eq!(ch.depth(), 2);
    let deg15 = Activation::Chebyshev {
        func: "relu".into(),
        range: [-1.0, 1.0],
        degree: 15,
        coeffs: vec![0.0; 16],
    };
    assert_eq!(deg15.depth(), 4);
}

#[test]
fn reference_conv_and_pool_match_direct_sums() {
    // 1×3×3 input, one 2×2 kernel of ones, stride 1, padding 1 on top/left only.
    let x: Vec<f64> = (1..=9).map(f64::from).collect();
    let y = reference::conv2d(
        &x,
        &[1, 3, 3],
        &[1, 3, 3],
        &[1.0; 4],
        Some(&[0.5]),
        [2, 2],
        [1, 1],
        [1, 0, 1, 0],
        1,
    );
    assert_eq!(y, vec![1.5, 3.5, 5.5, 5.5, 12.5, 16.5, 11.5, 24.5, 28.5]);
    let p = reference::avgpool(&x, &[1, 3, 3], &[1, 1, 1], [3, 3], [1, 1], [0; 4]);
    assert_eq!(p, vec![5.0]);
}
