//! CKKS operation benchmarks over the issue-4 parameter sets (log N = 13..16, scale 2^40,
//! dnum 3, depth 2/5/14/30), single-threaded unless the name says otherwise.
//!
//! Criterion: `cargo bench -p hetier-he --bench ckks` (restrict sizes with
//! `HETIER_CKKS_LOGN=13,14`). JSON for the peer comparison (benches/peers/compare.sh):
//! `HETIER_CKKS_JSON=out.json cargo bench -p hetier-he --bench ckks` times every operation
//! with a median-of-runs loop (≥ 5 runs and ≥ 1 s of work, like the peer scripts) instead of
//! criterion, and also records serialised sizes and the decryption errors. `lt16_plain` and
//! `lt16_double_hoisted` are a 16-diagonal linear transform (rotate by 1..16, multiply each by
//! a plaintext diagonal, sum) from plain rotations and with double hoisting.

// criterion macros and the closures here are bench-only code.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use criterion::{BenchmarkId, Criterion};
use hetier_he::ckks::*;
use rand::{Rng, SeedableRng};

const HOISTED: usize = 16;

struct Setup {
    log_n: u32,
    ctx: Arc<Context>,
    enc: Encoder,
    eval: Evaluator,
    encryptor: Mutex<Encryptor>,
    kg: Mutex<KeyGenerator>,
    sk: SecretKey,
    pk: PublicKey,
    rk: RelinKey,
    keys: GaloisKeySet,
    v1: Vec<f64>,
    v2: Vec<f64>,
    pt1: Plaintext,
    pt2: Plaintext,
    ct1: Ciphertext,
    ct2: Ciphertext,
    prod: Ciphertext,
    /// The 16 diagonals of the linear-transform benchmark, over Q (plain) and Q·P (hoisted).
    diags: Vec<Plaintext>,
    diags_ext: Vec<ExtendedPlaintext>,
}

fn setup(log_n: u32) -> Setup {
    let preset = Preset::for_log_n(log_n).expect("log N in 13..=16");
    let params = preset.params().expect("preset is valid");
    let ctx = Context::new(&params).expect("context");
    let mut kg = KeyGenerator::with_seed(&ctx, [9; 32]);
    let sk = kg.secret_key();
    let pk = kg.public_key(&sk).expect("pk");
    let rk = kg.relin_key(&sk).expect("rk");
    let mut keys = GaloisKeySet::new();
    for step in 1..=HOISTED as i64 {
        keys.insert(kg.rotation_key(&sk, step).expect("rotation key"));
    }
    let enc = Encoder::new(&ctx);
    let eval = Evaluator::new(&ctx);
    let mut encryptor = Encryptor::with_seed(&ctx, [5; 32]);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let slots = params.slots();
    let v1: Vec<f64> = (0..slots).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let v2: Vec<f64> = (0..slots).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let top = params.max_level();
    let pt1 = enc.encode_real(&v1, top, params.scale()).expect("encode");
    let pt2 = enc.encode_real(&v2, top, params.scale()).expect("encode");
    let ct1 = encryptor.encrypt_pk(&pk, &pt1).expect("encrypt");
    let ct2 = encryptor.encrypt_pk(&pk, &pt2).expect("encrypt");
    let mut s = eval.scratch();
    let prod = eval.mul_relin(&ct1, &ct2, &rk, &mut s).expect("mul");
    let diag_values: Vec<Vec<f64>> =
        (0..HOISTED).map(|_| (0..slots).map(|_| rng.gen_range(-1.0..1.0)).collect()).collect();
    let diags = diag_values
        .iter()
        .map(|d| enc.encode_real(d, top, params.scale()))
        .collect::<Result<Vec<_>, _>>()
        .expect("encode diagonals");
    let diags_ext = diag_values
        .iter()
        .map(|d| {
            let z: Vec<Complex64> = d.iter().map(|&x| Complex64::new(x, 0.0)).collect();
            enc.encode_extended(&z, top, params.scale())
        })
        .collect::<Result<Vec<_>, _>>()
        .expect("encode extended diagonals");
    let (encryptor, kg) = (Mutex::new(encryptor), Mutex::new(kg));
    Setup {
        log_n,
        ctx,
        enc,
        eval,
        encryptor,
        kg,
        sk,
        pk,
        rk,
        keys,
        v1,
        v2,
        pt1,
        pt2,
        ct1,
        ct2,
        prod,
        diags,
        diags_ext,
    }
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool")
}

type Op<'a> = Box<dyn FnMut() + Send + 'a>;

/// State the timed closures share: key-switching scratch, the 2-thread pool, rotation steps.
struct Extras {
    scratch: Mutex<Scratch>,
    two: rayon::ThreadPool,
    steps: Vec<i64>,
}

impl Extras {
    fn new(s: &Setup) -> Self {
        Self {
            scratch: Mutex::new(s.eval.scratch()),
            two: pool(2),
            steps: (1..=HOISTED as i64).collect(),
        }
    }
}

/// The timed operations, by name; every closure works on the setup's fixed operands.
fn ops<'a>(s: &'a Setup, x: &'a Extras) -> Vec<(&'static str, Op<'a>)> {
    let Setup {
        ctx,
        enc,
        eval,
        encryptor,
        kg,
        sk,
        pk,
        rk,
        keys,
        v1,
        pt1,
        pt2,
        ct1,
        ct2,
        prod,
        diags,
        diags_ext,
        ..
    } = s;
    let top = ctx.params().max_level();
    let scale = ctx.params().scale();
    let g1 = ctx.galois_element_for_step(1);
    let key1 = keys.get(g1).expect("key for step 1");
    let scratch = &x.scratch;
    let two = &x.two;
    let steps = &x.steps;
    vec![
        (
            "encode",
            Box::new(move || {
                black_box(enc.encode_real(v1, top, scale).expect("encode"));
            }),
        ),
        (
            "encrypt_pk",
            Box::new(move || {
                black_box(encryptor.lock().expect("lock").encrypt_pk(pk, pt1).expect("encrypt"));
            }),
        ),
        (
            "add",
            Box::new(move || {
                black_box(eval.add(ct1, ct2).expect("add"));
            }),
        ),
        (
            "mul_plain",
            Box::new(move || {
                black_box(eval.mul_plain(ct1, pt2).expect("mul_plain"));
            }),
        ),
        (
            "mul_relin",
            Box::new(move || {
                black_box(
                    eval.mul_relin(ct1, ct2, rk, &mut scratch.lock().expect("lock"))
                        .expect("mul_relin"),
                );
            }),
        ),
        (
            "rescale",
            Box::new(move || {
                black_box(eval.rescale(prod).expect("rescale"));
            }),
        ),
        (
            "rotate",
            Box::new(move || {
                black_box(
                    eval.rotate(ct1, 1, key1, &mut scratch.lock().expect("lock")).expect("rotate"),
                );
            }),
        ),
        (
            "rotate_2threads",
            Box::new(move || {
                two.install(|| {
                    black_box(
                        eval.rotate(ct1, 1, key1, &mut scratch.lock().expect("lock"))
                            .expect("rotate"),
                    );
                })
            }),
        ),
        (
            "keygen_rotation_key",
            Box::new(move || {
                black_box(kg.lock().expect("lock").rotation_key(sk, 1).expect("keygen"));
            }),
        ),
        (
            "rotate_16_plain",
            Box::new(move || {
                for &st in steps.iter() {
                    black_box(
                        eval.rotate_with(ct1, st, keys, &mut scratch.lock().expect("lock"))
                            .expect("rotate"),
                    );
                }
            }),
        ),
        (
            "rotate_16_hoisted",
            Box::new(move || {
                black_box(
                    eval.rotate_many(ct1, steps, keys, &mut scratch.lock().expect("lock"))
                        .expect("hoisted"),
                );
            }),
        ),
        // A 16-diagonal linear transform Σ_j d_j ⊙ R^j(x), j = 1..16, at the top level (like a
        // CoeffToSlot stage): plain rotations, products and sums ...
        (
            "lt16_plain",
            Box::new(move || {
                let mut sc = scratch.lock().expect("lock");
                let mut acc: Option<Ciphertext> = None;
                for (&st, d) in steps.iter().zip(diags) {
                    let r = eval.rotate_with(ct1, st, keys, &mut sc).expect("rotate");
                    let t = eval.mul_plain(&r, d).expect("mul_plain");
                    match acc.as_mut() {
                        None => acc = Some(t),
                        Some(a) => eval.add_assign(a, &t).expect("add"),
                    }
                }
                black_box(acc);
            }),
        ),
        // ... and the same with double hoisting (one ModUp, one ModDown per output).
        (
            "lt16_double_hoisted",
            Box::new(move || {
                let terms: Vec<(i64, &ExtendedPlaintext)> =
                    steps.iter().copied().zip(diags_ext).collect();
                black_box(
                    eval.rotate_mul_sum(ct1, &terms, keys, &mut scratch.lock().expect("lock"))
                        .expect("double hoisted"),
                );
            }),
        ),
    ]
}

fn log_ns() -> Vec<u32> {
    std::env::var("HETIER_CKKS_LOGN")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![13, 14, 15, 16])
}

/// Median wall time of ≥ 5 runs and ≥ 1 s of timed work (fewer runs if one exceeds 4 s).
fn time_op(f: &mut dyn FnMut()) -> (f64, f64, usize) {
    let t0 = Instant::now();
    f();
    let first = t0.elapsed().as_secs_f64();
    let min_reps = if first * 5.0 > 20.0 { 2 } else { 5 };
    let mut times = Vec::new();
    loop {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
        let total: f64 = times.iter().sum();
        if times.len() >= 200 || (times.len() >= min_reps && (total >= 1.0 || total >= 20.0)) {
            break;
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2] * 1e3;
    (median, times[0] * 1e3, times.len())
}

fn errors(s: &Setup) -> serde_json::Value {
    let dec = Decryptor::new(&s.ctx, &s.sk).expect("decryptor");
    let eval = &s.eval;
    let mut scratch = eval.scratch();
    let d = |ct: &Ciphertext| s.enc.decode_real(&dec.decrypt(ct).expect("dec")).expect("decode");
    let err =
        |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let encdec = err(&d(&s.ct1), &s.v1);
    let prod = eval.rescale(&s.prod).expect("rescale");
    let want: Vec<f64> = s.v1.iter().zip(&s.v2).map(|(a, b)| a * b).collect();
    let mul = err(&d(&prod), &want);
    let g1 = s.ctx.galois_element_for_step(1);
    let rot = eval.rotate(&s.ct1, 1, s.keys.get(g1).expect("key"), &mut scratch).expect("rotate");
    let mut want = s.v1.clone();
    want.rotate_left(1);
    let rot_err = err(&d(&rot), &want);
    serde_json::json!({"encdec": encdec, "mul_relin_rescale": mul, "rotate": rot_err})
}

fn run_json(path: &str) {
    let one = pool(1);
    let mut out = Vec::new();
    for log_n in log_ns() {
        eprintln!("[hetier] log N = {log_n}: setup");
        let s = one.install(|| setup(log_n));
        let p = s.ctx.params().clone();
        let g1 = s.ctx.galois_element_for_step(1);
        let rot_key_bytes = s.keys.get(g1).expect("key").to_bytes(&s.ctx).len();
        let relin_bytes = s.rk.to_bytes(&s.ctx).len();
        let ct_bytes = s.ct1.to_bytes(&s.ctx).len();
        let sym = s
            .encryptor
            .lock()
            .expect("lock")
            .encrypt_sk_seeded(&s.sk, &s.pt1)
            .expect("sym")
            .to_bytes(&s.ctx)
            .len();
        let errs = one.install(|| errors(&s));
        let extras = Extras::new(&s);
        let mut timings = serde_json::Map::new();
        for (name, mut f) in ops(&s, &extras) {
            let (median, min, reps) = one.install(|| time_op(&mut f));
            eprintln!(
                "[hetier] log N = {log_n}: {name:22} {median:10.3} ms (min {min:.3}, {reps} runs)"
            );
            timings.insert(
                name.into(),
                serde_json::json!({"median_ms": median, "min_ms": min, "reps": reps}),
            );
        }
        out.push(serde_json::json!({
            "lib": "hetier",
            "log_n": log_n,
            "N": 1u64 << log_n,
            "depth": p.max_level(),
            "q_bits": p.q().iter().map(|&q| (q as f64).log2()).collect::<Vec<_>>(),
            "p_bits": p.p().iter().map(|&q| (q as f64).log2()).collect::<Vec<_>>(),
            "dnum": p.dnum(),
            "log_qp": p.log_qp(),
            "secure_128": p.is_secure(),
            "timings_ms": timings,
            "sizes": {
                "rotation_key_one": rot_key_bytes,
                "relin_key": relin_bytes,
                "ciphertext_pk_fresh": ct_bytes,
                "ciphertext_symmetric_seeded": sym,
            },
            "check_max_abs_err": errs,
        }));
        std::fs::write(path, serde_json::to_string_pretty(&out).expect("json"))
            .expect("write json");
    }
}

fn run_criterion() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    let one = pool(1);
    for log_n in log_ns() {
        let s = one.install(|| setup(log_n));
        let extras = Extras::new(&s);
        let mut group = c.benchmark_group("ckks");
        for (name, mut f) in ops(&s, &extras) {
            group.bench_function(BenchmarkId::new(name, log_n), |b| one.install(|| b.iter(&mut f)));
        }
        group.finish();
        let _ = s.log_n;
    }
    c.final_summary();
}

fn main() {
    match std::env::var("HETIER_CKKS_JSON") {
        Ok(path) => run_json(&path),
        Err(_) => run_criterion(),
    }
}
