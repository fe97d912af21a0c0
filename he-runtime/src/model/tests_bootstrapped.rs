//! A reduced ResNet (two basic blocks, one strided with a 1×1 shortcut, pooling, dense) run
//! encrypted with real bootstraps at log N = 12 and checked against the f64 reference.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ckks::bootstrap::{BootstrapPreset, Bootstrapper};
use crate::ckks::{Context, Decryptor, Encoder, Encryptor, KeyGenerator};
use crate::model::{argmax, MaxAbs, Model, ModelDesc, Tensor, DEFAULT_MARGIN};
use crate::nn::{AccessMode, BootstrapSpec, Interpreter, KeyBundle};

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

/// The reduced ResNet on 8×8 images, 4 then 8 channels, with every layer's range recorded
/// from the reference pass over a few inputs (as the trainer records them).
pub(crate) fn tiny_resnet() -> Model {
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
    let mut tensors = BTreeMap::new();
    let shapes: [(&str, Vec<usize>); 8] = [
        ("conv0", vec![4, 1, 3, 3]),
        ("b1c1", vec![4, 4, 3, 3]),
        ("b1c2", vec![4, 4, 3, 3]),
        ("b2c1", vec![8, 4, 3, 3]),
        ("b2c2", vec![8, 8, 3, 3]),
        ("b2sc", vec![8, 4, 1, 1]),
        ("fc", vec![10, 8]),
        ("", vec![]),
    ];
    for (i, (name, shape)) in shapes.iter().enumerate().filter(|(_, (n, _))| !n.is_empty()) {
        let fan_in: usize = shape[1..].iter().product();
        let w: Vec<f64> = noise(i as u64 + 1, shape.iter().product())
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
    Model::from_tensors(desc, tensors).unwrap()
}

/// A sample image (bytes) and its prepared values.
pub(crate) fn sample(m: &Model, i: u64) -> (Vec<u8>, Vec<f64>) {
    let raw: Vec<u8> = noise(200 + i, 64).iter().map(|v| ((v + 1.0) * 127.5) as u8).collect();
    let x = m.prepare_input(&raw).unwrap();
    (raw, x)
}

#[test]
fn tiny_resnet_bootstraps_and_matches_the_reference_in_the_interpreter() {
    let m = tiny_resnet();
    let preset = BootstrapPreset::insecure_test(12, 5);
    let params = preset.params().unwrap();
    let ctx = Context::new(&params).unwrap();
    let bs = Arc::new(Bootstrapper::new(&ctx, &preset.config).unwrap());
    let spec = BootstrapSpec::of(&bs);
    let c = m.compile_bootstrapped(&params, &spec, DEFAULT_MARGIN).unwrap();
    let boots = c.program.bootstraps();
    assert!(boots >= 3, "the reduced ResNet needs several bootstraps ({boots})");
    assert_eq!(c.input_level().unwrap(), bs.output_level());

    let mut kg = KeyGenerator::with_seed(&ctx, [3; 32]);
    let sk = kg.secret_key();
    let keys = KeyBundle::generate(&mut kg, &sk, &c.program).unwrap();
    let enc = Encoder::new(&ctx);
    let dec = Decryptor::new(&ctx, &sk).unwrap();
    let (_, x) = sample(&m, 0);
    let want = m.forward(&x).unwrap();
    let slots = c.pack(&x, params.slots()).unwrap();
    let pt = enc.encode_real(&slots, c.input_level().unwrap(), params.scale()).unwrap();
    let ct = Encryptor::with_seed(&ctx, [4; 32]).encrypt_sk(&sk, &pt).unwrap();
    let mut it = Interpreter::new(&ctx, &c.program, &keys).unwrap().with_bootstrapper(&bs).unwrap();
    it.set_input("input", ct).unwrap();
    it.run().unwrap();
    let y = c.unpack_output(
        &enc.decode_real(&dec.decrypt(it.output("logits").unwrap()).unwrap()).unwrap(),
    );
    let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let err = y.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    eprintln!("{boots} bootstraps, max logit error {err:e} (logits up to {scale:.3})");
    assert!(err < 1e-5, "max logit error {err}");
    assert_eq!(argmax(&y), argmax(&want));

    // The run touched exactly what the program's trace says, bootstraps' keys included.
    let real: Vec<_> = it
        .accesses()
        .iter()
        .filter(|a| a.mode != AccessMode::Free)
        .map(|a| (a.op, a.obj, a.mode))
        .collect();
    let plan: Vec<_> = c
        .program
        .trace()
        .into_iter()
        .filter(|a| a.mode != AccessMode::Free)
        .map(|a| (a.op, a.obj, a.mode))
        .collect();
    assert_eq!(real, plan);
}
