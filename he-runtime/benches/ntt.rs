//! Forward/inverse NTT on one ~50-bit prime, portable vs AVX-512 IFMA, log N = 13..16.
//!
//! Run: `cargo bench -p hetier-he --bench ntt`. Each size reports `portable` and `ifma` times in
//! the same run; the ratio is portable / ifma. IFMA rows are skipped on CPUs without avx512ifma.

// criterion_group! expands to an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use hetier_he::math::{generate_ntt_primes, Modulus, NttBackend, NttTable};
use std::hint::black_box;

fn bench_ntt(c: &mut Criterion) {
    for (name, inverse) in [("ntt_forward", false), ("ntt_inverse", true)] {
        let mut group = c.benchmark_group(name);
        for log_n in 13..=16u32 {
            let q = match generate_ntt_primes(50, log_n, 1, &[]) {
                Ok(v) => v[0],
                Err(e) => panic!("prime generation: {e}"),
            };
            let modulus = Modulus::new(q).expect("valid prime");
            let table = NttTable::new(modulus, log_n).expect("valid table");
            let n = 1usize << log_n;
            let input: Vec<u64> = (0..n as u64).map(|i| (i * 0x9E37_79B9_7F4A_7C15) % q).collect();
            for backend in [NttBackend::Portable, NttBackend::Ifma] {
                let mut t = table.clone();
                if t.set_backend(backend).is_err() {
                    continue;
                }
                let label = match backend {
                    NttBackend::Portable => "portable",
                    NttBackend::Ifma => "ifma",
                };
                let mut buf = input.clone();
                group.bench_with_input(BenchmarkId::new(label, log_n), &log_n, |b, _| {
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

criterion_group!(benches, bench_ntt);
criterion_main!(benches);
