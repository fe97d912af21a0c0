//! Shared fixtures for hetier's cross-crate tests: CKKS objects (keys, ciphertexts) that live in
//! the tiered store and are used in place through pinned buffers.
//!
//! The tests themselves are under `tests/tests/`; this library only gathers what several of
//! them need, so each test reads as the promise it checks.

use std::path::Path;
use std::sync::Arc;

use hetier_allocator::{Durability, ObjectId, ObjectKind, Pool, PoolOptions};
use hetier_he::ckks::{
    Ciphertext, Context, Decryptor, Encoder, Encryptor, GaloisKey, KeyGenerator, KeySwitchKey,
    Preset, PublicKey, SecretKey, Seed,
};
use hetier_tiering::{PolicyConfig, TieredStore};
use rand::{Rng, SeedableRng};

/// Pool segments small enough that tests grow the pool several times.
pub const SEGMENT: u64 = 4 << 20;

/// A CKKS context with a secret and public key, reproducible from fixed seeds.
pub struct Crypto {
    /// Parameters and precomputed tables.
    pub ctx: Arc<Context>,
    /// The client's secret key (never stored).
    pub sk: SecretKey,
    /// The matching public key.
    pub pk: PublicKey,
    /// Encoder for the context.
    pub encoder: Encoder,
}

impl Crypto {
    /// Keys for `preset` from fixed seeds.
    pub fn new(preset: Preset) -> Crypto {
        let ctx = Context::new(&preset.params().expect("preset parameters")).expect("context");
        let mut kg = KeyGenerator::with_seed(&ctx, [11; 32]);
        let sk = kg.secret_key();
        let pk = kg.public_key(&sk).expect("public key");
        let encoder = Encoder::new(&ctx);
        Crypto { ctx, sk, pk, encoder }
    }

    /// A key generator for evaluation keys, seeded so reruns give the same keys.
    pub fn keygen(&self) -> KeyGenerator {
        KeyGenerator::with_seed(&self.ctx, [12; 32])
    }

    /// `count` reproducible values in [-1, 1).
    pub fn values(&self, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..self.ctx.params().slots()).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    /// Encrypts `values` at the top level with the default scale.
    pub fn encrypt(&self, values: &[f64]) -> Ciphertext {
        let p = self.ctx.params();
        let pt = self.encoder.encode_real(values, p.max_level(), p.scale()).expect("encode");
        Encryptor::with_seed(&self.ctx, [13; 32]).encrypt_pk(&self.pk, &pt).expect("encrypt")
    }

    /// Decrypts and decodes to real values.
    pub fn decrypt<C: AsRef<[u64]>>(&self, ct: &Ciphertext<C>) -> Vec<f64> {
        let pt = Decryptor::new(&self.ctx, &self.sk).expect("decryptor").decrypt(ct).expect("dec");
        self.encoder.decode_real(&pt).expect("decode")
    }
}

/// The largest absolute difference between two equally long vectors.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Opens the pool in `dir` if it exists, creates it otherwise.
pub fn open_or_create_pool(dir: &Path) -> Pool {
    let opts = PoolOptions::default().segment_size(SEGMENT);
    if dir.exists() {
        Pool::open(dir, opts).expect("open pool").0
    } else {
        Pool::create(dir, opts).expect("create pool")
    }
}

/// A store over `pool` with a DRAM budget of `budget` bytes and the `lru` policy.
pub fn store(pool: Pool, budget: u64) -> TieredStore {
    TieredStore::builder()
        .dram_budget(budget)
        .pool(pool)
        .policy(PolicyConfig::Lru)
        .build()
        .expect("store")
}

/// Puts `words` as object `id`, written straight into a DRAM block the store owns (no staging
/// copy through a byte vector).
pub fn put_words(
    store: &TieredStore,
    id: ObjectId,
    kind: ObjectKind,
    durability: Durability,
    words: &[u64],
) {
    let mut block = store.alloc(words.len() as u64 * 8).expect("alloc under budget");
    block.as_u64s_mut().copy_from_slice(words);
    store.put_block(id, kind, durability, block).expect("put block");
}

/// The bytes of a key's seed, stored next to the key so a later process can rebuild it.
pub fn seed_bytes(key: &KeySwitchKey) -> Vec<u8> {
    key.seed().to_vec()
}

/// Rebuilds a Galois key around a pinned buffer without copying it.
pub fn galois_key_in_place<'a>(
    ctx: &Context,
    galois_element: u64,
    words: &'a [u64],
    seed: &[u8],
) -> GaloisKey<&'a [u64]> {
    let seed: Seed = seed.try_into().expect("32-byte seed");
    GaloisKey { galois_element, key: KeySwitchKey::from_raw(words, seed, ctx).expect("key layout") }
}
