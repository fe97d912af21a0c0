//! ResNet-20's weight plaintexts at log N = 16, encoded on the fly vs stored encoded in the pool
//! and read back: CPU time per diagonal (evaluate the diagonal from the raw weights, then encode
//! it at its level) against the O_DIRECT read of the same encoded plaintext from a cold pool,
//! with and without `planned` prefetch, extrapolated to the 9,219 diagonals of one image.
//!
//! `cargo run --release -p hetier-he --example weights_fly_vs_stored [EVERY_KTH] [POOL_PARENT]`
//! (default: every 25th diagonal of the program, the pool in a temp dir under the system's).
use std::time::Instant;

use hetier_he::ckks::bootstrap::{BootstrapPreset, Bootstrapper};
use hetier_he::ckks::{Context, Encoder};
use hetier_he::model::{zoo, Activation, DEFAULT_MARGIN};
use hetier_he::nn::{BootstrapSpec, ObjKind, Op};
use hetier_tiering::{
    Backend, Durability, ObjectId, ObjectKind, PolicyConfig, Pool, PoolOptions, PrefetchRule,
    TieredStore,
};

fn store(dir: &std::path::Path, create: bool, policy: PolicyConfig) -> TieredStore {
    let opts = PoolOptions::default().backend(Backend::Direct).segment_size(256 << 20);
    let pool =
        if create { Pool::create(dir, opts).unwrap() } else { Pool::open(dir, opts).unwrap().0 };
    TieredStore::builder().dram_budget(64 << 20).pool(pool).policy(policy).build().unwrap()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let every: usize = std::env::args().nth(1).map_or(Ok(25), |s| s.parse())?;
    let parent = std::env::args().nth(2).map_or_else(std::env::temp_dir, Into::into);
    let preset = BootstrapPreset::n16_deep();
    let params = preset.params()?;
    let ctx = Context::new(&params)?;
    let bs = Bootstrapper::new(&ctx, &preset.config)?;
    let m = zoo::resnet20(1, Activation::Poly { coeffs: vec![0.1, 0.5, 0.2] })?;
    let compiled = m.compile_bootstrapped(&params, &BootstrapSpec::of(&bs), DEFAULT_MARGIN)?;
    let p = &compiled.program;

    // Every weight plaintext in the order the program multiplies by it, then a sample.
    let mut order = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in p.ops() {
        if let Op::MulPlain { pt, .. } | Op::AddPlain { pt, .. } = &r.op {
            if p.object(*pt)?.kind == ObjKind::Plaintext && seen.insert(*pt) {
                order.push(*pt);
            }
        }
    }
    let total = order.len();
    let total_bytes: u64 = order.iter().map(|&o| p.object(o).map_or(0, |x| x.bytes)).sum();
    let sample: Vec<_> = order.iter().copied().step_by(every.max(1)).collect();
    println!(
        "{total} weight plaintexts ({:.1} GB encoded), timing {} of them",
        total_bytes as f64 / 1e9,
        sample.len()
    );

    let encoder = Encoder::new(&ctx);
    let dir = tempfile::tempdir_in(parent)?;
    let (mut eval_s, mut encode_s, mut bytes) = (0.0, 0.0, 0u64);
    {
        let st = store(dir.path(), true, PolicyConfig::Lru);
        for (i, &o) in sample.iter().enumerate() {
            let obj = p.object(o)?;
            let src = obj.plain.as_ref().ok_or("a weight without values")?;
            let t = Instant::now();
            let values = src.eval();
            let t1 = Instant::now();
            let pt = encoder.encode_real(&values, obj.level, obj.scale)?;
            encode_s += t1.elapsed().as_secs_f64();
            eval_s += (t1 - t).as_secs_f64();
            let words = pt.as_words();
            let raw: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            bytes += raw.len() as u64;
            st.put(ObjectId(i as u64 + 1), ObjectKind::Plaintext, Durability::Durable, &raw)?;
        }
    }
    let n = sample.len() as f64;
    let read = |policy: PolicyConfig, hint: bool| -> Result<f64, Box<dyn std::error::Error>> {
        let st = store(dir.path(), false, policy);
        let ids: Vec<_> = (1..=sample.len() as u64).map(ObjectId).collect();
        if hint {
            st.hint(&ids);
        }
        let t = Instant::now();
        for &id in &ids {
            let g = st.pin(id)?;
            std::hint::black_box(g.as_bytes()[0]);
        }
        Ok(t.elapsed().as_secs_f64())
    };
    let cold = read(PolicyConfig::Lru, false)?;
    let prefetched = read(PolicyConfig::planned(PrefetchRule::Conservative), true)?;
    let per_image = |s: f64| s / n * total as f64;
    println!(
        "on the fly: {:.2} ms/diagonal (evaluate {:.2} + encode {:.2}) -> {:.1} s of CPU per image",
        (eval_s + encode_s) / n * 1e3,
        eval_s / n * 1e3,
        encode_s / n * 1e3,
        per_image(eval_s + encode_s)
    );
    println!(
        "stored:     {:.2} MB/diagonal; cold reads {:.2} ms/diagonal ({:.2} GB/s) -> {:.1} s per image; \
         with planned prefetch {:.2} ms ({:.2} GB/s) -> {:.1} s per image of PM transfer",
        bytes as f64 / n / 1e6,
        cold / n * 1e3,
        bytes as f64 / cold / 1e9,
        per_image(cold),
        prefetched / n * 1e3,
        bytes as f64 / prefetched / 1e9,
        per_image(prefetched)
    );
    Ok(())
}
