//! Math kernels, portable vs AVX-512 IFMA, in the same run:
//! - `ntt_forward` / `ntt_inverse`: one 50-bit prime, log N = 13..16;
//! - `basis_extend`: one ModUp digit, 11 → 24 primes (50-bit), log N = 13..16;
//! - `mul_slice`: pointwise a·b mod q over N words (50-bit prime), log N = 13..16;
//! - `dot_rotated`: one limb of the key-switching inner product under a rotation's Galois
//!   permutation, 3 digits × 2 key parts (50-bit prime), scalar u128 loop vs `dot_product`.
//!
//! Run: `cargo bench -p hetier-he --bench ntt`. The ratio is portable / ifma per row pair.
//! IFMA rows are skipped on CPUs without avx512ifma.

// criterion_group! expands to an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use hetier_he::math::{
    dot_product, galois_element_for_rotation, generate_ntt_primes, Automorphism, BasisConverter,
    Conversion, Modulus, NttBackend, NttTable,
};
use std::hint::black_box;

fn primes(bits: u32, log_n: u32, count: usize, exclude: &[u64]) -> Vec<u64> {
    match generate_ntt_primes(bits, log_n, count, exclude) {
        Ok(v) => v,
        Err(e) => panic!("prime generation: {e}"),
    }
}

fn pseudo_random(n: usize, q: u64, salt: u64) -> Vec<u64> {
    (0..n as u64).map(|i| (i ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15) % q).collect()
}

fn label(backend: NttBackend) -> &'static str {
    match backend {
        NttBackend::Portable => "portable",
        NttBackend::Ifma => "ifma",
        NttBackend::Avx512Wide => "avx512-wide",
    }
}

fn bench_ntt(c: &mut Criterion) {
    for (name, inverse) in [("ntt_forward", false), ("ntt_inverse", true)] {
        let mut group = c.benchmark_group(name);
        // 50 bits: the IFMA limit; 60 bits: EvalMod's primes, too wide for IFMA.
        for (log_n, bits) in (13..=16u32).flat_map(|l| [(l, 50u32), (l, 60)]) {
            let q = primes(bits, log_n, 1, &[])[0];
            let modulus = Modulus::new(q).expect("valid prime");
            let table = NttTable::new(modulus, log_n).expect("valid table");
            let input = pseudo_random(1 << log_n, q, 1);
            for backend in [NttBackend::Portable, NttBackend::Ifma, NttBackend::Avx512Wide] {
                let mut t = table.clone();
                if t.set_backend(backend).is_err() {
                    continue;
                }
                let mut buf = input.clone();
                let id = BenchmarkId::new(format!("{}/{bits}-bit", label(backend)), log_n);
                group.bench_with_input(id, &log_n, |b, _| {
                    b.iter(|| {
                        if inverse {
                            t.inverse(black_box(&mut buf));
                        } else {
                            t.forward(black_box(&mut buf));
                        }
                    })
                });
            }
        }
        group.finish();
    }
}

fn bench_basis_extend(c: &mut Criterion) {
    let mut group = c.benchmark_group("basis_extend");
    group.sample_size(20);
    for log_n in 13..=16u32 {
        let n = 1usize << log_n;
        let from: Vec<Modulus> = primes(50, log_n, 11, &[])
            .into_iter()
            .map(|q| Modulus::new(q).expect("prime"))
            .collect();
        let exclude: Vec<u64> = from.iter().map(|m| m.value()).collect();
        let to: Vec<Modulus> = primes(50, log_n, 24, &exclude)
            .into_iter()
            .map(|q| Modulus::new(q).expect("prime"))
            .collect();
        let conv = BasisConverter::new(&from, &to).expect("converter");
        let input: Vec<u64> = from
            .iter()
            .enumerate()
            .flat_map(|(i, m)| pseudo_random(n, m.value(), i as u64))
            .collect();
        let mut out = vec![0u64; to.len() * n];
        let mut scratch = vec![0u64; conv.scratch_len(n)];
        for backend in [NttBackend::Portable, NttBackend::Ifma] {
            let mut cv = conv.clone();
            match backend {
                NttBackend::Portable => cv.force_portable(),
                NttBackend::Ifma if !cv.uses_ifma() => continue,
                NttBackend::Ifma => {}
                NttBackend::Avx512Wide => unreachable!("not a basis-extension backend"),
            }
            group.bench_with_input(BenchmarkId::new(label(backend), log_n), &log_n, |b, _| {
                b.iter(|| {
                    cv.convert(black_box(&input), &mut out, Conversion::Approximate, &mut scratch)
                        .expect("shapes match")
                })
            });
        }
    }
    group.finish();
}

fn bench_mul_slice(c: &mut Criterion) {
    let mut group = c.benchmark_group("mul_slice");
    for log_n in 13..=16u32 {
        let n = 1usize << log_n;
        let q = primes(50, log_n, 1, &[])[0];
        let m = Modulus::new(q).expect("prime");
        let a = pseudo_random(n, q, 3);
        let b = pseudo_random(n, q, 4);
        let mut buf = a.clone();
        group.bench_with_input(BenchmarkId::new("portable", log_n), &log_n, |bch, _| {
            bch.iter(|| {
                for (x, &y) in buf.iter_mut().zip(&b) {
                    *x = m.mul(*x, y);
                }
            })
        });
        group.bench_with_input(BenchmarkId::new("dispatched", log_n), &log_n, |bch, _| {
            bch.iter(|| m.mul_assign_slice(black_box(&mut buf), &b))
        });
    }
    group.finish();
}

fn bench_dot(c: &mut Criterion) {
    let mut group = c.benchmark_group("dot_rotated");
    for log_n in 13..=16u32 {
        let n = 1usize << log_n;
        let q = primes(50, log_n, 1, &[])[0];
        let m = Modulus::new(q).expect("prime");
        let g = galois_element_for_rotation(1, log_n).expect("valid degree");
        let auto = Automorphism::new(log_n, g).expect("valid element");
        let a: Vec<Vec<u64>> = (0..3).map(|j| pseudo_random(n, q, j)).collect();
        let b: Vec<Vec<u64>> = (0..6).map(|j| pseudo_random(n, q, 10 + j)).collect();
        let ar: Vec<&[u64]> = a.iter().map(|v| v.as_slice()).collect();
        let br: Vec<&[u64]> = b.iter().map(|v| v.as_slice()).collect();
        let (mut o0, mut o1) = (vec![0u64; n], vec![0u64; n]);
        let perm = auto.ntt_source();
        group.bench_with_input(BenchmarkId::new("scalar", log_n), &log_n, |bch, _| {
            bch.iter(|| {
                for c in 0..n {
                    let (mut s0, mut s1) = (0u128, 0u128);
                    for j in 0..3 {
                        let x = ar[j][perm[c] as usize] as u128;
                        s0 += x * br[j][c] as u128;
                        s1 += x * br[3 + j][c] as u128;
                    }
                    o0[c] = m.reduce_u128(s0);
                    o1[c] = m.reduce_u128(s1);
                }
            })
        });
        group.bench_with_input(BenchmarkId::new("dispatched", log_n), &log_n, |bch, _| {
            bch.iter(|| {
                dot_product(&m, &ar, &br, Some(&auto), &mut [&mut o0, &mut o1]).expect("shapes")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_ntt, bench_basis_extend, bench_mul_slice, bench_dot);
criterion_main!(benches);
