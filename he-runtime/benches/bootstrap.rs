//! Bootstrapping benchmark: one full-slot bootstrap (and its phases) per ring size, on one
//! thread unless `HETIER_BOOT_THREADS` says otherwise.
//!
//! `cargo bench -p hetier-he --bench bootstrap` runs log N = 13 (insecure test size, seconds);
//! `HETIER_BOOT_LOGN=16 cargo bench -p hetier-he --bench bootstrap` runs the deep N = 2^16
//! preset (9 levels left; ~8 GiB of keys in memory, a minute of key generation). For the
//! side-by-side table with OpenFHE and DESILO see `benches/peers/compare_boot.sh`.

// criterion macros and the closures here are bench-only code.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion};
use hetier_he::ckks::bootstrap::{BootstrapKeys, Bootstrapper};
use hetier_he::ckks::{Complex64, Context, Encoder, Encryptor, Evaluator, KeyGenerator};

#[path = "common/bootstrap_setup.rs"]
mod bootstrap_setup;

use bootstrap_setup::{preset, sizes, thread_pool};

fn bench(c: &mut Criterion) {
    let pool = thread_pool("HETIER_BOOT_THREADS");
    let threads = pool.current_num_threads();
    let mut group = c.benchmark_group("bootstrap");
    group.sample_size(10);
    for log_n in sizes("HETIER_BOOT_LOGN", 13) {
        let preset = preset(log_n);
        let params = preset.params().expect("preset");
        let ctx = Context::new(&params).expect("context");
        let bs = Bootstrapper::new(&ctx, &preset.config).expect("bootstrapper");
        let mut kg = KeyGenerator::with_seed(&ctx, [1; 32]);
        let sk = kg.secret_key();
        let keys = pool.install(|| BootstrapKeys::generate(&mut kg, &sk, &bs)).expect("keys");
        let z: Vec<Complex64> = (0..params.slots())
            .map(|i| Complex64::new((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos()))
            .collect();
        let pt = Encoder::new(&ctx).encode(&z, 0, params.scale()).expect("encode");
        let ct = Encryptor::with_seed(&ctx, [2; 32]).encrypt_sk(&sk, &pt).expect("encrypt");
        let mut scratch = Evaluator::new(&ctx).scratch();
        let id = BenchmarkId::new(format!("full-slots/{threads}t"), log_n);
        group.bench_function(id, |b| {
            b.iter(|| {
                pool.install(|| {
                    black_box(bs.bootstrap(&ct, &keys, &mut scratch).expect("bootstrap"))
                })
            })
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
