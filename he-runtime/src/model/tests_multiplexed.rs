//! A reduced MobileNet (space-to-depth stem over two input ciphertexts, padded average pool,
//! stride-2 and stride-1 depthwise inverted residuals, a residual add, global pool, dense)
//! compiled with the multiplexed packing, run encrypted with real bootstraps at log N = 12
//! (insecure test parameters) and checked against the f64 reference; the interpreter's
//! accesses are the program's trace, which plan mode walks.

use std::sync::Arc;

use crate::ckks::bootstrap::{BootstrapPreset, Bootstrapper};
use crate::ckks::{Context, Decryptor, Encoder, Encryptor, KeyGenerator};
use crate::model::imagenet::{mini_mobilenet, space_to_depth};
use crate::model::synthetic::synthetic;
use crate::model::{argmax, Packing, DEFAULT_MARGIN};
use crate::nn::{AccessMode, BootstrapSpec, Interpreter, KeyBundle};

#[test]
fn a_reduced_mobilenet_bootstraps_and_matches_the_reference() {
    let m = mini_mobilenet().unwrap();
    let preset = BootstrapPreset::insecure_test(12, 5);
    let params = preset.params().unwrap();
    let ctx = Context::new(&params).unwrap();
    let bs = Arc::new(Bootstrapper::new(&ctx, &preset.config).unwrap());
    let spec = BootstrapSpec::of(&bs);
    let c = m.compile_packed(&params, &spec, DEFAULT_MARGIN, Packing::Multiplexed).unwrap();
    let p = &c.program;
    let boots = p.bootstraps();
    assert!(boots >= 2, "the reduced MobileNet needs several bootstraps ({boots})");
    assert_eq!(p.inputs().len(), 2, "12 channels of 16×16 span two ciphertexts");
    // After the stride-2 depthwise layer (gap 2: 32 channels per ciphertext) every tensor
    // is one ciphertext, the logits too.
    assert_eq!((c.output_layout.gap, p.outputs().len()), (2, 1));

    let mut kg = KeyGenerator::with_seed(&ctx, [3; 32]);
    let sk = kg.secret_key();
    let keys = KeyBundle::generate(&mut kg, &sk, p).unwrap();
    let enc = Encoder::new(&ctx);
    let dec = Decryptor::new(&ctx, &sk).unwrap();
    let raw: Vec<f64> = synthetic(999, 3 * 32 * 32).iter().map(|v| v + 0.5).collect();
    let x = space_to_depth(&raw, 3, 32, 32).unwrap();
    let want = m.forward(&x).unwrap();
    let mut it = Interpreter::new(&ctx, p, &keys).unwrap().with_bootstrapper(&bs).unwrap();
    let level = c.input_level().unwrap();
    let mut encryptor = Encryptor::with_seed(&ctx, [4; 32]);
    for ((name, _), v) in p.inputs().iter().zip(c.pack_cts(&x, params.slots()).unwrap()) {
        let pt = enc.encode_real(&v, level, params.scale()).unwrap();
        it.set_input(name, encryptor.encrypt_sk(&sk, &pt).unwrap()).unwrap();
    }
    it.run().unwrap();
    let y = c.unpack_output(
        &enc.decode_real(&dec.decrypt(it.output("logits").unwrap()).unwrap()).unwrap(),
    );
    let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let err = y.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    eprintln!("{boots} bootstraps, max logit error {err:e} (logits up to {scale:.3})");
    assert!(err < 1e-4 * scale.max(1.0), "max logit error {err}");
    assert_eq!(argmax(&y), argmax(&want));

    let real: Vec<_> = it
        .accesses()
        .iter()
        .filter(|a| a.mode != AccessMode::Free)
        .map(|a| (a.op, a.obj, a.mode))
        .collect();
    let plan: Vec<_> = p
        .trace()
        .into_iter()
        .filter(|a| a.mode != AccessMode::Free)
        .map(|a| (a.op, a.obj, a.mode))
        .collect();
    assert_eq!(real, plan);
}
