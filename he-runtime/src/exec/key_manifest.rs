//! The key-set manifest: one small durable object per key set listing each key's object,
//! length, form and the seed of its `a` parts, written crash-safely in two slots, so that a later
//! process with the same secret key reuses the keys instead of generating them again.

use hetier_tiering::{Durability, ObjectKind, TieredStore};
use serde::{Deserialize, Serialize};

use super::ids::{manifest_slot_id, KeySetId};
use super::stored_key::KeyForm;
use crate::ckks::Seed;
use crate::exec::error::{Error, Result};

pub(super) const MANIFEST_FORMAT: &str = "hetier-keyset/6";
/// Manifests whose seed-compressed keys (whole or by digit) are blob format 3 (candidates cut
/// at the prime's width only, read no more): those keys are regenerated, its expanded ones
/// reused.
pub(super) const MANIFEST_FORMAT_V5: &str = "hetier-keyset/5";
/// Manifests whose seed-compressed keys (whole or by digit) are blob format 2 (seeds expanded
/// with ChaCha12, read no more): those keys are regenerated, its expanded ones reused.
pub(super) const MANIFEST_FORMAT_V4: &str = "hetier-keyset/4";
/// As `/4`, before keys could be stored one object per digit.
pub(super) const MANIFEST_FORMAT_V3: &str = "hetier-keyset/3";
/// Manifests whose seed-compressed keys are blob format 1 (seeds expanded with ChaCha20, read
/// no more): those keys are regenerated, its expanded ones reused.
pub(super) const MANIFEST_FORMAT_V2: &str = "hetier-keyset/2";
/// Manifests before keys were seed-compressed: every key listed is in expanded form.
pub(super) const MANIFEST_FORMAT_V1: &str = "hetier-keyset/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
/// One key as the manifest lists it.
pub(super) struct ManifestKey {
    pub(super) galois_element: u64,
    pub(super) id: u64,
    pub(super) len: u64,
    pub(super) seed: String,
    /// Absent in `hetier-keyset/1` manifests, whose keys are all expanded.
    #[serde(default = "expanded_form")]
    pub(super) form: KeyForm,
}

fn expanded_form() -> KeyForm {
    KeyForm::Expanded
}

#[derive(Debug, Clone, Serialize, Deserialize)]
/// A key set's manifest object.
pub(super) struct Manifest {
    pub(super) format: String,
    pub(super) params_id: u64,
    pub(super) keyset: u64,
    /// Incremented by every update; the highest complete one wins (0 in manifests written
    /// before updates were two-slot).
    #[serde(default)]
    pub(super) generation: u64,
    pub(super) keys: Vec<ManifestKey>,
}

/// Reads the manifest slots of a key set and returns the newest valid one with its slot, and
/// how many damaged slots it dropped. Both slots exist only after a crash between writing a
/// new manifest and removing the old; an unreadable slot is then ignored in favour of the
/// other, and is an error only when it is the only one. A slot damaged in the pool is removed:
/// the keys it listed are then regenerated (they derive from the secret key).
pub(super) fn read_manifest(
    store: &TieredStore,
    keyset: KeySetId,
    params_id: u64,
) -> Result<(Option<(u64, Manifest)>, usize)> {
    let mut best: Option<(u64, Manifest)> = None;
    let mut first_err = None;
    let mut dropped = 0;
    for slot in 0..2 {
        let id = manifest_slot_id(keyset, params_id, slot);
        if !store.contains(id) {
            continue;
        }
        let pin = match store.pin(id) {
            Ok(p) => p,
            Err(hetier_tiering::Error::Damaged { .. }) => {
                store.remove(id)?;
                dropped += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match parse_manifest(pin.as_bytes(), keyset, params_id) {
            Ok(m) => {
                if best.as_ref().is_none_or(|(_, b)| m.generation > b.generation) {
                    best = Some((slot, m));
                }
            }
            Err(e) => first_err = first_err.or(Some(e)),
        }
    }
    match (best, first_err) {
        (Some(b), _) => Ok((Some(b), dropped)),
        (None, Some(e)) => Err(e),
        (None, None) => Ok((None, dropped)),
    }
}

fn parse_manifest(text: &[u8], keyset: KeySetId, params_id: u64) -> Result<Manifest> {
    let m: Manifest =
        serde_json::from_slice(text).map_err(|e| Error::KeyManifest { reason: e.to_string() })?;
    let known = [
        MANIFEST_FORMAT,
        MANIFEST_FORMAT_V5,
        MANIFEST_FORMAT_V4,
        MANIFEST_FORMAT_V3,
        MANIFEST_FORMAT_V2,
        MANIFEST_FORMAT_V1,
    ]
    .contains(&m.format.as_str());
    if !known || m.params_id != params_id || m.keyset != keyset.0 {
        return Err(Error::KeyManifest {
            reason: format!(
                "manifest is {} for params {:#x} / key set {:#x}, expected {MANIFEST_FORMAT} for {:#x} / {:#x}",
                m.format, m.params_id, m.keyset, params_id, keyset.0
            ),
        });
    }
    Ok(m)
}

/// Decodes a key-set manifest (`hetier-keyset/6`, or `/5` … `/1`) as a pool hands it over, for key
/// set `keyset` under parameters `params_id`: every field a later run uses is checked (the
/// format, the parameter and key-set ids, each key's seed). Returns how many keys it lists.
/// Bytes from the pool are untrusted: anything else is [`Error::KeyManifest`], never a panic.
pub fn decode_manifest(bytes: &[u8], keyset: KeySetId, params_id: u64) -> Result<usize> {
    let m = parse_manifest(bytes, keyset, params_id)?;
    for k in &m.keys {
        unhex(&k.seed)?;
    }
    Ok(m.keys.len())
}

/// Replaces the manifest crash-safely: objects are immutable, so the new one goes to the slot
/// not in use (durable when `put` returns) and only then is the old one removed. A crash before
/// the put leaves the old manifest; one after it leaves both, and the newer generation wins.
pub(super) fn write_manifest(
    store: &TieredStore,
    keyset: KeySetId,
    params_id: u64,
    current: Option<u64>,
    m: &Manifest,
) -> Result<()> {
    let bytes = serde_json::to_vec(m).map_err(|e| Error::KeyManifest { reason: e.to_string() })?;
    let slot = current.map_or(0, |c| 1 - c);
    let new_id = manifest_slot_id(keyset, params_id, slot);
    if store.contains(new_id) {
        // A stale older manifest left by a crash: the current one stays while this goes.
        store.remove(new_id)?;
    }
    store.put(new_id, ObjectKind::Blob, Durability::Durable, &bytes)?;
    if let Some(c) = current {
        store.remove(manifest_slot_id(keyset, params_id, c))?;
    }
    Ok(())
}

/// The seed as the manifest writes it.
pub(super) fn hex(seed: &Seed) -> String {
    seed.iter().map(|b| format!("{b:02x}")).collect()
}

/// A seed the manifest wrote; anything else is [`Error::KeyManifest`].
pub(super) fn unhex(s: &str) -> Result<Seed> {
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
