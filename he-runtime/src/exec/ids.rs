//! Store object ids of a program's objects. Evaluation keys and weights get ids derived from
//! what they are (key set, parameters, Galois element; weights tag, object), so a later process
//! finds them in the durable pool; ciphertexts get run-local ids in their own range.

use hetier_tiering::ObjectId;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::ckks::Seed;
use crate::nn::ObjId;

const SPACE_SHIFT: u32 = 60;
const KEY_SPACE: u64 = 1 << SPACE_SHIFT;
const WEIGHT_SPACE: u64 = 2 << SPACE_SHIFT;
const CT_SPACE: u64 = 3 << SPACE_SHIFT;
const MANIFEST_SPACE: u64 = 4 << SPACE_SHIFT;
const DIAGONAL_SPACE: u64 = 5 << SPACE_SHIFT;
const LOW: u64 = (1 << SPACE_SHIFT) - 1;

/// Identity of a set of evaluation keys: which secret key they belong to, without revealing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySetId(pub u64);

impl KeySetId {
    /// Derives the id from the client's secret-key seed with a ChaCha20 stream the key
    /// generator never uses (a PRF output, so the id says nothing about the seed).
    pub fn from_seed(seed: &Seed) -> Self {
        let mut rng = ChaCha20Rng::from_seed(*seed);
        rng.set_stream(0x6865_7469_6572_6b73); // "hetierks"
        Self(rng.next_u64())
    }
}

fn hash(parts: &[u64]) -> u64 {
    let mut bytes = Vec::with_capacity(parts.len() * 8);
    for p in parts {
        bytes.extend_from_slice(&p.to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// Id of the evaluation key for Galois element `g` (0: relinearisation).
pub fn key_id(keyset: KeySetId, params_id: u64, g: u64) -> ObjectId {
    ObjectId(KEY_SPACE | (hash(&[keyset.0, params_id, g]) & LOW))
}

/// Id of digit `digit`'s object of the key `key` names ([`key_id`]) when the key is stored one
/// object per digit (`KeyForm::Digits`).
pub fn key_digit_id(key: ObjectId, digit: usize) -> ObjectId {
    ObjectId(KEY_SPACE | (hash(&[key.0, digit as u64, 0x6469_6769]) & LOW))
}

/// Id of the key-set manifest in slot 0 (the one a single write leaves).
pub fn manifest_id(keyset: KeySetId, params_id: u64) -> ObjectId {
    manifest_slot_id(keyset, params_id, 0)
}

/// Id of the key-set manifest in `slot` (0 or 1): an update writes the slot not in use and only
/// then removes the other, so a crash at any point leaves at least one complete manifest.
pub fn manifest_slot_id(keyset: KeySetId, params_id: u64, slot: u64) -> ObjectId {
    let h = if slot == 0 {
        hash(&[keyset.0, params_id, 0x6d61_6e69])
    } else {
        hash(&[keyset.0, params_id, 0x6d61_6e69, slot])
    };
    ObjectId(MANIFEST_SPACE | (h & LOW))
}

/// Id of a bootstrap diagonal's durable encoding with fingerprint `fingerprint`
/// (`Bootstrapper::diagonal_fingerprint`): derived from what the words are encoded from, so
/// every process with the same parameters and bootstrap configuration finds the same objects.
pub fn diagonal_id(fingerprint: u64) -> ObjectId {
    ObjectId(DIAGONAL_SPACE | (hash(&[fingerprint, 0x6469_6167]) & LOW))
}

/// Id of an encoded weight plaintext of the model identified by `weights_tag`.
pub fn weight_id(weights_tag: u64, obj: ObjId) -> ObjectId {
    ObjectId(WEIGHT_SPACE | (hash(&[weights_tag, u64::from(obj.0)]) & LOW))
}

/// Id of a ciphertext of the running program.
pub fn ct_id(obj: ObjId) -> ObjectId {
    ObjectId(CT_SPACE | u64::from(obj.0))
}

/// Scratch spaces a request's ciphertexts can live in (space 0 is [`ct_id`]'s).
pub const SCRATCH_SPACES: u32 = 1 << (SPACE_SHIFT - 32);

/// Id of a ciphertext of the program run in scratch space `space` (taken modulo
/// [`SCRATCH_SPACES`]): requests running side by side over one store each use their own space,
/// so their ciphertexts never collide while keys and weights stay shared.
pub fn ct_id_in(space: u32, obj: ObjId) -> ObjectId {
    ObjectId(CT_SPACE | (u64::from(space % SCRATCH_SPACES) << 32) | u64::from(obj.0))
}

/// A tag for a model's weights under parameters: the hash of the weights file (see
/// `Model::weights_hash`) and the parameter fingerprint, so stored plaintexts are reused only
/// for the same model under the same parameters.
pub fn weights_tag(weights_hash: u64, params_id: u64) -> u64 {
    hash(&[weights_hash, params_id])
}
