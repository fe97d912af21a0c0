//! Plan mode for full-size networks from their layer tables ([`LayerTable`]): a symbolic walk
//! that emits the access trace (tiering trace format, the same events as [`super::Executor`]
//! in plan mode) of one encrypted inference at the given parameters — sizes from the
//! parameters, op times from [`OpCosts`] — without building weights or doing cryptography.
//!
//! **Packing** (one image, every tensor channel-blocked): a `H×W×C` tensor puts each channel in
//! a block of `B = next_pow2(H·W)` slots and `cb = min(slots / B, next_pow2(C))` channels per
//! ciphertext, so it takes `⌈C / cb⌉` ciphertexts (a channel larger than all slots is split into
//! `B / slots` row tiles, one ciphertext each, halo exchange not modelled).
//! * Convolution `k×k`, `C_in → C_out` (the diagonal method over kernel offsets and channel
//!   shifts): per input ciphertext one hoisted decomposition and `k² − 1` offset rotations; per
//!   (input, output) ciphertext pair and channel shift δ < cb, `k²` plaintext products summed
//!   and one giant rotation by δ·B; then one rescale per output ciphertext. Weights: `k²·cb`
//!   encoded plaintexts per pair. Keys: the offset steps and the channel-shift steps.
//! * Depthwise convolution: per ciphertext the hoisted offset rotations and `k²` products.
//! * Strided layers leave the output in the new geometry (the repacking rotations of a real
//!   strided layout are not modelled: an under-estimate).
//! * Pooling: global average = `log2 B` rotate-and-add steps and one constant product; the
//!   ResNet-50 stem max pool is modelled as a 3×3 average pool (no comparison polynomial: an
//!   under-estimate). FC: BSGS diagonal method over `next_pow2(max(in, out))` diagonals.
//! * Activation (ReLU / ReLU6 alike): the Chebyshev interpolant of ReLU on [−1, 1] of degree 15
//!   (depth ⌈log2 16⌉ = 4), compiled by `nn`'s Paterson–Stockmeyer evaluator once and replayed on
//!   every ciphertext; the preceding layer is assumed to scale its output into [−1, 1].
//! * **Bootstrapping (modelled)**: before a layer that needs more levels than a ciphertext has,
//!   it is refreshed by ModRaise, CoeffToSlot (3 BSGS stages of radix 32: 63 diagonals each,
//!   8 baby + 8 giant rotation steps, one level each), a conjugation to split real and
//!   imaginary parts, EvalMod on both (a degree-31 Chebyshev polynomial + 3 double-angle
//!   squarings: 8 levels) and SlotToCoeff (3 stages as CoeffToSlot), landing at level
//!   `L − 14`. The rotation keys, levels and diagonal plaintexts are those of the stages; the
//!   arithmetic is not implemented — these numbers are a model until bootstrapping exists.

use std::collections::{BTreeMap, HashMap};

use hetier_tiering::{ObjectClass, ObjectId, Trace, TraceDurability, TraceEvent, TraceHeader};
use serde::Serialize;

use super::OpCosts;
use crate::ckks::Params;
use crate::error::{Error, Result};
use crate::model::tables::{LayerTable, Row, RowKind};
use crate::nn::layers::PolyActivation;
use crate::nn::program::SizeModel;
use crate::nn::{AccessMode, Layout, ObjKind, Op, Program, ProgramBuilder};

/// Levels one bootstrap consumes after ModRaise (CoeffToSlot 3, EvalMod 8, SlotToCoeff 3).
pub const BOOTSTRAP_LEVELS: usize = 14;
/// Degree of the ReLU approximation.
pub const RELU_DEGREE: usize = 15;

#[derive(Debug, Clone, Copy)]
struct Ct {
    id: ObjectId,
    level: usize,
}

/// A tensor as ciphertexts.
#[derive(Debug, Clone)]
struct Value {
    cts: Vec<Ct>,
    block: usize,
    cb: usize,
}

/// A recorded op template (from an nn program compiled once), replayed on many ciphertexts.
#[derive(Debug, Clone)]
struct Template {
    program: Program,
    input: usize,
    in_level: usize,
}

/// Summary of a full-size plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanSummary {
    /// Network name.
    pub model: String,
    /// log2 N.
    pub log_n: u32,
    /// Top level L.
    pub max_level: usize,
    /// Distinct rotation keys (plus the relinearisation and conjugation keys, counted apart).
    pub rotation_keys: usize,
    /// Bytes of all evaluation keys.
    pub key_bytes: u64,
    /// Bytes of all encoded weight plaintexts (incl. the modelled bootstrapping diagonals).
    pub weight_bytes: u64,
    /// Bytes of all ciphertexts ever written.
    pub ciphertext_bytes_written: u64,
    /// Largest total size of live ciphertexts.
    pub peak_live_ciphertext_bytes: u64,
    /// Largest total size of live objects (keys + weights + ciphertexts).
    pub peak_live_bytes: u64,
    /// Key switches (rotations, conjugations, relinearisations, hoisted rotations).
    pub key_switches: u64,
    /// Modelled bootstraps (one per ciphertext refresh).
    pub bootstraps: u64,
    /// Trace ops.
    pub ops: u64,
    /// Sum of the estimated op times (ns).
    pub compute_ns: u64,
}

/// Emits the trace of one inference of a layer table.
pub struct FullPlanner<'c> {
    params: Params,
    sizes: SizeModel,
    costs: &'c OpCosts,
    next_id: u64,
    setup: Vec<TraceEvent>,
    timed: Vec<TraceEvent>,
    keys: BTreeMap<i64, ObjectId>,
    special_keys: HashMap<&'static str, ObjectId>,
    weights: HashMap<(String, usize), ObjectId>,
    refs: HashMap<ObjectId, usize>,
    live_ct: u64,
    summary: PlanSummary,
    relu: Template,
    evalmod: Template,
}

fn template(params: &Params, poly: PolyActivation, depth: usize) -> Result<Template> {
    let mut b = ProgramBuilder::new(params);
    let level = depth.max(1);
    let x = b.input("x", level, params.scale())?;
    let (y, _) = poly.compile(&mut b, x, &Layout::vector(1))?;
    b.output("y", y)?;
    let program = b.finish();
    let input = program.inputs()[0].1.index();
    Ok(Template { program, input, in_level: level })
}

impl<'c> FullPlanner<'c> {
    /// A planner under `params` with op times from `costs`.
    pub fn new(params: &Params, costs: &'c OpCosts) -> Result<Self> {
        let relu = template(params, PolyActivation::relu("relu", -1.0, 1.0, 4)?, 4)?;
        let evalmod = template(params, PolyActivation::relu("evalmod", -1.0, 1.0, 5)?, 5)?;
        Ok(Self {
            params: params.clone(),
            sizes: SizeModel::new(params),
            costs,
            next_id: 1,
            setup: Vec::new(),
            timed: Vec::new(),
            keys: BTreeMap::new(),
            special_keys: HashMap::new(),
            weights: HashMap::new(),
            refs: HashMap::new(),
            live_ct: 0,
            summary: PlanSummary {
                model: String::new(),
                log_n: params.log_n(),
                max_level: params.max_level(),
                rotation_keys: 0,
                key_bytes: 0,
                weight_bytes: 0,
                ciphertext_bytes_written: 0,
                peak_live_ciphertext_bytes: 0,
                peak_live_bytes: 0,
                key_switches: 0,
                bootstraps: 0,
                ops: 0,
                compute_ns: 0,
            },
            relu,
            evalmod,
        })
    }

    fn fresh_id(&mut self) -> ObjectId {
        self.next_id += 1;
        ObjectId(self.next_id)
    }

    fn slots(&self) -> usize {
        self.params.slots()
    }

    fn rot_key(&mut self, step: i64) -> Option<ObjectId> {
        let step = step.rem_euclid(self.slots() as i64);
        if step == 0 {
            return None;
        }
        if let Some(&k) = self.keys.get(&step) {
            return Some(k);
        }
        let id = self.fresh_id();
        let len = self.sizes.key();
        self.setup.push(TraceEvent::Put {
            id,
            kind: ObjectClass::EvalKey,
            durability: TraceDurability::Durable,
            len,
        });
        self.summary.key_bytes += len;
        self.keys.insert(step, id);
        Some(id)
    }

    fn special_key(&mut self, name: &'static str) -> ObjectId {
        if let Some(&k) = self.special_keys.get(name) {
            return k;
        }
        let id = self.fresh_id();
        let len = self.sizes.key();
        self.setup.push(TraceEvent::Put {
            id,
            kind: ObjectClass::EvalKey,
            durability: TraceDurability::Durable,
            len,
        });
        self.summary.key_bytes += len;
        self.special_keys.insert(name, id);
        id
    }

    fn weight(&mut self, tag: String, level: usize) -> ObjectId {
        if let Some(&w) = self.weights.get(&(tag.clone(), level)) {
            return w;
        }
        let id = self.fresh_id();
        let len = self.sizes.plaintext(level);
        self.setup.push(TraceEvent::Put {
            id,
            kind: ObjectClass::Plaintext,
            durability: TraceDurability::Durable,
            len,
        });
        self.summary.weight_bytes += len;
        self.weights.insert((tag, level), id);
        id
    }

    /// Records an op; returns the written ciphertext (if `out_level` is given).
    fn op(
        &mut self,
        name: &str,
        pins: Vec<ObjectId>,
        level: usize,
        out_level: Option<usize>,
    ) -> Option<Ct> {
        let ns = self.costs.estimate(name, level);
        if matches!(name, "rotate" | "conjugate" | "mul_relin" | "rotate_hoisted") {
            self.summary.key_switches += 1;
        }
        self.summary.ops += 1;
        self.summary.compute_ns += ns;
        self.timed.push(TraceEvent::Op { name: name.to_owned(), pins, compute_ns: ns });
        out_level.map(|l| self.new_ct(l))
    }

    fn new_ct(&mut self, level: usize) -> Ct {
        let id = self.fresh_id();
        let len = self.sizes.ciphertext(level);
        self.timed.push(TraceEvent::Put {
            id,
            kind: ObjectClass::Ciphertext,
            durability: TraceDurability::Scratch,
            len,
        });
        self.summary.ciphertext_bytes_written += len;
        self.live_ct += len;
        self.summary.peak_live_ciphertext_bytes =
            self.summary.peak_live_ciphertext_bytes.max(self.live_ct);
        self.refs.insert(id, 1);
        Ct { id, level }
    }

    fn retain(&mut self, c: Ct) {
        *self.refs.entry(c.id).or_insert(0) += 1;
    }

    fn release(&mut self, c: Ct) {
        let n = self.refs.entry(c.id).or_insert(1);
        *n -= 1;
        if *n == 0 {
            self.refs.remove(&c.id);
            self.live_ct -= self.sizes.ciphertext(c.level);
            self.timed.push(TraceEvent::Remove { id: c.id });
        }
    }

    fn add(&mut self, a: Ct, b: Ct) -> Ct {
        let (a, b) = self.match_levels(a, b);
        let level = a.level;
        let out = self.op("add", vec![a.id, b.id], level, Some(level)).unwrap_or(a);
        self.release(a);
        self.release(b);
        out
    }

    fn match_levels(&mut self, a: Ct, b: Ct) -> (Ct, Ct) {
        let drop = |p: &mut Self, c: Ct, to: usize| {
            let d = p.op("level_drop", vec![c.id], c.level, Some(to)).unwrap_or(c);
            p.release(c);
            d
        };
        match a.level.cmp(&b.level) {
            std::cmp::Ordering::Greater => (drop(self, a, b.level), b),
            std::cmp::Ordering::Less => {
                let b2 = drop(self, b, a.level);
                (a, b2)
            }
            std::cmp::Ordering::Equal => (a, b),
        }
    }

    fn rescale(&mut self, c: Ct) -> Ct {
        let out =
            self.op("rescale", vec![c.id], c.level, Some(c.level.saturating_sub(1))).unwrap_or(c);
        self.release(c);
        out
    }

    /// Hoisted rotations of `c` by `steps` (0 gives `c` itself, retained).
    fn rotations(&mut self, c: Ct, steps: &[i64]) -> Vec<Ct> {
        let keyed: Vec<(i64, Option<ObjectId>)> =
            steps.iter().map(|&s| (s, self.rot_key(s))).collect();
        if keyed.iter().any(|(_, k)| k.is_some()) {
            self.op("hoist", vec![c.id], c.level, None);
        }
        keyed
            .into_iter()
            .map(|(_, k)| match k {
                None => {
                    self.retain(c);
                    c
                }
                Some(k) => self.op("rotate_hoisted", vec![k], c.level, Some(c.level)).unwrap_or(c),
            })
            .collect()
    }

    fn rotate(&mut self, c: Ct, step: i64) -> Ct {
        match self.rot_key(step) {
            None => c,
            Some(k) => {
                let out = self.op("rotate", vec![c.id, k], c.level, Some(c.level)).unwrap_or(c);
                self.release(c);
                out
            }
        }
    }

    fn mul_plain(&mut self, c: Ct, w: ObjectId) -> Ct {
        self.op("mul_plain", vec![c.id, w], c.level, Some(c.level)).unwrap_or(c)
    }

    /// Sums products `Σ_t x_t ⊙ w_t` (all at one level).
    fn dot(&mut self, xs: &[Ct], tag: &str) -> Ct {
        let mut acc: Option<Ct> = None;
        for (t, &x) in xs.iter().enumerate() {
            let w = self.weight(format!("{tag}/{t}"), x.level);
            let p = self.mul_plain(x, w);
            acc = Some(match acc {
                None => p,
                Some(a) => self.add(a, p),
            });
        }
        acc.unwrap_or_else(|| self.new_ct(0))
    }

    /// Replays a template program on `x` (not released); returns its output.
    fn replay(&mut self, t: &Template, x: Ct) -> Result<Ct> {
        let shift = x.level as isize - t.in_level as isize;
        let program = t.program.clone();
        let mut map: HashMap<usize, Ct> = HashMap::new();
        map.insert(t.input, x);
        self.retain(x);
        for (i, rec) in program.ops().iter().enumerate() {
            let level = (rec.level as isize + shift).max(0) as usize;
            let acc = rec.op.accesses();
            let mut pins = Vec::new();
            for (o, m) in &acc {
                if *m != AccessMode::Read {
                    continue;
                }
                let obj = &program.objects()[o.index()];
                pins.push(match obj.kind {
                    ObjKind::Ciphertext => map
                        .get(&o.index())
                        .map(|c| c.id)
                        .ok_or(Error::MissingObject { id: o.0, reason: "template" })?,
                    ObjKind::Plaintext => self.weight(
                        format!("template/{}", o.0),
                        (obj.level as isize + shift).max(0) as usize,
                    ),
                    ObjKind::RelinKey => self.special_key("relin"),
                    ObjKind::GaloisKey { step, .. } => match step.and_then(|s| self.rot_key(s)) {
                        Some(k) => k,
                        None => self.special_key("conjugate"),
                    },
                });
            }
            if let Op::HoistedRotate { .. } = rec.op {
                return Err(Error::InvalidParameter {
                    name: "template",
                    reason: "hoisted rotation in an activation".into(),
                });
            }
            let writes: Vec<_> =
                acc.iter().filter(|(_, m)| *m == AccessMode::Write).map(|(o, _)| *o).collect();
            let out_level = writes
                .first()
                .map(|w| (program.objects()[w.index()].level as isize + shift).max(0) as usize);
            if let Some(c) = self.op(rec.op.name(), pins, level, out_level) {
                if let Some(w) = writes.first() {
                    map.insert(w.index(), c);
                }
            }
            for dead in program.frees_after(i) {
                if let Some(c) = map.remove(&dead.index()) {
                    self.release(c);
                }
            }
        }
        let (_, out) = program.outputs()[0];
        map.remove(&out.index())
            .ok_or(Error::MissingObject { id: out.0, reason: "template output" })
    }

    /// One BSGS linear-transform stage with `d` diagonals on `c` (released), one level.
    fn bsgs(&mut self, c: Ct, d: usize, stride: i64, tag: &str) -> Ct {
        let n1 = 1usize << (d.next_power_of_two().trailing_zeros().div_ceil(2));
        let n2 = d.div_ceil(n1);
        let baby: Vec<i64> = (0..n1 as i64).map(|j| j * stride).collect();
        let rots = self.rotations(c, &baby);
        self.release(c);
        let mut out: Option<Ct> = None;
        for g in 0..n2 {
            let s = self.dot(&rots, &format!("{tag}/g{g}"));
            let s = self.rotate(s, (g * n1) as i64 * stride);
            out = Some(match out {
                None => s,
                Some(o) => self.add(o, s),
            });
        }
        for r in rots {
            self.release(r);
        }
        let o = out.unwrap_or(c);
        self.rescale(o)
    }

    /// Modelled bootstrapping of `c` (released): see the module docs.
    fn bootstrap(&mut self, c: Ct) -> Result<Ct> {
        self.summary.bootstraps += 1;
        let top = self.params.max_level();
        let raised = self.op("mod_raise", vec![c.id], c.level, Some(top)).unwrap_or(c);
        self.release(c);
        let log_slots = self.slots().trailing_zeros() as i64;
        let mut x = raised;
        for stage in 0..3 {
            x = self.bsgs(x, 63, 1 << (stage * log_slots / 3), &format!("cts{stage}"));
        }
        let conj = self.special_key("conjugate");
        let xc = self.op("conjugate", vec![x.id, conj], x.level, Some(x.level)).unwrap_or(x);
        let mut parts = Vec::new();
        for p in [x, xc] {
            let mut v = self.replay(&self.evalmod.clone(), p)?;
            self.release(p);
            for _ in 0..3 {
                let rk = self.special_key("relin");
                let sq =
                    self.op("mul_relin", vec![v.id, v.id, rk], v.level, Some(v.level)).unwrap_or(v);
                self.release(v);
                v = self.rescale(sq);
            }
            parts.push(v);
        }
        let mut y = self.add(parts[0], parts[1]);
        for stage in 0..3 {
            y = self.bsgs(y, 63, 1 << (stage * log_slots / 3), &format!("stc{stage}"));
        }
        Ok(y)
    }

    /// Makes sure every ciphertext of `v` has at least `need` levels, bootstrapping if not.
    fn ensure_levels(&mut self, v: &mut Value, need: usize) -> Result<()> {
        for c in v.cts.iter_mut() {
            if c.level < need {
                *c = self.bootstrap(*c)?;
            }
        }
        Ok(())
    }

    fn pack(&self, h: u64, w: u64, c: u64) -> (usize, usize, usize) {
        let slots = self.slots();
        let hw = (h * w) as usize;
        let block = hw.max(1).next_power_of_two();
        if block > slots {
            let tiles = block / slots;
            (slots, 1, c as usize * tiles)
        } else {
            let cb = (slots / block).min((c as usize).max(1).next_power_of_two());
            (block, cb, (c as usize).div_ceil(cb))
        }
    }

    fn layer(&mut self, r: &Row, inputs: &[Value]) -> Result<Value> {
        let x = &inputs[0];
        let [oh, ow, oc] = r.output;
        let (block, cb, n_out) = self.pack(oh, ow, oc);
        let act = r.activation.is_some();
        let need = match r.kind {
            RowKind::Add => 0,
            _ => 1,
        } + if act { self.relu.program.depth().max(4) } else { 0 };
        let mut xin = x.clone();
        self.ensure_levels(&mut xin, need)?;
        let mut out_cts = Vec::with_capacity(n_out);
        match r.kind {
            RowKind::Conv | RowKind::Dwconv => {
                let [kh, kw] = r.kernel.unwrap_or([1, 1]);
                let pad = r.padding as i64;
                let iw = r.input[1] as i64;
                let offsets: Vec<i64> = (0..kh as i64)
                    .flat_map(|dy| (0..kw as i64).map(move |dx| (dy - pad) * iw + (dx - pad)))
                    .collect();
                let rotated: Vec<Vec<Ct>> =
                    xin.cts.clone().into_iter().map(|c| self.rotations(c, &offsets)).collect();
                if r.kind == RowKind::Dwconv {
                    for (i, rs) in rotated.iter().enumerate().take(n_out) {
                        let s = self.dot(rs, &format!("{}/{i}", r.name));
                        out_cts.push(self.rescale(s));
                    }
                } else {
                    for j in 0..n_out {
                        let mut acc: Option<Ct> = None;
                        for (i, rs) in rotated.iter().enumerate() {
                            for delta in 0..xin.cb.max(1) {
                                let s = self.dot(rs, &format!("{}/{j}/{i}/{delta}", r.name));
                                let s = self.rotate(s, (delta * xin.block) as i64);
                                acc = Some(match acc {
                                    None => s,
                                    Some(a) => self.add(a, s),
                                });
                            }
                        }
                        let a = acc.ok_or(Error::InvalidParameter {
                            name: "layer",
                            reason: format!("{} has no input", r.name),
                        })?;
                        out_cts.push(self.rescale(a));
                    }
                }
                for rs in rotated {
                    for c in rs {
                        self.release(c);
                    }
                }
            }
            RowKind::Pool => {
                let global = r.output[0] == 1 && r.output[1] == 1;
                for &c in &xin.cts {
                    let s = if global {
                        let mut acc = c;
                        self.retain(c);
                        let mut step = 1usize;
                        while step < xin.block {
                            self.retain(acc);
                            let rot = self.rotate(acc, step as i64);
                            acc = self.add(acc, rot);
                            step *= 2;
                        }
                        let m = self
                            .op("mul_const", vec![acc.id], acc.level, Some(acc.level))
                            .unwrap_or(acc);
                        self.release(acc);
                        m
                    } else {
                        let [kh, kw] = r.kernel.unwrap_or([1, 1]);
                        let iw = r.input[1] as i64;
                        let offs: Vec<i64> = (0..kh as i64)
                            .flat_map(|dy| (0..kw as i64).map(move |dx| dy * iw + dx))
                            .collect();
                        let rs = self.rotations(c, &offs);
                        let mut acc = rs[0];
                        for &q in &rs[1..] {
                            acc = self.add(acc, q);
                        }
                        let m = self
                            .op("mul_const", vec![acc.id], acc.level, Some(acc.level))
                            .unwrap_or(acc);
                        self.release(acc);
                        m
                    };
                    out_cts.push(self.rescale(s));
                }
            }
            RowKind::Fc => {
                let d = (r.input.iter().product::<u64>().max(oc) as usize).next_power_of_two();
                for (i, &c) in xin.cts.iter().enumerate() {
                    self.retain(c);
                    let y = self.bsgs(c, d.min(self.slots()), 1, &format!("{}/{i}", r.name));
                    out_cts.push(y);
                }
                // Partial products of several input ciphertexts are summed into one.
                while out_cts.len() > n_out.max(1) {
                    let b = out_cts.pop().ok_or(Error::MissingObject { id: 0, reason: "fc" })?;
                    let a = out_cts.pop().ok_or(Error::MissingObject { id: 0, reason: "fc" })?;
                    out_cts.push(self.add(a, b));
                }
            }
            RowKind::Add => {
                let y = inputs.get(1).ok_or(Error::InvalidParameter {
                    name: "add",
                    reason: format!("{} has one input", r.name),
                })?;
                for (i, &a) in xin.cts.iter().enumerate() {
                    let b = y.cts.get(i).copied().unwrap_or(a);
                    self.retain(a);
                    self.retain(b);
                    out_cts.push(self.add(a, b));
                }
            }
        }
        // Output geometry may need fewer or more ciphertexts than computed: pad / trim to the
        // packing of the output tensor.
        while out_cts.len() > n_out.max(1) {
            let c = out_cts.pop().ok_or(Error::MissingObject { id: 0, reason: "trim" })?;
            self.release(c);
        }
        if act {
            for c in out_cts.iter_mut() {
                let t = self.relu.clone();
                let y = self.replay(&t, *c)?;
                self.release(*c);
                *c = y;
            }
        }
        for c in xin.cts {
            self.release(c);
        }
        Ok(Value { cts: out_cts, block, cb })
    }

    /// Plans one inference of `table` and returns its trace and summary.
    pub fn plan(mut self, table: &LayerTable) -> Result<(Trace, PlanSummary)> {
        self.summary.model = table.model.clone();
        let first =
            table.layers.first().ok_or(Error::ModelFormat { reason: "empty table".into() })?;
        let [h, w, c] = first.input;
        let (block, cb, n) = self.pack(h, w, c);
        let top = self.params.max_level();
        let mut values: HashMap<String, (Value, usize)> = HashMap::new();
        let mut input = Value { cts: Vec::new(), block, cb };
        let mut setup_inputs = Vec::new();
        for _ in 0..n {
            let id = self.fresh_id();
            let len = self.sizes.ciphertext(top);
            setup_inputs.push(TraceEvent::Put {
                id,
                kind: ObjectClass::Ciphertext,
                durability: TraceDurability::Scratch,
                len,
            });
            self.refs.insert(id, 1);
            self.live_ct += len;
            input.cts.push(Ct { id, level: top });
        }
        // Remaining uses of each value (so it is released after its last reader).
        let mut uses: HashMap<&str, usize> = HashMap::new();
        for r in &table.layers {
            for i in &r.inputs {
                *uses.entry(i.as_str()).or_insert(0) += 1;
            }
        }
        values.insert("input".into(), (input, uses.get("input").copied().unwrap_or(0)));
        let mut last = String::from("input");
        for r in &table.layers {
            let ins: Vec<Value> = r
                .inputs
                .iter()
                .map(|i| {
                    values.get(i).map(|v| v.0.clone()).ok_or(Error::ModelLayer {
                        layer: r.name.clone(),
                        reason: format!("input {i} not computed"),
                    })
                })
                .collect::<Result<_>>()?;
            for v in &ins {
                for &c in &v.cts {
                    self.retain(c);
                }
            }
            let out = self.layer(r, &ins)?;
            // Inputs after layer(): it released x (its own reference); release the others.
            for v in ins.iter().skip(1) {
                for &c in &v.cts {
                    self.release(c);
                }
            }
            for i in &r.inputs {
                if let Some((v, n)) = values.get_mut(i) {
                    *n -= 1;
                    if *n == 0 {
                        let v = v.clone();
                        values.remove(i);
                        for c in v.cts {
                            self.release(c);
                        }
                    }
                }
            }
            values.insert(
                r.name.clone(),
                (out, uses.get(r.name.as_str()).copied().unwrap_or(0).max(1)),
            );
            last = r.name.clone();
        }
        if let Some((v, _)) = values.remove(&last) {
            for c in v.cts {
                self.release(c);
            }
        }
        self.summary.rotation_keys = self.keys.len();
        let mut events = std::mem::take(&mut self.setup);
        events.extend(setup_inputs);
        events.extend(std::mem::take(&mut self.timed));
        let trace = Trace {
            header: TraceHeader::new(format!(
                "hetier plan {}: log N = {}, L = {}, channel-blocked packing, ReLU Chebyshev degree {RELU_DEGREE}, bootstrapping modelled",
                table.model,
                self.params.log_n(),
                self.params.max_level()
            )),
            events,
        };
        self.summary.peak_live_bytes = trace.footprint();
        Ok((trace, self.summary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ckks::Preset;

    fn costs() -> OpCosts {
        let top_ns = [
            ("rotate", 4e8),
            ("rotate_hoisted", 3e8),
            ("hoist", 2e8),
            ("mul_relin", 4e8),
            ("conjugate", 4e8),
            ("rescale", 5e7),
            ("mul_plain", 1e7),
            ("add", 5e6),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        OpCosts { log_n: 16, q_len: 31, p_len: 11, top_ns }
    }

    #[test]
    #[ignore = "plans MobileNetV2 and ResNet-50 at full size (a few seconds each)"]
    fn large_tables_plan() {
        let params = Preset::N16.params().unwrap();
        let c = costs();
        for name in ["mobilenet_v2_1.0_224", "resnet50_v1.5"] {
            let table = LayerTable::load(
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join(format!("../models/tables/{name}.json")),
            )
            .unwrap();
            let (trace, s) = FullPlanner::new(&params, &c).unwrap().plan(&table).unwrap();
            trace.validate().unwrap();
            eprintln!("{s:#?} events {}", trace.events.len());
        }
    }

    #[test]
    fn resnet20_plan_is_a_valid_trace_with_bootstraps() {
        let table = LayerTable::load(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../models/tables/resnet20_cifar10.json"),
        )
        .unwrap();
        let params = Preset::N16.params().unwrap();
        let c = costs();
        let (trace, s) = FullPlanner::new(&params, &c).unwrap().plan(&table).unwrap();
        trace.validate().unwrap();
        eprintln!("{s:#?}");
        assert!(s.bootstraps > 0);
        assert!(s.rotation_keys > 10);
        assert_eq!(s.peak_live_bytes, trace.footprint());
        // Every ciphertext written is removed by the end (nothing leaks).
        let puts = trace
            .events
            .iter()
            .filter(|e| matches!(e, TraceEvent::Put { kind: ObjectClass::Ciphertext, .. }))
            .count();
        let removes =
            trace.events.iter().filter(|e| matches!(e, TraceEvent::Remove { .. })).count();
        assert_eq!(puts, removes);
        let key = SizeModel::new(&params).key();
        assert_eq!(s.key_bytes, key * (s.rotation_keys as u64 + 2));
    }
}
