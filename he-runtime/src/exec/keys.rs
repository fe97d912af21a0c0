//! Evaluation keys in the store: each key its own durable object, and a key-set manifest
//! object listing them with the seeds of their `a` parts, so a later process with the same
//! secret key reuses them instead of generating them again.
//!
//! A key is stored seed-compressed by default ([`KeyForm::Seeded`]: its `b` parts bit-packed
//! and the seed of its uniform `a` parts, a little under half the expanded words) and expanded
//! only while it is pinned for its use, into a DRAM block charged to the store's budget
//! ([`KeySet::pin`]). [`KeyForm::Digits`] stores the same bytes one object per digit, so a
//! switch at a low level reads only the digits it uses. The expanded form ([`KeyForm::Expanded`], the only one of manifests
//! `hetier-keyset/1`) is still read, and can still be written, to measure one against the other.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hetier_tiering::{Durability, ObjectKind, PinGuard, TieredStore};

use super::ids::{key_digit_id, key_id, KeySetId};
use super::key_manifest::{
    hex, read_manifest, unhex, write_manifest, Manifest, ManifestKey, MANIFEST_FORMAT,
};
use super::key_words::{ExpandedKey, ExpansionBlocks, KeyWords};
pub use super::stored_key::{KeyForm, StoredKey};
use crate::ckks::{
    switch_key_digit_stored_len, switch_key_expanded_words, switch_key_stored_len, Context,
    KeyGenerator, KeySwitchKey, SecretKey, Seed,
};
use crate::exec::error::{Error, Result};

/// Pins and views of a key: in place when stored expanded, else expanded into budgeted blocks.
impl StoredKey {
    /// The key over `pinned`, the caller's pin of its object: used in place when stored
    /// expanded, else expanded into a fresh block charged to `store`'s budget (the pin may go
    /// as soon as this returns, but the borrow keeps it for the expanded-form case).
    pub fn view<'g, 's>(
        &self,
        store: &'s TieredStore,
        ctx: &Context,
        pinned: &'g PinGuard<'_>,
    ) -> Result<KeySwitchKey<KeyWords<'g, 's>>> {
        match self.form {
            KeyForm::Expanded => {
                Ok(KeySwitchKey::from_raw(KeyWords::Borrowed(pinned.as_u64s()), self.seed, ctx)?)
            }
            KeyForm::Seeded => self.expand(store, ctx, pinned.as_bytes()),
            // One pin cannot hold a key of several objects.
            KeyForm::Digits => Err(Error::KeyManifest {
                reason: format!(
                    "key {:#x} is stored one object per digit: pin it with StoredKey::pin",
                    self.id.0
                ),
            }),
        }
    }

    /// Pins the key for one use: an expanded-form key stays pinned while the result lives; a
    /// seed-compressed one is pinned only while it is expanded into a block charged to the
    /// budget, which the result owns.
    pub fn pin<'s>(
        &self,
        store: &'s TieredStore,
        ctx: &Context,
    ) -> Result<KeySwitchKey<KeyWords<'s, 's>>> {
        match self.form {
            KeyForm::Expanded => {
                let guard = store.pin(self.id)?;
                Ok(KeySwitchKey::from_raw(KeyWords::Pinned(guard), self.seed, ctx)?)
            }
            KeyForm::Seeded => self.expand(store, ctx, store.pin(self.id)?.as_bytes()),
            KeyForm::Digits => {
                let block = store.alloc_for_overwrite(switch_key_expanded_words(ctx) as u64 * 8)?;
                let top = ctx.params().max_level();
                let (block, _) = self.expand_for_level(store, ctx, block, true, top)?;
                Ok(KeySwitchKey::from_raw(KeyWords::Expanded(block), self.seed, ctx)?)
            }
        }
    }

    /// As [`StoredKey::pin`] for a key switch at `level`, expanding a seed-compressed key into
    /// a block of `spares` only where such a switch reads ([`KeySwitchKey::max_level`]) — or
    /// using the block that already holds it expanded for `level` or above (left by its
    /// previous pin, or expanded ahead by [`ExpansionBlocks::expand_ahead`]), without pinning
    /// the stored object at all.
    pub fn pin_recycled<'g, 's>(
        &self,
        store: &'s TieredStore,
        ctx: &Context,
        spares: &'g ExpansionBlocks<'s>,
        level: usize,
    ) -> Result<KeySwitchKey<KeyWords<'g, 's>>> {
        let t = spares.times();
        t.pins.fetch_add(1, Ordering::Relaxed);
        if self.form == KeyForm::Expanded {
            let clock = Instant::now();
            let guard = store.pin(self.id)?;
            t.wait_ns.fetch_add(clock.elapsed().as_nanos() as u64, Ordering::Relaxed);
            return Ok(KeySwitchKey::from_raw(KeyWords::Pinned(guard), self.seed, ctx)?);
        }
        let len = switch_key_expanded_words(ctx) as u64 * 8;
        let want = ExpandedKey { id: self.id, level };
        let (spare, ready) = spares.take_for(want);
        let (block, key) = match (spare, ready) {
            // Tagged with the block's level, which may be above this pin's: it keeps serving
            // pins at that level.
            (Some(b), Some(held)) => {
                t.reused.fetch_add(1, Ordering::Relaxed);
                (b, held)
            }
            (spare, _) => {
                let clock = Instant::now();
                let block = match spare {
                    Some(b) if b.len() == len => b,
                    _ => store.alloc_for_overwrite(len)?,
                };
                let (block, wait) = self.expand_for_level(store, ctx, block, true, level)?;
                t.add_expansion(clock, wait);
                (block, want)
            }
        };
        let words = KeyWords::Recycled { block: Some(block), key, spares };
        Ok(KeySwitchKey::from_raw_for_level(words, self.seed, ctx, key.level)?)
    }

    fn expand<'g, 's>(
        &self,
        store: &'s TieredStore,
        ctx: &Context,
        bytes: &[u8],
    ) -> Result<KeySwitchKey<KeyWords<'g, 's>>> {
        let words = switch_key_expanded_words(ctx);
        let block = store.alloc_for_overwrite(words as u64 * 8)?;
        let key = KeySwitchKey::expand_pinned_into(ctx, bytes, block, true)?;
        self.check_seed(key.seed())?;
        Ok(KeySwitchKey::from_raw(KeyWords::Expanded(key.into_words()), self.seed, ctx)?)
    }
}

/// Where [`KeySet::ensure_in_form`]'s missing keys come from: each is written into the block
/// of the store's budget it is put from.
pub trait KeyMaker {
    /// Key `g` (a Galois element, 0 = relinearisation) into `out`, its
    /// [`switch_key_expanded_words`] expanded words (any contents before); returns its seed.
    fn make_into(&mut self, g: u64, out: &mut [u64]) -> Result<Seed>;
}

/// Keys made from the client's secret key: relinearisation for 0, else Galois keys.
pub struct GeneratedKeys<'a> {
    /// The generator.
    pub kg: &'a mut KeyGenerator,
    /// The secret key they are made from.
    pub sk: &'a SecretKey,
}

impl KeyMaker for GeneratedKeys<'_> {
    fn make_into(&mut self, g: u64, out: &mut [u64]) -> Result<Seed> {
        let key = match g {
            0 => self.kg.relin_key_into(self.sk, out)?,
            g => self.kg.galois_key_into(self.sk, g, out)?,
        };
        Ok(*key.seed())
    }
}

/// Any function writing key `g` into a buffer and returning its seed.
impl<F: FnMut(u64, &mut [u64]) -> Result<Seed>> KeyMaker for F {
    fn make_into(&mut self, g: u64, out: &mut [u64]) -> Result<Seed> {
        self(g, out)
    }
}

/// Keys handed over whole (e.g. sent by a client), copied into their blocks after a check of
/// their parameters.
struct GivenKeys<F> {
    source: F,
    params_id: u64,
}

impl<F: FnMut(u64) -> Result<KeySwitchKey>> KeyMaker for GivenKeys<F> {
    fn make_into(&mut self, g: u64, out: &mut [u64]) -> Result<Seed> {
        let key = (self.source)(g)?;
        if key.params_id() != self.params_id {
            let e =
                crate::Error::ParamsMismatch { expected: self.params_id, found: key.params_id() };
            return Err(e.into());
        }
        let (expected, found) = (out.len(), key.as_words().len());
        if found != expected {
            return Err(crate::Error::BufferLength { expected, found }.into());
        }
        out.copy_from_slice(key.as_words());
        Ok(*key.seed())
    }
}

/// What [`KeySet::ensure`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyReport {
    /// Keys generated and put in this call.
    pub generated: usize,
    /// Keys found in the pool and reused.
    pub reused: usize,
    /// Bytes of the generated keys, as stored.
    pub bytes_generated: u64,
    /// Key-set manifests found damaged in the pool and dropped (their keys are regenerated).
    pub manifests_healed: usize,
}

/// The evaluation keys of one key set under one parameter set, by Galois element (0 =
/// relinearisation).
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: BTreeMap<u64, StoredKey>,
}

impl KeySet {
    /// The stored key for Galois element `g` (0: relinearisation).
    pub fn get(&self, g: u64) -> Option<&StoredKey> {
        self.keys.get(&g)
    }

    /// Every stored key by tag.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &StoredKey)> {
        self.keys.iter().map(|(&g, k)| (g, k))
    }

    /// Pins the key of tag `g` (Galois element; 0: relinearisation) for one use, expanding a
    /// seed-compressed key into a budgeted block ([`StoredKey::pin`]); `None` when absent.
    pub fn pin<'s>(
        &self,
        store: &'s TieredStore,
        ctx: &Context,
        g: u64,
    ) -> Option<Result<KeySwitchKey<KeyWords<'s, 's>>>> {
        self.keys.get(&g).map(|k| k.pin(store, ctx))
    }

    /// Reads the manifest (if any) and makes sure every key in `needed` (Galois elements, 0
    /// for relinearisation) is in the store, generating and putting only the missing ones.
    /// `on_put` is told of each key put (for the trace).
    pub fn ensure(
        store: &TieredStore,
        ctx: &Context,
        kg: &mut KeyGenerator,
        sk: &SecretKey,
        keyset: KeySetId,
        needed: &[u64],
        on_put: impl FnMut(hetier_tiering::ObjectId, u64),
    ) -> Result<(Self, KeyReport)> {
        let maker = GeneratedKeys { kg, sk };
        Self::ensure_impl(store, ctx, keyset, needed, KeyForm::Seeded, maker, on_put)
    }

    /// As [`KeySet::ensure`], putting the missing keys in `form` (keys already in the pool are
    /// reused in whatever form they were put), each made by `maker` straight into the block it
    /// is put from (never on the heap).
    pub fn ensure_in_form(
        store: &TieredStore,
        ctx: &Context,
        keyset: KeySetId,
        needed: &[u64],
        form: KeyForm,
        maker: impl KeyMaker,
        on_put: impl FnMut(hetier_tiering::ObjectId, u64),
    ) -> Result<(Self, KeyReport)> {
        Self::ensure_impl(store, ctx, keyset, needed, form, maker, on_put)
    }

    /// As [`KeySet::ensure`], with the missing keys taken from `source` (Galois element → key;
    /// 0 = relinearisation): a server puts the keys a client sent, and with a source that
    /// fails it uses only what the pool already holds.
    /// Missing keys are put seed-compressed ([`KeyForm::Seeded`]).
    pub fn ensure_with(
        store: &TieredStore,
        ctx: &Context,
        keyset: KeySetId,
        needed: &[u64],
        source: impl FnMut(u64) -> Result<KeySwitchKey>,
        on_put: impl FnMut(hetier_tiering::ObjectId, u64),
    ) -> Result<(Self, KeyReport)> {
        let maker = GivenKeys { source, params_id: ctx.params().id() };
        Self::ensure_impl(store, ctx, keyset, needed, KeyForm::Seeded, maker, on_put)
    }

    fn ensure_impl(
        store: &TieredStore,
        ctx: &Context,
        keyset: KeySetId,
        needed: &[u64],
        form: KeyForm,
        mut maker: impl KeyMaker,
        mut on_put: impl FnMut(hetier_tiering::ObjectId, u64),
    ) -> Result<(Self, KeyReport)> {
        let params = ctx.params();
        let (current, manifests_healed) = read_manifest(store, keyset, params.id())?;
        let mut set = Self::default();
        if let Some((_, m)) = &current {
            // Every older manifest's seed-compressed keys are blobs of a retired format (1 to
            // 3): their seeds would expand into other `a` parts. They are made again.
            let retired = m.format != MANIFEST_FORMAT;
            for k in &m.keys {
                if k.form != KeyForm::Expanded && retired {
                    continue;
                }
                let id = hetier_tiering::ObjectId(k.id);
                let key = StoredKey { id, seed: unhex(&k.seed)?, len: k.len, form: k.form };
                // A key listed but gone (or of another size) is regenerated below.
                if key.is_present(store, ctx) {
                    set.keys.insert(k.galois_element, key);
                }
            }
        }
        let mut report = KeyReport { manifests_healed, ..KeyReport::default() };
        let top = params.max_level() as u32;
        let expanded = switch_key_expanded_words(ctx) as u64 * 8;
        let stored = switch_key_stored_len(ctx);
        for &g in needed {
            if set.keys.contains_key(&g) {
                report.reused += 1;
                continue;
            }
            let id = key_id(keyset, params.id(), g);
            // Orphans from an interrupted run (not in the manifest), in any form: replaced.
            StoredKey { id, seed: [0; 32], len: 0, form }.remove(store, ctx)?;
            let kind = ObjectKind::EvalKey { galois_element: g, level: top, digit: 0 };
            // The key is made in a block of the budget (140 MiB at log N = 16), not on the heap.
            let (seed, len) = match form {
                KeyForm::Expanded => {
                    // The maker writes every word: no zeroing first.
                    let mut w = store.alloc_for_overwrite(expanded)?;
                    let seed = maker.make_into(g, w.as_u64s_mut())?;
                    store.put_block(id, kind, Durability::Durable, w)?;
                    (seed, expanded)
                }
                KeyForm::Seeded | KeyForm::Digits => {
                    let mut words = store.scratch(expanded)?;
                    let seed = maker.make_into(g, words.as_mut())?;
                    let words_ref: &[u64] = words.as_ref();
                    let key = KeySwitchKey::from_raw(words_ref, seed, ctx)?;
                    // Serialised straight into the objects' blocks: no heap copy of a blob.
                    let len = if form == KeyForm::Seeded {
                        let mut block = store.alloc_for_overwrite(stored)?;
                        key.write_to(ctx, block.as_bytes_mut())?;
                        // The expanded words go back to the budget before the put.
                        drop(words);
                        store.put_block(id, kind, Durability::Durable, block)?;
                        stored
                    } else {
                        let part = switch_key_digit_stored_len(ctx);
                        for j in 0..params.dnum() {
                            let mut block = store.alloc_for_overwrite(part)?;
                            key.write_digit_to(ctx, j, block.as_bytes_mut())?;
                            let digit = j as u32;
                            let kind = ObjectKind::EvalKey { galois_element: g, level: top, digit };
                            store.put_block(
                                key_digit_id(id, j),
                                kind,
                                Durability::Durable,
                                block,
                            )?;
                        }
                        part * params.dnum() as u64
                    };
                    (seed, len)
                }
            };
            on_put(id, len);
            set.keys.insert(g, StoredKey { id, seed, len, form });
            report.generated += 1;
            report.bytes_generated += len;
        }
        if report.generated > 0 {
            let m = Manifest {
                format: MANIFEST_FORMAT.into(),
                params_id: params.id(),
                keyset: keyset.0,
                generation: current.as_ref().map_or(1, |(_, m)| m.generation + 1),
                keys: set
                    .keys
                    .iter()
                    .map(|(&g, k)| ManifestKey {
                        galois_element: g,
                        id: k.id.0,
                        len: k.len,
                        seed: hex(&k.seed),
                        form: k.form,
                    })
                    .collect(),
            };
            write_manifest(store, keyset, params.id(), current.map(|(slot, _)| slot), &m)?;
        }
        Ok((set, report))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use hetier_tiering::{PolicyConfig, Pool, PoolOptions};

    use super::*;
    use crate::ckks::Preset;
    use crate::exec::ids::manifest_slot_id;
    use crate::exec::key_manifest::decode_manifest;
    use crate::exec::key_manifest::{
        MANIFEST_FORMAT_V2, MANIFEST_FORMAT_V3, MANIFEST_FORMAT_V4, MANIFEST_FORMAT_V5,
    };

    const SEED: [u8; 32] = [7; 32];

    fn open(dir: &Path, create: bool) -> TieredStore {
        let opts = PoolOptions::default().segment_size(32 << 20);
        let pool = if create {
            Pool::create(dir, opts).unwrap()
        } else {
            Pool::open(dir, opts).unwrap().0
        };
        TieredStore::builder()
            .dram_budget(64 << 20)
            .pool(pool)
            .policy(PolicyConfig::Lru)
            .build()
            .unwrap()
    }

    fn ensure(st: &TieredStore, ctx: &Arc<Context>, needed: &[u64]) -> Result<KeyReport> {
        let mut kg = KeyGenerator::with_seed(ctx, SEED);
        let sk = kg.secret_key();
        KeySet::ensure(st, ctx, &mut kg, &sk, KeySetId::from_seed(&SEED), needed, |_, _| {})
            .map(|(_, r)| r)
    }

    fn slots(st: &TieredStore, ctx: &Context) -> [bool; 2] {
        let ks = KeySetId::from_seed(&SEED);
        [0, 1].map(|s| st.contains(manifest_slot_id(ks, ctx.params().id(), s)))
    }

    #[test]
    fn manifest_updates_survive_a_crash_at_any_point() {
        let ctx = Context::new(&Preset::N13.params().unwrap()).unwrap();
        let (g1, g2) = (ctx.galois_element_for_step(1), ctx.galois_element_for_step(2));
        let ks = KeySetId::from_seed(&SEED);
        let pid = ctx.params().id();
        let dir = tempfile::tempdir().unwrap();
        let st = open(dir.path(), true);
        let r = ensure(&st, &ctx, &[g1]).unwrap();
        assert_eq!((r.generated, r.reused), (1, 0));
        assert_eq!(slots(&st, &ctx), [true, false]);
        // The key is one object, seed-compressed.
        let stored = crate::ckks::switch_key_stored_len(&ctx);
        assert_eq!(st.len_of(key_id(ks, pid, g1)), Some(stored));
        assert!(2 * stored < switch_key_expanded_words(&ctx) as u64 * 8 + 1024);
        let gen1 = st.pin(manifest_slot_id(ks, pid, 0)).unwrap().as_bytes().to_vec();

        // An update writes the other slot, then removes the old one.
        let r = ensure(&st, &ctx, &[g1, g2]).unwrap();
        assert_eq!((r.generated, r.reused), (1, 1));
        assert_eq!(slots(&st, &ctx), [false, true]);

        // A crash after the new manifest was put but before the old was removed leaves both:
        // after a restart the newer generation wins and nothing is regenerated.
        st.put(manifest_slot_id(ks, pid, 0), ObjectKind::Blob, Durability::Durable, &gen1).unwrap();
        drop(st);
        let st = open(dir.path(), false);
        assert_eq!(slots(&st, &ctx), [true, true]);
        let r = ensure(&st, &ctx, &[g1, g2]).unwrap();
        assert_eq!((r.generated, r.reused), (0, 2));

        // A crash before the new manifest was put leaves only the old one: its keys are
        // reused, the key it does not list is regenerated, and one manifest remains.
        st.remove(manifest_slot_id(ks, pid, 1)).unwrap();
        drop(st);
        let st = open(dir.path(), false);
        let r = ensure(&st, &ctx, &[g1, g2]).unwrap();
        assert_eq!((r.generated, r.reused), (1, 1));
        assert_eq!(slots(&st, &ctx), [false, true]);
        drop(st);
        let st = open(dir.path(), false);
        let r = ensure(&st, &ctx, &[g1, g2]).unwrap();
        assert_eq!((r.generated, r.reused), (0, 2));

        // What a later process pins is the key the secret key makes, expanded.
        let (set, _) = KeySet::ensure_with(
            &st,
            &ctx,
            ks,
            &[g2],
            |_| Err(Error::KeyManifest { reason: "nothing to generate".into() }),
            |_, _| {},
        )
        .unwrap();
        let mut kg = KeyGenerator::with_seed(&ctx, SEED);
        let sk = kg.secret_key();
        let seed = set.get(g2).unwrap().seed;
        let pinned = set.pin(&st, &ctx, g2).unwrap().unwrap();
        assert_eq!(pinned.seed(), &seed);
        // g2 was last generated as the only missing key of a fresh generator: the same one.
        let fresh = kg.galois_key(&sk, g2).unwrap().key;
        assert_eq!(pinned.as_words(), fresh.as_words());
        drop(pinned);

        // A garbled older slot next to a good newer one is ignored.
        st.put(manifest_slot_id(ks, pid, 0), ObjectKind::Blob, Durability::Durable, b"{oops")
            .unwrap();
        let r = ensure(&st, &ctx, &[g1, g2]).unwrap();
        assert_eq!((r.generated, r.reused), (0, 2));
    }

    /// Manifests `hetier-keyset/2` to `/5` list seed-compressed keys of blob formats 1 to 3
    /// (seeds expanded with ChaCha20, ChaCha12, and AES-256 at the prime's width): they are
    /// regenerated, never pinned into a wrong key, and the manifests' expanded keys are reused.
    #[test]
    fn seeded_keys_of_older_manifests_are_regenerated() {
        for (old, form) in [
            (MANIFEST_FORMAT_V2, KeyForm::Seeded),
            (MANIFEST_FORMAT_V3, KeyForm::Seeded),
            (MANIFEST_FORMAT_V4, KeyForm::Seeded),
            (MANIFEST_FORMAT_V4, KeyForm::Digits),
            (MANIFEST_FORMAT_V5, KeyForm::Seeded),
            (MANIFEST_FORMAT_V5, KeyForm::Digits),
        ] {
            seeded_keys_of_an_older_manifest_are_regenerated(old, form);
        }
    }

    fn seeded_keys_of_an_older_manifest_are_regenerated(old: &str, form: KeyForm) {
        let ctx = Context::new(&Preset::N13.params().unwrap()).unwrap();
        let (g1, g2) = (ctx.galois_element_for_step(1), ctx.galois_element_for_step(2));
        let ks = KeySetId::from_seed(&SEED);
        let pid = ctx.params().id();
        let dir = tempfile::tempdir().unwrap();
        let st = open(dir.path(), true);
        let mut kg = KeyGenerator::with_seed(&ctx, SEED);
        let sk = kg.secret_key();
        let maker = GeneratedKeys { kg: &mut kg, sk: &sk };
        let (_, r) =
            KeySet::ensure_in_form(&st, &ctx, ks, &[g1], KeyForm::Expanded, maker, |_, _| {})
                .unwrap();
        assert_eq!(r.generated, 1);
        let mut kg = KeyGenerator::with_seed(&ctx, SEED);
        let maker = GeneratedKeys { kg: &mut kg, sk: &sk };
        let (_, r) =
            KeySet::ensure_in_form(&st, &ctx, ks, &[g1, g2], form, maker, |_, _| {}).unwrap();
        assert_eq!(r.generated, 1);
        // Relabel the current manifest as an older build wrote it.
        let slot = (0..2).find(|&s| st.contains(manifest_slot_id(ks, pid, s))).unwrap();
        let id = manifest_slot_id(ks, pid, slot);
        let mut m: Manifest = serde_json::from_slice(st.pin(id).unwrap().as_bytes()).unwrap();
        assert_eq!(m.keys.iter().filter(|k| k.form == form).count(), 1, "{old}, {form:?}");
        m.format = old.into();
        st.remove(id).unwrap();
        st.put(id, ObjectKind::Blob, Durability::Durable, &serde_json::to_vec(&m).unwrap())
            .unwrap();
        let r = ensure(&st, &ctx, &[g1, g2]).unwrap();
        assert_eq!((r.generated, r.reused), (1, 1), "{old}, {form:?}: the key is made again");
        let r = ensure(&st, &ctx, &[g1, g2]).unwrap();
        assert_eq!((r.generated, r.reused), (0, 2), "{old}, {form:?}");
    }

    fn valid_manifest() -> Vec<u8> {
        let m = Manifest {
            format: MANIFEST_FORMAT.into(),
            params_id: 9,
            keyset: 5,
            generation: 2,
            keys: (0..3)
                .map(|g| ManifestKey {
                    galois_element: g,
                    id: 100 + g,
                    len: 4096,
                    seed: hex(&SEED),
                    form: KeyForm::Seeded,
                })
                .collect(),
        };
        serde_json::to_vec(&m).unwrap()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 128, ..proptest::prelude::ProptestConfig::default()
        })]

        /// The key-set manifest is read from the pool: random bytes, truncations and flips
        /// give a typed error (or, for a flip that keeps it valid, a manifest), never a panic.
        #[test]
        fn manifest_decoder_refuses_bad_bytes(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            bit in proptest::prelude::any::<usize>(),
        ) {
            proptest::prop_assert!(decode_manifest(&bytes, KeySetId(5), 9).is_err());
            let v = valid_manifest();
            proptest::prop_assert_eq!(decode_manifest(&v, KeySetId(5), 9), Ok(3));
            let c = cut.index(v.len());
            proptest::prop_assert!(decode_manifest(&v[..c], KeySetId(5), 9).is_err());
            let mut f = v.clone();
            f[(bit / 8) % v.len()] ^= 1 << (bit % 8);
            let _ = decode_manifest(&f, KeySetId(5), 9);
        }
    }

    #[test]
    fn a_lone_unreadable_manifest_is_a_typed_error() {
        let ctx = Context::new(&Preset::N13.params().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let st = open(dir.path(), true);
        let id = manifest_slot_id(KeySetId::from_seed(&SEED), ctx.params().id(), 1);
        st.put(id, ObjectKind::Blob, Durability::Durable, b"not json").unwrap();
        let g = ctx.galois_element_for_step(1);
        assert!(matches!(ensure(&st, &ctx, &[g]), Err(Error::KeyManifest { .. })));
    }
}
