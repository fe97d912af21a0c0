//! Setup before runs: evaluation keys (generated, reused from the pool or sent by a client),
//! encoded and encrypted weights, and healing a damaged key or weight from its source.

use std::sync::Arc;

use hetier_tiering::{Durability, ObjectId, ObjectKind};

use super::bootstrap::StoredBootstrapKeys;
use super::diagonals::StoredCoefficients;
use super::error::{Error, Result};
use super::executor::{Backend, Executor};
use super::heal::{healed_line, program_role};
use super::ids::KeySetId;
use super::keys::{GeneratedKeys, KeyReport, KeySet};
use super::real::{galois_of, is_switching_tag, put_weight, Real};
use crate::ckks::{Encryptor, KeyGenerator, KeySwitchKey, SecretKey};
use crate::error::Error as CoreError;
use crate::nn::encrypted_weights::is_encrypted_weight;
use crate::nn::{ObjId, ObjKind, Program};

impl Executor<'_> {
    /// Makes every evaluation key the program needs available: in real mode from the pool's
    /// manifest when present, otherwise generated with `kg` from `sk` and put (durable). Both
    /// modes record a durable `put` for every key, reused or not (a replay's `reuse_durable`
    /// says whether they start in the pool).
    pub fn prepare_keys(
        &mut self,
        kg: Option<&mut KeyGenerator>,
        sk: Option<&SecretKey>,
        keyset: KeySetId,
    ) -> Result<KeyReport> {
        let keys = self.program.keys();
        match &mut self.backend {
            Backend::Plan(_) => {
                for k in &keys {
                    let len = self.program.objects()[k.index()].bytes;
                    self.put_event(*k, len);
                }
                Ok(KeyReport { generated: keys.len(), ..KeyReport::default() })
            }
            Backend::Real(real) => {
                let (Some(kg), Some(sk)) = (kg, sk) else {
                    return Err(Error::WrongMode {
                        mode: "real",
                        what: "prepare keys without a secret key",
                    });
                };
                let mut needed = Vec::new();
                for k in &keys {
                    if let Some(g) = galois_of(self.program.objects()[k.index()].kind) {
                        needed.push(g);
                    }
                }
                let mut boot_report = KeyReport::default();
                if self.program.bootstrap().is_some() {
                    // Before any key is made, so they are not on the heap beside the keys.
                    let coefficients = coefficients_to_store(real)?;
                    let bs = real.bootstrapper.clone().ok_or(Error::WrongMode {
                        mode: "real",
                        what: "prepare a bootstrapping program's keys without a bootstrapper",
                    })?;
                    let (bk, r) = StoredBootstrapKeys::ensure_in_form(
                        real.store,
                        &real.ctx,
                        kg,
                        sk,
                        keyset,
                        &bs,
                        real.key_form,
                    )?;
                    boot_report = r;
                    // Keys the bootstrap already made or found are not counted twice.
                    needed.retain(|&g| !is_switching_tag(g) && bk.key_set().get(g).is_none());
                    real.boot_keys = Some(with_held_diagonals(bk, coefficients, real));
                }
                let (set, mut report) = KeySet::ensure_in_form(
                    real.store,
                    &real.ctx,
                    keyset,
                    &needed,
                    real.key_form,
                    GeneratedKeys { kg, sk },
                    |_, _| {},
                )?;
                report.generated += boot_report.generated;
                report.reused += boot_report.reused;
                report.bytes_generated += boot_report.bytes_generated;
                report.manifests_healed += boot_report.manifests_healed;
                if let Some(bk) = &mut real.boot_keys {
                    let keys =
                        StoredBootstrapKeys::from_key_set(real.store, &real.ctx, set.clone())?;
                    *bk = keys.with_diagonals_of(bk);
                }
                real.keys = set;
                // Every key is recorded, generated or reused: the trace describes the objects
                // the program uses, and a replay decides whether durable setup objects are
                // written or already in the pool (`reuse_durable`), so plan == real either way.
                for k in &keys {
                    let len = self.program.objects()[k.index()].bytes;
                    self.put_event(*k, len);
                }
                Ok(report)
            }
        }
    }

    /// As [`Executor::prepare_keys`] in real mode, without a secret key: missing keys come
    /// from `source` (Galois element → key, 0 = relinearisation), e.g. the keys a client sent,
    /// or an error when the pool must already hold them.
    pub fn prepare_keys_from(
        &mut self,
        keyset: KeySetId,
        source: impl FnMut(u64) -> Result<KeySwitchKey>,
    ) -> Result<KeyReport> {
        let keys = self.program.keys();
        let Backend::Real(real) = &mut self.backend else {
            return Err(Error::WrongMode { mode: "plan", what: "load keys" });
        };
        let needed: Vec<u64> =
            keys.iter().filter_map(|k| galois_of(self.program.objects()[k.index()].kind)).collect();
        let (set, report) =
            KeySet::ensure_with(real.store, &real.ctx, keyset, &needed, source, |_, _| {})?;
        if self.program.bootstrap().is_some() {
            let coefficients = coefficients_to_store(real)?;
            let keys = StoredBootstrapKeys::from_key_set(real.store, &real.ctx, set.clone())?;
            real.boot_keys = Some(with_held_diagonals(keys, coefficients, real));
        }
        real.keys = set;
        for k in &keys {
            let len = self.program.objects()[k.index()].bytes;
            self.put_event(*k, len);
        }
        Ok(report)
    }

    /// Galois elements of every evaluation key the program uses (0 = relinearisation).
    pub fn needed_keys(program: &Program) -> Vec<u64> {
        program.keys().iter().filter_map(|k| galois_of(program.objects()[k.index()].kind)).collect()
    }

    /// Encodes every weight plaintext and puts it (durable), reusing ones already in the pool
    /// under the same weights tag. Returns how many were encoded.
    pub fn prepare_weights(&mut self) -> Result<usize> {
        let mut encoded = 0;
        for (i, o) in self.program.objects().iter().enumerate() {
            if o.kind != ObjKind::Plaintext || self.weights_on_the_fly {
                continue;
            }
            let obj = ObjId(i as u32);
            let id = self.ids[i];
            let len = match &mut self.backend {
                Backend::Plan(_) => o.bytes,
                Backend::Real(real) => {
                    if real.store.len_of(id) == Some(o.bytes) {
                        // Reused from the pool: recorded like a key (see `prepare_keys`).
                        self.put_event(obj, o.bytes);
                        continue;
                    }
                    put_weight(real, self.program, obj, id)?
                }
            };
            encoded += 1;
            self.put_event(obj, len);
        }
        Ok(encoded)
    }

    /// Replaces the damaged store object `id` (an evaluation key or an encoded weight; see
    /// [`super::derivable_damage`]) with a fresh one derived from its source: a weight is encoded
    /// again from the model, a key generated again with `kg` from the client's `sk`. Returns
    /// the line that reports it. A ciphertext cannot be healed.
    pub fn heal(
        &mut self,
        id: ObjectId,
        kg: Option<&mut KeyGenerator>,
        sk: Option<&SecretKey>,
        keyset: KeySetId,
    ) -> Result<String> {
        let program = self.program;
        let obj = self.ids.iter().position(|&x| x == id).map(|i| ObjId(i as u32)).ok_or(
            CoreError::InvalidParameter {
                name: "heal",
                reason: format!("object {id} is not one of this program's"),
            },
        )?;
        let role = program_role(program, obj);
        let Backend::Real(real) = &mut self.backend else {
            return Err(Error::WrongMode { mode: "plan", what: "heal an object" });
        };
        let source = match program.objects()[obj.index()].kind {
            ObjKind::Plaintext => {
                real.store.remove(id)?;
                put_weight(real, program, obj, id)?;
                "the model's weights"
            }
            ObjKind::GaloisKey { .. } | ObjKind::RelinKey | ObjKind::SwitchingKey { .. } => {
                let (Some(kg), Some(sk)) = (kg, sk) else {
                    return Err(Error::WrongMode {
                        mode: "real",
                        what: "regenerate a key without the client's secret key",
                    });
                };
                real.store.remove(id)?;
                // The manifest lists the key but the store no longer holds it: `ensure`
                // generates it again and records its new seed.
                let needed: Vec<u64> = program
                    .keys()
                    .iter()
                    .filter_map(|k| galois_of(program.objects()[k.index()].kind))
                    .filter(|&g| !is_switching_tag(g))
                    .collect();
                if let Some(bs) = real.bootstrapper.clone() {
                    // Makes a lost encapsulation key again, with its partner.
                    StoredBootstrapKeys::ensure(real.store, &real.ctx, kg, sk, keyset, &bs)?;
                }
                real.keys =
                    KeySet::ensure(real.store, &real.ctx, kg, sk, keyset, &needed, |_, _| {})?.0;
                if let Some(old) = real.boot_keys.as_mut() {
                    // The stored coefficients move over: the bootstrapper has none of its own.
                    let keys = StoredBootstrapKeys::from_key_set(
                        real.store,
                        &real.ctx,
                        real.keys.clone(),
                    )?;
                    real.boot_keys = Some(keys.with_diagonals_of(old));
                }
                "the client's secret key"
            }
            ObjKind::Ciphertext => {
                return Err(CoreError::InvalidParameter {
                    name: "heal",
                    reason: format!("{} cannot be derived again", role.what),
                }
                .into())
            }
        };
        Ok(healed_line(&role.what, source))
    }

    /// Encrypts every encrypted-weight ciphertext of the program (see
    /// [`crate::nn::encrypted_weights`]) with the model owner's `sk` and puts it (durable),
    /// reusing ones already in the pool under the same weights tag. Returns how many were
    /// encrypted. In plan mode only the puts are recorded.
    pub fn prepare_encrypted_weights(&mut self, sk: Option<&SecretKey>) -> Result<usize> {
        let mut encrypted = 0;
        let mut encryptor = None;
        for (i, o) in self.program.objects().iter().enumerate() {
            if !is_encrypted_weight(o) {
                continue;
            }
            let obj = ObjId(i as u32);
            let id = self.ids[i];
            if let Backend::Real(real) = &mut self.backend {
                real.meta.insert(obj, (o.level, o.scale));
                if real.store.len_of(id) != Some(o.bytes) {
                    let sk = sk.ok_or(Error::WrongMode {
                        mode: "real",
                        what: "encrypt weights without the owner's secret key",
                    })?;
                    let src = o.plain.as_ref().ok_or(CoreError::MissingObject {
                        id: obj.0,
                        reason: "encrypted weight without values",
                    })?;
                    let pt = real.encoder.encode_real(&src.eval(), o.level, o.scale)?;
                    let enc = encryptor.get_or_insert_with(|| Encryptor::new(&real.ctx));
                    let ct = enc.encrypt_sk(sk, &pt)?;
                    let mut w = real.store.alloc(o.bytes)?;
                    w.as_u64s_mut().copy_from_slice(ct.as_words());
                    real.store.put_block(id, ObjectKind::Ciphertext, Durability::Durable, w)?;
                    encrypted += 1;
                }
            } else {
                encrypted += 1;
            }
            self.put_event(obj, o.bytes);
        }
        Ok(encrypted)
    }
}

/// The bootstrapper's diagonal coefficients as transient store objects, put before its keys
/// are made (so they are not on the heap beside them): the executor then keeps a copy of the
/// bootstrapper without them (its own goes with its last `Arc`), and the keys hand them out
/// ([`with_held_diagonals`]). `None` when there is no bootstrapper, its keys already hold them,
/// or it has none left to store.
fn coefficients_to_store<'s>(real: &mut Real<'s>) -> Result<Option<StoredCoefficients<'s>>> {
    let Some(bs) = real.bootstrapper.take() else { return Ok(None) };
    let held = real.boot_keys.as_ref().is_some_and(|k| k.diagonal_report().is_some());
    if held || !bs.holds_diagonal_coefficients() {
        real.bootstrapper = Some(bs);
        return Ok(None);
    }
    let stored = StoredCoefficients::put(real.store, &bs);
    real.bootstrapper =
        Some(if stored.is_ok() { Arc::new(bs.without_diagonal_coefficients()) } else { bs });
    stored.map(Some)
}

/// `keys` (new bootstrap keys) handing out the coefficients just stored, else whatever
/// diagonals or coefficients the keys they replace held (moved, so not removed with those).
fn with_held_diagonals<'s>(
    keys: StoredBootstrapKeys<'s>,
    coefficients: Option<StoredCoefficients<'s>>,
    real: &mut Real<'s>,
) -> StoredBootstrapKeys<'s> {
    match (coefficients, real.boot_keys.as_mut()) {
        (Some(c), _) => keys.with_coefficients(c),
        (None, Some(old)) => keys.with_diagonals_of(old),
        (None, None) => keys,
    }
}
