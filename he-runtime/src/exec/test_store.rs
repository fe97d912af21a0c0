//! The tiered store the exec tests run on: `planned` with prefetch over a pool of small segment
//! files, so a test's pool stays small on disk; and the bootstrap fixture the store-backed
//! bootstrap tests share.

use std::sync::Arc;

use hetier_tiering::{PolicyConfig, Pool, PoolOptions, PrefetchRule, TieredStore};

use crate::ckks::bootstrap::{BootstrapPreset, Bootstrapper};
use crate::ckks::{Ciphertext, Complex64, Context, Encoder, Encryptor, KeyGenerator, SecretKey};
use crate::exec::KeySetId;

/// A store with a DRAM budget of `budget` bytes over the pool in `dir`, created there when
/// `create` and reopened otherwise, in segment files of `segment` bytes.
pub(crate) fn planned_store(
    dir: &std::path::Path,
    budget: u64,
    create: bool,
    segment: u64,
) -> TieredStore {
    let opts = PoolOptions::default().segment_size(segment);
    let pool =
        if create { Pool::create(dir, opts).unwrap() } else { Pool::open(dir, opts).unwrap().0 };
    TieredStore::builder()
        .dram_budget(budget)
        .pool(pool)
        .policy(PolicyConfig::planned(PrefetchRule::Conservative))
        .build()
        .unwrap()
}

/// A log N = 12 bootstrapper (one level left) and a key generator seeded with `[seed; 32]`,
/// its secret key and key-set id, and a directory for the pool.
pub(crate) struct Fixture {
    pub(crate) ctx: Arc<Context>,
    pub(crate) bs: Bootstrapper,
    pub(crate) kg: KeyGenerator,
    pub(crate) sk: SecretKey,
    pub(crate) keyset: KeySetId,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) fn fixture(seed: u8) -> Fixture {
    let preset = BootstrapPreset::insecure_test(12, 1);
    let ctx = Context::new(&preset.params().unwrap()).unwrap();
    let bs = Bootstrapper::new(&ctx, &preset.config).unwrap();
    let mut kg = KeyGenerator::with_seed(&ctx, [seed; 32]);
    let sk = kg.secret_key();
    let keyset = KeySetId::from_seed(&[seed; 32]);
    Fixture { ctx, bs, kg, sk, keyset, dir: tempfile::tempdir().unwrap() }
}

/// The slots `slot(i)`, their encoder, and their encryption under `sk` (fixed seed).
pub(crate) fn encrypted(
    ctx: &Arc<Context>,
    sk: &SecretKey,
    slot: impl Fn(usize) -> Complex64,
) -> (Vec<Complex64>, Encoder, Ciphertext) {
    let z: Vec<Complex64> = (0..ctx.params().slots()).map(slot).collect();
    let enc = Encoder::new(ctx);
    let ct = Encryptor::with_seed(ctx, [6; 32])
        .encrypt_sk(sk, &enc.encode(&z, 0, ctx.params().scale()).unwrap())
        .unwrap();
    (z, enc, ct)
}
