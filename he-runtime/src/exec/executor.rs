//! [`Executor`]: runs one nn program over the tiered store (real mode) or symbolically (plan
//! mode); see the module docs of [`crate::exec`]. Its parts live beside it: the steps of an op
//! (`steps`), what a run holds in DRAM (`memory`), setup of keys and weights (`prepare`), the
//! run loop (`run`), one real step (`compute`) and the real state with its store views
//! (`real`).

use std::collections::HashMap;
use std::sync::Arc;

use hetier_tiering::{
    ObjectClass, ObjectId, TieredStore, Trace, TraceDurability, TraceEvent, TraceHeader,
};

use super::costs::OpCosts;
use super::error::{Error, Result};
use super::heal::{pin_as, program_role};
use super::ids::{self, KeySetId};
use super::keys::{KeyForm, KeySet};
use super::real::{galois_of, Real, Views};
use crate::ckks::bootstrap::Bootstrapper;
use crate::ckks::{Ciphertext, Context, Encoder, Evaluator};
use crate::error::Error as CoreError;
use crate::nn::encrypted_weights::is_encrypted_weight;
use crate::nn::interp::check_bootstrapper;
use crate::nn::{ObjId, ObjKind, Program};

/// How an executor runs: symbolically from op costs, or for real over a store.
pub(super) enum Backend<'s> {
    Plan(OpCosts),
    Real(Box<Real<'s>>),
}

/// Runs one program, really over a store or symbolically; see the module docs.
pub struct Executor<'s> {
    pub(super) program: &'s Program,
    pub(super) weights_tag: u64,
    pub(super) ids: Vec<ObjectId>,
    pub(super) backend: Backend<'s>,
    pub(super) events: Vec<TraceEvent>,
    pub(super) source: String,
    /// Compute time of the last run per program layer.
    pub(super) layer_ns: Vec<u64>,
    /// Weight plaintexts are encoded just before their product instead of stored.
    pub(super) weights_on_the_fly: bool,
}

fn class(kind: ObjKind) -> ObjectClass {
    match kind {
        ObjKind::Ciphertext => ObjectClass::Ciphertext,
        ObjKind::Plaintext => ObjectClass::Plaintext,
        ObjKind::GaloisKey { .. } | ObjKind::RelinKey | ObjKind::SwitchingKey { .. } => {
            ObjectClass::EvalKey
        }
    }
}

impl<'s> Executor<'s> {
    fn new(program: &'s Program, weights_tag: u64, keyset: KeySetId, backend: Backend<'s>) -> Self {
        let pid = program.params().id();
        let ids = program
            .objects()
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let obj = ObjId(i as u32);
                match galois_of(o.kind) {
                    Some(g) => ids::key_id(keyset, pid, g),
                    None if o.kind == ObjKind::Plaintext || is_encrypted_weight(o) => {
                        ids::weight_id(weights_tag, obj)
                    }
                    None => ids::ct_id(obj),
                }
            })
            .collect();
        let source = format!(
            "hetier-he executor: log N = {}, L = {}, {} ops",
            program.params().log_n(),
            program.params().max_level(),
            program.ops().len()
        );
        let layer_ns = vec![0; program.layers().len()];
        Self {
            program,
            weights_tag,
            ids,
            backend,
            events: Vec::new(),
            source,
            layer_ns,
            weights_on_the_fly: false,
        }
    }

    /// Encodes each weight plaintext from the model just before the product that reads it,
    /// instead of keeping every encoded plaintext in the store: a deep network's encoded
    /// diagonals (tens of GB at log N = 16) then never exist at once, for an encode per
    /// product. [`Executor::prepare_weights`] then puts nothing, and no step pins a weight.
    pub fn encode_weights_on_the_fly(mut self) -> Self {
        self.weights_on_the_fly = true;
        self
    }

    /// Puts the keys [`Executor::prepare_keys`] generates in `form`: expanded by default
    /// (pinned in place; the trace records keys at their expanded size, so plan mode and the
    /// simulator price exactly what moves), or seed-compressed (half the bytes, expanded at
    /// every pin, which costs a network that uses each key hundreds of times dearly).
    pub fn put_keys_as(mut self, form: KeyForm) -> Self {
        if let Backend::Real(real) = &mut self.backend {
            real.key_form = form;
        }
        self
    }

    /// A plan-mode executor: no store, no cryptography; op times from `costs`. The key-set id
    /// only determines the key object ids (use the client's to compare with a real trace).
    pub fn plan(program: &'s Program, weights_tag: u64, keyset: KeySetId, costs: OpCosts) -> Self {
        Self::new(program, weights_tag, keyset, Backend::Plan(costs))
    }

    /// A real executor over `store` under `ctx` (whose parameters must be the program's).
    pub fn real(
        program: &'s Program,
        weights_tag: u64,
        keyset: KeySetId,
        store: &'s TieredStore,
        ctx: &Arc<Context>,
    ) -> Result<Self> {
        ctx.check_params(program.params())?;
        let eval = Evaluator::new(ctx);
        let real = Real {
            store,
            ctx: Arc::clone(ctx),
            encoder: Encoder::new(ctx),
            eval,
            keys: KeySet::default(),
            meta: HashMap::new(),
            hoisted: None,
            bootstrapper: None,
            boot_keys: None,
            key_form: KeyForm::Expanded,
        };
        Ok(Self::new(program, weights_tag, keyset, Backend::Real(Box::new(real))))
    }

    /// Runs the program's bootstrap ops with `bs` (real mode; a typed error if the program
    /// was compiled for another bootstrapper). Call before [`Executor::prepare_keys`], which
    /// then also makes the bootstrap's keys.
    pub fn with_bootstrapper(mut self, bs: Arc<Bootstrapper>) -> Result<Self> {
        check_bootstrapper(self.program, &bs)?;
        match &mut self.backend {
            Backend::Real(real) => {
                if !Arc::ptr_eq(bs.context(), &real.ctx) {
                    real.ctx.check_params(bs.context().params())?;
                }
                real.bootstrapper = Some(bs);
                Ok(self)
            }
            Backend::Plan(_) => Err(Error::WrongMode { mode: "plan", what: "run bootstraps" }),
        }
    }

    pub(super) fn mode(&self) -> &'static str {
        match self.backend {
            Backend::Plan(_) => "plan",
            Backend::Real(_) => "real",
        }
    }

    /// The store id of program object `obj`.
    pub fn object_id(&self, obj: ObjId) -> ObjectId {
        self.ids[obj.index()]
    }

    /// Moves the program's ciphertexts (not its encrypted weights) to scratch space `space`
    /// (see [`ids::ct_id_in`]), so that executors running side by side over one store keep
    /// their ciphertexts apart while sharing keys and weights. Call before any run.
    pub fn in_scratch_space(mut self, space: u32) -> Self {
        for (i, o) in self.program.objects().iter().enumerate() {
            if o.kind == ObjKind::Ciphertext && !is_encrypted_weight(o) {
                self.ids[i] = ids::ct_id_in(space, ObjId(i as u32));
            }
        }
        self
    }

    /// Uses evaluation keys already in the store (e.g. a server's, loaded once with
    /// [`KeySet::ensure_with`]) instead of reading the key-set manifest again.
    pub fn use_keys(&mut self, keys: KeySet) -> Result<()> {
        let Backend::Real(real) = &mut self.backend else {
            return Err(Error::WrongMode { mode: "plan", what: "use stored keys" });
        };
        real.keys = keys;
        Ok(())
    }

    pub(super) fn put_event(&mut self, obj: ObjId, len: u64) {
        let o = &self.program.objects()[obj.index()];
        let durability = match o.kind {
            ObjKind::Ciphertext if !is_encrypted_weight(o) => TraceDurability::Scratch,
            _ => TraceDurability::Durable,
        };
        self.events.push(TraceEvent::Put {
            id: self.ids[obj.index()],
            kind: class(o.kind),
            durability,
            len,
        });
    }

    /// Compute time of the last run by program layer ([`Program::layers`] order), in ns.
    pub fn layer_compute_ns(&self) -> &[u64] {
        &self.layer_ns
    }

    /// Calls `f` with the output ciphertext named `name` (real mode) where it lies, pinned in
    /// the store: nothing is copied (decrypt it into a scratch buffer of the budget, for
    /// instance, see [`crate::ckks::Decryptor::decrypt_into`]).
    pub fn output_with<R>(
        &self,
        name: &str,
        f: impl FnOnce(&Ciphertext<&[u64]>) -> Result<R>,
    ) -> Result<R> {
        let Backend::Real(real) = &self.backend else {
            return Err(Error::WrongMode { mode: self.mode(), what: "return a ciphertext" });
        };
        let obj = self.program.outputs().iter().find(|(n, _)| n == name).map(|(_, o)| *o).ok_or(
            CoreError::InvalidParameter { name: "output", reason: format!("no output {name}") },
        )?;
        let g = pin_as(real.store, self.ids[obj.index()], || program_role(self.program, obj))?;
        let v = Views {
            store: real.store,
            ctx: &real.ctx,
            keys: &real.keys,
            meta: &real.meta,
            program: self.program,
        };
        f(&v.ct(obj, &g)?)
    }

    /// A copy of the output ciphertext named `name` (real mode).
    pub fn output(&self, name: &str) -> Result<Ciphertext> {
        self.output_with(name, |ct| Ok(ct.to_owned_ct()))
    }

    /// Removes the outputs of the last run from the store (and records it), ready for the next.
    pub fn finish(&mut self) -> Result<()> {
        for &(_, obj) in self.program.outputs() {
            let id = self.ids[obj.index()];
            if let Backend::Real(real) = &mut self.backend {
                real.store.remove(id)?;
                real.meta.remove(&obj);
            }
            self.events.push(TraceEvent::Remove { id });
        }
        Ok(())
    }

    /// The program this executor runs.
    pub fn program(&self) -> &'s Program {
        self.program
    }

    /// The events recorded so far.
    pub fn events(&self) -> &[TraceEvent] {
        &self.events
    }

    /// The recorded trace (header names the mode and parameters).
    pub fn trace(&self) -> Trace {
        Trace {
            header: TraceHeader::new(format!(
                "{} ({} mode, weights {:#x})",
                self.source,
                self.mode(),
                self.weights_tag
            )),
            events: self.events.clone(),
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
#[cfg(test)]
#[path = "tests_boot_scratch.rs"]
mod tests_boot_scratch;
#[cfg(test)]
#[path = "tests_bootstrapped.rs"]
mod tests_bootstrapped;
