//! A reduced ResNet (two basic blocks, one strided with a 1×1 shortcut, pooling, dense) run
//! encrypted with real bootstraps at log N = 12 and checked against the f64 reference.

use std::sync::Arc;

use crate::ckks::bootstrap::{BootstrapPreset, Bootstrapper};
use crate::ckks::{Context, Decryptor, Encoder, Encryptor, KeyGenerator};
use crate::model::synthetic::uniform;
use crate::model::zoo::reduced_resnet;
use crate::model::{argmax, Model, DEFAULT_MARGIN};
use crate::nn::{AccessMode, BootstrapSpec, Interpreter, KeyBundle};

/// A sample image (bytes) and its prepared values.
pub(crate) fn sample(m: &Model, i: u64) -> (Vec<u8>, Vec<f64>) {
    let raw: Vec<u8> = uniform(200 + i, 64).iter().map(|v| ((v + 1.0) * 127.5) as u8).collect();
    let x = m.prepare_input(&raw).unwrap();
    (raw, x)
}

#[test]
fn tiny_resnet_bootstraps_and_matches_the_reference_in_the_interpreter() {
    let m = reduced_resnet().unwrap();
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
