//! Where a bootstrap's error comes from: for a preset whose prime widths can be overridden,
//! prints the precision (−log2 of the max and of the mean slot error, uniform complex inputs
//! in [−1, 1]) of a fresh encryption, of one rescale down to the bootstrap's output level and
//! scale (the floor any result ending in a rescale has), and of full-slot bootstraps.
//!
//! `cargo run --release -p hetier-he --example bootstrap_precision` runs `n16_fast`; the
//! environment picks another set and overrides its widths (bits):
//! `LOG_N` (16; below 16 an `insecure_test` preset), `LEVELS` (3; 9 is `n16_deep` at
//! log N 16), `COMPUTE` (computation primes and Δ), `Q0`, `STC`, `EVAL_MOD`, `CTS`, `DNUM`,
//! `SEED` (of the inputs, 1), `BOOTSTRAPS` (1; 0 measures the floors only), `CONSTANT` (any
//! value: every slot 0.9, the sine's worst case, instead of random inputs). A set above the
//! 128-bit bound is run anyway, with a warning. N = 2^16 needs up to ~10 GiB and a minute per
//! bootstrap on one thread (`RAYON_NUM_THREADS=1`).

use hetier_he::ckks::bootstrap::{BootstrapKeys, BootstrapPreset, Bootstrapper};
use hetier_he::ckks::{
    Ciphertext, Complex64, Context, Decryptor, Encoder, Encryptor, Evaluator, KeyGenerator,
};
use rand::{Rng, SeedableRng};

fn var(name: &str) -> Option<u32> {
    let v = std::env::var(name).ok()?;
    Some(v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")))
}

/// (−log2 max error, −log2 mean error).
fn precision(got: &[Complex64], want: &[Complex64]) -> (f64, f64) {
    let errs: Vec<f64> = got.iter().zip(want).map(|(a, b)| (*a - *b).abs()).collect();
    let max = errs.iter().fold(0.0f64, |m, &e| m.max(e));
    (-max.log2(), -(errs.iter().sum::<f64>() / errs.len() as f64).log2())
}

fn main() -> hetier_he::Result<()> {
    let log_n = var("LOG_N").unwrap_or(16);
    let levels = var("LEVELS").unwrap_or(3) as usize;
    let mut preset = match (log_n, levels) {
        (16, 9) => BootstrapPreset::n16_deep(),
        (16, 3) => BootstrapPreset::n16_fast(),
        (n, l) => BootstrapPreset::insecure_test(n, l),
    };
    for (name, field) in [
        ("COMPUTE", &mut preset.compute_bits),
        ("Q0", &mut preset.q0_bits),
        ("STC", &mut preset.stc_bits),
        ("EVAL_MOD", &mut preset.eval_mod_bits),
        ("CTS", &mut preset.cts_bits),
    ] {
        if let Some(b) = var(name) {
            *field = b;
        }
    }
    if let Some(d) = var("DNUM") {
        preset.dnum = d as usize;
    }
    let params = match preset.params() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("WARNING, run anyway: {e}");
            preset.builder()?.allow_insecure().build()?
        }
    };
    let widths: Vec<String> =
        params.q().iter().map(|&q| format!("{:.1}", (q as f64).log2())).collect();
    println!(
        "log N {log_n}, {levels} levels: Δ 2^{}, q_0 {}, STC {}, EvalMod {}, CTS {} bits, dnum {}; \
         log QP {:.1} ({}), L+1 = {}, K = {}; q: {}",
        preset.compute_bits,
        preset.q0_bits,
        preset.stc_bits,
        preset.eval_mod_bits,
        preset.cts_bits,
        preset.dnum,
        params.log_qp(),
        if params.is_secure() { "within the 128-bit bound" } else { "NOT SECURE" },
        params.q().len(),
        params.p().len(),
        widths.join(" ")
    );
    let ctx = Context::new(&params)?;
    let bs = Bootstrapper::new(&ctx, &preset.config)?;
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.secret_key();
    let (enc, eval, dec) = (Encoder::new(&ctx), Evaluator::new(&ctx), Decryptor::new(&ctx, &sk)?);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(var("SEED").unwrap_or(1).into());
    let z: Vec<Complex64> = match var("CONSTANT") {
        Some(_) => vec![Complex64::new(0.9, 0.0); params.slots()],
        None => (0..params.slots())
            .map(|_| Complex64::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
            .collect(),
    };
    let read = |ct: &Ciphertext| -> hetier_he::Result<(f64, f64)> {
        Ok(precision(&enc.decode(&dec.decrypt(ct)?)?, &z))
    };
    let (out, delta) = (bs.output_level(), params.scale());
    let encrypt = |level: usize, scale: f64| {
        Encryptor::new(&ctx).encrypt_sk(&sk, &enc.encode(&z, level, scale)?)
    };
    let (m, a) = read(&encrypt(out, delta)?)?;
    println!("fresh at level {out}: {m:.2} bits max, {a:.2} mean");
    let up = encrypt(out + 1, delta * params.q()[out + 1] as f64)?;
    let (m, a) = read(&eval.rescale(&up)?)?;
    println!("rescaled from level {} to {out} at Δ: {m:.2} bits max, {a:.2} mean", out + 1);
    let input = encrypt(0, delta)?;
    let (m, a) = read(&input)?;
    println!("fresh at level 0 (the bootstrap's input): {m:.2} bits max, {a:.2} mean");
    let runs = var("BOOTSTRAPS").unwrap_or(1);
    if runs == 0 {
        return Ok(());
    }
    let keys = BootstrapKeys::generate(&mut kg, &sk, &bs)?;
    let mut scratch = eval.scratch();
    for _ in 0..runs {
        let clock = std::time::Instant::now();
        let ct = bs.bootstrap(&input, &keys, &mut scratch)?;
        let (m, a) = read(&ct)?;
        let s = clock.elapsed().as_secs_f64();
        println!("bootstrap to level {}: {m:.2} bits max, {a:.2} mean ({s:.1} s)", ct.level());
    }
    Ok(())
}
