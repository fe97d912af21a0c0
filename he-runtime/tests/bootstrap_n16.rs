//! The secure-size bootstrap: N = 2^16, full 2^15 complex slots, 9 levels left, against the
//! plaintext. Minutes and ~8 GiB of keys, so ignored by default:
//! `cargo test --release -p hetier-he --test bootstrap_n16 -- --ignored --nocapture`.

use hetier_he::ckks::bootstrap::{BootstrapKeys, BootstrapPreset, Bootstrapper};
use hetier_he::ckks::{Complex64, Context, Decryptor, Encoder, Encryptor, Evaluator, KeyGenerator};
use rand::{Rng, SeedableRng};

#[test]
#[ignore = "log N = 16: minutes and ~8 GiB"]
fn n16_deep_bootstrap_meets_22_bits() {
    let preset = BootstrapPreset::n16_deep();
    let params = preset.params().unwrap();
    assert!(params.is_secure());
    let ctx = Context::new(&params).unwrap();
    let bs = Bootstrapper::new(&ctx, &preset.config).unwrap();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.secret_key();
    let keys = BootstrapKeys::generate(&mut kg, &sk, &bs).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
    let z: Vec<Complex64> = (0..params.slots())
        .map(|_| Complex64::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
        .collect();
    let enc = Encoder::new(&ctx);
    let ct =
        Encryptor::new(&ctx).encrypt_sk(&sk, &enc.encode(&z, 0, params.scale()).unwrap()).unwrap();
    let mut scratch = Evaluator::new(&ctx).scratch();
    let (out, times) = bs.bootstrap_timed(&ct, &keys, &mut scratch).unwrap();
    assert_eq!(out.level(), 9);
    let got = enc.decode(&Decryptor::new(&ctx, &sk).unwrap().decrypt(&out).unwrap()).unwrap();
    let max = got.iter().zip(&z).map(|(a, b)| (*a - *b).abs()).fold(0.0, f64::max);
    eprintln!("N = 2^16: {:.1} bits, {times:?}", -max.log2());
    assert!(-max.log2() >= 22.0, "{:.1} bits", -max.log2());
}
