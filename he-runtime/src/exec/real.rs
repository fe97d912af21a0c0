//! The state of a real executor and what it reads and writes in the store: views of pinned
//! operands, and the puts of inputs and weights.

use std::collections::HashMap;
use std::sync::Arc;

use hetier_tiering::{Durability, ObjectId, ObjectKind, PinGuard, ScratchBuffer, TieredStore};

use super::bootstrap::StoredBootstrapKeys;
use super::error::Result;
use super::key_words::KeyWords;
use super::keys::{KeyForm, KeySet};
use crate::ckks::bootstrap::Bootstrapper;
use crate::ckks::{
    Ciphertext, Context, Encoder, Evaluator, GaloisKey, HoistedCiphertext, KeySwitchKey, Plaintext,
    RelinKey,
};
use crate::error::{Error as CoreError, Result as CoreResult};
use crate::nn::{ObjId, ObjKind, Program, FROM_SPARSE_TAG, TO_SPARSE_TAG};

/// The cryptographic state of a real executor.
pub(super) struct Real<'s> {
    pub(super) store: &'s TieredStore,
    pub(super) ctx: Arc<Context>,
    pub(super) eval: Evaluator,
    pub(super) encoder: Encoder,
    pub(super) keys: KeySet,
    /// (level, scale) of each live ciphertext.
    pub(super) meta: HashMap<ObjId, (usize, f64)>,
    /// The hoisted decomposition (and c_0) of the hoisted rotation group being run, in
    /// scratch buffers charged to the store's budget while it lives.
    pub(super) hoisted: Option<HoistedCiphertext<ScratchBuffer<'s>>>,
    /// What runs the program's bootstrap ops, and their keys once prepared.
    pub(super) bootstrapper: Option<Arc<Bootstrapper>>,
    pub(super) boot_keys: Option<StoredBootstrapKeys<'s>>,
    /// The form missing keys are put in.
    pub(super) key_form: KeyForm,
}

impl Real<'_> {
    /// Drops the hoisted decomposition and gives its bytes back to the budget.
    pub(super) fn drop_hoisted(&mut self) {
        self.hoisted = None;
    }
}

pub(super) fn galois_of(kind: ObjKind) -> Option<u64> {
    kind.key_tag()
}

/// Whether key tag `g` is a bootstrap's encapsulation key (made with the sparse secret by
/// [`StoredBootstrapKeys::ensure`], not by a plain key generation).
pub(super) fn is_switching_tag(g: u64) -> bool {
    g == TO_SPARSE_TAG || g == FROM_SPARSE_TAG
}

/// Encodes weight plaintext `obj` from the model's values and puts it (durable) as `id`;
/// returns its length in bytes.
pub(super) fn put_weight(
    real: &Real<'_>,
    program: &Program,
    obj: ObjId,
    id: ObjectId,
) -> Result<u64> {
    let pt = encode_weight(&real.encoder, program, obj)?;
    let len = pt.as_words().len() as u64 * 8;
    let mut w = real.store.alloc(len)?;
    w.as_u64s_mut().copy_from_slice(pt.as_words());
    real.store.put_block(id, ObjectKind::Plaintext, Durability::Durable, w)?;
    Ok(len)
}

/// Encodes weight plaintext `obj` from the model's values (on-the-fly weights).
pub(super) fn encode_weight(
    encoder: &Encoder,
    program: &Program,
    obj: ObjId,
) -> CoreResult<Plaintext> {
    let o = program.object(obj)?;
    let src = o
        .plain
        .as_ref()
        .ok_or(CoreError::MissingObject { id: obj.0, reason: "plaintext without values" })?;
    encoder.encode_real(&src.eval(), o.level, o.scale)
}

/// Puts a ciphertext as a scratch object; returns its length in bytes.
pub(super) fn put_ct<C: AsRef<[u64]>>(
    real: &Real<'_>,
    id: ObjectId,
    ct: &Ciphertext<C>,
) -> Result<u64> {
    let words = ct.as_words();
    let len = words.len() as u64 * 8;
    let mut w = real.store.alloc(len)?;
    w.as_u64s_mut().copy_from_slice(words);
    real.store.put_block(id, ObjectKind::Ciphertext, Durability::Scratch, w)?;
    Ok(len)
}

/// Read-only views of pinned objects (a seed-compressed key is expanded into a block charged
/// to `store`'s budget for its one use).
pub(super) struct Views<'r, 's> {
    pub(super) store: &'s TieredStore,
    pub(super) ctx: &'r Context,
    pub(super) keys: &'r KeySet,
    pub(super) meta: &'r HashMap<ObjId, (usize, f64)>,
    pub(super) program: &'r Program,
}

impl<'s> Views<'_, 's> {
    pub(super) fn ct<'g>(
        &self,
        obj: ObjId,
        g: &'g PinGuard<'_>,
    ) -> CoreResult<Ciphertext<&'g [u64]>> {
        let &(level, scale) = self
            .meta
            .get(&obj)
            .ok_or(CoreError::MissingObject { id: obj.0, reason: "ciphertext metadata" })?;
        let p = self.ctx.params();
        Ciphertext::from_raw(g.as_u64s(), 2, level, scale, p.n(), p.id())
    }

    pub(super) fn pt<'g>(
        &self,
        obj: ObjId,
        g: &'g PinGuard<'_>,
    ) -> CoreResult<Plaintext<&'g [u64]>> {
        let o = self.program.object(obj)?;
        let p = self.ctx.params();
        Plaintext::from_raw(g.as_u64s(), o.level, o.scale, p.n(), p.id())
    }

    pub(super) fn ksk<'g>(
        &self,
        obj: ObjId,
        g: &'g PinGuard<'_>,
    ) -> Result<(u64, KeySwitchKey<KeyWords<'g, 's>>)> {
        let ge = galois_of(self.program.object(obj)?.kind)
            .ok_or(CoreError::MissingObject { id: obj.0, reason: "not a key" })?;
        let k = self
            .keys
            .get(ge)
            .ok_or(CoreError::MissingGaloisKey { galois_element: ge, step: None })?;
        Ok((ge, k.view(self.store, self.ctx, g)?))
    }

    pub(super) fn galois<'g>(
        &self,
        obj: ObjId,
        g: &'g PinGuard<'_>,
    ) -> Result<GaloisKey<KeyWords<'g, 's>>> {
        let (galois_element, key) = self.ksk(obj, g)?;
        Ok(GaloisKey { galois_element, key })
    }

    pub(super) fn relin<'g>(
        &self,
        obj: ObjId,
        g: &'g PinGuard<'_>,
    ) -> Result<RelinKey<KeyWords<'g, 's>>> {
        Ok(RelinKey { key: self.ksk(obj, g)?.1 })
    }
}
