//! [`BatchExecutor`]: runs a [`BatchPlan`] over the tiered store (real mode) or symbolically
//! (plan mode); see the module docs of [`crate::exec::batched`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use hetier_tiering::{
    BlockWriter, Durability, ObjectClass, ObjectId, ObjectKind, ScratchBuffer, TieredStore, Trace,
    TraceDurability, TraceEvent, TraceHeader,
};
use rayon::prelude::*;

use super::plan::{BatchPlan, BatchStep};
use crate::ckks::{
    switch_key_expanded_words, switch_key_stored_len, Ciphertext, Complex64, Context, Evaluator,
    KeyGenerator, RelinKey, Scratch, SecretKey,
};
use crate::error::{Error as CoreError, Result as CoreResult};
use crate::exec::costs::OpCosts;
use crate::exec::error::{Error, Result};
use crate::exec::heal::{healed_line, pin_as, ObjectRole};
use crate::exec::ids::{ct_id, key_id, KeySetId};
use crate::exec::key_words::KeyWords;
use crate::exec::keys::{KeyForm, KeyReport, KeySet};
use crate::exec::report::RunReport;
use crate::math::lincomb::lin_comb_acc;
use crate::nn::program::SizeModel;
use crate::nn::{ObjId, Op};

/// Cryptographic state of a real run.
struct Real<'s> {
    store: &'s TieredStore,
    ctx: Arc<Context>,
    eval: Evaluator,
    keys: KeySet,
    /// Per-output sums of the linear blocks being accumulated (several at once: the schedule
    /// interleaves layers), in scratch buffers charged to the store's budget.
    sums: HashMap<usize, Vec<ScratchBuffer<'s>>>,
    /// Ciphertexts currently in the store.
    live: BTreeSet<u32>,
}

enum Backend<'s> {
    Plan(OpCosts),
    Real(Box<Real<'s>>),
}

/// Runs one [`BatchPlan`], really over a store or symbolically; see the module docs.
pub struct BatchExecutor<'s> {
    plan: &'s BatchPlan,
    relin_id: ObjectId,
    backend: Backend<'s>,
    events: Vec<TraceEvent>,
    inputs_put: usize,
}

fn id(o: u32) -> ObjectId {
    ct_id(ObjId(o))
}

/// A borrowed view of a ciphertext in a scratch buffer.
fn view<'v>(c: &'v Ciphertext<ScratchBuffer<'_>>) -> Ciphertext<&'v [u64]> {
    Ciphertext {
        data: c.data.as_u64s(),
        level: c.level,
        scale: c.scale,
        n: c.n,
        parts: c.parts,
        params_id: c.params_id,
        slots: c.slots,
    }
}

impl<'s> BatchExecutor<'s> {
    fn new(plan: &'s BatchPlan, keyset: KeySetId, backend: Backend<'s>) -> Self {
        let relin_id = key_id(keyset, plan.params().id(), 0);
        Self { plan, relin_id, backend, events: Vec::new(), inputs_put: 0 }
    }

    /// A plan-mode executor (no store, no cryptography; times from `costs`). The key-set id
    /// only determines the key's object id (use the client's to compare with a real trace).
    pub fn plan(plan: &'s BatchPlan, keyset: KeySetId, costs: OpCosts) -> Self {
        Self::new(plan, keyset, Backend::Plan(costs))
    }

    /// A real executor over `store` under `ctx` (whose parameters must be the plan's).
    pub fn real(
        plan: &'s BatchPlan,
        keyset: KeySetId,
        store: &'s TieredStore,
        ctx: &Arc<Context>,
    ) -> Result<Self> {
        ctx.check_params(plan.params())?;
        let eval = Evaluator::new(ctx);
        let real = Real {
            store,
            ctx: Arc::clone(ctx),
            eval,
            keys: KeySet::default(),
            sums: HashMap::new(),
            live: BTreeSet::new(),
        };
        Ok(Self::new(plan, keyset, Backend::Real(Box::new(real))))
    }

    fn mode(&self) -> &'static str {
        match self.backend {
            Backend::Plan(_) => "plan",
            Backend::Real(_) => "real",
        }
    }

    fn put_event(&mut self, o: u32) {
        let len = self.plan.objects()[o as usize].bytes;
        self.events.push(TraceEvent::Put {
            id: id(o),
            kind: ObjectClass::Ciphertext,
            durability: TraceDurability::Scratch,
            len,
        });
    }

    /// Makes the relinearisation key available when the plan needs it: in real mode from the
    /// pool's manifest when present, else generated from `sk` and put (durable).
    pub fn prepare_keys(
        &mut self,
        kg: Option<&mut KeyGenerator>,
        sk: Option<&SecretKey>,
        keyset: KeySetId,
    ) -> Result<KeyReport> {
        if !self.plan.needs_relin() {
            return Ok(KeyReport::default());
        }
        let key_len = SizeModel::new(self.plan.params()).key();
        let put_event = |events: &mut Vec<TraceEvent>, id: ObjectId, len: u64| {
            events.push(TraceEvent::Put {
                id,
                kind: ObjectClass::EvalKey,
                durability: TraceDurability::Durable,
                len,
            })
        };
        match &mut self.backend {
            Backend::Plan(_) => {
                put_event(&mut self.events, self.relin_id, key_len);
                Ok(KeyReport { generated: 1, ..KeyReport::default() })
            }
            Backend::Real(real) => {
                let (Some(kg), Some(sk)) = (kg, sk) else {
                    return Err(Error::WrongMode {
                        mode: "real",
                        what: "prepare keys without a secret key",
                    });
                };
                let (set, report) =
                    KeySet::ensure(real.store, &real.ctx, kg, sk, keyset, &[0], |_, _| {})?;
                real.keys = set;
                // Recorded whether generated or reused, as in the slot-packed executor: a
                // replay's `reuse_durable` says whether it starts in the pool.
                put_event(&mut self.events, self.relin_id, key_len);
                Ok(report)
            }
        }
    }

    /// Replaces the damaged relinearisation key (store id `key`) with one generated again with
    /// `kg` from the client's `sk`; returns the line that reports it. Nothing else a batch run
    /// pins can be derived again.
    pub fn heal(
        &mut self,
        key: ObjectId,
        kg: &mut KeyGenerator,
        sk: &SecretKey,
        keyset: KeySetId,
    ) -> Result<String> {
        let Backend::Real(real) = &mut self.backend else {
            return Err(Error::WrongMode { mode: "plan", what: "heal an object" });
        };
        if key != self.relin_id {
            return Err(CoreError::InvalidParameter {
                name: "heal",
                reason: format!("object {key} is not this plan's relinearisation key"),
            }
            .into());
        }
        real.store.remove(key)?;
        real.keys = KeySet::ensure(real.store, &real.ctx, kg, sk, keyset, &[0], |_, _| {})?.0;
        Ok(healed_line(&ObjectRole::relin_key().what, "the client's secret key"))
    }

    /// Puts input element `f` (its ciphertext holds that element of every sample of the batch,
    /// at the top level and nominal scale). Inputs are put in order, before [`Self::run`].
    pub fn put_input<C: AsRef<[u64]>>(&mut self, f: usize, ct: &Ciphertext<C>) -> Result<()> {
        let Some(&o) = self.plan.inputs().get(f) else {
            return Err(CoreError::InvalidParameter {
                name: "input",
                reason: format!("element {f} of {}", self.plan.inputs().len()),
            }
            .into());
        };
        if f != self.inputs_put {
            return Err(CoreError::InvalidParameter {
                name: "input",
                reason: format!("element {f} put out of order (next is {})", self.inputs_put),
            }
            .into());
        }
        let want = self.plan.objects()[o as usize];
        if ct.level() != want.level || ct.degree() != 1 {
            return Err(CoreError::InvalidLevel { level: ct.level(), max: want.level }.into());
        }
        let Backend::Real(real) = &mut self.backend else {
            return Err(Error::WrongMode { mode: "plan", what: "put an input ciphertext" });
        };
        put_words(real, o, ct.as_words())?;
        self.inputs_put += 1;
        self.put_event(o);
        Ok(())
    }

    /// The store ids every step will pin, in order (what `hint` receives).
    pub fn pin_sequence(&self) -> Vec<ObjectId> {
        let mut v = Vec::new();
        for i in 0..self.plan.steps().len() {
            v.extend(self.plan.pins(i).iter().map(|&o| id(o)));
            if self.plan.pins_relin_key(i) {
                v.push(self.relin_id);
            }
        }
        v
    }

    /// What one pin of the relinearisation key holds in the budget: its object in the form
    /// it is stored (seed-compressed before it is made), and for a seed-compressed key the
    /// block it is expanded into. Empty when the plan needs no key; plan mode has no budget.
    pub fn key_pin_bytes(&self) -> Vec<u64> {
        let Backend::Real(real) = &self.backend else { return Vec::new() };
        let expanded = switch_key_expanded_words(&real.ctx) as u64 * 8;
        match real.keys.get(0) {
            _ if !self.plan.needs_relin() => Vec::new(),
            Some(k) if k.form == KeyForm::Expanded => vec![k.len],
            Some(k) => vec![k.len, expanded],
            None => vec![switch_key_stored_len(&real.ctx), expanded],
        }
    }

    /// Checks the plan's steps against the store's budget ([`BatchPlan::working_sets`]): a
    /// budget too small is [`hetier_tiering::Error::BudgetTooSmall`], naming what the plan
    /// needs, before any work. Plan mode has no budget and passes.
    pub fn check_budget(&self) -> Result<()> {
        let Backend::Real(real) = &self.backend else { return Ok(()) };
        real.store.check_working_sets(self.plan.working_sets(&self.key_pin_bytes()))?;
        Ok(())
    }

    /// Runs every step. Real mode needs every input put first; plan mode records the input
    /// puts itself. Outputs stay in the store until [`Self::finish`]. A failed run removes the
    /// ciphertexts it had put, so the executor and the store can run again.
    pub fn run(&mut self) -> Result<RunReport> {
        let r = self.run_steps();
        if r.is_err() {
            self.discard_live();
        }
        r
    }

    fn discard_live(&mut self) {
        self.inputs_put = 0;
        let Backend::Real(real) = &mut self.backend else { return };
        real.sums.clear();
        for o in std::mem::take(&mut real.live) {
            // Best effort: the object whose put failed is not in the store.
            if real.store.remove(id(o)).is_ok() {
                self.events.push(TraceEvent::Remove { id: id(o) });
            }
        }
    }

    fn run_steps(&mut self) -> Result<RunReport> {
        let plan = self.plan;
        match &self.backend {
            Backend::Plan(_) => {
                for f in self.inputs_put..plan.inputs().len() {
                    self.put_event(plan.inputs()[f]);
                }
            }
            Backend::Real(real) => {
                if self.inputs_put != plan.inputs().len() {
                    return Err(CoreError::MissingObject {
                        id: self.inputs_put as u32,
                        reason: "input element not put before the run",
                    }
                    .into());
                }
                real.store.hint(&self.pin_sequence());
            }
        }
        self.check_budget()?;
        self.inputs_put = 0;
        let mut report = RunReport::default();
        for (i, step) in plan.steps().iter().enumerate() {
            let mut pins: Vec<ObjectId> = plan.pins(i).iter().map(|&o| id(o)).collect();
            if plan.pins_relin_key(i) {
                pins.push(self.relin_id);
            }
            let ns = match &mut self.backend {
                Backend::Plan(costs) => estimate(plan, costs, step),
                Backend::Real(real) => exec_step(real, plan, self.relin_id, step)?,
            };
            report.steps += 1;
            report.compute_ns += ns;
            self.events.push(TraceEvent::Op { name: step.name().to_owned(), pins, compute_ns: ns });
            for &w in plan.writes(i) {
                self.put_event(w);
            }
            for &dead in plan.frees_after(i) {
                if let Backend::Real(real) = &mut self.backend {
                    real.store.remove(id(dead))?;
                    real.live.remove(&dead);
                }
                self.events.push(TraceEvent::Remove { id: id(dead) });
            }
        }
        Ok(report)
    }

    /// A copy of output element `k` (real mode).
    pub fn output(&self, k: usize) -> Result<Ciphertext> {
        self.output_with(k, |ct| Ok(ct.to_owned_ct()))
    }

    /// Calls `f` with output element `k` (real mode) where it lies, pinned in the store:
    /// nothing is copied (decrypt it into a scratch buffer of the budget, for instance).
    pub fn output_with<R>(
        &self,
        k: usize,
        f: impl FnOnce(&Ciphertext<&[u64]>) -> Result<R>,
    ) -> Result<R> {
        let Backend::Real(real) = &self.backend else {
            return Err(Error::WrongMode { mode: self.mode(), what: "return a ciphertext" });
        };
        let &o = self.plan.outputs().get(k).ok_or(CoreError::InvalidParameter {
            name: "output",
            reason: format!("element {k} of {}", self.plan.outputs().len()),
        })?;
        let g = pin_as(real.store, id(o), || ct_role(self.plan, o))?;
        let obj = self.plan.objects()[o as usize];
        let p = real.ctx.params();
        f(&Ciphertext::from_raw(g.as_u64s(), obj.parts, obj.level, obj.scale, p.n(), p.id())?)
    }

    /// Removes the outputs of the last run from the store (and records it).
    pub fn finish(&mut self) -> Result<()> {
        for &o in self.plan.outputs() {
            if let Backend::Real(real) = &mut self.backend {
                real.store.remove(id(o))?;
                real.live.remove(&o);
            }
            self.events.push(TraceEvent::Remove { id: id(o) });
        }
        Ok(())
    }

    /// The events recorded so far.
    pub fn events(&self) -> &[TraceEvent] {
        &self.events
    }

    /// The recorded trace (header names the mode and parameters).
    pub fn trace(&self) -> Trace {
        let p = self.plan.params();
        Trace {
            header: TraceHeader::new(format!(
                "hetier-he batch executor: log N = {}, L = {}, {} steps ({} mode)",
                p.log_n(),
                p.max_level(),
                self.plan.steps().len(),
                self.mode()
            )),
            events: self.events.clone(),
        }
    }
}

/// The plan-mode time of a step.
fn estimate(plan: &BatchPlan, costs: &OpCosts, step: &BatchStep) -> u64 {
    match step {
        BatchStep::Accumulate { block, weights, .. } => {
            let l = plan.blocks()[*block].in_level;
            weights.len() as u64 * costs.estimate("lincomb_term", l)
        }
        BatchStep::Finish { block } => {
            let b = &plan.blocks()[*block];
            let mut per = costs.estimate("rescale", b.in_level);
            let mut out_level = b.in_level.saturating_sub(1);
            if b.in_parts == 3 {
                per += costs.estimate("relinearize", b.in_level)
                    + costs.estimate("rescale", out_level);
                out_level = out_level.saturating_sub(1);
            }
            per += costs.estimate("add_const", out_level);
            b.outputs.len() as u64 * per
        }
        BatchStep::Square { input, .. } => {
            costs.estimate("square", plan.objects()[*input as usize].level)
        }
        BatchStep::Map { template, .. } => plan.templates()[*template]
            .program
            .ops()
            .iter()
            .map(|r| costs.estimate(r.op.name(), r.level))
            .sum(),
    }
}

/// Puts `words` as the scratch ciphertext `o`.
fn put_words(real: &mut Real<'_>, o: u32, words: &[u64]) -> Result<()> {
    let mut w = real.store.alloc_for_overwrite(words.len() as u64 * 8)?;
    w.as_u64s_mut().copy_from_slice(words);
    put_block(real, o, w)
}

/// Puts a block computed in place as the scratch ciphertext `o`.
fn put_block<'s>(real: &mut Real<'s>, o: u32, w: BlockWriter<'s>) -> Result<()> {
    real.store.put_block(id(o), ObjectKind::Ciphertext, Durability::Scratch, w)?;
    real.live.insert(o);
    Ok(())
}

/// Key-switch scratch for operands at `level`, borrowed from the store's budget.
fn ks_scratch<'s>(real: &Real<'s>, level: usize) -> Result<Scratch<ScratchBuffer<'s>>> {
    let store = real.store;
    Ok(Scratch::with_buffers(&real.ctx, level, true, |w| store.scratch(w as u64 * 8))?)
}

/// A scratch buffer of `parts` polynomials at `level`, borrowed from the store's budget.
fn ct_scratch<'s>(real: &Real<'s>, parts: usize, level: usize) -> Result<ScratchBuffer<'s>> {
    Ok(real.store.scratch((parts * (level + 1) * real.ctx.n()) as u64 * 8)?)
}

/// The operands of a template run: pinned inputs and computed values.
struct Args<'a> {
    guards: &'a [hetier_tiering::PinGuard<'a>],
    inputs_of: &'a [ObjId],
    prog: &'a crate::nn::Program,
    n: usize,
    pid: u64,
}

impl Args<'_> {
    fn get<'v>(
        &'v self,
        vals: &'v [Option<Ciphertext<ScratchBuffer<'_>>>],
        o: ObjId,
    ) -> CoreResult<Ciphertext<&'v [u64]>> {
        if let Some(k) = self.inputs_of.iter().position(|&i| i == o) {
            let obj = self.prog.object(o)?;
            let g = self
                .guards
                .get(k)
                .ok_or(CoreError::MissingObject { id: o.0, reason: "template input not pinned" })?;
            return Ciphertext::from_raw(g.as_u64s(), 2, obj.level, obj.scale, self.n, self.pid);
        }
        vals[o.index()]
            .as_ref()
            .map(view)
            .ok_or(CoreError::MissingObject { id: o.0, reason: "template value" })
    }
}

/// The relinearisation key over its pinned buffer, if pinned.
fn relin_view<'g, 's>(
    real: &Real<'s>,
    g: Option<&'g hetier_tiering::PinGuard<'_>>,
) -> Result<Option<RelinKey<KeyWords<'g, 's>>>> {
    let Some(g) = g else { return Ok(None) };
    let k =
        real.keys.get(0).ok_or(CoreError::MissingGaloisKey { galois_element: 0, step: None })?;
    Ok(Some(RelinKey { key: k.view(real.store, &real.ctx, g)? }))
}

/// Runs one step for real; returns its compute time in nanoseconds.
fn exec_step<'s>(
    real: &mut Real<'s>,
    plan: &BatchPlan,
    relin_id: ObjectId,
    step: &BatchStep,
) -> Result<u64> {
    let n = real.ctx.n();
    match step {
        BatchStep::Accumulate { block, inputs, weights } => {
            let b = &plan.blocks()[*block];
            let l1 = b.in_level + 1;
            let words = b.in_parts * l1 * n;
            let guards = inputs
                .iter()
                .map(|&o| pin_as(real.store, id(o), || ct_role(plan, o)))
                .collect::<Result<Vec<_>>>()?;
            let t = Instant::now();
            let xs: Vec<&[u64]> = guards.iter().map(|g| g.as_u64s()).collect();
            if let Some(bad) = xs.iter().find(|x| x.len() != words) {
                return Err(CoreError::BufferLength { expected: words, found: bad.len() }.into());
            }
            if !real.sums.contains_key(block) {
                let bytes = words as u64 * 8;
                let fresh = (0..b.outputs.len())
                    .map(|_| real.store.scratch_zeroed(bytes))
                    .collect::<hetier_tiering::Result<Vec<_>>>()?;
                real.sums.insert(*block, fresh);
            }
            let sums = real.sums.get_mut(block).ok_or(CoreError::MissingObject {
                id: b.outputs.first().copied().unwrap_or(0),
                reason: "linear block sums",
            })?;
            // The integer weight of every term, per limb (a constant product is one integer).
            let wl = (0..l1)
                .map(|i| {
                    let p = real.ctx.prime(i);
                    weights
                        .iter()
                        .map(|&w| {
                            let v = (w * b.pt_scale).round();
                            if v.is_finite() && v.abs() < 9.0e18 {
                                Ok(p.reduce_i64(v as i64))
                            } else {
                                Err(CoreError::EncodingOverflow {
                                    value: w,
                                    scale_log2: b.pt_scale.log2(),
                                })
                            }
                        })
                        .collect::<CoreResult<Vec<u64>>>()
                })
                .collect::<CoreResult<Vec<_>>>()?;
            let mut per: Vec<Vec<&mut [u64]>> = (0..b.in_parts * l1).map(|_| Vec::new()).collect();
            for s in sums.iter_mut() {
                for (t, ch) in s.as_u64s_mut().chunks_mut(n).enumerate() {
                    per[t].push(ch);
                }
            }
            let ctx = &real.ctx;
            per.into_par_iter().enumerate().try_for_each(|(t, mut acc)| {
                let i = t % l1;
                let x: Vec<&[u64]> = xs.iter().map(|x| &x[t * n..(t + 1) * n]).collect();
                lin_comb_acc(&ctx.prime(i).modulus, &x, &wl[i], &mut acc)
            })?;
            Ok(t.elapsed().as_nanos() as u64)
        }
        BatchStep::Finish { block } => {
            let b = &plan.blocks()[*block];
            let key_guard = if b.in_parts == 3 {
                Some(pin_as(real.store, relin_id, ObjectRole::relin_key)?)
            } else {
                None
            };
            let t = Instant::now();
            let relin = relin_view(real, key_guard.as_ref())?;
            let sums = real.sums.remove(block).unwrap_or_default();
            if sums.len() != b.outputs.len() {
                return Err(CoreError::MissingObject {
                    id: b.outputs.first().copied().unwrap_or(0),
                    reason: "linear block finished without its sums",
                }
                .into());
            }
            let pid = real.ctx.params().id();
            let scale = b.in_scale * b.pt_scale;
            let mut ks = match relin {
                Some(_) => Some(ks_scratch(real, b.in_level)?),
                None => None,
            };
            for ((sum, &o), &bias) in sums.into_iter().zip(&b.outputs).zip(&b.bias) {
                let ct = Ciphertext::from_raw(sum, b.in_parts, b.in_level, scale, n, pid)?;
                // Relinearise before the rescale, which then divides the key-switching noise
                // by q_level too. Every intermediate is a scratch buffer of the budget and the
                // result is computed in its store block.
                let block = |real: &Real<'s>, level: usize| -> Result<BlockWriter<'s>> {
                    Ok(real.store.alloc_for_overwrite((2 * (level + 1) * n) as u64 * 8)?)
                };
                let out_level = |l: usize| -> CoreResult<usize> {
                    l.checked_sub(1).ok_or(CoreError::LevelExhausted { level: 0, needed: 1 })
                };
                let mut y = match (&relin, ks.as_mut()) {
                    (Some(rk), Some(ks)) => {
                        let r = ct_scratch(real, 2, b.in_level)?;
                        let r = real.eval.relinearize_into(&ct, rk, ks, r)?;
                        drop(ct);
                        let l1 = out_level(b.in_level)?;
                        let r1 = real.eval.rescale_into(&r, ct_scratch(real, 2, l1)?)?;
                        drop(r);
                        real.eval.rescale_into(&r1, block(real, out_level(l1)?)?)?
                    }
                    _ => real.eval.rescale_into(&ct, block(real, out_level(b.in_level)?)?)?,
                };
                if bias != 0.0 {
                    real.eval.add_const_assign(&mut y, Complex64::new(bias, 0.0))?;
                }
                put_block(real, o, y.into_data())?;
            }
            Ok(t.elapsed().as_nanos() as u64)
        }
        BatchStep::Square { input, output } => {
            let obj = plan.objects()[*input as usize];
            let g = pin_as(real.store, id(*input), || ct_role(plan, *input))?;
            let t = Instant::now();
            let p = real.ctx.params();
            let x = Ciphertext::from_raw(g.as_u64s(), obj.parts, obj.level, obj.scale, n, p.id())?;
            // The degree-2 square is computed in its store block.
            let w = real.store.alloc_for_overwrite((3 * (obj.level + 1) * n) as u64 * 8)?;
            let y = real.eval.mul_into(&x, &x, w)?;
            drop(g);
            let ns = t.elapsed().as_nanos() as u64;
            put_block(real, *output, y.into_data())?;
            Ok(ns)
        }
        BatchStep::Map { template, inputs, output } => {
            let tpl = &plan.templates()[*template];
            let guards = inputs
                .iter()
                .map(|&o| pin_as(real.store, id(o), || ct_role(plan, o)))
                .collect::<Result<Vec<_>>>()?;
            let key_guard = if tpl.relin {
                Some(pin_as(real.store, relin_id, ObjectRole::relin_key)?)
            } else {
                None
            };
            let t = Instant::now();
            let relin = relin_view(real, key_guard.as_ref())?;
            let prog = &tpl.program;
            let ctx = Arc::clone(&real.ctx);
            let p = ctx.params();
            // Every value of the template is a scratch buffer of the store's budget.
            let mut vals: Vec<Option<Ciphertext<ScratchBuffer<'s>>>> =
                (0..prog.objects().len()).map(|_| None).collect();
            let inputs_of: Vec<ObjId> = prog.inputs().iter().map(|(_, o)| *o).collect();
            let args = Args { guards: &guards, inputs_of: &inputs_of, prog, n: p.n(), pid: p.id() };
            let rr: &Real<'s> = real;
            let eval = &rr.eval;
            let copy = |x: &Ciphertext<&[u64]>| -> Result<Ciphertext<ScratchBuffer<'s>>> {
                Ok(eval.copy_into(x, ct_scratch(rr, x.degree() + 1, x.level())?)?)
            };
            for (i, rec) in prog.ops().iter().enumerate() {
                let (dst, c) = match &rec.op {
                    Op::MulConst { dst, src, value, scale } => {
                        let mut c = copy(&args.get(&vals, *src)?)?;
                        eval.mul_const_assign(&mut c, *value, *scale)?;
                        (*dst, c)
                    }
                    Op::MulInt { dst, src, k } => {
                        let mut c = copy(&args.get(&vals, *src)?)?;
                        eval.mul_integer_assign(&mut c, *k)?;
                        (*dst, c)
                    }
                    Op::AddConst { dst, src, value } => {
                        let mut c = copy(&args.get(&vals, *src)?)?;
                        eval.add_const_assign(&mut c, Complex64::new(*value, 0.0))?;
                        (*dst, c)
                    }
                    Op::Add { dst, a, b } => {
                        let mut c = copy(&args.get(&vals, *a)?)?;
                        eval.add_assign(&mut c, &args.get(&vals, *b)?)?;
                        (*dst, c)
                    }
                    Op::Sub { dst, a, b } => {
                        let mut c = copy(&args.get(&vals, *a)?)?;
                        eval.sub_assign(&mut c, &args.get(&vals, *b)?)?;
                        (*dst, c)
                    }
                    Op::MulRelin { dst, a, b, .. } => {
                        let rk = relin
                            .as_ref()
                            .ok_or(CoreError::MissingGaloisKey { galois_element: 0, step: None })?;
                        let (x, y) = (args.get(&vals, *a)?, args.get(&vals, *b)?);
                        let l = x.level();
                        let mut ks = ks_scratch(rr, l)?;
                        let (tensor, out) = (ct_scratch(rr, 3, l)?, ct_scratch(rr, 2, l)?);
                        (*dst, eval.mul_relin_into(&x, &y, rk, &mut ks, tensor, out)?)
                    }
                    Op::Rescale { dst, src } => {
                        let x = args.get(&vals, *src)?;
                        let out = ct_scratch(rr, 2, x.level().saturating_sub(1))?;
                        (*dst, eval.rescale_into(&x, out)?)
                    }
                    Op::Relabel { dst, src, scale } => {
                        let mut c = copy(&args.get(&vals, *src)?)?;
                        c.set_scale(*scale);
                        (*dst, c)
                    }
                    Op::LevelDrop { dst, src, level } => {
                        let x = args.get(&vals, *src)?;
                        (*dst, eval.drop_to_level_into(&x, *level, ct_scratch(rr, 2, *level)?)?)
                    }
                    other => {
                        return Err(CoreError::InvalidParameter {
                            name: "batch template",
                            reason: format!("op {} has no batch-major form", other.name()),
                        }
                        .into())
                    }
                };
                vals[dst.index()] = Some(c);
                // Values no later op reads go back to the budget at once.
                for d in prog.frees_after(i) {
                    vals[d.index()] = None;
                }
            }
            let (_, y) = prog
                .outputs()
                .first()
                .ok_or(CoreError::MissingObject { id: *output, reason: "template output" })?;
            let y = vals[y.index()]
                .take()
                .ok_or(CoreError::MissingObject { id: *output, reason: "template output" })?;
            drop(vals);
            drop(guards);
            drop(relin);
            drop(key_guard);
            let ns = t.elapsed().as_nanos() as u64;
            put_words(real, *output, y.as_words())?;
            Ok(ns)
        }
    }
}

/// The role of batch object `o` (a ciphertext: an input element or an intermediate).
fn ct_role(plan: &BatchPlan, o: u32) -> ObjectRole {
    ObjectRole::ciphertext(match plan.inputs().iter().position(|&i| i == o) {
        Some(f) => format!("the input ciphertext of element {f}"),
        None => format!("intermediate ciphertext {o} of the batch run"),
    })
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
