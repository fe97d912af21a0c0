//! RNS-CKKS with the core of hetier-he alone (no store): keys, encrypt, multiply and
//! relinearise, rescale, rotate, add, decrypt, and the error against the same computation in
//! plain f64. Run it with
//! `cargo run --release -p hetier-he --no-default-features --example ckks_basics`
//! (or without `--no-default-features`: the example uses only the core either way).
//!
//! The parameters are deliberately small and NOT secure (N = 2^12 with a 180-bit modulus, over
//! the 109-bit bound for 128-bit security at that degree), so the example runs in well under a
//! second; `allow_insecure()` is the explicit opt-in, and `build()` refuses such a set without
//! it. For real use take a preset, e.g. `Preset::N14.params()?` (128-bit secure).

use hetier_he::ckks::{
    Context, Decryptor, Encoder, Encryptor, Evaluator, KeyGenerator, ParamsBuilder,
};

fn main() -> hetier_he::Result<()> {
    // N = 2^12 (2048 slots), a 50-bit first prime and two 40-bit scaling primes (depth 2),
    // scale 2^40, 50-bit special primes for hybrid key switching with dnum = 3.
    let params = ParamsBuilder::new(12)
        .q_bits(50, &[40, 40])
        .special_bits(50)
        .dnum(3)
        .log_scale(40.0)
        .allow_insecure()
        .build()?;
    println!(
        "N = {}, {} slots, top level {}, log2(QP) = {:.1}, 128-bit secure: {}",
        params.n(),
        params.slots(),
        params.max_level(),
        params.log_qp(),
        params.is_secure()
    );

    // Keys: secret, public, relinearisation, and the Galois key of a rotation by 3 slots.
    let ctx = Context::new(&params)?;
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.secret_key();
    let pk = kg.public_key(&sk)?;
    let rk = kg.relin_key(&sk)?;
    const STEP: i64 = 3;
    let rot = kg.rotation_key(&sk, STEP)?;

    // Two real vectors, one value per slot, encoded at the top level and encrypted.
    let slots = params.slots();
    let x: Vec<f64> = (0..slots).map(|i| (i as f64 * 0.01).sin()).collect();
    let y: Vec<f64> = (0..slots).map(|i| (i as f64 * 0.02).cos() / 2.0).collect();
    let (enc, eval) = (Encoder::new(&ctx), Evaluator::new(&ctx));
    let mut encryptor = Encryptor::new(&ctx);
    let top = params.max_level();
    let ct_x = encryptor.encrypt_pk(&pk, &enc.encode_real(&x, top, params.scale())?)?;
    let ct_y = encryptor.encrypt_pk(&pk, &enc.encode_real(&y, top, params.scale())?)?;

    // z = rotate(x·y, 3) + x·y: one multiplication (relinearised, then rescaled by one prime),
    // one rotation (a key switch with the Galois key), one addition.
    let mut scratch = eval.scratch();
    let prod = eval.rescale(&eval.mul_relin(&ct_x, &ct_y, &rk, &mut scratch)?)?;
    let rotated = eval.rotate(&prod, STEP, &rot, &mut scratch)?;
    let ct_z = eval.add(&rotated, &prod)?;
    println!("result at level {} of {top}", ct_z.level());

    // Decrypt, decode, and compare with the same computation in f64. Rotating by k moves
    // slot i + k to slot i.
    let z = enc.decode_real(&Decryptor::new(&ctx, &sk)?.decrypt(&ct_z)?)?;
    let want: Vec<f64> = (0..slots)
        .map(|i| {
            let j = (i + STEP as usize) % slots;
            x[j] * y[j] + x[i] * y[i]
        })
        .collect();
    for i in 0..4 {
        println!("slot {i}: decrypted {:+.9}, plaintext {:+.9}", z[i], want[i]);
    }
    let max_err = z.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    println!("max error over {slots} slots: {max_err:.2e}");
    assert!(max_err < 1e-6, "CKKS error {max_err:e} is larger than expected at scale 2^40");
    Ok(())
}
