//! Bit-field kernels on one N = 2^16 limb: unpacking packed residues (`unpack_fields`, as
//! `unpack_limb` does for every limb of a key's `b` parts) and keeping the fields below q
//! (`take_below`, the rejection step of seed expansion, below q and below a multiple of q),
//! AVX-512 against portable.
//!
//! `cargo bench -p hetier-he --bench bit_fields`; throughput is in fields (residues).

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use hetier_he::math::bit_fields::{
    packed_len, simd_available, take_below, take_below_portable, unpack_fields,
    unpack_fields_portable,
};
use rand::{RngCore, SeedableRng};

const N: usize = 1 << 16;

type Unpack = fn(&[u8], u32, &mut [u64]) -> u64;
type Take = fn(&[u8], u32, u64, u64, &mut [u64]) -> (usize, usize);

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("bit-fields");
    group.throughput(Throughput::Elements(N as u64));
    let mut rng = rand_chacha::ChaCha8Rng::from_seed([9; 32]);
    let simd = if simd_available() { "avx512" } else { "dispatched(portable)" };
    let unpacks: [(&str, Unpack); 2] =
        [(simd, unpack_fields), ("portable", unpack_fields_portable)];
    let takes: [(&str, Take); 2] = [(simd, take_below), ("portable", take_below_portable)];
    for width in [46u32, 50, 55, 61] {
        let mut src = vec![0u8; packed_len(N, width)];
        rng.fill_bytes(&mut src);
        let mut out = vec![0u64; N];
        for (name, f) in unpacks {
            group.bench_function(BenchmarkId::new(format!("unpack/{name}"), width), |b| {
                b.iter(|| black_box(f(black_box(&src), width, &mut out)))
            });
        }
        // A bound just above 2^(width-1): about half the candidates are kept, the worst case
        // for the compaction.
        let q = (1u64 << (width - 1)) + 1;
        for (name, f) in takes {
            group.bench_function(BenchmarkId::new(format!("take_below/{name}"), width), |b| {
                b.iter(|| black_box(f(black_box(&src), width, q, 1, &mut out)))
            });
        }
        // As seed expansion cuts a prime just above 2^(width-3): at two more bits, 7 of 8
        // candidates kept and reduced by three conditional subtractions, one call per refill
        // of 64 candidates (8·width bytes).
        let q = (1u64 << (width - 3)) + 1;
        for (name, f) in takes {
            group.bench_function(
                BenchmarkId::new(format!("take_below_x7_64/{name}"), width),
                |b| {
                    b.iter(|| {
                        let mut i = 0;
                        for refill in black_box(&src).chunks_exact(8 * width as usize) {
                            i += f(refill, width, q, 7, &mut out[i..]).0;
                        }
                        black_box(i)
                    })
                },
            );
        }
    }
    group.finish();
    // One n16_deep key's packed `b` parts: 9.2 M residues, far beyond the caches, so memory
    // traffic (reading the blob, writing 74 MB) counts as it does in key expansion.
    let mut group = c.benchmark_group("bit-fields-key");
    group.sample_size(10);
    let (n, width) = (140 << 16, 55u32);
    group.throughput(Throughput::Elements(n as u64));
    let mut src = vec![0u8; packed_len(n, width)];
    rng.fill_bytes(&mut src);
    let mut out = vec![0u64; n];
    for (name, f) in unpacks {
        group.bench_function(BenchmarkId::new(format!("unpack/{name}"), n), |b| {
            b.iter(|| black_box(f(black_box(&src), width, &mut out)))
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
