//! Shared helpers of the `nn` integration tests: run a program encrypted and as its twin.
#![allow(dead_code)]
// Also built as its own test crate, where the re-exported fixture would need docs.
#![allow(missing_docs)]

#[path = "common.rs"]
mod common;

pub use common::*;
use hetier_he::nn::*;
use rand::{Rng, SeedableRng};

/// Output of one encrypted run: decrypted and twin slot vectors, one per program output.
pub struct Run {
    pub slots: Vec<Vec<f64>>,
    pub twin: Vec<Vec<f64>>,
    pub accesses: Vec<Access>,
    pub level: usize,
}

/// Encrypts `inputs` (slot values, one vector per program input in order) at the inputs'
/// levels and scales, runs the program encrypted and as its plaintext twin, and decrypts the
/// outputs.
pub fn run(f: &mut Fixture, prog: &Program, inputs: &[Vec<f64>]) -> Run {
    assert_eq!(inputs.len(), prog.inputs().len());
    let keys = KeyBundle::generate(&mut f.keygen(), &f.sk, prog).unwrap();
    let mut it = Interpreter::new(&f.ctx, prog, &keys).unwrap();
    let mut tw = PlainInterpreter::new(prog);
    for ((name, id), v) in prog.inputs().iter().zip(inputs) {
        let o = prog.object(*id).unwrap();
        let pt = f.enc.encode_real(v, o.level, o.scale).unwrap();
        it.set_input(name, f.encryptor.encrypt_pk(&f.pk, &pt).unwrap()).unwrap();
        tw.set_input(name, v).unwrap();
    }
    it.run().unwrap();
    tw.run().unwrap();
    let mut slots = Vec::new();
    let mut twin = Vec::new();
    let mut level = usize::MAX;
    for (name, _) in prog.outputs() {
        let ct = it.output(name).unwrap();
        level = level.min(ct.level());
        slots.push(f.decrypt_real(ct));
        twin.push(tw.output(name).unwrap().to_vec());
    }
    Run { slots, twin, accesses: it.accesses().to_vec(), level }
}

pub fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

pub fn uniform(rng: &mut rand_chacha::ChaCha8Rng, n: usize, r: f64) -> Vec<f64> {
    (0..n).map(|_| rng.gen_range(-r..r)).collect()
}
