//! Bootstrapping against the plaintext: precision of full-slot and sparse bootstraps, the DFT
//! identity, EvalMod against the sine, repeated bootstraps, key sequences, and typed errors.

use std::sync::Arc;

use rand::{Rng, SeedableRng};

use super::super::hoisting::ExtendedCiphertext;
use super::*;
use crate::ckks::{Decryptor, Encryptor, GaloisKeySet, KeyGenerator, SecretKey};

struct Fixture {
    ctx: Arc<Context>,
    sk: SecretKey,
    bs: Bootstrapper,
    keys: BootstrapKeys,
}

fn fixture(log_n: u32, compute: usize, config: BootstrapConfig) -> Fixture {
    let mut preset = BootstrapPreset::insecure_test(log_n, compute);
    preset.config = config;
    let params = preset.params().unwrap();
    let ctx = Context::new(&params).unwrap();
    let mut kg = KeyGenerator::with_seed(&ctx, [7; 32]);
    let sk = kg.secret_key();
    let bs = Bootstrapper::new(&ctx, &preset.config).unwrap();
    let keys = BootstrapKeys::generate(&mut kg, &sk, &bs).unwrap();
    Fixture { ctx, sk, bs, keys }
}

fn random_slots(n: usize, complex: bool, seed: u64) -> Vec<Complex64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let im = if complex { rng.gen_range(-1.0..1.0) } else { 0.0 };
            Complex64::new(rng.gen_range(-1.0..1.0), im)
        })
        .collect()
}

/// (−log2 max error, −log2 mean error) over all slots.
fn precision(got: &[Complex64], want: &[Complex64]) -> (f64, f64) {
    let errs: Vec<f64> = got.iter().zip(want).map(|(a, b)| (*a - *b).abs()).collect();
    let max = errs.iter().fold(0.0f64, |m, &e| m.max(e));
    let mean = errs.iter().sum::<f64>() / errs.len() as f64;
    (-max.log2(), -mean.log2())
}

fn encrypt_at(f: &Fixture, z: &[Complex64], level: usize) -> Ciphertext {
    encrypt_scaled(f, z, level, f.ctx.params().scale())
}

fn encrypt_scaled(f: &Fixture, z: &[Complex64], level: usize, scale: f64) -> Ciphertext {
    let enc = Encoder::new(&f.ctx);
    let pt = enc.encode(z, level, scale).unwrap();
    Encryptor::with_seed(&f.ctx, [9; 32]).encrypt_sk(&f.sk, &pt).unwrap()
}

fn decrypt(f: &Fixture, ct: &Ciphertext) -> Vec<Complex64> {
    let pt = Decryptor::new(&f.ctx, &f.sk).unwrap().decrypt(ct).unwrap();
    Encoder::new(&f.ctx).decode(&pt).unwrap()
}

#[test]
fn full_slot_bootstrap_restores_levels_and_precision() {
    let f = fixture(12, 2, BootstrapConfig::default());
    let slots = f.ctx.params().slots();
    for complex in [false, true] {
        let z = random_slots(slots, complex, 1 + complex as u64);
        let ct = encrypt_at(&f, &z, 0);
        let mut scratch = Evaluator::new(&f.ctx).scratch();
        let (out, times) = f.bs.bootstrap_timed(&ct, &f.keys, &mut scratch).unwrap();
        assert_eq!(out.level(), f.bs.output_level());
        assert_eq!(out.level(), 2);
        assert_eq!(out.scale(), ct.scale());
        let (max_bits, mean_bits) = precision(&decrypt(&f, &out), &z);
        eprintln!("complex={complex}: {max_bits:.1} bits max, {mean_bits:.1} mean, {times:?}");
        assert!(max_bits >= 26.0, "precision {max_bits:.1} bits");
    }
}

/// The thread count changes how the work is split, never a word of the result: the same
/// bootstrap on 1, 2 and 3 threads gives identical ciphertexts (and the right slots).
#[test]
fn bootstraps_are_bit_identical_for_any_thread_count() {
    let f = fixture(12, 1, BootstrapConfig::default());
    let z = random_slots(f.ctx.params().slots(), true, 77);
    let ct = encrypt_at(&f, &z, 0);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut scratch = Evaluator::new(&f.ctx).scratch();
            let out = f.bs.bootstrap(&ct, &f.keys, &mut scratch).unwrap();
            // Heap spares (the second EvalMod half's too) are freed, not kept between calls.
            let partner = scratch.partner.as_ref().map_or(0, |p| p.spares());
            assert_eq!((scratch.spares(), partner), (0, 0), "{threads} threads");
            out
        })
    };
    let one = run(1);
    let (max_bits, _) = precision(&decrypt(&f, &one), &z);
    assert!(max_bits >= 20.0, "precision {max_bits:.1} bits");
    for threads in [2, 3] {
        let other = run(threads);
        assert_eq!(other.level(), one.level());
        assert!(other.as_words() == one.as_words(), "{threads} threads differ from one");
    }
}

#[test]
fn every_level_budget_bootstraps() {
    for (cts, stc) in [(2, 2), (4, 3)] {
        let config = BootstrapConfig { cts_levels: cts, stc_levels: stc, ..Default::default() };
        let f = fixture(12, 1, config);
        let z = random_slots(f.ctx.params().slots(), true, 10 + cts as u64);
        let ct = encrypt_at(&f, &z, 0);
        let mut scratch = Evaluator::new(&f.ctx).scratch();
        let out = f.bs.bootstrap(&ct, &f.keys, &mut scratch).unwrap();
        assert_eq!(out.level(), 1);
        let (max_bits, _) = precision(&decrypt(&f, &out), &z);
        eprintln!("budget {{{cts},{stc}}}: {max_bits:.1} bits");
        assert!(max_bits >= 25.0, "budget {{{cts},{stc}}}: {max_bits:.1} bits");
    }
}

#[test]
fn repeated_bootstraps_with_a_product_between_keep_precision() {
    let f = fixture(12, 2, BootstrapConfig::default());
    let eval = Evaluator::new(&f.ctx);
    let mut scratch = eval.scratch();
    let slots = f.ctx.params().slots();
    // Multiplying by itself would shrink or blow up the values; multiply by a plaintext-known
    // ciphertext of ±1 instead, so every round checks a fresh product.
    let mut want = random_slots(slots, false, 20);
    let mut ct = encrypt_at(&f, &want, 0);
    for round in 0..5 {
        ct = f.bs.bootstrap(&ct, &f.keys, &mut scratch).unwrap();
        let signs: Vec<Complex64> = (0..slots)
            .map(|i| Complex64::new(if (i + round) % 3 == 0 { -1.0 } else { 1.0 }, 0.0))
            .collect();
        let s = encrypt_at(&f, &signs, ct.level());
        ct = eval.rescale(&eval.mul_relin(&ct, &s, &f.keys.relin, &mut scratch).unwrap()).unwrap();
        want = want.iter().zip(&signs).map(|(a, b)| *a * *b).collect();
        let (bits, _) = precision(&decrypt(&f, &ct), &want);
        eprintln!("round {round}: {bits:.1} bits at level {}", ct.level());
        assert!(bits >= 24.0, "round {round}: {bits:.1} bits");
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let f = fixture(12, 1, BootstrapConfig::default());
    let mut scratch = Evaluator::new(&f.ctx).scratch();
    let z = random_slots(f.ctx.params().slots(), false, 30);
    // A scale too close to q_0: the message would overflow the modular reduction.
    let q0 = f.ctx.params().q()[0] as f64;
    let big = encrypt_scaled(&f, &z, 0, q0 / 8.0);
    assert!(matches!(
        f.bs.bootstrap(&big, &f.keys, &mut scratch),
        Err(Error::BootstrapScale { .. })
    ));
    // A missing rotation key.
    let ct = encrypt_at(&f, &z, 0);
    let mut keys = f.keys.clone();
    keys.galois = GaloisKeySet::new();
    assert!(matches!(
        f.bs.bootstrap(&ct, &keys, &mut scratch),
        Err(Error::MissingGaloisKey { .. })
    ));
    // A missing encapsulation key.
    let mut keys = f.keys.clone();
    keys.to_sparse = None;
    assert!(matches!(f.bs.bootstrap(&ct, &keys, &mut scratch), Err(Error::MissingKey { .. })));
    // A degree-2 ciphertext.
    let eval = Evaluator::new(&f.ctx);
    let ct1 = encrypt_at(&f, &z, 1);
    let sq = eval.mul(&ct1, &ct1).unwrap();
    assert!(matches!(
        f.bs.bootstrap(&sq, &f.keys, &mut scratch),
        Err(Error::InvalidDegree { degree: 2, .. })
    ));
    // A chain too short for the circuit.
    let mut b = crate::ckks::ParamsBuilder::new(12);
    b.q_bits(50, &[40; 6]).allow_insecure();
    let ctx = Context::new(&b.build().unwrap()).unwrap();
    match Bootstrapper::new(&ctx, &BootstrapConfig::default()) {
        Err(Error::CannotBootstrap { available: 6, needed, .. }) => assert!(needed > 6),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn galois_elements_cover_the_circuit_and_nothing_twice() {
    let preset = BootstrapPreset::insecure_test(12, 1);
    let ctx = Context::new(&preset.params().unwrap()).unwrap();
    let bs = Bootstrapper::new(&ctx, &preset.config).unwrap();
    let g = bs.galois_elements();
    let mut sorted = g.clone();
    sorted.dedup();
    assert_eq!(g, sorted);
    assert!(g.contains(&ctx.galois_element_conjugate()));
    for s in bs.rotation_steps() {
        assert!(g.contains(&ctx.galois_element_for_step(s)), "step {s}");
    }
    // A level budget of 3 over 11 butterfly stages: about 2·√(2^5) rotations per level.
    assert!(g.len() < 60, "{} keys", g.len());
}

#[test]
fn dft_round_trip_is_the_identity() {
    let f = fixture(12, 2, BootstrapConfig::default());
    let slots = f.ctx.params().slots();
    let z = random_slots(slots, true, 5);
    // At the scale q_0 the bootstrap runs its CoeffToSlot at.
    let q0 = f.ctx.params().q()[0] as f64;
    let ct = encrypt_scaled(&f, &z, f.ctx.params().max_level(), q0);
    let mut scratch = Evaluator::new(&f.ctx).scratch();
    let out = f.bs.dft_round_trip(&ct, &f.keys, &mut scratch).unwrap();
    let (max_bits, mean_bits) = precision(&decrypt(&f, &out), &z);
    eprintln!("DFT round trip: {max_bits:.1} bits max, {mean_bits:.1} mean");
    assert!(max_bits >= 24.0, "precision {max_bits:.1} bits");
}

#[test]
fn eval_mod_matches_the_sine() {
    let f = fixture(12, 2, BootstrapConfig::default());
    let slots = f.ctx.params().slots();
    let k = f.bs.config().k;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    // x = I + ε: an integer overflow within ±(K−1) plus a small message.
    let x: Vec<f64> = (0..slots)
        .map(|_| rng.gen_range(-(k as i64) + 1..k as i64) as f64 + rng.gen_range(-0.01..0.01))
        .collect();
    let t: Vec<Complex64> = x.iter().map(|&v| Complex64::new(v / k, 0.0)).collect();
    let level = f.ctx.params().max_level() - f.bs.config().cts_levels;
    let enc = Encoder::new(&f.ctx);
    let scale = f.ctx.prime(level).q as f64;
    let pt = enc.encode(&t, level, scale).unwrap();
    let ct = Encryptor::with_seed(&f.ctx, [3; 32]).encrypt_sk(&f.sk, &pt).unwrap();
    let mut scratch = Evaluator::new(&f.ctx).scratch();
    let out = f.bs.eval_mod_only(ct, &f.keys, &mut scratch).unwrap();
    let got = decrypt(&f, &out);
    // With the arcsine correction EvalMod is 2π·(x mod 1), centred; without it, sin(2πx).
    let want: Vec<Complex64> = x
        .iter()
        .map(|&v| Complex64::new(2.0 * std::f64::consts::PI * (v - v.round()), 0.0))
        .collect();
    let (max_bits, mean_bits) = precision(&got, &want);
    eprintln!("EvalMod: {max_bits:.1} bits max, {mean_bits:.1} mean, level {}", out.level());
    assert!(max_bits >= 22.0, "precision {max_bits:.1} bits");
}

#[test]
fn n16_presets_are_secure_and_leave_their_levels() {
    let presets = [
        (BootstrapPreset::n16_deep(), 9),
        (BootstrapPreset::n16_fast(), 3),
        (BootstrapPreset::n16_precise(), 9),
    ];
    for (preset, levels) in presets {
        let p = preset.params().unwrap();
        eprintln!(
            "log N 16, {levels} levels: log QP {:.1}, L+1 = {}, K = {}, dnum {}",
            p.log_qp(),
            p.q().len(),
            p.p().len(),
            p.dnum()
        );
        assert!(p.is_secure(), "log QP {:.1}", p.log_qp());
        let (cts, eval_mod, stc) = preset.config.depth().unwrap();
        assert_eq!(p.max_level(), levels + cts + eval_mod + stc);
    }
}

/// `n16_fast`'s precision comes from its widths, not its ring: Δ = 2^42 (q_0 = 2^48, the
/// same q_0/Δ) and 61-bit EvalMod primes, still within the 128-bit bound and on the same
/// kernels as 2^40 and 60 bits.
#[test]
fn n16_fast_has_a_wider_scale_and_eval_mod_within_the_bound() {
    let preset = BootstrapPreset::n16_fast();
    let p = preset.params().unwrap();
    assert!(p.is_secure(), "log QP {:.1}", p.log_qp());
    assert_eq!(p.log_scale(), 42.0);
    let q = p.q();
    assert!(q[0] as f64 >= 2f64.powi(47) && (q[0] as f64) < 2f64.powi(48), "q_0 {}", q[0]);
    let (cts, eval_mod, _) = preset.config.depth().unwrap();
    let top = p.max_level();
    let eval_mod_primes = &q[top + 1 - cts - eval_mod..top + 1 - cts];
    assert!(eval_mod_primes.iter().all(|&x| x > 1 << 60), "61-bit EvalMod primes");
    // q_0 and the computation primes stay IFMA-sized (below 2^50).
    assert!(q[..=preset.compute_levels].iter().all(|&x| x < 1 << 50));
    for &x in &q[1..=preset.compute_levels] {
        assert!(((x as f64).log2() - 42.0).abs() < 0.01, "computation prime {x}");
    }
}

/// `n16_precise` keeps `n16_deep`'s depth at `n16_fast`'s widths: the bound holds only because
/// a fifth digit lets eight special primes cover the widest digit where dnum 4 needs nine.
#[test]
fn n16_precise_fits_the_bound_with_a_fifth_digit() {
    let precise = BootstrapPreset::n16_precise();
    let p = precise.params().unwrap();
    assert!(p.is_secure(), "log QP {:.1}", p.log_qp());
    assert_eq!((p.dnum(), p.p().len(), p.log_scale()), (5, 8, 42.0));
    assert_eq!(p.max_level(), BootstrapPreset::n16_deep().params().unwrap().max_level());
    let fast = BootstrapPreset::n16_fast();
    assert_eq!(
        (precise.compute_bits, precise.q0_bits, precise.eval_mod_bits),
        (fast.compute_bits, fast.q0_bits, fast.eval_mod_bits)
    );
    // The same widths at dnum 4 are refused by the bound.
    let mut four = BootstrapPreset::n16_precise();
    four.dnum = 4;
    assert!(matches!(four.params(), Err(crate::error::Error::InsecureParameters { .. })));
}

/// The same widths at log N 13: 2^42 and 61-bit EvalMod primes give a bootstrap at least half a
/// bit more precise (mean error) than 2^40 and 60 bits, and no worse in the max (measured 1.0
/// bit more mean at log N 13; 0.9 mean and 1.2 max at N = 2^16).
#[test]
fn a_wider_scale_and_eval_mod_primes_give_more_precision() {
    let fast = BootstrapPreset::n16_fast();
    let mut wide = BootstrapPreset::insecure_test(13, fast.compute_levels);
    (wide.dnum, wide.compute_bits, wide.q0_bits) = (fast.dnum, fast.compute_bits, fast.q0_bits);
    (wide.eval_mod_bits, wide.stc_bits, wide.cts_bits) =
        (fast.eval_mod_bits, fast.stc_bits, fast.cts_bits);
    let mut narrow = wide.clone();
    (narrow.compute_bits, narrow.q0_bits, narrow.eval_mod_bits) = (40, 46, 60);
    let run = |preset: &BootstrapPreset| {
        let ctx = Context::new(&preset.params().unwrap()).unwrap();
        let mut kg = KeyGenerator::with_seed(&ctx, [5; 32]);
        let sk = kg.secret_key();
        let bs = Bootstrapper::new(&ctx, &preset.config).unwrap();
        let keys = BootstrapKeys::generate(&mut kg, &sk, &bs).unwrap();
        let f = Fixture { ctx, sk, bs, keys };
        let z = random_slots(f.ctx.params().slots(), true, 13);
        let ct = encrypt_at(&f, &z, 0);
        let out = f.bs.bootstrap(&ct, &f.keys, &mut Evaluator::new(&f.ctx).scratch()).unwrap();
        assert_eq!(out.level(), 3);
        precision(&decrypt(&f, &out), &z)
    };
    let (wide_max, wide_mean) = run(&wide);
    let (narrow_max, narrow_mean) = run(&narrow);
    eprintln!("2^42, 61 bits: {wide_max:.2} / {wide_mean:.2}; 2^40, 60: {narrow_max:.2} / {narrow_mean:.2}");
    assert!(wide_mean >= narrow_mean + 0.5, "{wide_mean:.2} vs {narrow_mean:.2} bits mean");
    assert!(wide_max >= narrow_max, "{wide_max:.2} vs {narrow_max:.2} bits max");
}

#[test]
fn key_sequence_is_exactly_the_order_of_use() {
    for slots in [None, Some(16)] {
        let f = fixture(12, 1, BootstrapConfig { slots, ..Default::default() });
        let rec = RecordingKeys::new(&f.keys);
        let z = periodic_slots(&f, slots.unwrap_or(f.ctx.params().slots()), false, 40);
        let ct = encrypt_at(&f, &z, 0);
        let mut scratch = Evaluator::new(&f.ctx).scratch();
        f.bs.bootstrap(&ct, &rec, &mut scratch).unwrap();
        // The source hears of each phase as it begins; EvalMod alone relinearises, and
        // SlotToCoeff only rotates.
        let phases = rec.phases();
        let order: Vec<Phase> = phases.iter().map(|p| p.0).collect();
        let want = [Phase::ModRaise, Phase::CoeffToSlot, Phase::EvalMod, Phase::SlotToCoeff];
        assert_eq!(order, want);
        let (eval_mod_at, stc_at) = (phases[2].1, phases[3].1);
        let timed = rec.into_uses_at();
        for &(u, _, at) in &timed {
            let in_eval_mod = at >= eval_mod_at && at < stc_at;
            assert_eq!(u == KeyUse::Relin, in_eval_mod, "{u:?}: relin exactly in EvalMod");
            if at >= stc_at {
                assert!(matches!(u, KeyUse::Galois(_)), "{u:?} in SlotToCoeff");
            }
        }
        let used: Vec<(KeyUse, usize)> =
            timed.into_iter().map(|(u, level, _)| (u, level)).collect();
        let announced = f.bs.key_uses();
        assert_eq!(used.iter().map(|u| u.0).collect::<Vec<_>>(), f.bs.key_sequence());
        assert_eq!(used.len(), announced.len());
        // Each key is announced at the level it is asked for; the relinearisation key at a
        // level no product of EvalMod exceeds (a key expanded for it serves them all).
        for (i, (&(u, level), &(_, said))) in used.iter().zip(&announced).enumerate() {
            match u {
                KeyUse::Relin => assert!(level <= said, "use {i}: relin at {level} > {said}"),
                _ => assert_eq!(level, said, "use {i}: {u:?}"),
            }
        }
        let stc_levels = announced.iter().rev().take(4).map(|u| u.1);
        assert!(stc_levels.into_iter().all(|l| l < f.ctx.params().max_level() / 2));
    }
}

#[test]
fn structured_inputs_bootstrap_too() {
    // A constant vector puts the whole message in one coefficient, the worst case for the
    // sine's approximation of the modular reduction.
    let f = fixture(12, 1, BootstrapConfig::default());
    let slots = f.ctx.params().slots();
    let mut scratch = Evaluator::new(&f.ctx).scratch();
    for (name, z) in [
        ("constant", vec![Complex64::new(0.9, 0.0); slots]),
        ("ramp", (0..slots).map(|i| Complex64::new(i as f64 / slots as f64, 0.0)).collect()),
    ] {
        let ct = encrypt_at(&f, &z, 0);
        let out = f.bs.bootstrap(&ct, &f.keys, &mut scratch).unwrap();
        let (bits, _) = precision(&decrypt(&f, &out), &z);
        eprintln!("{name}: {bits:.1} bits");
        assert!(bits >= 12.0, "{name}: {bits:.1} bits");
    }
}

// ---- sparse packing ----

fn sparse(slots: usize) -> BootstrapConfig {
    BootstrapConfig { slots: Some(slots), ..Default::default() }
}

/// `n` random values repeated over all N/2 slots: the slot vector of a message packed sparsely
/// in n slots (its plaintext lies in the subring X^(N/2n)).
fn periodic_slots(f: &Fixture, n: usize, complex: bool, seed: u64) -> Vec<Complex64> {
    let z = random_slots(n, complex, seed);
    z.iter().copied().cycle().take(f.ctx.params().slots()).collect()
}

#[test]
fn sparse_bootstrap_restores_levels_and_precision() {
    // 1 slot (no DFT stage), 16 (a deep trace), N/4 (2n = N/2: the packed halves fill the ring).
    for n in [1, 16, 1 << 10] {
        let f = fixture(12, 2, sparse(n));
        assert_eq!(f.bs.slots(), n);
        let mut scratch = Evaluator::new(&f.ctx).scratch();
        for complex in [false, true] {
            let z = periodic_slots(&f, n, complex, 50 + n as u64 + complex as u64);
            let ct = encrypt_at(&f, &z, 0);
            let (out, times) = f.bs.bootstrap_timed(&ct, &f.keys, &mut scratch).unwrap();
            assert_eq!(out.level(), 2);
            assert_eq!(out.scale(), ct.scale());
            let (max_bits, mean_bits) = precision(&decrypt(&f, &out), &z);
            eprintln!("{n} slots, complex={complex}: {max_bits:.1} bits max, {mean_bits:.1} mean, {times:?}");
            // One slot is a constant vector: the whole message in one coefficient, the sine's
            // worst case (17.9 bits for a constant in full slots, see below).
            let bound = if n == 1 { 17.0 } else { 22.0 };
            assert!(max_bits >= bound, "{n} slots, complex={complex}: {max_bits:.1} bits");
        }
    }
}

#[test]
fn sparse_bootstrap_at_every_level_budget() {
    for (cts, stc) in [(2, 2), (4, 3)] {
        let config = BootstrapConfig { cts_levels: cts, stc_levels: stc, ..sparse(1 << 6) };
        let f = fixture(12, 1, config);
        let z = periodic_slots(&f, 1 << 6, true, 60 + cts as u64);
        let ct = encrypt_at(&f, &z, 0);
        let mut scratch = Evaluator::new(&f.ctx).scratch();
        let out = f.bs.bootstrap(&ct, &f.keys, &mut scratch).unwrap();
        assert_eq!(out.level(), 1);
        let (max_bits, mean_bits) = precision(&decrypt(&f, &out), &z);
        eprintln!("64 slots, budget {{{cts},{stc}}}: {max_bits:.1} bits max, {mean_bits:.1} mean");
        assert!(max_bits >= 20.0, "budget {{{cts},{stc}}}: {max_bits:.1} bits");
    }
}

#[test]
fn sparse_dft_round_trip_is_the_identity() {
    let f = fixture(12, 2, sparse(1 << 5));
    let z = periodic_slots(&f, 1 << 5, true, 70);
    let q0 = f.ctx.params().q()[0] as f64;
    let ct = encrypt_scaled(&f, &z, f.ctx.params().max_level(), q0);
    let mut scratch = Evaluator::new(&f.ctx).scratch();
    let out = f.bs.dft_round_trip(&ct, &f.keys, &mut scratch).unwrap();
    let (max_bits, mean_bits) = precision(&decrypt(&f, &out), &z);
    eprintln!("sparse DFT round trip: {max_bits:.1} bits max, {mean_bits:.1} mean");
    assert!(max_bits >= 24.0, "precision {max_bits:.1} bits");
}

#[test]
fn repeated_sparse_bootstraps_keep_precision_and_use_exactly_their_key_sequence() {
    let n = 1 << 7;
    let f = fixture(12, 2, sparse(n));
    let eval = Evaluator::new(&f.ctx);
    let mut scratch = eval.scratch();
    let full = Bootstrapper::new(&f.ctx, &BootstrapConfig::default()).unwrap();
    // One trace rotation per halving, fewer DFT keys than full slots.
    assert!(f.bs.galois_elements().len() < full.galois_elements().len());
    assert!(f.bs.key_sequence().len() < full.key_sequence().len());
    let mut want = periodic_slots(&f, n, true, 80);
    let mut ct = encrypt_at(&f, &want, 0);
    for round in 0..5 {
        ct = if round == 0 {
            let rec = RecordingKeys::new(&f.keys);
            let out = f.bs.bootstrap(&ct, &rec, &mut scratch).unwrap();
            let used: Vec<KeyUse> = rec.into_uses().into_iter().map(|(u, _)| u).collect();
            assert_eq!(used, f.bs.key_sequence());
            out
        } else {
            f.bs.bootstrap(&ct, &f.keys, &mut scratch).unwrap()
        };
        // A sparse (n-periodic) mask of ±1, so the product stays sparse.
        let signs: Vec<Complex64> = (0..f.ctx.params().slots())
            .map(|i| Complex64::new(if (i % n + round) % 3 == 0 { -1.0 } else { 1.0 }, 0.0))
            .collect();
        let s = encrypt_at(&f, &signs, ct.level());
        ct = eval.rescale(&eval.mul_relin(&ct, &s, &f.keys.relin, &mut scratch).unwrap()).unwrap();
        want = want.iter().zip(&signs).map(|(a, b)| *a * *b).collect();
        let (bits, _) = precision(&decrypt(&f, &ct), &want);
        eprintln!("sparse round {round}: {bits:.1} bits at level {}", ct.level());
        assert!(bits >= 20.0, "round {round}: {bits:.1} bits");
    }
}

#[test]
fn bad_slot_counts_are_typed_errors() {
    let preset = BootstrapPreset::insecure_test(12, 1);
    let ctx = Context::new(&preset.params().unwrap()).unwrap();
    for slots in [0, 3, 100, 1 << 12] {
        match Bootstrapper::new(&ctx, &sparse(slots)) {
            Err(Error::InvalidParameter { name: "bootstrap slots", reason }) => {
                assert!(reason.contains(&slots.to_string()), "{reason}");
            }
            other => panic!("{slots} slots: unexpected {other:?}"),
        }
    }
    // N/2 is the full-slot circuit.
    let full = Bootstrapper::new(&ctx, &sparse(1 << 11)).unwrap();
    assert_eq!(
        full.galois_elements(),
        Bootstrapper::new(&ctx, &Default::default()).unwrap().galois_elements()
    );
}

/// A ciphertext whose slot vector has a longer period than a sparse bootstrapper's slots is
/// refused with both counts (it would come back as its per-period average); the period is
/// the encoder's and survives the operations before the bootstrap.
#[test]
fn a_ciphertext_encoded_for_more_slots_than_the_bootstrapper_is_a_typed_error() {
    let f = fixture(12, 1, sparse(64));
    let full = random_slots(f.ctx.params().slots(), true, 90);
    let eval = Evaluator::new(&f.ctx);
    let mut scratch = eval.scratch();
    // Full slots, after a product by a constant and its rescale.
    let ct = encrypt_at(&f, &full, 1);
    assert_eq!(ct.slots(), Some(f.ctx.params().slots()));
    let ct = eval.rescale(&eval.mul_const(&ct, 0.5, f.ctx.params().scale()).unwrap()).unwrap();
    match f.bs.bootstrap(&ct, &f.keys, &mut scratch) {
        Err(Error::BootstrapSlots { expected: 64, found }) => {
            assert_eq!(found, f.ctx.params().slots())
        }
        other => panic!("unexpected {other:?}"),
    }
    // 32 values repeated (period 32 ≤ 64 slots) bootstrap, and keep their period.
    let z = periodic_slots(&f, 32, true, 91);
    let ct = encrypt_at(&f, &z, 0);
    assert_eq!(ct.slots(), Some(32));
    let out = f.bs.bootstrap(&ct, &f.keys, &mut scratch).unwrap();
    assert_eq!(out.slots(), Some(32));
    let (bits, _) = precision(&decrypt(&f, &out), &z);
    assert!(bits >= 20.0, "{bits:.1} bits");
    // A ciphertext wrapped from raw words has no known period and is not refused.
    let ct = encrypt_at(&f, &full, 0);
    let raw =
        Ciphertext::from_raw(ct.as_words(), 2, 0, ct.scale(), f.ctx.n(), ct.params_id()).unwrap();
    assert_eq!(raw.slots(), None);
    assert!(f.bs.bootstrap(&raw, &f.keys, &mut scratch).is_ok());
}

/// A buffer that cannot grow, as a store block: a bootstrap over these takes only the spares
/// handed in.
#[derive(Debug)]
struct Fixed(Vec<u64>);

impl AsRef<[u64]> for Fixed {
    fn as_ref(&self) -> &[u64] {
        &self.0
    }
}

impl AsMut<[u64]> for Fixed {
    fn as_mut(&mut self) -> &mut [u64] {
        &mut self.0
    }
}

impl ScratchWords for Fixed {
    fn room(&self) -> usize {
        self.0.len()
    }

    fn grow(&mut self, _len: usize) {}

    fn fresh() -> Option<Self> {
        None
    }
}

/// A scratch of fixed buffers at the top level holding `spares`, with a partner holding
/// `partner` spares when given.
fn fixed_scratch(f: &Fixture, spares: &[usize], partner: Option<&[usize]>) -> Scratch<Fixed> {
    let top = f.ctx.params().max_level();
    let alloc = |w: usize| Ok::<Fixed, ()>(Fixed(vec![0; w]));
    let mut s = Scratch::with_buffers(&f.ctx, top, true, alloc).unwrap();
    s.add_spares(spares.iter().map(|&w| Fixed(vec![0; w])));
    if let Some(words) = partner {
        let mut p = Scratch::with_buffers(&f.ctx, top, true, alloc).unwrap();
        p.add_spares(words.iter().map(|&w| Fixed(vec![0; w])));
        s.set_partner(p);
    }
    s
}

/// The lengths of a scratch's spares, longest first.
fn spare_lengths(s: &Scratch<Fixed>) -> Vec<usize> {
    let mut l: Vec<usize> = s.spare.iter().map(|b| b.0.len()).collect();
    l.sort_unstable_by(|a, b| b.cmp(a));
    l
}

/// Every ciphertext temporary comes from the spares, each lent at the length its level needs:
/// with exactly [`Bootstrapper::spare_words`] (and [`Bootstrapper::partner_spare_words`] for
/// EvalMod's second half) of buffers that cannot grow, full-slot, arcsine and sparse
/// bootstraps give the heap scratch's result bit for bit, with EvalMod's halves one after the
/// other (one thread) and side by side (two), again on the second run (each scratch keeps
/// spares of the same lengths); one buffer fewer in either scratch, the longest or the
/// shortest, is a typed error. The spares are not all of one length: those of EvalMod's
/// temporaries are shorter than a transform's extended ciphertexts at the top level.
#[test]
fn spare_words_are_exactly_the_buffers_a_bootstrap_takes() {
    let no_arcsine = BootstrapConfig { arcsine: false, ..BootstrapConfig::default() };
    for config in [BootstrapConfig::default(), no_arcsine, sparse(256)] {
        let f = fixture(12, 1, config);
        let z = periodic_slots(&f, f.bs.slots(), true, 3);
        let ct = encrypt_at(&f, &z, 0);
        let want = f.bs.bootstrap(&ct, &f.keys, &mut Evaluator::new(&f.ctx).scratch()).unwrap();
        let (words, partner) = (f.bs.spare_words(), f.bs.partner_spare_words());
        assert_eq!(partner.is_empty(), f.bs.sparse());
        assert!(words.windows(2).all(|w| w[0] >= w[1]), "longest first");
        assert!(words.iter().sum::<usize>() < words.len() * words[0], "sized: {words:?}");
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut s = fixed_scratch(&f, &words, Some(&partner));
                for _ in 0..2 {
                    let got = f.bs.bootstrap(&ct, &f.keys, &mut s).unwrap();
                    assert_eq!(got.as_words(), want.as_words(), "{threads} threads");
                    assert_eq!(spare_lengths(&s), words, "{threads} threads");
                    let p = s.partner.as_deref().map(spare_lengths);
                    assert_eq!(p.as_ref(), Some(&partner), "the partner keeps its spares");
                }
                let (last, rest) = words.split_last().unwrap();
                for short in [&words[1..], rest] {
                    let mut s = fixed_scratch(&f, short, Some(&partner));
                    let r = f.bs.bootstrap(&ct, &f.keys, &mut s);
                    let r = r.map(|c| c.level());
                    assert!(matches!(r, Err(Error::BufferLength { .. })), "{last}: {r:?}");
                }
                if let (2, Some((_, rest))) = (threads, partner.split_first()) {
                    let mut short = fixed_scratch(&f, &words, Some(rest));
                    let r = f.bs.bootstrap(&ct, &f.keys, &mut short);
                    assert!(matches!(r, Err(Error::BufferLength { .. })), "partner one short");
                }
            });
        }
    }
}

/// A fixed buffer that can be released and reacquired while `available` allows, counting
/// its reacquires in `taken`.
#[derive(Debug)]
struct Releasable {
    words: Option<Vec<u64>>,
    len: usize,
    available: Arc<std::sync::atomic::AtomicBool>,
    taken: Arc<std::sync::atomic::AtomicUsize>,
}

impl AsRef<[u64]> for Releasable {
    fn as_ref(&self) -> &[u64] {
        self.words.as_deref().unwrap_or(&[])
    }
}

impl AsMut<[u64]> for Releasable {
    fn as_mut(&mut self) -> &mut [u64] {
        self.words.as_deref_mut().unwrap_or(&mut [])
    }
}

impl ScratchWords for Releasable {
    fn room(&self) -> usize {
        self.as_ref().len()
    }

    fn grow(&mut self, _len: usize) {}

    fn fresh() -> Option<Self> {
        None
    }

    fn release(&mut self) {
        self.words = None;
    }

    fn reacquire(&mut self) -> bool {
        use std::sync::atomic::Ordering;
        if self.words.is_none() {
            if !self.available.load(Ordering::Relaxed) {
                return false;
            }
            self.taken.fetch_add(1, Ordering::Relaxed);
            // Not zeroed: the contents after a reacquire are unspecified.
            self.words = Some(vec![0x5a5a_5a5a; self.len]);
        }
        true
    }
}

/// A partner released while idle holds no memory outside EvalMod: it is reacquired for the
/// halves side by side (every buffer once per bootstrap) and released after them, with the
/// heap scratch's result bit for bit. When its memory cannot be had, the halves run one after
/// the other, with the same result, and no buffer is left half taken.
#[test]
fn a_partner_released_while_idle_is_taken_for_eval_mod_alone() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let f = fixture(12, 1, BootstrapConfig::default());
    let z = periodic_slots(&f, f.bs.slots(), true, 3);
    let ct = encrypt_at(&f, &z, 0);
    let want = f.bs.bootstrap(&ct, &f.keys, &mut Evaluator::new(&f.ctx).scratch()).unwrap();
    let available = Arc::new(AtomicBool::new(true));
    let taken = Arc::new(AtomicUsize::new(0));
    let buffer = |len: usize| Releasable {
        words: Some(vec![0; len]),
        len,
        available: available.clone(),
        taken: taken.clone(),
    };
    let top = f.ctx.params().max_level();
    let alloc = |w: usize| Ok::<_, ()>(buffer(w));
    let mut s = Scratch::with_buffers(&f.ctx, top, true, alloc).unwrap();
    s.add_spares(f.bs.spare_words().into_iter().map(buffer));
    let mut p = Scratch::with_buffers(&f.ctx, top, true, alloc).unwrap();
    p.add_spares(f.bs.partner_spare_words().into_iter().map(buffer));
    let partner_buffers = 6 + f.bs.partner_spare_words().len();
    s.release_partner_while_idle();
    s.set_partner(p);
    let released = |s: &mut Scratch<Releasable>| {
        let p = s.partner.as_deref_mut().unwrap();
        let all: Vec<bool> = p.buffers_mut().map(|b| b.words.is_none()).collect();
        (all.len(), all.iter().all(|&r| r))
    };
    assert_eq!(released(&mut s), (partner_buffers, true));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    pool.install(|| {
        for round in 1..=2 {
            let got = f.bs.bootstrap(&ct, &f.keys, &mut s).unwrap();
            assert_eq!(got.as_words(), want.as_words(), "round {round}");
            assert_eq!(taken.load(Ordering::Relaxed), round * partner_buffers);
            assert_eq!(released(&mut s), (partner_buffers, true), "round {round}");
        }
        available.store(false, Ordering::Relaxed);
        let got = f.bs.bootstrap(&ct, &f.keys, &mut s).unwrap();
        assert_eq!(got.as_words(), want.as_words(), "one after the other");
        assert_eq!(taken.load(Ordering::Relaxed), 2 * partner_buffers);
        assert_eq!(released(&mut s), (partner_buffers, true));
    });
}

/// A double-hoisted transform keeps each extended ciphertext (its baby rotations and the giant
/// steps' sum) in two half-size spares, and its giant steps' c_1 and encoded diagonal in the
/// key-switch buffers: CoeffToSlot's first factor runs over exactly the spares its trace asks
/// for, none as long as a whole extended ciphertext, and gives the heap scratch's words bit for
/// bit; a spare fewer is a typed error. (Whole extended spares set `n16_deep`'s smallest budget
/// above a quarter of its stored key set.)
#[test]
fn a_transform_takes_half_extended_spares_and_no_buffer_for_its_c1_or_diagonal() {
    let f = fixture(12, 1, BootstrapConfig::default());
    let (eval, enc) = (Evaluator::new(&f.ctx), Encoder::new(&f.ctx));
    let top = f.ctx.params().max_level();
    let z = periodic_slots(&f, f.bs.slots(), true, 5);
    let x = encrypt_at(&f, &z, top);
    let t = &f.bs.cts[0];
    let scale = f.ctx.params().scale();
    let want = t.apply(&eval, &enc, &x, &f.keys, &mut eval.scratch(), scale).unwrap();
    let mut tr = spares::Trace::default();
    let out = t.trace(&f.ctx, top, &mut tr);
    tr.give(out);
    let words = spares::Trace::buffers(&[&tr]);
    let part = ExtendedCiphertext::part_words(&f.ctx, top);
    let babies = t.baby_rotations();
    assert!(babies >= 2, "several baby rotations");
    // The ModDown and the result reuse two of them, lengthened.
    assert_eq!(words.len(), 2 * (babies + 1), "{words:?}");
    assert!(words.iter().all(|&w| w >= part), "{words:?}");
    assert!(words[0] < 2 * part, "no whole extended ciphertext: {words:?}");
    let mut s = fixed_scratch(&f, &words, None);
    let got = t.apply(&eval, &enc, &x, &f.keys, &mut s, scale).unwrap();
    assert_eq!(got.as_words(), want.as_words());
    let mut short = fixed_scratch(&f, &words[1..], None);
    let r = t.apply(&eval, &enc, &x, &f.keys, &mut short, scale).map(|c| c.level());
    assert!(matches!(r, Err(Error::BufferLength { .. })), "{r:?}");
}
