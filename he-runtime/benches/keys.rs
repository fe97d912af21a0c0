//! Key expansion benchmark: one seed-compressed switching key (the store's form of an
//! evaluation key) expanded into a caller-owned buffer, as a pinned key is at each use; and a
//! key switch at the top level with that key expanded against the same switch reading the
//! seed-compressed blob in place (`KeyLimbs::Packed`): a pin expanded per use costs the
//! expansion plus the first, a key read in place the second.
//!
//! `cargo bench -p hetier-he --bench keys` runs log N = 14 (insecure test size);
//! `HETIER_KEYS_LOGN=16` the deep N = 2^16 preset (`n16_deep`: one key is ~140 MiB expanded).
//! One thread unless `HETIER_KEYS_THREADS` says otherwise. `HETIER_KEYS_CPU=K` instead runs K
//! expansions on this thread and prints the CPU time each took (from
//! `/proc/thread-self/schedstat`): on a loaded machine wall time says little, CPU time does.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput};
use hetier_he::ckks::{
    switch_key_expanded_words, Context, Encoder, Encryptor, Evaluator, KeyGenerator, KeyLimbs,
    KeySwitchKey, PackedKeyLayout, SwitchKeyWords,
};

#[path = "common/bootstrap_setup.rs"]
mod bootstrap_setup;

use bootstrap_setup::{preset, sizes, thread_pool};

/// A whole-key blob read in place, as a store's pin of it is.
struct InPlace {
    blob: Vec<u8>,
    layout: PackedKeyLayout,
}

impl SwitchKeyWords for InPlace {
    fn key_limbs(&self) -> KeyLimbs<'_> {
        KeyLimbs::Packed { blobs: vec![&self.blob], layout: &self.layout }
    }
}

/// The key of `bytes` read in place for switches up to the top level.
fn in_place(ctx: &Context, bytes: &[u8]) -> KeySwitchKey<InPlace> {
    let top = ctx.params().max_level();
    let layout = PackedKeyLayout::parse(ctx, &[bytes], top).expect("layout");
    KeySwitchKey::from_packed(InPlace { blob: bytes.to_vec(), layout }, ctx).expect("packed key")
}

/// A fresh ciphertext at the top level, to key-switch.
fn top_ciphertext(ctx: &Arc<Context>, kg: &mut KeyGenerator) -> hetier_he::ckks::Ciphertext {
    let sk = kg.secret_key();
    let p = ctx.params();
    let pt = Encoder::new(ctx).encode_real(&[0.25; 8], p.max_level(), p.scale()).expect("encode");
    Encryptor::new(ctx).encrypt_sk(&sk, &pt).expect("encrypt")
}

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
            switch_cpu_times(&ctx, &bytes, &mut kg, &pool, k);
            continue;
        }
        let ct = top_ciphertext(&ctx, &mut kg);
        let eval = Evaluator::new(&ctx);
        let mut scratch = eval.scratch();
        let packed = in_place(&ctx, &bytes);
        let expanded = KeySwitchKey::expand_into(&ctx, &bytes, vec![0u64; buf.len()]).expect("key");
        let id = BenchmarkId::new(format!("switch/expanded/{threads}t"), log_n);
        group.bench_function(id, |b| {
            b.iter(|| {
                pool.install(|| eval.key_switch(&ct, &expanded, &mut scratch).expect("switch"))
            })
        });
        let id = BenchmarkId::new(format!("switch/in-place/{threads}t"), log_n);
        group.bench_function(id, |b| {
            b.iter(|| pool.install(|| eval.key_switch(&ct, &packed, &mut scratch).expect("switch")))
        });
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

/// CPU seconds of the whole process so far (every thread: the switch runs on rayon's pool).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: Vec<f64> =
        rest.split_whitespace().skip(11).take(2).filter_map(|x| x.parse().ok()).collect();
    ticks.iter().sum::<f64>() / 100.0
}

/// CPU ms per top-level key switch with the key expanded and read in place, over `k` of each.
fn switch_cpu_times(
    ctx: &Arc<Context>,
    bytes: &[u8],
    kg: &mut KeyGenerator,
    pool: &rayon::ThreadPool,
    k: usize,
) {
    let ct = top_ciphertext(ctx, kg);
    let eval = Evaluator::new(ctx);
    let mut scratch = eval.scratch();
    let words = switch_key_expanded_words(ctx);
    let expanded = KeySwitchKey::expand_into(ctx, bytes, vec![0u64; words]).expect("key");
    let packed = in_place(ctx, bytes);
    let mut per = |f: &mut (dyn FnMut(&mut hetier_he::ckks::Scratch) + Send)| {
        let t = process_cpu_seconds();
        for _ in 0..k {
            pool.install(|| f(&mut scratch));
        }
        (process_cpu_seconds() - t) * 1e3 / k as f64
    };
    let e = per(&mut |s| drop(eval.key_switch(&ct, &expanded, s).expect("switch")));
    let p = per(&mut |s| drop(eval.key_switch(&ct, &packed, s).expect("switch")));
    println!("top-level key switch CPU ms: expanded key {e:.1}, read in place {p:.1} ({k} each)");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
