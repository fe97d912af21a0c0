//! Lowering a validated [`Model`] to a batch-major [`BatchPlan`]: one ciphertext per tensor
//! element, slot b of every ciphertext = sample b.
//!
//! * **Linear layers** (dense, convolution of any padding / groups, average pooling) become
//!   constant linear combinations. Outputs with the same input set (all outputs of a dense
//!   layer; every channel of one convolution position) form a block whose weights are a K×J
//!   matrix; the block's inputs are consumed in chunks of at most [`MAX_PINS`] ciphertexts
//!   (one `lincomb` step each, accumulating into per-output sums held by the executor), then
//!   one `lincomb_finish` step rescales every sum once, adds the biases and puts the outputs.
//!   A block whose sums would exceed [`ACC_LIMIT`] bytes is split (its inputs are read again).
//!   Under a DRAM budget ([`BatchPlan::compile_within`]) a quarter of it bounds both the sums
//!   of a block and the ciphertexts one `lincomb` pins, and the blocks split from one group
//!   run one after the other, so the sums alive at once stay within that quarter.
//! * **Element-wise layers** (square, polynomial / Chebyshev activations, residual adds) are
//!   one small nn [`Program`] — a template with inputs `a` (and `b`) and output `y`, compiled
//!   once per layer by the nn layers themselves — applied to every element (one `map` step
//!   each, pinning the element(s) and the relinearisation key when the template uses it).
//!
//! Scales: a linear layer emits at the nominal scale, or at the scale a following Chebyshev
//! activation maps to its variable for free; its weights are encoded at q_ℓ·out/in so the single
//! rescale lands exactly there.

use std::collections::HashMap;

use crate::ckks::Params;
use crate::error::{Error, Result};
use crate::model::compile::{conv_rows, linear_out_scale, poly_activation};
use crate::model::{Activation, LayerKind, Model};
use crate::nn::layers::Residual;
use crate::nn::{ObjKind, Program, ProgramBuilder};

/// Most ciphertexts one `lincomb` step pins.
pub const MAX_PINS: usize = 32;
/// Largest total size of the per-output sums of one linear block (bytes).
pub const ACC_LIMIT: u64 = 128 << 20;

/// Parameters for a batch-major run of `depth` levels at ring degree 2^`log_n`, 128-bit secure
/// through the builder: scaling primes of s bits (the largest s ≤ 40 that fits), a first prime
/// of s + 6 bits (room for |outputs| up to 32), one key-switching digit per prime (dnum = L + 1,
/// so a single special prime of s + 7 bits suffices — the smallest P), scale 2^s.
pub fn batch_params(log_n: u32, depth: usize) -> Result<Params> {
    let bound = crate::ckks::max_log_qp_128(log_n).ok_or(Error::InvalidLogN {
        log_n,
        min: crate::ckks::MIN_LOG_N,
        max: crate::ckks::MAX_LOG_N,
    })?;
    // (s + 6) + depth·s + (s + 7) ≤ bound − 2 (prime sizes are approximate).
    let s = (bound.saturating_sub(15) as usize / (depth + 2)).min(40) as u32;
    if s < 20 {
        return Err(Error::InvalidParameter {
            name: "depth",
            reason: format!("{depth} levels leave {s}-bit primes at log N = {log_n}"),
        });
    }
    crate::ckks::ParamsBuilder::new(log_n)
        .q_bits(s + 6, &vec![s; depth])
        .special_bits(s + 7)
        .dnum(depth + 1)
        .log_scale(f64::from(s))
        .build()
}

/// A ciphertext of the plan (one tensor element for the whole batch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchObj {
    /// Level.
    pub level: usize,
    /// Exact scale.
    pub scale: f64,
    /// Polynomials: 2, or 3 for a square whose relinearisation is deferred to the linear layer
    /// it feeds.
    pub parts: usize,
    /// Size in bytes (parts polynomials over level + 1 limbs).
    pub bytes: u64,
}

/// Outputs of one linear layer sharing their inputs, accumulated together.
#[derive(Debug, Clone, PartialEq)]
pub struct LinBlock {
    /// Layer name.
    pub layer: String,
    /// Output objects.
    pub outputs: Vec<u32>,
    /// Bias of each output.
    pub bias: Vec<f64>,
    /// Level and scale of the inputs.
    pub in_level: usize,
    /// Scale of the inputs.
    pub in_scale: f64,
    /// Scale the weights are encoded at (q_level·out_scale/in_scale).
    pub pt_scale: f64,
    /// Polynomials of the inputs; 3 means the inputs are unrescaled squares: the sums are
    /// relinearised (once per output) at the finish step, which then pins the
    /// relinearisation key, and rescaled twice (the square's rescale and the layer's).
    pub in_parts: usize,
}

/// An element-wise layer: an nn program with inputs `a` (and `b`) and output `y`.
#[derive(Debug, Clone)]
pub struct Template {
    /// Layer name.
    pub layer: String,
    /// The per-element program.
    pub program: Program,
    /// Whether it needs the relinearisation key.
    pub relin: bool,
}

/// One step of the plan (one trace `op`).
#[derive(Debug, Clone, PartialEq)]
pub enum BatchStep {
    /// Adds Σ w·x over `inputs` to the sums of `block`; `weights` is K×J row-major.
    Accumulate {
        /// Index into [`BatchPlan::blocks`].
        block: usize,
        /// Input objects (pinned).
        inputs: Vec<u32>,
        /// Weights, output-major.
        weights: Vec<f64>,
    },
    /// Rescales the sums of `block`, adds the biases and puts the outputs.
    Finish {
        /// Index into [`BatchPlan::blocks`].
        block: usize,
    },
    /// x² without relinearisation or rescale: a 3-polynomial ciphertext for the linear layer it
    /// feeds, which relinearises and rescales its K outputs instead of this layer's every
    /// element. (Rescaling the third polynomial here would multiply its rounding error by s²
    /// at decryption.)
    Square {
        /// Input object (pinned).
        input: u32,
        /// Output object.
        output: u32,
    },
    /// Runs `template` on `inputs`, writing `output`.
    Map {
        /// Index into [`BatchPlan::templates`].
        template: usize,
        /// Input objects (pinned).
        inputs: Vec<u32>,
        /// Output object.
        output: u32,
    },
}

impl BatchStep {
    /// The step's name in traces.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Accumulate { .. } => "lincomb",
            Self::Finish { .. } => "lincomb_finish",
            Self::Square { .. } => "square",
            Self::Map { .. } => "map",
        }
    }
}

/// A model lowered to batch-major steps under one parameter set.
#[derive(Debug, Clone)]
pub struct BatchPlan {
    params: Params,
    objects: Vec<BatchObj>,
    inputs: Vec<u32>,
    outputs: Vec<u32>,
    blocks: Vec<LinBlock>,
    templates: Vec<Template>,
    steps: Vec<BatchStep>,
    frees: Vec<Vec<u32>>,
}

/// A tensor during lowering: its element objects.
type Elems = Vec<u32>;

struct Lowering<'p> {
    params: &'p Params,
    objects: Vec<BatchObj>,
    /// For each object, the index of the linear finish step its value comes from (through
    /// element-wise steps); 0 for inputs. Orders a block's inputs by when they appear.
    origin: Vec<usize>,
    blocks: Vec<LinBlock>,
    templates: Vec<Template>,
    steps: Vec<BatchStep>,
    /// Index of the model layer that emitted each step (the scheduler's priority).
    stage: Vec<usize>,
    layer: usize,
    /// Largest total size of one block's sums (bytes).
    acc_limit: u64,
    /// Largest total size of the ciphertexts one `lincomb` step pins (bytes).
    pin_limit: u64,
    /// For each block, the block split from the same group that must finish before it starts.
    after: Vec<Option<usize>>,
}

impl Lowering<'_> {
    fn push(&mut self, s: BatchStep) {
        self.steps.push(s);
        self.stage.push(self.layer);
    }

    fn obj(&mut self, level: usize, scale: f64, parts: usize) -> u32 {
        let n = self.params.n() as u64;
        let bytes = parts as u64 * (level as u64 + 1) * n * 8;
        self.objects.push(BatchObj { level, scale, parts, bytes });
        self.origin.push(0);
        (self.objects.len() - 1) as u32
    }

    /// A linear layer given as rows: output i = Σ (input index, weight) + bias[i].
    fn linear(
        &mut self,
        layer: &str,
        x: &[u32],
        rows: Vec<Vec<(usize, f64)>>,
        bias: Vec<f64>,
        out_scale: f64,
    ) -> Result<Elems> {
        let x0 = *x.first().ok_or_else(|| Error::LayerShape {
            layer: layer.into(),
            reason: "empty input".into(),
        })?;
        let BatchObj { level, scale, parts, bytes } = self.objects[x0 as usize];
        // Unrescaled squares (3 polynomials) carry their rescale into this layer.
        let rescales = if parts == 3 { 2 } else { 1 };
        if level < rescales {
            return Err(Error::DepthExceeded {
                layer: layer.into(),
                needed: rescales,
                available: level,
            });
        }
        let q: f64 =
            self.params.q()[level + 1 - rescales..=level].iter().map(|&q| q as f64).product();
        let pt_scale = q * out_scale / scale;
        // Group outputs by their input set, in order of first appearance.
        let mut groups: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
        let mut index: HashMap<Vec<usize>, usize> = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            let support: Vec<usize> = row.iter().map(|t| t.0).collect();
            match index.get(&support) {
                Some(&g) => groups[g].1.push(i),
                None => {
                    index.insert(support.clone(), groups.len());
                    groups.push((support, vec![i]));
                }
            }
        }
        let out: Vec<u32> =
            (0..rows.len()).map(|_| self.obj(level - rescales, out_scale, 2)).collect();
        let per_block = (self.acc_limit / bytes).max(1) as usize;
        let pins = ((self.pin_limit / bytes) as usize).clamp(1, MAX_PINS);
        for (support, outs) in groups {
            // Inputs in the order they are produced, so each chunk is complete early.
            let mut perm: Vec<usize> = (0..support.len()).collect();
            perm.sort_by_key(|&p| self.origin[x[support[p]] as usize]);
            let mut prev = None;
            for ks in outs.chunks(per_block) {
                let block = self.blocks.len();
                self.after.push(prev);
                prev = Some(block);
                self.blocks.push(LinBlock {
                    layer: layer.into(),
                    outputs: ks.iter().map(|&i| out[i]).collect(),
                    bias: ks.iter().map(|&i| bias[i]).collect(),
                    in_level: level,
                    in_scale: scale,
                    pt_scale,
                    in_parts: parts,
                });
                for cols in perm.chunks(pins) {
                    let mut weights = Vec::with_capacity(ks.len() * cols.len());
                    for &i in ks {
                        weights.extend(cols.iter().map(|&p| rows[i][p].1));
                    }
                    let inputs = cols.iter().map(|&p| x[support[p]]).collect();
                    self.push(BatchStep::Accumulate { block, inputs, weights });
                }
                self.push(BatchStep::Finish { block });
                let at = self.steps.len() - 1;
                for &i in ks {
                    self.origin[out[i] as usize] = at;
                }
            }
        }
        Ok(out)
    }

    /// x² of every element without relinearisation (see [`BatchStep::Square`]).
    fn square_lazy(&mut self, layer: &str, x: &[u32]) -> Result<Elems> {
        let mut out = Vec::with_capacity(x.len());
        for &input in x {
            let BatchObj { level, scale, parts, .. } = self.objects[input as usize];
            if level == 0 {
                return Err(Error::DepthExceeded { layer: layer.into(), needed: 1, available: 0 });
            }
            if parts != 2 {
                return Err(Error::LayerShape {
                    layer: layer.into(),
                    reason: "input not relinearised".into(),
                });
            }
            let output = self.obj(level, scale * scale, 3);
            self.origin[output as usize] = self.origin[input as usize];
            self.push(BatchStep::Square { input, output });
            out.push(output);
        }
        Ok(out)
    }

    /// An element-wise layer: `emit` builds the per-element program from its inputs.
    fn map(
        &mut self,
        layer: &str,
        args: &[&[u32]],
        emit: impl FnOnce(&mut ProgramBuilder, &[crate::nn::ObjId]) -> Result<crate::nn::ObjId>,
    ) -> Result<Elems> {
        let len = args[0].len();
        if let Some(bad) = args.iter().find(|a| a.len() != len) {
            return Err(Error::LayerShape {
                layer: layer.into(),
                reason: format!("inputs of {} and {} elements", len, bad.len()),
            });
        }
        let Some(firsts) = args.iter().map(|a| a.first().copied()).collect::<Option<Vec<_>>>()
        else {
            return Ok(Vec::new());
        };
        let mut b = ProgramBuilder::new(self.params);
        b.begin_layer(layer);
        let ins = firsts
            .iter()
            .zip(["a", "b"])
            .map(|(&o, name)| {
                let BatchObj { level, scale, parts, .. } = self.objects[o as usize];
                if parts != 2 {
                    return Err(Error::LayerShape {
                        layer: layer.into(),
                        reason: "input not relinearised".into(),
                    });
                }
                b.input(name, level, scale)
            })
            .collect::<Result<Vec<_>>>()?;
        let y = emit(&mut b, &ins)?;
        let (level, scale) = (b.level(y)?, b.scale(y)?);
        b.output("y", y)?;
        let program = b.finish();
        let relin = program.objects().iter().any(|o| o.kind == ObjKind::RelinKey);
        let template = self.templates.len();
        self.templates.push(Template { layer: layer.into(), program, relin });
        let mut out = Vec::with_capacity(len);
        for i in 0..len {
            let output = self.obj(level, scale, 2);
            self.origin[output as usize] =
                args.iter().map(|a| self.origin[a[i] as usize]).max().unwrap_or(0);
            let inputs = args.iter().map(|a| a[i]).collect();
            self.push(BatchStep::Map { template, inputs, output });
            out.push(output);
        }
        Ok(out)
    }
}

/// Whether layer `i`'s output is read only by linear layers (through flattens), so it may stay
/// unrelinearised; the model output must be relinearised.
fn feeds_only_linear(model: &Model, i: usize) -> bool {
    let layers = model.layers();
    let name = &layers[i].name;
    let readers: Vec<usize> =
        (i + 1..layers.len()).filter(|&j| layers[j].inputs.iter().any(|n| n == name)).collect();
    !readers.is_empty()
        && readers.iter().all(|&j| match &layers[j].kind {
            LayerKind::Flatten => feeds_only_linear(model, j),
            LayerKind::Dense { .. } | LayerKind::Conv2d { .. } | LayerKind::AvgPool { .. } => {
                layers[j].inputs.len() == 1
            }
            _ => false,
        })
}

impl BatchPlan {
    /// Lowers `model` for `params` (after checking its depth against them); see the module docs.
    pub fn compile(model: &Model, params: &Params) -> Result<Self> {
        Self::lower(model, params, ACC_LIMIT, u64::MAX)
    }

    /// As [`BatchPlan::compile`] for a run under a DRAM budget of `budget` bytes: a block's
    /// sums (scratch the executor borrows from the budget) and one step's pinned inputs each
    /// stay within a quarter of it, and the blocks of one group run one at a time.
    pub fn compile_within(model: &Model, params: &Params, budget: u64) -> Result<Self> {
        let quarter = (budget / 4).max(1);
        Self::lower(model, params, quarter.min(ACC_LIMIT), quarter)
    }

    fn lower(model: &Model, params: &Params, acc_limit: u64, pin_limit: u64) -> Result<Self> {
        model.check_depth(params)?;
        let nominal = params.scale();
        let mut lw = Lowering {
            params,
            objects: Vec::new(),
            origin: Vec::new(),
            blocks: Vec::new(),
            templates: Vec::new(),
            steps: Vec::new(),
            stage: Vec::new(),
            layer: 0,
            acc_limit,
            pin_limit,
            after: Vec::new(),
        };
        let in_len: usize = model.desc().input.shape.iter().product();
        let inputs: Elems = (0..in_len).map(|_| lw.obj(params.max_level(), nominal, 2)).collect();
        let mut values: HashMap<&str, Elems> = HashMap::new();
        values.insert("input", inputs.clone());
        let mut last = inputs.clone();
        for (i, l) in model.layers().iter().enumerate() {
            lw.layer = i;
            let get = |n: &str| {
                values.get(n).cloned().ok_or_else(|| Error::ModelLayer {
                    layer: l.name.clone(),
                    reason: format!("reads {n:?}, which is not computed before it"),
                })
            };
            let x = get(l.inputs.first().map_or("input", |s| s.as_str()))?;
            let want: usize = l.in_shape.iter().product();
            if x.len() != want {
                return Err(Error::LayerShape {
                    layer: l.name.clone(),
                    reason: format!("input has {} elements, layer expects {want}", x.len()),
                });
            }
            let tensor = |n: &str| model.tensor(n).map(|t| t.data.clone());
            let y = match &l.kind {
                LayerKind::Dense { in_features, out_features, weight, bias } => {
                    let w = tensor(weight)?;
                    let rows = (0..*out_features)
                        .map(|o| (0..*in_features).map(|j| (j, w[o * in_features + j])).collect())
                        .collect();
                    let b = match bias {
                        Some(b) => tensor(b)?,
                        None => vec![0.0; *out_features],
                    };
                    lw.linear(
                        &l.name,
                        &x,
                        rows,
                        b,
                        linear_out_scale(model, i, nominal)?.unwrap_or(nominal),
                    )?
                }
                LayerKind::Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    groups,
                    weight,
                    bias,
                    ..
                } => {
                    let w = tensor(weight)?;
                    let rows = conv_rows(
                        &l.in_shape,
                        &l.out_shape,
                        &w,
                        *kernel,
                        *stride,
                        *padding,
                        *groups,
                    );
                    let per = l.out_shape[1] * l.out_shape[2];
                    let b = match bias {
                        Some(b) => {
                            tensor(b)?.iter().flat_map(|&v| std::iter::repeat_n(v, per)).collect()
                        }
                        None => vec![0.0; out_channels * per],
                    };
                    lw.linear(
                        &l.name,
                        &x,
                        rows,
                        b,
                        linear_out_scale(model, i, nominal)?.unwrap_or(nominal),
                    )?
                }
                LayerKind::AvgPool { kernel, stride, padding } => {
                    let c = l.in_shape[0];
                    let w = vec![1.0 / (kernel[0] * kernel[1]) as f64; c * kernel[0] * kernel[1]];
                    let rows =
                        conv_rows(&l.in_shape, &l.out_shape, &w, *kernel, *stride, *padding, c);
                    let n = rows.len();
                    lw.linear(
                        &l.name,
                        &x,
                        rows,
                        vec![0.0; n],
                        linear_out_scale(model, i, nominal)?.unwrap_or(nominal),
                    )?
                }
                LayerKind::Flatten => x,
                LayerKind::Activation(Activation::Square) if feeds_only_linear(model, i) => {
                    lw.square_lazy(&l.name, &x)?
                }
                LayerKind::Activation(Activation::Square) => {
                    let name = l.name.clone();
                    lw.map(&l.name, &[&x], |b, ins| {
                        if b.level(ins[0])? == 0 {
                            return Err(Error::DepthExceeded {
                                layer: name,
                                needed: 1,
                                available: 0,
                            });
                        }
                        let p = b.mul_relin(ins[0], ins[0])?;
                        b.rescale(p)
                    })?
                }
                LayerKind::Activation(a) => {
                    let act = poly_activation(&l.name, a)?;
                    lw.map(&l.name, &[&x], |b, ins| act.compile_ct(b, ins[0]))?
                }
                LayerKind::Add => {
                    let other = get(l.inputs.get(1).map_or("", |s| s.as_str()))?;
                    let res = Residual::new(&l.name);
                    lw.map(&l.name, &[&x, &other], |b, ins| res.add_ct(b, ins[0], ins[1]))?
                }
            };
            let want: usize = l.out_shape.iter().product();
            if y.len() != want {
                return Err(Error::LayerShape {
                    layer: l.name.clone(),
                    reason: format!("output has {} elements, description says {want}", y.len()),
                });
            }
            values.insert(l.name.as_str(), y.clone());
            last = y;
        }
        let outputs = last;
        let order = Order { stage: &lw.stage, blocks: &lw.blocks, after: &lw.after };
        lw.steps = schedule(std::mem::take(&mut lw.steps), &order, lw.objects.len());
        let frees = liveness(&lw.steps, &lw.blocks, &inputs, &outputs, lw.objects.len());
        Ok(Self {
            params: params.clone(),
            objects: lw.objects,
            inputs,
            outputs,
            blocks: lw.blocks,
            templates: lw.templates,
            steps: lw.steps,
            frees,
        })
    }

    /// The parameter set.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Every ciphertext of the plan.
    pub fn objects(&self) -> &[BatchObj] {
        &self.objects
    }

    /// Input elements in flat (C·H·W) order.
    pub fn inputs(&self) -> &[u32] {
        &self.inputs
    }

    /// Output elements (logits) in order.
    pub fn outputs(&self) -> &[u32] {
        &self.outputs
    }

    /// Linear blocks.
    pub fn blocks(&self) -> &[LinBlock] {
        &self.blocks
    }

    /// Element-wise templates.
    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    /// The steps in execution order.
    pub fn steps(&self) -> &[BatchStep] {
        &self.steps
    }

    /// Ciphertexts dead after step `i` (removed from the store).
    pub fn frees_after(&self, i: usize) -> &[u32] {
        &self.frees[i]
    }

    /// Whether any step needs the relinearisation key.
    pub fn needs_relin(&self) -> bool {
        (0..self.steps.len()).any(|i| self.pins_relin_key(i))
    }

    /// Samples one run processes at most (one per slot).
    pub fn batch_capacity(&self) -> usize {
        self.params.slots()
    }

    /// The objects step `i` pins, in order.
    pub fn pins(&self, i: usize) -> &[u32] {
        match &self.steps[i] {
            BatchStep::Accumulate { inputs, .. } | BatchStep::Map { inputs, .. } => inputs,
            BatchStep::Square { input, .. } => std::slice::from_ref(input),
            BatchStep::Finish { .. } => &[],
        }
    }

    /// The objects step `i` writes, in order.
    pub fn writes(&self, i: usize) -> &[u32] {
        match &self.steps[i] {
            BatchStep::Accumulate { .. } => &[],
            BatchStep::Finish { block } => &self.blocks[*block].outputs,
            BatchStep::Map { output, .. } | BatchStep::Square { output, .. } => {
                std::slice::from_ref(output)
            }
        }
    }

    /// Whether step `i` also pins the relinearisation key (after its ciphertexts).
    pub fn pins_relin_key(&self, i: usize) -> bool {
        match &self.steps[i] {
            BatchStep::Map { template, .. } => self.templates[*template].relin,
            BatchStep::Finish { block } => self.blocks[*block].in_parts == 3,
            _ => false,
        }
    }

    /// Most bytes of ciphertexts alive at once in the store.
    pub fn peak_live_bytes(&self) -> u64 {
        let mut live: u64 = self.inputs.iter().map(|&o| self.objects[o as usize].bytes).sum();
        let mut peak = live;
        for i in 0..self.steps.len() {
            live += self.writes(i).iter().map(|&o| self.objects[o as usize].bytes).sum::<u64>();
            peak = peak.max(live);
            live -= self.frees[i].iter().map(|&o| self.objects[o as usize].bytes).sum::<u64>();
        }
        peak
    }
}

/// What orders the steps beside their data: each step's layer, the blocks, and which block
/// each block waits for.
struct Order<'a> {
    stage: &'a [usize],
    blocks: &'a [LinBlock],
    after: &'a [Option<usize>],
}

/// Reorders the steps so that each runs as soon as its inputs exist, preferring a ready step of
/// the latest layer (and within a layer the original order): a layer's output is consumed by the next layer while it is being
/// produced (a dense layer accumulates each chunk of squares as soon as the convolution
/// positions behind it are done), so the live set stays near the inputs alone instead of a
/// whole intermediate tensor.
fn schedule(steps: Vec<BatchStep>, order: &Order<'_>, objects: usize) -> Vec<BatchStep> {
    let Order { stage, blocks, after } = *order;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let count = steps.len();
    let mut producer: Vec<Option<usize>> = vec![None; objects];
    let mut last_of_block: Vec<Option<usize>> = vec![None; blocks.len()];
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (i, s) in steps.iter().enumerate() {
        let (reads, block): (&[u32], Option<usize>) = match s {
            BatchStep::Accumulate { block, inputs, .. } => (inputs, Some(*block)),
            BatchStep::Finish { block } => (&[], Some(*block)),
            BatchStep::Map { inputs, .. } => (inputs, None),
            BatchStep::Square { input, .. } => (std::slice::from_ref(input), None),
        };
        deps[i].extend(reads.iter().filter_map(|&o| producer[o as usize]));
        if let Some(b) = block {
            // A block's steps keep their order (its sums are one accumulator), and a block
            // split from a group starts after the previous one finished.
            let first = last_of_block[b].is_none();
            deps[i].extend(last_of_block[b]);
            if first {
                deps[i].extend(after[b].and_then(|p| last_of_block[p]));
            }
            last_of_block[b] = Some(i);
        }
        let writes: &[u32] = match s {
            BatchStep::Finish { block } => &blocks[*block].outputs,
            BatchStep::Map { output, .. } | BatchStep::Square { output, .. } => {
                std::slice::from_ref(output)
            }
            BatchStep::Accumulate { .. } => &[],
        };
        for &o in writes {
            producer[o as usize] = Some(i);
        }
    }
    let mut waiting: Vec<usize> = vec![0; count];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (i, d) in deps.iter_mut().enumerate() {
        d.sort_unstable();
        d.dedup();
        waiting[i] = d.len();
        for &p in d.iter() {
            users[p].push(i);
        }
    }
    let key = |i: usize| (stage[i], Reverse(i));
    let mut ready: BinaryHeap<(usize, Reverse<usize>)> =
        (0..count).filter(|&i| waiting[i] == 0).map(key).collect();
    let mut order = Vec::with_capacity(count);
    while let Some((_, Reverse(i))) = ready.pop() {
        order.push(i);
        for &u in &users[i] {
            waiting[u] -= 1;
            if waiting[u] == 0 {
                ready.push(key(u));
            }
        }
    }
    let mut slots: Vec<Option<BatchStep>> = steps.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// For each step, the ciphertexts whose last use it is (never the outputs); an object nobody
/// reads dies right after the step that wrote it.
fn liveness(
    steps: &[BatchStep],
    blocks: &[LinBlock],
    inputs: &[u32],
    outputs: &[u32],
    count: usize,
) -> Vec<Vec<u32>> {
    let mut last: Vec<Option<usize>> = vec![None; count];
    for (i, s) in steps.iter().enumerate() {
        match s {
            BatchStep::Accumulate { inputs, .. } | BatchStep::Map { inputs, .. } => {
                inputs.iter().for_each(|&o| last[o as usize] = Some(i));
            }
            BatchStep::Square { input, .. } => last[*input as usize] = Some(i),
            BatchStep::Finish { .. } => {}
        }
    }
    for (i, s) in steps.iter().enumerate() {
        let written: &[u32] = match s {
            BatchStep::Finish { block } => &blocks[*block].outputs,
            BatchStep::Map { output, .. } | BatchStep::Square { output, .. } => {
                std::slice::from_ref(output)
            }
            BatchStep::Accumulate { .. } => &[],
        };
        for &o in written {
            if last[o as usize].is_none() {
                last[o as usize] = Some(i);
            }
        }
    }
    let mut frees = vec![Vec::new(); steps.len()];
    let keep: std::collections::HashSet<u32> = outputs.iter().copied().collect();
    for (o, l) in last.iter().enumerate() {
        let o = o as u32;
        if keep.contains(&o) {
            continue;
        }
        match l {
            Some(i) => frees[*i].push(o),
            // An input nobody reads: dropped after the first step.
            None if inputs.contains(&o) && !steps.is_empty() => frees[0].push(o),
            None => {}
        }
    }
    frees
}
