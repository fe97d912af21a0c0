//! Key expansion benchmark: one seed-compressed switching key (the store's form of an
//! evaluation key) expanded into a caller-owned buffer, as a pinned key is at each use.
//!
//! `cargo bench -p hetier-he --bench keys` runs log N = 14 (insecure test size);
//! `HETIER_KEYS_LOGN=16` the deep N = 2^16 preset (`n16_deep`: one key is ~140 MiB expanded).
//! One thread unless `HETIER_KEYS_THREADS` says otherwise. `HETIER_KEYS_CPU=K` instead runs K
//! expansions on this thread and prints the CPU time each took (from
//! `/proc/thread-self/schedstat`): on a loaded machine wall time says little, CPU time does.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use hetier_he::ckks::{switch_key_expanded_words, Context, KeyGenerator, KeySwitchKey};

#[path = "common/bootstrap_setup.rs"]
mod bootstrap_setup;

use bootstrap_setup::{preset, sizes, thread_pool};

fn bench(c: &mut Criterion) {
    let pool = thread_pool("HETIER_KEYS_THREADS");
    let threads = pool.current_num_threads();
    let mut group = c.benchmark_group("key-expand");
    group.sample_size(10);
    for log_n in sizes("HETIER_KEYS_LOGN", 14) {
        let preset = preset(log_n);
        let ctx = Context::new(&preset.params().expect("preset")).expect("context");
        let mut kg = KeyGenerator::with_seed(&ctx, [1; 32]);
        let sk = kg.secret_key();
        let bytes = pool.install(|| kg.relin_key(&sk).expect("relin key").key.to_bytes(&ctx));
        let mut buf = vec![0u64; switch_key_expanded_words(&ctx)];
        if let Some(k) = std::env::var("HETIER_KEYS_CPU").ok().and_then(|k| k.parse().ok()) {
            cpu_times(&ctx, &bytes, &mut buf, k, log_n);
            continue;
        }
        group.throughput(Throughput::Bytes(buf.len() as u64 * 8));
        let id = BenchmarkId::new(format!("expand_into/{threads}t"), log_n);
        group.bench_function(id, |b| {
            b.iter(|| {
                pool.install(|| {
                    let k = KeySwitchKey::expand_into(&ctx, black_box(&bytes), &mut buf[..])
                        .expect("expand");
                    black_box(k.seed()[0])
                })
            })
        });
    }
    group.finish();
}

/// Nanoseconds this thread has run on a CPU.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}

fn cpu_times(ctx: &Context, bytes: &[u8], buf: &mut [u64], k: usize, log_n: u32) {
    let mut ms = Vec::with_capacity(k);
    for _ in 0..k {
        let t = thread_cpu_ns();
        let key = KeySwitchKey::expand_into_serial(ctx, black_box(bytes), &mut buf[..]);
        black_box(key.expect("expand").seed()[0]);
        ms.push((thread_cpu_ns() - t) as f64 * 1e-6);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "log N {log_n}: expand_into_serial CPU ms per key: min {:.1} median {:.1} max {:.1} ({} MiB expanded)",
        ms[0],
        ms[ms.len() / 2],
        ms[ms.len() - 1],
        (buf.len() * 8) >> 20
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
