//! Shared helpers of the `nn` integration tests: run a program encrypted and as its twin.
#![allow(dead_code)]
// Also built as its own test crate, where the re-exported fixture would need docs.
#![allow(missing_docs)]

#[path = "common.rs"]
mod common;

pub use common::*;
use hetier_he::nn::*;
use rand::{Rng, SeedableRng};

/// Output of one encrypted run.
pub struct Run {
    pub slots: Vec<f64>,
    pub twin: Vec<f64>,
    pub accesses: Vec<Access>,
    pub level: usize,
}

/// Encrypts `input` (slot values) at the program input's level and scale, runs the program
/// encrypted and as its plaintext twin, and decrypts output "y".
pub fn run(f: &mut Fixture, prog: &Program, input: &[f64]) -> Run {
    let (name, id) = prog.inputs()[0].clone();
    let o = prog.object(id).unwrap();
    let pt = f.enc.encode_real(input, o.level, o.scale).unwrap();
    let ct = f.encryptor.encrypt_pk(&f.pk, &pt).unwrap();
    let keys = KeyBundle::generate(&mut f.keygen(), &f.sk, prog).unwrap();
    let mut it = Interpreter::new(&f.ctx, prog, &keys).unwrap();
    it.set_input(&name, ct).unwrap();
    it.run().unwrap();
    let out = it.output("y").unwrap().clone();
    let mut tw = PlainInterpreter::new(prog);
    tw.set_input(&name, input).unwrap();
    tw.run().unwrap();
    Run {
        slots: f.decrypt_real(&out),
        twin: tw.output("y").unwrap().to_vec(),
        accesses: it.accesses().to_vec(),
        level: out.level(),
    }
}

pub fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

pub fn uniform(rng: &mut rand_chacha::ChaCha8Rng, n: usize, r: f64) -> Vec<f64> {
    (0..n).map(|_| rng.gen_range(-r..r)).collect()
}
