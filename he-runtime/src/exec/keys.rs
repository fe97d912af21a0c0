//! Evaluation keys in the store: each key its own durable object, and a key-set manifest
//! object listing them with the seeds of their `a` parts, so a later process with the same
//! secret key reuses them instead of generating them again.

use std::collections::BTreeMap;

use hetier_tiering::{Durability, ObjectKind, TieredStore};
use serde::{Deserialize, Serialize};

use super::ids::{key_id, manifest_id, KeySetId};
use crate::ckks::{Context, KeyGenerator, SecretKey, Seed};
use crate::error::{Error, Result};

const MANIFEST_FORMAT: &str = "hetier-keyset/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManifestKey {
    galois_element: u64,
    id: u64,
    len: u64,
    seed: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    format: String,
    params_id: u64,
    keyset: u64,
    keys: Vec<ManifestKey>,
}

fn hex(seed: &Seed) -> String {
    seed.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Result<Seed> {
    let bad = || Error::KeyManifest { reason: format!("bad seed {s:?}") };
    if s.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// One key of the set: where it is and the seed of its `a` parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredKey {
    /// Store object id.
    pub id: hetier_tiering::ObjectId,
    /// Seed the key's `a` parts were expanded from.
    pub seed: Seed,
    /// Length in bytes.
    pub len: u64,
}

/// What [`KeySet::ensure`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyReport {
    /// Keys generated and put in this call.
    pub generated: usize,
    /// Keys found in the pool and reused.
    pub reused: usize,
    /// Bytes of the generated keys.
    pub bytes_generated: u64,
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
        mut on_put: impl FnMut(hetier_tiering::ObjectId, u64),
    ) -> Result<(Self, KeyReport)> {
        let params = ctx.params();
        let mid = manifest_id(keyset, params.id());
        let mut set = Self::default();
        if store.contains(mid) {
            let text = store.pin(mid)?.as_bytes().to_vec();
            let m: Manifest = serde_json::from_slice(&text)
                .map_err(|e| Error::KeyManifest { reason: e.to_string() })?;
            if m.format != MANIFEST_FORMAT || m.params_id != params.id() || m.keyset != keyset.0 {
                return Err(Error::KeyManifest {
                    reason: format!(
                        "manifest is {} for params {:#x} / key set {:#x}, expected {MANIFEST_FORMAT} for {:#x} / {:#x}",
                        m.format, m.params_id, m.keyset, params.id(), keyset.0
                    ),
                });
            }
            for k in m.keys {
                let id = hetier_tiering::ObjectId(k.id);
                // A key listed but gone (or of another size) is regenerated below.
                if store.len_of(id) == Some(k.len) {
                    set.keys.insert(
                        k.galois_element,
                        StoredKey { id, seed: unhex(&k.seed)?, len: k.len },
                    );
                }
            }
        }
        let mut report = KeyReport::default();
        let top = params.max_level() as u32;
        for &g in needed {
            if set.keys.contains_key(&g) {
                report.reused += 1;
                continue;
            }
            let (words, seed) = if g == 0 {
                let k = kg.relin_key(sk)?;
                (k.key.as_words().to_vec(), *k.key.seed())
            } else {
                let k = kg.galois_key(sk, g)?;
                (k.key.as_words().to_vec(), *k.key.seed())
            };
            let id = key_id(keyset, params.id(), g);
            if store.contains(id) {
                // An orphan from an interrupted run (not in the manifest): replace it.
                store.remove(id)?;
            }
            let len = words.len() as u64 * 8;
            let mut w = store.alloc(len)?;
            w.as_u64s_mut().copy_from_slice(&words);
            drop(words);
            let kind = ObjectKind::EvalKey { galois_element: g, level: top, digit: 0 };
            store.put_block(id, kind, Durability::Durable, w)?;
            on_put(id, len);
            set.keys.insert(g, StoredKey { id, seed, len });
            report.generated += 1;
            report.bytes_generated += len;
        }
        if report.generated > 0 {
            let m = Manifest {
                format: MANIFEST_FORMAT.into(),
                params_id: params.id(),
                keyset: keyset.0,
                keys: set
                    .keys
                    .iter()
                    .map(|(&g, k)| ManifestKey {
                        galois_element: g,
                        id: k.id.0,
                        len: k.len,
                        seed: hex(&k.seed),
                    })
                    .collect(),
            };
            let bytes =
                serde_json::to_vec(&m).map_err(|e| Error::KeyManifest { reason: e.to_string() })?;
            // Objects are immutable: replace the manifest. A crash in between loses only the
            // manifest, and the keys are then regenerated.
            if store.contains(mid) {
                store.remove(mid)?;
            }
            store.put(mid, ObjectKind::Blob, Durability::Durable, &bytes)?;
        }
        Ok((set, report))
    }
}
