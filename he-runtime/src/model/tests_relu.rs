//! ReLU (Chebyshev) activations and residual adds in model descriptions, compiled slot-packed
//! and checked against the plaintext reference ([`Model::forward`]). The batch-major half of
//! these tests is in `exec/batched/tests.rs` (the batch-major lowering lives in `exec`); it
//! builds its models with the helpers here.

use std::path::PathBuf;

use serde_json::json;

use super::*;
use crate::ckks::{Context, Decryptor, Encoder, Encryptor, KeyGenerator, Preset};
use crate::error::{Error, Result};
use crate::nn::{Interpreter, KeyBundle};

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// The digits network with its square replaced by a ReLU of `degree` on [−1.2, 1.2] and a
/// residual add of the ReLU and its input: fc1 → relu → add(relu, fc1) → fc2.
pub(crate) fn relu_residual(degree: usize) -> Result<Model> {
    let text = std::fs::read_to_string(models_dir().join("digits.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let layers = v["layers"].as_array_mut().unwrap();
    layers[1]["activation"] = json!({ "type": "relu", "range": [-1.2, 1.2], "degree": degree });
    layers.insert(
        2,
        json!({
            "name": "add1", "kind": "add", "inputs": ["act1", "fc1"],
            "in_shape": [32], "out_shape": [32]
        }),
    );
    let desc = ModelDesc::from_json(&v.to_string())?;
    Model::from_parts(desc, &std::fs::read(models_dir().join("digits.safetensors")).unwrap())
}

pub(crate) fn test_set() -> TestSet {
    let bytes = std::fs::read(models_dir().join("digits.test.safetensors")).unwrap();
    TestSet::from_bytes("digits.test.safetensors", &bytes).unwrap()
}

pub(crate) fn max_err(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// fc1 → square → fc2 → add(fc2, fc2) → relu: the ReLU reads an add, not a linear layer, so
/// mapping x to its Chebyshev variable costs a rescale on top of its 2 levels.
pub(crate) fn add_then_relu() -> Model {
    let text = std::fs::read_to_string(models_dir().join("digits.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let layers = v["layers"].as_array_mut().unwrap();
    layers.push(json!({
        "name": "add1", "kind": "add", "inputs": ["fc2", "fc2"], "in_shape": [10], "out_shape": [10]
    }));
    layers.push(json!({
        "name": "act2", "kind": "activation", "activation": { "type": "relu", "range": [-8, 8], "degree": 3 },
        "in_shape": [10], "out_shape": [10]
    }));
    let desc = ModelDesc::from_json(&v.to_string()).unwrap();
    Model::from_parts(desc, &std::fs::read(models_dir().join("digits.safetensors")).unwrap())
        .unwrap()
}

#[test]
fn relu_description_is_the_chebyshev_interpolant() {
    let m = relu_residual(7).unwrap();
    let LayerKind::Activation(a) = &m.layers()[1].kind else { panic!() };
    assert_eq!(a.depth(), 3);
    // Degree 7 on [−1.2, 1.2]: within 0.1 of ReLU everywhere on the range (worst at the kink).
    for i in 0..=24 {
        let x = -1.2 + 0.1 * i as f64;
        assert!((a.eval(x) - x.max(0.0)).abs() < 0.1, "{x}: {}", a.eval(x));
    }
    assert_eq!(m.depth(), 5);
}

#[test]
fn relu_and_residual_run_slot_packed() {
    let m = relu_residual(7).unwrap();
    let params = Preset::N14.params().unwrap();
    let c = m.compile(&params).unwrap();
    let ctx = Context::new(&params).unwrap();
    let mut kg = KeyGenerator::with_seed(&ctx, [3; 32]);
    let sk = kg.secret_key();
    let keys = KeyBundle::generate(&mut kg, &sk, &c.program).unwrap();
    let enc = Encoder::new(&ctx);
    let ts = test_set();
    for i in 0..2 {
        let x = m.prepare_input(ts.image(i)).unwrap();
        let pt = enc
            .encode_real(&c.pack(&x, params.slots()).unwrap(), params.max_level(), params.scale())
            .unwrap();
        let ct = Encryptor::with_seed(&ctx, [i as u8; 32]).encrypt_sk(&sk, &pt).unwrap();
        let mut it = Interpreter::new(&ctx, &c.program, &keys).unwrap();
        it.set_input("input", ct).unwrap();
        it.run().unwrap();
        let out = Decryptor::new(&ctx, &sk).unwrap().decrypt(it.output("logits").unwrap()).unwrap();
        let y = c.output_layout.unpack(&enc.decode_real(&out).unwrap());
        let want = m.forward(&x).unwrap();
        let err = max_err(&y, &want);
        eprintln!("slot-packed relu+residual sample {i}: max err {err:e}");
        assert!(err < 1e-3, "{err}");
        assert_eq!(argmax(&y), argmax(&want));
    }
}

#[test]
fn too_deep_relu_is_a_typed_error_naming_the_layer() {
    // Degree 31 needs 5 levels: fc1 + 5 = 6 > 5 already at the activation.
    let m = relu_residual(31).unwrap();
    let err = m.compile(&Preset::N14.params().unwrap()).unwrap_err();
    assert!(
        matches!(&err, Error::ModelTooDeep { layer, needed: 5, .. } if layer == "act1"),
        "{err:?}"
    );
    // Degree 15 fits the activation but leaves no level for fc2, which is named.
    let m = relu_residual(15).unwrap();
    let err = m.compile(&Preset::N14.params().unwrap()).unwrap_err();
    assert!(matches!(&err, Error::ModelTooDeep { layer, .. } if layer == "fc2"), "{err:?}");
    // A zero degree is rejected while parsing, naming the layer.
    assert!(matches!(relu_residual(0), Err(Error::ModelLayer { layer, .. }) if layer == "act1"));
}

#[test]
fn activation_whose_input_map_costs_a_level_is_depth_exceeded() {
    // The description's depth (5) fits; compiling finds 3 levels needed with 2 left.
    let m = add_then_relu();
    assert_eq!(m.depth(), 5);
    let err = m.compile(&Preset::N14.params().unwrap()).unwrap_err();
    assert_eq!(err, Error::DepthExceeded { layer: "act2".into(), needed: 3, available: 2 });
}
