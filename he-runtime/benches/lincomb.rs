//! Batch-major linear layers: one CryptoNets fc1 step on one RNS limb (100 outputs × 32 input
//! ciphertext limbs of N = 8192 words, 29-bit prime) as
//! - `per_term`: what the per-op evaluator path does — for each term a copy, a scalar product
//!   and an addition (the `mul_const` + `add` ops of the generic program, one pass each);
//! - `fused`: `math::lincomb::lin_comb_acc` (IFMA lo/hi sums, one fold per output).
//!
//! Run: `cargo bench -p hetier-he --bench lincomb`. The ratio per_term / fused is the gain.

// criterion_group! expands to an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use hetier_he::math::lincomb::lin_comb_acc;
use hetier_he::math::{generate_ntt_primes, Modulus};
use std::hint::black_box;

const N: usize = 8192;
const TERMS: usize = 32;
const OUTS: usize = 100;

fn bench(c: &mut Criterion) {
    let q = match generate_ntt_primes(29, 13, 1, &[]) {
        Ok(v) => v[0],
        Err(e) => panic!("prime generation: {e}"),
    };
    let m = match Modulus::new(q) {
        Ok(m) => m,
        Err(e) => panic!("modulus: {e}"),
    };
    let x: Vec<Vec<u64>> = (0..TERMS)
        .map(|j| (0..N as u64).map(|i| (i * 7919 + j as u64 * 104_729) % q).collect())
        .collect();
    let w: Vec<u64> = (0..TERMS * OUTS).map(|i| (i as u64 * 2_654_435_761) % q).collect();
    let xr: Vec<&[u64]> = x.iter().map(|v| v.as_slice()).collect();
    let mut acc = vec![vec![0u64; N]; OUTS];
    let mut g = c.benchmark_group("lincomb_fc1_step");
    g.sample_size(10);
    g.bench_function("per_term", |b| {
        b.iter(|| {
            for (k, a) in acc.iter_mut().enumerate() {
                for (j, xj) in x.iter().enumerate() {
                    let mut t = xj.clone();
                    m.mul_scalar_assign_slice(&mut t, w[k * TERMS + j]);
                    m.add_assign_slice(a, &t);
                }
            }
            black_box(&acc);
        })
    });
    g.bench_function("fused", |b| {
        b.iter(|| {
            let mut a: Vec<&mut [u64]> = acc.iter_mut().map(|v| v.as_mut_slice()).collect();
            if let Err(e) = lin_comb_acc(&m, &xr, &w, &mut a) {
                panic!("lincomb: {e}");
            }
            black_box(&acc);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
