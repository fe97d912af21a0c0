//! The secure-size bootstrap: N = 2^16, full 2^15 complex slots, against the plaintext, for
//! both presets. Minutes and ~10 GiB of keys and diagonals, so ignored by default:
//! `cargo test --release -p hetier-he --test bootstrap_n16 -- --ignored --nocapture`.

use hetier_he::ckks::bootstrap::{BootstrapKeys, BootstrapPreset, Bootstrapper};
use hetier_he::ckks::{Complex64, Context, Decryptor, Encoder, Encryptor, Evaluator, KeyGenerator};
use rand::{Rng, SeedableRng};

/// Bootstraps random complex slots in [−1, 1] at level 0; (−log2 max error, −log2 mean error).
fn bootstrap_precision(preset: &BootstrapPreset, levels: usize) -> (f64, f64) {
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
    assert_eq!(out.level(), levels);
    let got = enc.decode(&Decryptor::new(&ctx, &sk).unwrap().decrypt(&out).unwrap()).unwrap();
    let errs: Vec<f64> = got.iter().zip(&z).map(|(a, b)| (*a - *b).abs()).collect();
    let max = errs.iter().fold(0.0f64, |m, &e| m.max(e));
    let mean = errs.iter().sum::<f64>() / errs.len() as f64;
    eprintln!(
        "N = 2^16, {levels} levels: {:.2} bits max, {:.2} mean, {times:?}",
        -max.log2(),
        -mean.log2()
    );
    (-max.log2(), -mean.log2())
}

#[test]
#[ignore = "log N = 16: minutes and ~10 GiB"]
fn n16_deep_bootstrap_meets_22_bits() {
    let (max, _) = bootstrap_precision(&BootstrapPreset::n16_deep(), 9);
    assert!(max >= 22.0, "{max:.2} bits");
}

/// Issue 12's goal for full slots: ≥ 24 bits (measured 24.4–24.6 max, 26.4 mean).
#[test]
#[ignore = "log N = 16: a minute and ~10 GiB"]
fn n16_fast_bootstrap_meets_24_bits() {
    let (max, mean) = bootstrap_precision(&BootstrapPreset::n16_fast(), 3);
    assert!(max >= 24.0, "{max:.2} bits");
    assert!(mean >= 26.0, "{mean:.2} bits mean");
}

/// `n16_deep`'s 9 levels at the same goal, with a fifth key-switching digit (measured 24.54 max,
/// 26.44 mean with the precision example).
#[test]
#[ignore = "log N = 16: minutes and ~12 GiB"]
fn n16_precise_bootstrap_meets_24_bits_with_9_levels_left() {
    let (max, mean) = bootstrap_precision(&BootstrapPreset::n16_precise(), 9);
    assert!(max >= 24.0, "{max:.2} bits");
    assert!(mean >= 26.0, "{mean:.2} bits mean");
}
