//! DRAM blocks: allocate, write every byte (as a computed result does), free — from the arena
//! (freed memory reused at any size) against a fresh zeroed heap/mmap buffer each time (what the
//! DRAM tier did before the arena: `alloc_zeroed` below 2 MiB, a new mapping above, so every
//! block's pages were faulted in and zeroed by the kernel again).
//!
//! Run: `cargo bench -p hetier-allocator --bench dram -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use hetier_allocator::DramTier;

const MIB: usize = 1 << 20;

fn bench(c: &mut Criterion) {
    let tier = DramTier::new(64 * MIB).expect("DRAM arena");
    let mut g = c.benchmark_group("dram_alloc_write_free");
    // Two sizes alternating: each block reuses memory the other one freed.
    for (a, b) in [(192 << 10, 320 << 10), (3 * MIB, 5 * MIB), (24 * MIB, 40 * MIB)] {
        let label = format!("{}K+{}K", a >> 10, b >> 10);
        g.throughput(Throughput::Bytes((a + b) as u64));
        g.bench_with_input(
            BenchmarkId::new("arena_for_overwrite", &label),
            &(a, b),
            |bn, &(a, b)| {
                bn.iter(|| {
                    for len in [a, b] {
                        let mut blk = tier.alloc_for_overwrite(len).expect("alloc");
                        blk.fill(7);
                        black_box(&blk);
                    }
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("arena_zeroed", &label), &(a, b), |bn, &(a, b)| {
            bn.iter(|| {
                for len in [a, b] {
                    let mut blk = tier.alloc(len).expect("alloc");
                    blk.fill(7);
                    black_box(&blk);
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("fresh_zeroed", &label), &(a, b), |bn, &(a, b)| {
            bn.iter(|| {
                for len in [a, b] {
                    let mut v = vec![0u8; len];
                    v.fill(7);
                    black_box(&v);
                }
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
