//! `nn` layer benchmarks: programs run by the in-memory interpreter, each against a baseline
//! measured in the same run.
//!
//! `cargo bench -p hetier-he --bench nn` (single-threaded rayon pool, log N = 13 or 14):
//! * `matvec64/bsgs` (n1 = n2 = 8: 7 hoisted baby + 7 giant rotations) vs `matvec64/diagonal`
//!   (the plain diagonal method: 63 rotations, also hoisted) — the BSGS saving;
//! * `relu_d4/chebyshev` (degree-14 Chebyshev ReLU, 4 levels) vs `relu_d4/square` (one x²) —
//!   what a depth-4 activation costs relative to the CryptoNets square.

// criterion macros and the closures here are bench-only code.
#![allow(missing_docs)]

use std::sync::Arc;

use criterion::Criterion;
use hetier_he::ckks::*;
use hetier_he::nn::layers::{Dense, PolyActivation, Square};
use hetier_he::nn::*;
use rand::{Rng, SeedableRng};

struct Fx {
    pool: rayon::ThreadPool,
    ctx: Arc<Context>,
    enc: Encoder,
    sk: SecretKey,
    pk: PublicKey,
}

impl Fx {
    fn new(p: Preset) -> Self {
        let ctx = Context::new(&p.params().unwrap()).unwrap();
        let mut kg = KeyGenerator::with_seed(&ctx, [1; 32]);
        let sk = kg.secret_key();
        let pk = kg.public_key(&sk).unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        Self { pool, enc: Encoder::new(&ctx), ctx, sk, pk }
    }

    fn input(&self, prog: &Program, v: &[f64]) -> Ciphertext {
        let o = prog.object(prog.inputs()[0].1).unwrap();
        let pt = self.enc.encode_real(v, o.level, o.scale).unwrap();
        Encryptor::with_seed(&self.ctx, [2; 32]).encrypt_pk(&self.pk, &pt).unwrap()
    }

    /// Times one program run (keys and weights prepared outside the loop).
    fn bench(&self, c: &mut Criterion, group: &str, name: &str, prog: &Program, v: &[f64]) {
        let keys =
            KeyBundle::generate(&mut KeyGenerator::with_seed(&self.ctx, [3; 32]), &self.sk, prog)
                .unwrap();
        let ct = self.input(prog, v);
        let input = prog.inputs()[0].0.clone();
        let mut g = c.benchmark_group(group);
        g.sample_size(10);
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let mut it = Interpreter::new(&self.ctx, prog, &keys).unwrap();
                    it.set_input(&input, ct.clone()).unwrap();
                    it
                },
                |mut it| self.pool.install(|| it.run().unwrap()),
                criterion::BatchSize::LargeInput,
            )
        });
        g.finish();
    }
}

fn diagonal_matvec(params: &Params, w: &[f64], n: usize) -> Program {
    let slots = params.slots();
    let mut b = ProgramBuilder::new(params);
    let x = b.input("x", params.max_level(), params.scale()).unwrap();
    let steps: Vec<i64> = (0..n as i64).collect();
    let rots = b.rotate_hoisted(x, &steps).unwrap();
    let q = b.prime(params.max_level()).unwrap();
    let mut terms = Vec::new();
    for (k, &r) in rots.iter().enumerate() {
        let d: Vec<f64> = (0..n).map(|i| w[i * n + (i + k) % n]).collect();
        let src = PlainSource::new(move || d.iter().copied().cycle().take(slots).collect());
        terms.push(b.mul_values(r, src, q).unwrap());
    }
    let s = b.sum(&terms).unwrap().unwrap();
    let y = b.rescale(s).unwrap();
    b.output("y", y).unwrap();
    b.finish()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let fx = Fx::new(Preset::N13);
        let params = fx.ctx.params().clone();
        let n = 64;
        let w: Vec<f64> = (0..n * n).map(|_| rng.gen_range(-0.1..0.1)).collect();
        let v: Vec<f64> = (0..params.slots()).map(|i| ((i % n) as f64 / n as f64) - 0.5).collect();
        let d = Dense::new("fc", n, n, w.clone(), None).unwrap();
        let mut b = ProgramBuilder::new(&params);
        let x = b.input("x", params.max_level(), params.scale()).unwrap();
        let (y, _) = d.compile(&mut b, x, &Layout::vector(n)).unwrap();
        b.output("y", y).unwrap();
        let bsgs = b.finish();
        fx.bench(&mut c, "matvec64", "bsgs", &bsgs, &v);
        fx.bench(&mut c, "matvec64", "diagonal", &diagonal_matvec(&params, &w, n), &v);

        let fx = Fx::new(Preset::N14);
        let params = fx.ctx.params().clone();
        let v: Vec<f64> = (0..params.slots()).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let relu = PolyActivation::relu("relu", -1.0, 1.0, 4).unwrap();
        for (name, act) in [("chebyshev", Some(&relu)), ("square", None)] {
            let mut b = ProgramBuilder::new(&params);
            let x = b.input("x", params.max_level(), params.scale()).unwrap();
            let lay = Layout::vector(params.slots());
            let (y, _) = match act {
                Some(a) => a.compile(&mut b, x, &lay).unwrap(),
                None => Square::new("sq").compile(&mut b, x, &lay).unwrap(),
            };
            b.output("y", y).unwrap();
            fx.bench(&mut c, "relu_d4", name, &b.finish(), &v);
        }
    }
    c.final_summary();
}
