//! [`Executor`]: runs one nn program over the tiered store (real mode) or symbolically (plan
//! mode); see the module docs of [`crate::exec`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use hetier_tiering::{
    BlockWriter, Durability, ObjectClass, ObjectId, ObjectKind, PinGuard, ScratchBuffer,
    TieredStore, Trace, TraceDurability, TraceEvent, TraceHeader,
};

use super::bootstrap::StoredBootstrapKeys;
use super::costs::OpCosts;
use super::error::{Error, Result};
use super::heal::{healed_line, pin_as, program_role};
use super::ids::{self, KeySetId};
use super::key_words::KeyWords;
use super::keys::{KeyForm, KeyReport, KeySet};
use super::report::RunReport;
use crate::ckks::bootstrap::{Bootstrapper, RecordingKeys};
use crate::ckks::{
    Ciphertext, Complex64, Context, Encoder, Encryptor, Evaluator, GaloisKey, HoistedCiphertext,
    KeyGenerator, KeySwitchKey, Plaintext, RelinKey, Scratch, SecretKey,
};
use crate::error::{Error as CoreError, Result as CoreResult};
use crate::nn::encrypted_weights::is_encrypted_weight;
use crate::nn::interp::{check_bootstrapper, check_key_uses};
use crate::nn::{AccessMode, ObjId, ObjKind, Op, Program, FROM_SPARSE_TAG, TO_SPARSE_TAG};

/// One pinning step of an op.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Step {
    name: &'static str,
    pins: Vec<ObjId>,
    writes: Vec<ObjId>,
}

/// The steps of op `op` (a hoisted rotation is split; everything else is one step).
pub(super) fn steps(op: &Op) -> Vec<Step> {
    if let Op::Bootstrap { dst, src, keys } = op {
        // The input is pinned for the whole bootstrap, each key only for the step using it.
        let mut v = vec![Step { name: "bootstrap", pins: vec![*src], writes: vec![] }];
        v.extend(keys.iter().map(|&k| Step {
            name: "bootstrap_key",
            pins: vec![k],
            writes: vec![],
        }));
        if let Some(last) = v.last_mut() {
            last.writes.push(*dst);
        }
        return v;
    }
    if let Op::HoistedRotate { src, rots } = op {
        let mut v = vec![Step { name: "hoist", pins: vec![*src], writes: vec![] }];
        v.extend(rots.iter().map(|&(_, key, dst)| Step {
            name: "rotate_hoisted",
            pins: vec![key],
            writes: vec![dst],
        }));
        return v;
    }
    let acc = op.accesses();
    vec![Step {
        name: op.name(),
        pins: acc.iter().filter(|(_, m)| *m == AccessMode::Read).map(|(o, _)| *o).collect(),
        writes: acc.iter().filter(|(_, m)| *m == AccessMode::Write).map(|(o, _)| *o).collect(),
    }]
}

/// The cryptographic state of a real executor.
struct Real<'s> {
    store: &'s TieredStore,
    ctx: Arc<Context>,
    eval: Evaluator,
    encoder: Encoder,
    /// The bootstrapper's key-switch scratch (process memory, made at the first bootstrap):
    /// every other step borrows its scratch from the store's budget for the step.
    boot_scratch: Option<Scratch>,
    keys: KeySet,
    /// (level, scale) of each live ciphertext.
    meta: HashMap<ObjId, (usize, f64)>,
    /// The hoisted decomposition (and c_0) of the hoisted rotation group being run, in
    /// scratch buffers charged to the store's budget while it lives.
    hoisted: Option<HoistedCiphertext<ScratchBuffer<'s>>>,
    /// What runs the program's bootstrap ops, and their keys once prepared.
    bootstrapper: Option<Arc<Bootstrapper>>,
    boot_keys: Option<StoredBootstrapKeys<'s>>,
    /// The form missing keys are put in.
    key_form: KeyForm,
}

impl Real<'_> {
    /// Drops the hoisted decomposition and gives its bytes back to the budget.
    fn drop_hoisted(&mut self) {
        self.hoisted = None;
    }
}

enum Backend<'s> {
    Plan(OpCosts),
    Real(Box<Real<'s>>),
}

/// Runs one program, really over a store or symbolically; see the module docs.
pub struct Executor<'s> {
    program: &'s Program,
    weights_tag: u64,
    ids: Vec<ObjectId>,
    backend: Backend<'s>,
    events: Vec<TraceEvent>,
    source: String,
    /// Compute time of the last run per program layer.
    layer_ns: Vec<u64>,
    /// Weight plaintexts are encoded just before their product instead of stored.
    weights_on_the_fly: bool,
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

fn galois_of(kind: ObjKind) -> Option<u64> {
    kind.key_tag()
}

/// Whether key tag `g` is a bootstrap's encapsulation key (made with the sparse secret by
/// [`StoredBootstrapKeys::ensure`], not by a plain key generation).
fn is_switching_tag(g: u64) -> bool {
    g == TO_SPARSE_TAG || g == FROM_SPARSE_TAG
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

    /// The steps of `op` under this executor's weight mode.
    fn op_steps(&self, op: &Op) -> Vec<Step> {
        let mut v = steps(op);
        if self.weights_on_the_fly {
            if let Op::MulPlain { pt, .. } | Op::AddPlain { pt, .. } = op {
                v.iter_mut().for_each(|s| s.pins.retain(|p| p != pt));
            }
        }
        v
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
            boot_scratch: None,
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

    fn mode(&self) -> &'static str {
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

    fn put_event(&mut self, obj: ObjId, len: u64) {
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
                    real.boot_keys = Some(bk);
                }
                let source = |g: u64| -> Result<KeySwitchKey> {
                    Ok(if g == 0 { kg.relin_key(sk)?.key } else { kg.galois_key(sk, g)?.key })
                };
                let (set, mut report) = KeySet::ensure_in_form(
                    real.store,
                    &real.ctx,
                    keyset,
                    &needed,
                    real.key_form,
                    source,
                    |_, _| {},
                )?;
                report.generated += boot_report.generated;
                report.reused += boot_report.reused;
                report.bytes_generated += boot_report.bytes_generated;
                report.manifests_healed += boot_report.manifests_healed;
                if let Some(bk) = &mut real.boot_keys {
                    *bk = StoredBootstrapKeys::from_key_set(real.store, &real.ctx, set.clone())?;
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
            real.boot_keys =
                Some(StoredBootstrapKeys::from_key_set(real.store, &real.ctx, set.clone())?);
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
                if real.boot_keys.is_some() {
                    real.boot_keys = Some(StoredBootstrapKeys::from_key_set(
                        real.store,
                        &real.ctx,
                        real.keys.clone(),
                    )?);
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

    /// The store ids every step will pin, in order (what `hint` receives).
    pub fn pin_sequence(&self) -> Vec<ObjectId> {
        self.program
            .ops()
            .iter()
            .flat_map(|r| self.op_steps(&r.op))
            .flat_map(|s| s.pins)
            .map(|o| self.ids[o.index()])
            .collect()
    }

    /// For every step, the lengths of the buffers it holds in DRAM at once: its pins, the
    /// block it computes its result into and the scratch it borrows from the store's budget —
    /// key-switch buffers (at the step's level), `mul_relin`'s degree-2 product, and the
    /// hoisted decomposition with its c_0 while a hoisted rotation group runs. A key is pinned
    /// in its stored (seed-compressed) form and expanded into a block of its full size: both
    /// count (the stored form at its bound, half the words plus the header). Checked against
    /// the store's budget before a real run starts.
    pub fn working_sets(&self) -> Vec<Vec<u64>> {
        let p = self.program;
        let sizes = p.sizes();
        let stored_key = sizes.key() / 2 + 64;
        let bytes = |o: &ObjId| {
            let obj = &p.objects()[o.index()];
            obj.bytes + if obj.kind.is_key() { stored_key } else { 0 }
        };
        let mut sets = Vec::new();
        let level_of = |o: &ObjId| p.objects()[o.index()].level;
        for r in p.ops() {
            let hoisted = match &r.op {
                Op::HoistedRotate { src, .. } => {
                    let l = level_of(src);
                    Some(sizes.decomposition(l) + sizes.plaintext(l))
                }
                _ => None,
            };
            for s in self.op_steps(&r.op) {
                let pins = s.pins.iter().map(bytes);
                let writes = s.writes.iter().map(bytes);
                let scratch: Vec<u64> = match &r.op {
                    Op::Rotate { src, .. } | Op::Conjugate { src, .. } => {
                        vec![sizes.key_switch_scratch(level_of(src), true)]
                    }
                    Op::HoistedRotate { src, .. } => {
                        vec![sizes.key_switch_scratch(level_of(src), false)]
                    }
                    Op::MulRelin { a, .. } => {
                        let l = level_of(a);
                        vec![sizes.key_switch_scratch(l, true), 3 * sizes.plaintext(l)]
                    }
                    _ => Vec::new(),
                };
                sets.push(hoisted.into_iter().chain(scratch).chain(pins).chain(writes).collect());
            }
        }
        sets
    }

    /// Runs the program once. Real mode needs `input` (the encrypted sample at the program's
    /// input level and scale); plan mode ignores it. The output stays in the store until
    /// [`Executor::finish`]. A run that fails removes the ciphertexts it had put, so the
    /// executor (and the store) can run again.
    pub fn run(&mut self, input: Option<&Ciphertext>) -> Result<RunReport> {
        let &[(_, in_obj)] = self.program.inputs() else {
            return Err(CoreError::InvalidParameter {
                name: "program",
                reason: "needs exactly one input".into(),
            }
            .into());
        };
        self.run_guarded(&[(in_obj, input)])
    }

    /// [`Executor::run`] (real mode) with the input in any buffer, e.g. a client's ciphertext
    /// encrypted into a scratch buffer of the store's budget.
    pub fn run_from<C: AsRef<[u64]>>(&mut self, input: &Ciphertext<C>) -> Result<RunReport> {
        let &[(_, in_obj)] = self.program.inputs() else {
            return Err(CoreError::InvalidParameter {
                name: "program",
                reason: "needs exactly one input".into(),
            }
            .into());
        };
        self.run_guarded(&[(in_obj, Some(input))])
    }

    /// Runs a program with any number of inputs, each looked up by name in `inputs` (real
    /// mode needs all of them; plan mode ignores them). Outputs stay in the store until
    /// [`Executor::finish`]; a failed run removes what it had put, as [`Executor::run`] does.
    pub fn run_named(&mut self, inputs: &[(String, Ciphertext)]) -> Result<RunReport> {
        let named: Vec<(ObjId, Option<&Ciphertext>)> = self
            .program
            .inputs()
            .iter()
            .map(|(name, obj)| (*obj, inputs.iter().find(|(n, _)| n == name).map(|(_, c)| c)))
            .collect();
        self.run_guarded(&named)
    }

    fn run_guarded<C: AsRef<[u64]>>(
        &mut self,
        inputs: &[(ObjId, Option<&Ciphertext<C>>)],
    ) -> Result<RunReport> {
        let result = self.run_program(inputs);
        if result.is_err() {
            self.discard_live();
        }
        result
    }

    /// Removes every ciphertext a failed run left in the store, recording the removals so the
    /// trace stays balanced.
    fn discard_live(&mut self) {
        let Backend::Real(real) = &mut self.backend else { return };
        real.drop_hoisted();
        let objects = self.program.objects();
        // Encrypted weights are durable setup objects: they stay (and keep their metadata).
        let mut live: Vec<ObjId> = real
            .meta
            .keys()
            .copied()
            .filter(|o| !is_encrypted_weight(&objects[o.index()]))
            .collect();
        live.sort_by_key(|o| o.index());
        for obj in &live {
            real.meta.remove(obj);
        }
        for obj in live {
            let id = self.ids[obj.index()];
            // Best effort: the object that failed to be put is not in the store at all.
            if real.store.remove(id).is_ok() {
                self.events.push(TraceEvent::Remove { id });
            }
        }
    }

    fn run_program<C: AsRef<[u64]>>(
        &mut self,
        inputs: &[(ObjId, Option<&Ciphertext<C>>)],
    ) -> Result<RunReport> {
        let program = self.program;
        // A budget that some step can never fit fails here, before anything is put.
        if let Backend::Real(real) = &self.backend {
            real.store.check_working_sets(self.working_sets())?;
        }
        // The input ciphertexts.
        for &(in_obj, input) in inputs {
            let in_len = match &mut self.backend {
                Backend::Plan(_) => program.objects()[in_obj.index()].bytes,
                Backend::Real(real) => {
                    let ct = input
                        .ok_or(Error::WrongMode { mode: "real", what: "run without an input" })?;
                    real.meta.insert(in_obj, (ct.level(), ct.scale()));
                    put_ct(real, self.ids[in_obj.index()], ct)?
                }
            };
            self.put_event(in_obj, in_len);
        }
        if let Backend::Real(real) = &self.backend {
            real.store.hint(&self.pin_sequence());
        }
        let mut report = RunReport::default();
        self.layer_ns.iter_mut().for_each(|t| *t = 0);
        for (i, rec) in program.ops().iter().enumerate() {
            if let (Op::Bootstrap { .. }, Backend::Real(real)) = (&rec.op, &mut self.backend) {
                let (times, written) = exec_bootstrap(real, program, &self.ids, &rec.op)?;
                for (step, ns) in steps(&rec.op).into_iter().zip(times) {
                    let pins = step.pins.iter().map(|o| self.ids[o.index()]).collect();
                    report.steps += 1;
                    report.compute_ns += ns;
                    report.bootstrap_ns += ns;
                    self.events.push(TraceEvent::Op {
                        name: step.name.to_owned(),
                        pins,
                        compute_ns: ns,
                    });
                }
                let (w, len) = written;
                self.put_event(w, len);
                self.free_dead(i)?;
                continue;
            }
            for step in self.op_steps(&rec.op) {
                let pins: Vec<ObjectId> = step.pins.iter().map(|o| self.ids[o.index()]).collect();
                let (ns, written) = match &mut self.backend {
                    Backend::Plan(costs) => {
                        let mut ns = costs.estimate(step.name, rec.level);
                        if self.weights_on_the_fly
                            && matches!(rec.op, Op::MulPlain { .. } | Op::AddPlain { .. })
                        {
                            ns += costs.estimate("encode", rec.level);
                        }
                        let lens = step
                            .writes
                            .iter()
                            .map(|w| (*w, program.objects()[w.index()].bytes))
                            .collect();
                        (ns, lens)
                    }
                    Backend::Real(real) => {
                        let fly = self.weights_on_the_fly;
                        exec_step(real, program, &self.ids, &rec.op, &step, fly)?
                    }
                };
                report.steps += 1;
                report.compute_ns += ns;
                if let Some(t) = self.layer_ns.get_mut(rec.layer as usize) {
                    *t += ns;
                }
                self.events.push(TraceEvent::Op {
                    name: step.name.to_owned(),
                    pins,
                    compute_ns: ns,
                });
                for (w, len) in written {
                    self.put_event(w, len);
                }
            }
            self.free_dead(i)?;
        }
        if let Backend::Real(real) = &mut self.backend {
            real.drop_hoisted();
        }
        Ok(report)
    }

    /// Removes the scratch objects that die after op `i`.
    fn free_dead(&mut self, i: usize) -> Result<()> {
        for &dead in self.program.frees_after(i) {
            let id = self.ids[dead.index()];
            if let Backend::Real(real) = &mut self.backend {
                real.store.remove(id)?;
                real.meta.remove(&dead);
            }
            self.events.push(TraceEvent::Remove { id });
        }
        Ok(())
    }

    /// Compute time of the last run by program layer ([`Program::layers`] order), in ns.
    pub fn layer_compute_ns(&self) -> &[u64] {
        &self.layer_ns
    }

    /// A copy of the output ciphertext named `name` (real mode).
    pub fn output(&self, name: &str) -> Result<Ciphertext> {
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
        Ok(v.ct(obj, &g)?.to_owned_ct())
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

/// Encodes weight plaintext `obj` from the model's values and puts it (durable) as `id`;
/// returns its length in bytes.
fn put_weight(real: &Real<'_>, program: &Program, obj: ObjId, id: ObjectId) -> Result<u64> {
    let pt = encode_weight(&real.encoder, program, obj)?;
    let len = pt.as_words().len() as u64 * 8;
    let mut w = real.store.alloc(len)?;
    w.as_u64s_mut().copy_from_slice(pt.as_words());
    real.store.put_block(id, ObjectKind::Plaintext, Durability::Durable, w)?;
    Ok(len)
}

/// Encodes weight plaintext `obj` from the model's values (on-the-fly weights).
fn encode_weight(encoder: &Encoder, program: &Program, obj: ObjId) -> CoreResult<Plaintext> {
    let o = program.object(obj)?;
    let src = o
        .plain
        .as_ref()
        .ok_or(CoreError::MissingObject { id: obj.0, reason: "plaintext without values" })?;
    encoder.encode_real(&src.eval(), o.level, o.scale)
}

/// Puts a ciphertext as a scratch object; returns its length in bytes.
fn put_ct<C: AsRef<[u64]>>(real: &Real<'_>, id: ObjectId, ct: &Ciphertext<C>) -> Result<u64> {
    let words = ct.as_words();
    let len = words.len() as u64 * 8;
    let mut w = real.store.alloc(len)?;
    w.as_u64s_mut().copy_from_slice(words);
    real.store.put_block(id, ObjectKind::Ciphertext, Durability::Scratch, w)?;
    Ok(len)
}

/// Read-only views of pinned objects (a seed-compressed key is expanded into a block charged
/// to `store`'s budget for its one use).
struct Views<'r, 's> {
    store: &'s TieredStore,
    ctx: &'r Context,
    keys: &'r KeySet,
    meta: &'r HashMap<ObjId, (usize, f64)>,
    program: &'r Program,
}

impl<'s> Views<'_, 's> {
    fn ct<'g>(&self, obj: ObjId, g: &'g PinGuard<'_>) -> CoreResult<Ciphertext<&'g [u64]>> {
        let &(level, scale) = self
            .meta
            .get(&obj)
            .ok_or(CoreError::MissingObject { id: obj.0, reason: "ciphertext metadata" })?;
        let p = self.ctx.params();
        Ciphertext::from_raw(g.as_u64s(), 2, level, scale, p.n(), p.id())
    }

    fn pt<'g>(&self, obj: ObjId, g: &'g PinGuard<'_>) -> CoreResult<Plaintext<&'g [u64]>> {
        let o = self.program.object(obj)?;
        let p = self.ctx.params();
        Plaintext::from_raw(g.as_u64s(), o.level, o.scale, p.n(), p.id())
    }

    fn ksk<'g>(
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

    fn galois<'g>(&self, obj: ObjId, g: &'g PinGuard<'_>) -> Result<GaloisKey<KeyWords<'g, 's>>> {
        let (galois_element, key) = self.ksk(obj, g)?;
        Ok(GaloisKey { galois_element, key })
    }

    fn relin<'g>(&self, obj: ObjId, g: &'g PinGuard<'_>) -> Result<RelinKey<KeyWords<'g, 's>>> {
        Ok(RelinKey { key: self.ksk(obj, g)?.1 })
    }
}

/// Pins a step's objects, computes it, releases the pins and puts its results. Returns the
/// compute time and the (object, length) of each result.
fn exec_step<'s>(
    real: &mut Real<'s>,
    program: &Program,
    ids: &[ObjectId],
    op: &Op,
    step: &Step,
    weights_on_the_fly: bool,
) -> Result<(u64, Vec<(ObjId, u64)>)> {
    if step.name == "hoist" {
        // The previous decomposition is dead.
        real.drop_hoisted();
    }
    let Real { store, ctx, eval, encoder, keys, meta, hoisted, .. } = real;
    let store: &'s TieredStore = store;
    let guards = step
        .pins
        .iter()
        .map(|&o| pin_as(store, ids[o.index()], || program_role(program, o)))
        .collect::<Result<Vec<_>>>()?;
    let v = Views { store, ctx, keys, meta, program };
    let g = |k: usize| &guards[k];
    let t = Instant::now();
    // Results are computed straight into their store block: no heap result, no copy, no fresh
    // pages (the block's bytes count against the budget while the operands are pinned), and
    // every temporary the size of a ciphertext is a scratch buffer charged to the budget.
    let block = |level: usize| -> Result<BlockWriter<'s>> {
        Ok(store.alloc_for_overwrite(program.sizes().ciphertext(level))?)
    };
    // Key-switch scratch for operands at `level`, borrowed from the budget for this step.
    let scratch = |level: usize, decomposition: bool| -> Result<Scratch<ScratchBuffer<'s>>> {
        Ok(Scratch::with_buffers(ctx, level, decomposition, |w| store.scratch(w as u64 * 8))?)
    };
    let out: Option<(ObjId, Output<'s>)> = match op {
        Op::Rotate { dst, src, step: s, key } => {
            let x = v.ct(*src, g(0))?;
            let out = block(x.level())?;
            let mut scratch = scratch(x.level(), true)?;
            let c = eval.rotate_into(&x, *s, &v.galois(*key, g(1))?, &mut scratch, out)?;
            Some((*dst, Output::written(c)))
        }
        Op::Conjugate { dst, src, key } => {
            let x = v.ct(*src, g(0))?;
            let out = block(x.level())?;
            let mut scratch = scratch(x.level(), true)?;
            let c = eval.conjugate_into(&x, &v.galois(*key, g(1))?, &mut scratch, out)?;
            Some((*dst, Output::written(c)))
        }
        Op::HoistedRotate { src, rots } => {
            if step.name == "hoist" {
                let x = v.ct(*src, g(0))?;
                let (c0, dec) = HoistedCiphertext::<ScratchBuffer<'_>>::words_at(ctx, x.level());
                let (c0, dec) = (store.scratch(c0 as u64 * 8)?, store.scratch(dec as u64 * 8)?);
                let mut scratch = scratch(x.level(), false)?;
                *hoisted = Some(eval.hoist_into(&x, &mut scratch, c0, dec)?);
                None
            } else {
                let dst = step.writes[0];
                let &(s, key, _) = rots
                    .iter()
                    .find(|r| r.2 == dst)
                    .ok_or(CoreError::MissingObject { id: dst.0, reason: "hoisted rotation" })?;
                let h = hoisted.as_ref().ok_or(CoreError::MissingObject {
                    id: src.0,
                    reason: "hoisted decomposition",
                })?;
                let out = block(h.level())?;
                let mut scratch = scratch(h.level(), false)?;
                let c = eval.rotate_hoisted_into(h, s, &v.galois(key, g(0))?, &mut scratch, out)?;
                Some((dst, Output::written(c)))
            }
        }
        Op::MulPlain { dst, ct, pt } => {
            let x = v.ct(*ct, g(0))?;
            let mut c = eval.copy_into(&x, block(x.level())?)?;
            if weights_on_the_fly {
                eval.mul_plain_assign(&mut c, &encode_weight(encoder, program, *pt)?)?;
            } else {
                eval.mul_plain_assign(&mut c, &v.pt(*pt, g(1))?)?;
            }
            Some((*dst, Output::written(c)))
        }
        Op::AddPlain { dst, ct, pt } => {
            let x = v.ct(*ct, g(0))?;
            let mut c = eval.copy_into(&x, block(x.level())?)?;
            if weights_on_the_fly {
                eval.add_plain_assign(&mut c, &encode_weight(encoder, program, *pt)?)?;
            } else {
                eval.add_plain_assign(&mut c, &v.pt(*pt, g(1))?)?;
            }
            Some((*dst, Output::written(c)))
        }
        Op::MulConst { dst, src, value, scale } => {
            let x = v.ct(*src, g(0))?;
            let mut c = eval.copy_into(&x, block(x.level())?)?;
            eval.mul_const_assign(&mut c, *value, *scale)?;
            Some((*dst, Output::written(c)))
        }
        Op::MulInt { dst, src, k } => {
            let x = v.ct(*src, g(0))?;
            let mut c = eval.copy_into(&x, block(x.level())?)?;
            eval.mul_integer_assign(&mut c, *k)?;
            Some((*dst, Output::written(c)))
        }
        Op::AddConst { dst, src, value } => {
            let x = v.ct(*src, g(0))?;
            let mut c = eval.copy_into(&x, block(x.level())?)?;
            eval.add_const_assign(&mut c, Complex64::new(*value, 0.0))?;
            Some((*dst, Output::written(c)))
        }
        Op::Add { dst, a, b } => {
            let x = v.ct(*a, g(0))?;
            let mut c = eval.copy_into(&x, block(x.level())?)?;
            eval.add_assign(&mut c, &v.ct(*b, g(1))?)?;
            Some((*dst, Output::written(c)))
        }
        Op::Sub { dst, a, b } => {
            let x = v.ct(*a, g(0))?;
            let mut c = eval.copy_into(&x, block(x.level())?)?;
            eval.sub_assign(&mut c, &v.ct(*b, g(1))?)?;
            Some((*dst, Output::written(c)))
        }
        Op::MulRelin { dst, a, b, key } => {
            let (x, y) = (v.ct(*a, g(0))?, v.ct(*b, g(1))?);
            let l = x.level();
            // The degree-2 product and the key-switch buffers are borrowed from the budget.
            let tensor = store.scratch(3 * program.sizes().plaintext(l))?;
            let mut scratch = scratch(l, true)?;
            let out = block(l)?;
            let rk = v.relin(*key, g(2))?;
            let c = eval.mul_relin_into(&x, &y, &rk, &mut scratch, tensor, out)?;
            Some((*dst, Output::written(c)))
        }
        Op::Rescale { dst, src } => {
            let x = v.ct(*src, g(0))?;
            let out = block(x.level().saturating_sub(1))?;
            Some((*dst, Output::written(eval.rescale_into(&x, out)?)))
        }
        Op::Relabel { dst, src, scale } => {
            let x = v.ct(*src, g(0))?;
            let mut c = eval.copy_into(&x, block(x.level())?)?;
            c.set_scale(*scale);
            Some((*dst, Output::written(c)))
        }
        Op::LevelDrop { dst, src, level } => {
            let x = v.ct(*src, g(0))?;
            Some((*dst, Output::written(eval.drop_to_level_into(&x, *level, block(*level)?)?)))
        }
        Op::Bootstrap { .. } => {
            return Err(Error::WrongMode { mode: "real", what: "run a bootstrap as one step" })
        }
    };
    let ns = t.elapsed().as_nanos() as u64;
    drop(guards);
    if let Op::HoistedRotate { rots, .. } = op {
        if step.writes.first().is_some_and(|w| rots.last().map(|r| r.2) == Some(*w)) {
            // The last rotation of the group: the decomposition is dead before the put.
            *hoisted = None;
        }
    }
    let mut written = Vec::new();
    if let Some((dst, out)) = out {
        let Output { w, level, scale } = out;
        meta.insert(dst, (level, scale));
        let len = w.len();
        store.put_block(ids[dst.index()], ObjectKind::Ciphertext, Durability::Scratch, w)?;
        written.push((dst, len));
    }
    Ok((ns, written))
}

/// Runs bootstrap op `op`: pins its input for the whole bootstrap and each key only while the
/// bootstrapper uses it (through the store-backed key source), then puts the result. Returns
/// the compute time of each of the op's [`steps`] (the time up to the first key, then the time
/// from each key's pin to the next) and the written result with its length.
fn exec_bootstrap(
    real: &mut Real<'_>,
    program: &Program,
    ids: &[ObjectId],
    op: &Op,
) -> Result<(Vec<u64>, (ObjId, u64))> {
    let Op::Bootstrap { dst, src, keys } = op else {
        return Err(Error::WrongMode { mode: "real", what: "bootstrap another op" });
    };
    real.drop_hoisted();
    let bs = real.bootstrapper.clone().ok_or(CoreError::MissingKey { what: "bootstrapper" })?;
    let boot_keys = real.boot_keys.as_ref().ok_or(Error::WrongMode {
        mode: "real",
        what: "bootstrap before the bootstrap keys were prepared",
    })?;
    let guard = pin_as(real.store, ids[src.index()], || program_role(program, *src))?;
    let v =
        Views { store: real.store, ctx: &real.ctx, keys: &real.keys, meta: &real.meta, program };
    let x = v.ct(*src, &guard)?;
    let recorder = RecordingKeys::new(boot_keys);
    let start = Instant::now();
    let scratch = real.boot_scratch.get_or_insert_with(|| Scratch::new(&real.ctx));
    let out = bs.bootstrap(&x, &recorder, scratch)?;
    let end = Instant::now();
    drop(guard);
    let uses = recorder.into_uses();
    check_key_uses(program, keys, &uses)?;
    let mut marks = vec![start];
    marks.extend(uses.iter().map(|&(_, t)| t));
    marks.push(end);
    let times = marks.windows(2).map(|w| (w[1] - w[0]).as_nanos() as u64).collect();
    let words = out.as_words();
    let mut w = real.store.alloc(words.len() as u64 * 8)?;
    w.as_u64s_mut().copy_from_slice(words);
    real.meta.insert(*dst, (out.level(), out.scale()));
    let len = w.len();
    real.store.put_block(ids[dst.index()], ObjectKind::Ciphertext, Durability::Scratch, w)?;
    Ok((times, (*dst, len)))
}

/// A step's result, computed straight into its store block.
struct Output<'s> {
    w: BlockWriter<'s>,
    level: usize,
    scale: f64,
}

impl<'s> Output<'s> {
    /// A ciphertext computed in its store block.
    fn written(c: Ciphertext<BlockWriter<'s>>) -> Self {
        let (level, scale) = (c.level(), c.scale());
        Output { w: c.into_data(), level, scale }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
#[cfg(test)]
#[path = "tests_bootstrapped.rs"]
mod tests_bootstrapped;
