//! Bootstrapping with its keys in the tiered store: every key a durable object (reused by later
//! processes through the key-set manifest), pinned only for the step that uses it, and the
//! bootstrap's whole key order handed to the store as a hint so `planned` prefetches it.

use std::sync::Arc;

use hetier_tiering::{ObjectId, PinGuard, TieredStore};

use super::error::{Error, Result};
use super::ids::KeySetId;
use super::keys::{KeyReport, KeySet, StoredKey};
use crate::ckks::bootstrap::{Bootstrapper, KeySource, KeyUse};
use crate::ckks::{Context, GaloisKey, KeyGenerator, KeySwitchKey, RelinKey, SecretKey};
use crate::Error as CoreError;

/// Manifest tag of the dense-to-sparse switching key (even: never a Galois element).
const TO_SPARSE_TAG: u64 = 2;
/// Manifest tag of the sparse-to-dense switching key.
const FROM_SPARSE_TAG: u64 = 4;

fn tag(u: KeyUse) -> u64 {
    match u {
        KeyUse::Relin => 0,
        KeyUse::Galois(g) => g,
        KeyUse::ToSparse => TO_SPARSE_TAG,
        KeyUse::FromSparse => FROM_SPARSE_TAG,
    }
}

/// A bootstrap's evaluation keys as store objects.
#[derive(Debug)]
pub struct StoredBootstrapKeys<'s> {
    store: &'s TieredStore,
    ctx: Arc<Context>,
    keys: KeySet,
}

impl<'s> StoredBootstrapKeys<'s> {
    /// Makes sure every key `bs` needs is in the store under `keyset`, generating only the
    /// missing ones. The two encapsulation keys share one ephemeral sparse secret, so when
    /// only one of them survives (a crash between their puts) both are made again.
    pub fn ensure(
        store: &'s TieredStore,
        ctx: &Arc<Context>,
        kg: &mut KeyGenerator,
        sk: &SecretKey,
        keyset: KeySetId,
        bs: &Bootstrapper,
    ) -> Result<(Self, KeyReport)> {
        let mut needed: Vec<u64> = vec![0];
        needed.extend(bs.galois_elements());
        if let Some(h) = bs.config().sparse_secret {
            let (current, _) =
                KeySet::ensure_with(store, ctx, keyset, &[], |_| unreachable_key(), |_, _| {})?;
            let pair = [TO_SPARSE_TAG, FROM_SPARSE_TAG].map(|t| current.get(t).copied());
            if let [Some(k), None] | [None, Some(k)] = pair {
                store.remove(k.id)?;
            }
            needed.extend([TO_SPARSE_TAG, FROM_SPARSE_TAG]);
            let mut pair: Option<(KeySwitchKey, KeySwitchKey)> = None;
            let make = |t: u64| -> Result<KeySwitchKey> {
                match t {
                    0 => Ok(kg.relin_key(sk)?.key),
                    TO_SPARSE_TAG | FROM_SPARSE_TAG => {
                        if pair.is_none() {
                            let sparse = kg.sparse_secret_key(h)?;
                            pair = Some((
                                kg.switching_key(sk, &sparse)?,
                                kg.switching_key(&sparse, sk)?,
                            ));
                        }
                        let (to, from) = pair
                            .as_ref()
                            .ok_or(CoreError::MissingKey { what: "encapsulation switching key" })?;
                        Ok(if t == TO_SPARSE_TAG { to.clone() } else { from.clone() })
                    }
                    g => Ok(kg.galois_key(sk, g)?.key),
                }
            };
            let (keys, report) = KeySet::ensure_with(store, ctx, keyset, &needed, make, |_, _| {})?;
            return Ok((Self { store, ctx: Arc::clone(ctx), keys }, report));
        }
        let (keys, report) = KeySet::ensure(store, ctx, kg, sk, keyset, &needed, |_, _| {})?;
        Ok((Self { store, ctx: Arc::clone(ctx), keys }, report))
    }

    /// The keys of an already loaded key set (one that holds every key the bootstrap needs,
    /// e.g. after [`Self::ensure`] or a server's `KeySet::ensure_with`).
    pub fn from_key_set(store: &'s TieredStore, ctx: &Arc<Context>, keys: KeySet) -> Self {
        Self { store, ctx: Arc::clone(ctx), keys }
    }

    /// The loaded key set.
    pub fn key_set(&self) -> &KeySet {
        &self.keys
    }

    /// The store objects of `bs`'s key order, repeated `times` (one per planned bootstrap).
    pub fn access_plan(&self, bs: &Bootstrapper, times: usize) -> Result<Vec<ObjectId>> {
        let once: Vec<ObjectId> = bs
            .key_sequence()
            .into_iter()
            .map(|u| self.stored(u).map(|k| k.id))
            .collect::<Result<_>>()?;
        Ok(once.iter().copied().cycle().take(once.len() * times).collect())
    }

    /// Tells the store the keys `times` bootstraps will pin, in order.
    pub fn hint(&self, bs: &Bootstrapper, times: usize) -> Result<()> {
        self.store.hint(&self.access_plan(bs, times)?);
        Ok(())
    }

    /// Bytes of every key of the set in the store.
    pub fn bytes(&self) -> u64 {
        self.keys.iter().map(|(_, k)| k.len).sum()
    }

    /// Number of keys.
    pub fn count(&self) -> usize {
        self.keys.iter().count()
    }

    fn stored(&self, u: KeyUse) -> Result<&StoredKey> {
        let missing = match u {
            KeyUse::Galois(g) => CoreError::MissingGaloisKey { galois_element: g, step: None },
            KeyUse::Relin => CoreError::MissingKey { what: "relinearisation key" },
            KeyUse::ToSparse => CoreError::MissingKey { what: "dense-to-sparse switching key" },
            KeyUse::FromSparse => CoreError::MissingKey { what: "sparse-to-dense switching key" },
        };
        self.keys.get(tag(u)).ok_or(Error::Core(missing))
    }

    fn pin(&self, u: KeyUse) -> Result<KeySwitchKey<PinGuard<'s>>> {
        let k = self.stored(u)?;
        let guard = self.store.pin(k.id)?;
        Ok(KeySwitchKey::from_raw(guard, k.seed, &self.ctx)?)
    }
}

/// `ensure_with` is called with nothing needed to read the manifest: it makes no key.
fn unreachable_key() -> Result<KeySwitchKey> {
    Err(CoreError::MissingKey { what: "no key is generated while reading the manifest" }.into())
}

impl<'s> KeySource for StoredBootstrapKeys<'s> {
    type Error = Error;
    type Words<'a>
        = PinGuard<'s>
    where
        Self: 'a;

    fn galois(&self, g: u64) -> Result<GaloisKey<PinGuard<'s>>> {
        Ok(GaloisKey { galois_element: g, key: self.pin(KeyUse::Galois(g))? })
    }

    fn relin(&self) -> Result<RelinKey<PinGuard<'s>>> {
        Ok(RelinKey { key: self.pin(KeyUse::Relin)? })
    }

    fn switching(&self, which: KeyUse) -> Result<KeySwitchKey<PinGuard<'s>>> {
        self.pin(which)
    }
}

#[cfg(test)]
mod tests {
    use hetier_tiering::{PolicyConfig, Pool, PoolOptions};

    use super::*;
    use crate::ckks::bootstrap::{BootstrapKeys, BootstrapPreset};
    use crate::ckks::{Complex64, Decryptor, Encoder, Encryptor, Evaluator};

    fn store(dir: &std::path::Path, create: bool, budget: u64) -> TieredStore {
        let opts = PoolOptions::default().segment_size(64 << 20);
        let pool = if create {
            Pool::create(dir, opts).unwrap()
        } else {
            Pool::open(dir, opts).unwrap().0
        };
        TieredStore::builder()
            .dram_budget(budget)
            .pool(pool)
            .policy(PolicyConfig::Planned { prefetch: true })
            .build()
            .unwrap()
    }

    #[test]
    fn bootstrap_with_keys_in_the_store_matches_in_memory_and_reuses_them() {
        let preset = BootstrapPreset::insecure_test(12, 1);
        let ctx = Context::new(&preset.params().unwrap()).unwrap();
        let bs = Bootstrapper::new(&ctx, &preset.config).unwrap();
        let seed = [5; 32];
        let mut kg = KeyGenerator::with_seed(&ctx, seed);
        let sk = kg.secret_key();
        let keyset = KeySetId::from_seed(&seed);
        let dir = tempfile::tempdir().unwrap();
        let z: Vec<Complex64> =
            (0..ctx.params().slots()).map(|i| Complex64::new((i as f64).sin(), 0.0)).collect();
        let enc = Encoder::new(&ctx);
        let ct = Encryptor::with_seed(&ctx, [6; 32])
            .encrypt_sk(&sk, &enc.encode(&z, 0, ctx.params().scale()).unwrap())
            .unwrap();
        let mut scratch = Evaluator::new(&ctx).scratch();

        // A budget of a quarter of the key set: keys stream through DRAM one at a time.
        let one_key = (ctx.params().dnum() * 2 * (ctx.q_len() + ctx.p_len()) * ctx.n() * 8) as u64;
        let st = store(dir.path(), true, 12 * one_key);
        let (keys, report) =
            StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
        assert_eq!(report.reused, 0);
        assert_eq!(keys.count(), bs.galois_elements().len() + 3);
        assert!(keys.bytes() > 2 * 12 * one_key, "the set is over twice the budget");
        keys.hint(&bs, 1).unwrap();
        let stored = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
        let stats = st.stats();
        assert!(stats.peak_dram <= 12 * one_key);
        assert!(stats.prefetches > 0 && stats.prefetch_evicted_unused == 0, "{stats:?}");

        // The same ciphertext with the same keys in memory: the same words.
        let mut kg2 = KeyGenerator::with_seed(&ctx, seed);
        let _ = kg2.secret_key();
        let local = BootstrapKeys::generate(&mut kg2, &sk, &bs).unwrap();
        let in_memory = bs.bootstrap(&ct, &local, &mut scratch).unwrap();
        let dec = Decryptor::new(&ctx, &sk).unwrap();
        let a = enc.decode(&dec.decrypt(&stored).unwrap()).unwrap();
        let b = enc.decode(&dec.decrypt(&in_memory).unwrap()).unwrap();
        for ((x, y), w) in a.iter().zip(&b).zip(&z) {
            assert!((*x - *w).abs() < 1e-5 && (*y - *w).abs() < 1e-5);
        }
        drop(keys);
        drop(st);

        // A later process finds every key through the manifest.
        let st = store(dir.path(), false, 12 * one_key);
        let mut kg3 = KeyGenerator::with_seed(&ctx, [9; 32]);
        let (keys, report) =
            StoredBootstrapKeys::ensure(&st, &ctx, &mut kg3, &sk, keyset, &bs).unwrap();
        assert_eq!(report.generated, 0);
        let again = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
        let c = enc.decode(&dec.decrypt(&again).unwrap()).unwrap();
        for (x, w) in c.iter().zip(&z) {
            assert!((*x - *w).abs() < 1e-5);
        }
    }
}
