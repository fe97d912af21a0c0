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
//! * **Weights** ([`WeightMode`]): either every encoded diagonal is a durable plaintext object
//!   (encode once, read on every inference), or each layer's raw weights are one durable blob of
//!   f64s and every diagonal is encoded just before its product into a transient plaintext that
//!   is removed right after — trading an encode per product for the memory of the encoded
//!   weights, as published ResNet runs do. Bootstrapping diagonals count as the slot values of
//!   their 63 diagonals (complex f64) per stage.

use std::collections::{BTreeMap, HashMap};

use hetier_tiering::{ObjectClass, ObjectId, Trace, TraceDurability, TraceEvent, TraceHeader};
use serde::Serialize;

use super::OpCosts;
use crate::ckks::Params;
use crate::error::{Error, Result};
use crate::model::tables::LayerTable;
use crate::nn::layers::PolyActivation;
use crate::nn::program::SizeModel;
use crate::nn::{Layout, Program, ProgramBuilder};

mod layers;

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

/// Where a full-size plan keeps its weights (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum WeightMode {
    /// Every encoded diagonal is a durable plaintext object.
    #[default]
    Stored,
    /// Raw weights per layer are a durable blob; diagonals are encoded per use.
    OnTheFly,
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
    /// How weights are kept.
    pub weight_mode: WeightMode,
    /// Bytes of all stored encoded weight plaintexts (incl. the modelled bootstrapping
    /// diagonals); zero when weights are encoded on the fly.
    pub weight_bytes: u64,
    /// Bytes of the raw weight blobs (on-the-fly mode).
    pub raw_weight_bytes: u64,
    /// Plaintexts encoded during the inference (on-the-fly mode).
    pub encodes: u64,
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
    weight_mode: WeightMode,
    /// Raw weight bytes of each layer seen so far, by layer name.
    raw_len: HashMap<String, u64>,
    /// The raw weight blob of each layer (on-the-fly mode).
    blobs: HashMap<String, ObjectId>,
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
            weight_mode: WeightMode::Stored,
            raw_len: HashMap::new(),
            blobs: HashMap::new(),
            refs: HashMap::new(),
            live_ct: 0,
            summary: PlanSummary {
                model: String::new(),
                log_n: params.log_n(),
                max_level: params.max_level(),
                rotation_keys: 0,
                key_bytes: 0,
                weight_mode: WeightMode::Stored,
                weight_bytes: 0,
                raw_weight_bytes: 0,
                encodes: 0,
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

    /// Keeps weights as `mode` says; encoding on the fly needs an `encode` time in the op costs.
    pub fn with_weight_mode(mut self, mode: WeightMode) -> Result<Self> {
        if mode == WeightMode::OnTheFly && !self.costs.top_ns.contains_key("encode") {
            return Err(Error::InvalidParameter {
                name: "op costs",
                reason: "no `encode` time to plan weights encoded on the fly (recalibrate)".into(),
            });
        }
        self.weight_mode = mode;
        self.summary.weight_mode = mode;
        Ok(self)
    }

    fn fresh_id(&mut self) -> ObjectId {
        self.next_id += 1;
        ObjectId(self.next_id)
    }

    fn slots(&self) -> usize {
        self.params.slots()
    }

    /// A fresh durable object written in setup (a key, a stored weight, a raw weight blob).
    fn durable_setup_object(&mut self, kind: ObjectClass, len: u64) -> ObjectId {
        let id = self.fresh_id();
        self.setup.push(TraceEvent::Put { id, kind, durability: TraceDurability::Durable, len });
        id
    }

    fn rot_key(&mut self, step: i64) -> Option<ObjectId> {
        let step = step.rem_euclid(self.slots() as i64);
        if step == 0 {
            return None;
        }
        if let Some(&k) = self.keys.get(&step) {
            return Some(k);
        }
        let len = self.sizes.key();
        let id = self.durable_setup_object(ObjectClass::EvalKey, len);
        self.summary.key_bytes += len;
        self.keys.insert(step, id);
        Some(id)
    }

    fn special_key(&mut self, name: &'static str) -> ObjectId {
        if let Some(&k) = self.special_keys.get(name) {
            return k;
        }
        let len = self.sizes.key();
        let id = self.durable_setup_object(ObjectClass::EvalKey, len);
        self.summary.key_bytes += len;
        self.special_keys.insert(name, id);
        id
    }

    fn weight(&mut self, tag: String, level: usize) -> ObjectId {
        if let Some(&w) = self.weights.get(&(tag.clone(), level)) {
            return w;
        }
        let len = self.sizes.plaintext(level);
        let id = self.durable_setup_object(ObjectClass::Plaintext, len);
        self.summary.weight_bytes += len;
        self.weights.insert((tag, level), id);
        id
    }

    /// The plaintext operand for diagonal `tag` at `level`: a stored object, or (on the fly)
    /// a transient plaintext encoded from its layer's raw weights, `true` if the caller must
    /// drop it after use.
    fn plain_operand(&mut self, tag: String, level: usize) -> (ObjectId, bool) {
        if self.weight_mode == WeightMode::Stored {
            return (self.weight(tag, level), false);
        }
        let layer = tag.split('/').next().unwrap_or_default().to_owned();
        let blob = self.raw_blob(layer);
        self.op("encode", vec![blob], level, None);
        self.summary.encodes += 1;
        let id = self.fresh_id();
        let len = self.sizes.plaintext(level);
        self.timed.push(TraceEvent::Put {
            id,
            kind: ObjectClass::Plaintext,
            durability: TraceDurability::Scratch,
            len,
        });
        (id, true)
    }

    /// The durable blob of `layer`'s raw weights (f64), put on first use.
    fn raw_blob(&mut self, layer: String) -> ObjectId {
        if let Some(&b) = self.blobs.get(&layer) {
            return b;
        }
        // Layers of the table report their weights; a bootstrapping stage holds the slot
        // values of its diagonals as complex f64.
        let len = self.raw_len.get(&layer).copied().unwrap_or(63 * self.slots() as u64 * 16);
        let id = self.durable_setup_object(ObjectClass::Blob, len);
        self.summary.raw_weight_bytes += len;
        self.blobs.insert(layer, id);
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
            let (w, transient) = self.plain_operand(format!("{tag}/{t}"), x.level);
            let p = self.mul_plain(x, w);
            if transient {
                self.timed.push(TraceEvent::Remove { id: w });
            }
            acc = Some(match acc {
                None => p,
                Some(a) => self.add(a, p),
            });
        }
        acc.unwrap_or_else(|| self.new_ct(0))
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
                "hetier plan {}: log N = {}, L = {}, channel-blocked packing, ReLU Chebyshev degree {RELU_DEGREE}, bootstrapping modelled, weights {:?}",
                table.model,
                self.params.log_n(),
                self.params.max_level(),
                self.weight_mode
            )),
            events,
        };
        self.summary.peak_live_bytes = trace.footprint();
        Ok((trace, self.summary))
    }
}

#[cfg(test)]
mod tests;
