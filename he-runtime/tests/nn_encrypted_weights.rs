//! Encrypted weights in memory (no store): the digits MLP rewritten so that every weight is a
//! ciphertext (ct × ct products with relinearisation) agrees with the plaintext model.

use std::path::PathBuf;

use hetier_he::ckks::{Context, Decryptor, Encoder, Encryptor, KeyGenerator, Preset};
use hetier_he::model::{argmax, Model};
use hetier_he::nn::{encrypt_weights, Interpreter, KeyBundle, Op, Program};

fn count(p: &Program, f: fn(&Op) -> bool) -> usize {
    p.ops().iter().filter(|r| f(&r.op)).count()
}

#[test]
fn digits_with_encrypted_weights_agrees_with_plaintext() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
    let m = Model::load(dir.join("digits.json")).unwrap();
    let params = Preset::N14.params().unwrap();
    let c = m.compile(&params).unwrap();
    let ew = encrypt_weights(&c.program).unwrap();
    let plain_products = count(&c.program, |o| matches!(o, Op::MulPlain { .. }));
    assert!(plain_products > 0);
    assert_eq!(count(&ew, |o| matches!(o, Op::MulPlain { .. } | Op::AddPlain { .. })), 0);
    assert_eq!(
        count(&ew, |o| matches!(o, Op::MulRelin { .. })),
        count(&c.program, |o| matches!(o, Op::MulRelin { .. })) + plain_products
    );
    let ctx = Context::new(&params).unwrap();
    let mut kg = KeyGenerator::with_seed(&ctx, [4; 32]);
    let sk = kg.secret_key();
    let keys = KeyBundle::generate(&mut kg, &sk, &ew).unwrap();
    let mut enc = Encryptor::with_seed(&ctx, [5; 32]);
    let encoder = Encoder::new(&ctx);
    let ts = m.test_set().unwrap();
    for i in 0..2 {
        let mut it = Interpreter::new(&ctx, &ew, &keys).unwrap();
        assert!(it.encrypt_weights(&mut enc, &sk).unwrap() >= plain_products);
        let x = m.prepare_input(ts.image(i)).unwrap();
        let slots = c.pack(&x, params.slots()).unwrap();
        let pt = encoder.encode_real(&slots, params.max_level(), params.scale()).unwrap();
        it.set_input(&c.input_name, enc.encrypt_sk(&sk, &pt).unwrap()).unwrap();
        it.run().unwrap();
        let out = Decryptor::new(&ctx, &sk).unwrap().decrypt(it.output(&c.output_name).unwrap());
        let y = c.output_layout.unpack(&encoder.decode_real(&out.unwrap()).unwrap());
        let want = ts.reference_logits(i);
        let err = y.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-3, "image {i}: logits differ by {err}");
        assert_eq!(argmax(&y), argmax(want));
    }
}
