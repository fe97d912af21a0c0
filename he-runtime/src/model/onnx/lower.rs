//! Lowers the nodes of an ONNX graph, in order, to hetier layers. Linear layers absorb the
//! per-channel affine maps that follow them (BatchNormalization, a constant Add or Mul) when
//! they are that map's only reader; otherwise the map becomes a layer of its own (a depthwise
//! 1×1 convolution or a diagonal dense layer). Every node that cannot be lowered is collected
//! as `name (op_type): why`, so the caller reports all of them at once.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::proto::{GraphProto, NodeProto};
use super::tensor::{decode, Attrs, Const};
use crate::model::{Activation, Layer, LayerKind, Tensor};
use crate::nn::poly;

/// The operators the importer lowers.
pub const SUPPORTED_OPS: &[&str] = &[
    "Gemm",
    "MatMul",
    "Conv",
    "BatchNormalization",
    "Add",
    "Mul",
    "Pow",
    "Relu",
    "Sigmoid",
    "Tanh",
    "Swish",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Identity",
    "Dropout",
    "Constant",
];

/// A value of the graph: the layer that computes it (or `"input"`) and its per-sample shape.
#[derive(Debug, Clone)]
struct Val {
    layer: String,
    shape: Vec<usize>,
}

/// How activations are approximated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActSpec {
    /// Interval for every activation, or `None` when calibration will set it.
    pub range: Option<[f64; 2]>,
    /// Chebyshev degree.
    pub degree: usize,
    /// Whether calibration samples will set the ranges.
    pub calibrated: bool,
}

/// An activation layer whose function is approximated on a range.
#[derive(Debug, Clone)]
pub(crate) struct ApproxAct {
    /// Index of the layer.
    pub layer: usize,
    /// The ONNX function: `relu`, `sigmoid`, `tanh` or `silu`.
    pub func: &'static str,
}

/// The result of lowering a graph.
pub(crate) struct Lowered {
    pub layers: Vec<Layer>,
    pub tensors: BTreeMap<String, Tensor>,
    pub input_shape: Vec<usize>,
    pub approx: Vec<ApproxAct>,
}

/// The exact function an approximated activation stands for.
pub(crate) fn act_fn(func: &str) -> fn(f64) -> f64 {
    match func {
        "relu" => poly::relu,
        "sigmoid" => poly::sigmoid,
        "silu" => poly::silu,
        _ => f64::tanh,
    }
}

/// The Chebyshev interpolant of `func` of `degree` on `range`.
pub(crate) fn chebyshev(func: &str, range: [f64; 2], degree: usize) -> Result<Activation, String> {
    let p = poly::ChebPoly::interpolate(act_fn(func), range[0], range[1], degree)
        .map_err(|e| e.to_string())?;
    Ok(Activation::Chebyshev { func: func.into(), range, degree, coeffs: p.coeffs })
}

struct Lowering {
    layers: Vec<Layer>,
    tensors: BTreeMap<String, Tensor>,
    values: HashMap<String, Val>,
    consts: HashMap<String, Const>,
    consumers: HashMap<String, usize>,
    /// The ONNX value each layer was last published as (folding needs the layer's only use).
    primary: HashMap<String, String>,
    names: HashSet<String>,
    problems: Vec<String>,
    poisoned: HashSet<String>,
    act: ActSpec,
    approx: Vec<ApproxAct>,
    /// Sigmoid nodes fused into a following Mul as SiLU, and those Mul nodes.
    fused_sigmoid: HashSet<usize>,
    silu_mul: HashSet<usize>,
}

type Step = std::result::Result<(), String>;

fn op_of(n: &NodeProto) -> &str {
    n.op_type.as_deref().unwrap_or("")
}

/// Per-channel values of a constant broadcast against a per-sample shape: a scalar, `[C,1,1]`
/// on `[C, H, W]` or `[F]` on `[F]` (leading 1s ignored).
fn per_channel(c: &Const, shape: &[usize]) -> Option<Vec<f64>> {
    let ch = shape.first().copied()?;
    if c.data.len() == 1 {
        return Some(vec![c.data[0]; ch]);
    }
    let dims: Vec<usize> = c.dims.iter().copied().skip_while(|&d| d == 1).collect();
    let want: Vec<usize> = match shape.len() {
        3 => vec![ch, 1, 1],
        _ => vec![ch],
    };
    (dims == want).then(|| c.data.clone())
}

fn pairs(v: &[i64], what: &str, default: [usize; 2]) -> Result<[usize; 2], String> {
    match v {
        [] => Ok(default),
        [a, b] if *a >= 0 && *b >= 0 => Ok([*a as usize, *b as usize]),
        _ => Err(format!("{what} {v:?} (two non-negative values for a 2-D window expected)")),
    }
}

/// Stride, padding (top, bottom, left, right) and output height/width of a window.
type Window = ([usize; 2], [usize; 4], [usize; 2]);

/// Window geometry shared by Conv and AveragePool: kernel, stride and padding
/// (top, bottom, left, right), from `kernel_shape`, `strides`, `pads`, `auto_pad`, `dilations`.
fn window(a: &Attrs<'_>, kernel: [usize; 2], hw: [usize; 2]) -> Result<Window, String> {
    if let Some(d) = a.ints("dilations") {
        if d.iter().any(|&v| v != 1) {
            return Err(format!("dilations {d:?} (only 1 is supported)"));
        }
    }
    let stride = pairs(a.ints("strides").unwrap_or(&[]), "strides", [1, 1])?;
    if stride.contains(&0) {
        return Err("stride 0".into());
    }
    let auto = a.string("auto_pad").unwrap_or_default();
    let pad = match auto.as_str() {
        "" | "NOTSET" => match a.ints("pads").unwrap_or(&[]) {
            [] => [0; 4],
            p @ [_, _, _, _] if p.iter().all(|&v| v >= 0) => {
                [p[0] as usize, p[2] as usize, p[1] as usize, p[3] as usize]
            }
            p => return Err(format!("pads {p:?} (four non-negative values expected)")),
        },
        "VALID" => [0; 4],
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut pad = [0; 4];
            for ax in 0..2 {
                let out = hw[ax].div_ceil(stride[ax]);
                let total = ((out - 1) * stride[ax] + kernel[ax]).saturating_sub(hw[ax]);
                let (small, big) = (total / 2, total - total / 2);
                let (begin, end) = if auto == "SAME_UPPER" { (small, big) } else { (big, small) };
                pad[2 * ax] = begin;
                pad[2 * ax + 1] = end;
            }
            pad
        }
        other => return Err(format!("auto_pad {other:?}")),
    };
    let mut out = [0; 2];
    for ax in 0..2 {
        let ext = hw[ax] + pad[2 * ax] + pad[2 * ax + 1];
        if kernel[ax] == 0 || ext < kernel[ax] {
            return Err(format!(
                "window {kernel:?} does not fit an input of {hw:?} with padding {pad:?}"
            ));
        }
        out[ax] = (ext - kernel[ax]) / stride[ax] + 1;
    }
    Ok((stride, pad, out))
}

impl Lowering {
    fn name_for(&mut self, node: &NodeProto, idx: usize) -> String {
        let base = match node.name.as_deref() {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => format!("{}_{idx}", op_of(node)),
        };
        let mut name = if base == "input" { format!("{base}_{idx}") } else { base };
        let mut k = 1;
        while self.names.contains(&name) {
            name = format!("{}_{k}", name.trim_end_matches(char::is_numeric));
            k += 1;
        }
        self.names.insert(name.clone());
        name
    }

    fn val(&self, onnx: &str) -> Result<Val, String> {
        if let Some(v) = self.values.get(onnx) {
            return Ok(v.clone());
        }
        if self.consts.contains_key(onnx) {
            return Err(format!("reads the constant {onnx:?} where a data value is expected"));
        }
        Err(format!("reads {onnx:?}, which no earlier node computes"))
    }

    fn konst(&self, onnx: &str) -> Result<&Const, String> {
        self.consts.get(onnx).ok_or_else(|| format!("needs {onnx:?} to be a constant initializer"))
    }

    fn publish(&mut self, onnx: &str, v: Val) {
        if v.layer != "input" {
            self.primary.insert(v.layer.clone(), onnx.to_owned());
        }
        self.values.insert(onnx.to_owned(), v);
    }

    fn push(
        &mut self,
        name: String,
        kind: LayerKind,
        inputs: Vec<String>,
        in_shape: Vec<usize>,
        out: Vec<usize>,
    ) -> Val {
        self.layers.push(Layer {
            name: name.clone(),
            kind,
            inputs,
            in_shape,
            out_shape: out.clone(),
            max_abs: None,
        });
        Val { layer: name, shape: out }
    }

    fn tensor(&mut self, name: String, shape: Vec<usize>, data: Vec<f64>) -> String {
        self.tensors.insert(name.clone(), Tensor { shape, data });
        name
    }

    /// Index of the linear layer computing `onnx`, when this value is its only use.
    fn foldable(&self, onnx: &str, v: &Val) -> Option<usize> {
        if self.consumers.get(onnx).copied() != Some(1)
            || self.primary.get(&v.layer).map(String::as_str) != Some(onnx)
        {
            return None;
        }
        let i = self.layers.iter().position(|l| l.name == v.layer)?;
        matches!(self.layers[i].kind, LayerKind::Dense { .. } | LayerKind::Conv2d { .. })
            .then_some(i)
    }

    /// y = scale·x + shift per channel: folded into the linear layer before it when possible,
    /// a layer of its own otherwise.
    fn affine(
        &mut self,
        name: String,
        onnx_in: &str,
        out: &str,
        scale: &[f64],
        shift: &[f64],
    ) -> Step {
        let v = self.val(onnx_in)?;
        let ch = v.shape[0];
        if let Some(i) = self.foldable(onnx_in, &v) {
            let (weight, bias) = match &mut self.layers[i].kind {
                LayerKind::Dense { weight, bias, .. } | LayerKind::Conv2d { weight, bias, .. } => {
                    let b = bias.get_or_insert_with(|| format!("{}.bias", v.layer)).clone();
                    (weight.clone(), b)
                }
                _ => return Err("internal: fold target is not linear".into()),
            };
            if let Some(w) = self.tensors.get_mut(&weight) {
                let per = w.data.len() / ch.max(1);
                for (o, chunk) in w.data.chunks_mut(per.max(1)).enumerate() {
                    chunk.iter_mut().for_each(|x| *x *= scale[o]);
                }
            }
            let b =
                self.tensors.entry(bias).or_insert(Tensor { shape: vec![ch], data: vec![0.0; ch] });
            for o in 0..ch {
                b.data[o] = b.data[o] * scale[o] + shift[o];
            }
            self.names.remove(&name);
            self.publish(out, v);
            return Ok(());
        }
        let b = self.tensor(format!("{name}.bias"), vec![ch], shift.to_vec());
        let kind = if v.shape.len() == 3 {
            let w = self.tensor(format!("{name}.weight"), vec![ch, 1, 1, 1], scale.to_vec());
            LayerKind::Conv2d {
                in_channels: ch,
                out_channels: ch,
                kernel: [1, 1],
                stride: [1, 1],
                padding: [0; 4],
                groups: ch,
                weight: w,
                bias: Some(b),
            }
        } else {
            let mut m = vec![0.0; ch * ch];
            for o in 0..ch {
                m[o * ch + o] = scale[o];
            }
            let w = self.tensor(format!("{name}.weight"), vec![ch, ch], m);
            LayerKind::Dense { in_features: ch, out_features: ch, weight: w, bias: Some(b) }
        };
        let r = self.push(name, kind, vec![v.layer.clone()], v.shape.clone(), v.shape);
        self.publish(out, r);
        Ok(())
    }

    fn activation(&mut self, name: String, onnx_in: &str, out: &str, func: &'static str) -> Step {
        let v = self.val(onnx_in)?;
        let range = match (self.act.range, self.act.calibrated) {
            (Some(r), _) => r,
            (None, true) => [-1.0, 1.0], // replaced by calibration
            (None, false) => {
                return Err(
                    "needs the range its polynomial is fitted on: give an activation range or calibration samples"
                        .into(),
                )
            }
        };
        let a = chebyshev(func, range, self.act.degree)?;
        if self.act.range.is_none() {
            self.approx.push(ApproxAct { layer: self.layers.len(), func });
        }
        let r = self.push(
            name,
            LayerKind::Activation(a),
            vec![v.layer.clone()],
            v.shape.clone(),
            v.shape,
        );
        self.publish(out, r);
        Ok(())
    }

    fn node(&mut self, idx: usize, n: &NodeProto) -> Step {
        let op = op_of(n);
        let ins: Vec<&str> = n.input.iter().map(String::as_str).collect();
        let out = n.output.first().map(String::as_str).ok_or("has no output")?;
        let a = Attrs::of(n);
        let arg = |i: usize| {
            ins.get(i).copied().filter(|s| !s.is_empty()).ok_or(format!("input {i} missing"))
        };
        match op {
            "Constant" => {
                let c = if let Some(t) = a.tensor("value") {
                    decode(t).map_err(|e| e.to_string())?
                } else if let Some(f) =
                    n.attribute.iter().find(|x| x.name.as_deref() == Some("value_float"))
                {
                    Const { dims: vec![], data: vec![f64::from(f.f.unwrap_or(0.0))] }
                } else if let Some(v) = a.ints("value_ints") {
                    Const { dims: vec![v.len()], data: v.iter().map(|&x| x as f64).collect() }
                } else {
                    return Err(
                        "only the value, value_float and value_ints forms are supported".into()
                    );
                };
                self.consts.insert(out.to_owned(), c);
                Ok(())
            }
            "Identity" | "Dropout" => {
                let v = self.val(arg(0)?)?;
                self.values.insert(out.to_owned(), v);
                Ok(())
            }
            "Gemm" | "MatMul" => {
                let v = self.val(arg(0)?)?;
                let &[f] = v.shape.as_slice() else {
                    return Err(format!(
                        "needs a vector input, got per-sample shape {:?}",
                        v.shape
                    ));
                };
                let b = self.konst(arg(1)?)?.clone();
                let (trans_b, alpha, beta) = if op == "Gemm" {
                    if a.int("transA", 0) != 0 {
                        return Err("transA = 1".into());
                    }
                    (a.int("transB", 0) != 0, a.float("alpha", 1.0), a.float("beta", 1.0))
                } else {
                    (false, 1.0, 1.0)
                };
                let (rows, cols) = match b.dims.as_slice() {
                    [r, c] => (*r, *c),
                    d => return Err(format!("weight of shape {d:?} (2-D expected)")),
                };
                let (fin, fout) = if trans_b { (cols, rows) } else { (rows, cols) };
                if fin != f {
                    return Err(format!("weight of shape {:?} on {f} input features", b.dims));
                }
                let mut w = vec![0.0; fout * fin];
                for o in 0..fout {
                    for i in 0..fin {
                        let src = if trans_b { o * cols + i } else { i * cols + o };
                        w[o * fin + i] = alpha * b.data[src];
                    }
                }
                let bias = match (op, ins.get(2).filter(|s| !s.is_empty())) {
                    ("Gemm", Some(c)) => {
                        let c = self.konst(c)?;
                        let vals = per_channel(c, &[fout])
                            .ok_or(format!("bias of shape {:?} for {fout} outputs", c.dims))?;
                        Some(vals.iter().map(|x| beta * x).collect::<Vec<_>>())
                    }
                    _ => None,
                };
                let name = self.name_for(n, idx);
                let wn = self.tensor(format!("{name}.weight"), vec![fout, fin], w);
                let bn = bias.map(|b| self.tensor(format!("{name}.bias"), vec![fout], b));
                let kind =
                    LayerKind::Dense { in_features: fin, out_features: fout, weight: wn, bias: bn };
                let r = self.push(name, kind, vec![v.layer], v.shape, vec![fout]);
                self.publish(out, r);
                Ok(())
            }
            "Conv" => {
                let v = self.val(arg(0)?)?;
                let &[c, h, wd] = v.shape.as_slice() else {
                    return Err(format!("needs a [C, H, W] input, got {:?}", v.shape));
                };
                let w = self.konst(arg(1)?)?.clone();
                let &[o, cg, kh, kw] = w.dims.as_slice() else {
                    return Err(format!("weight of shape {:?} (only 2-D convolutions)", w.dims));
                };
                let g = usize::try_from(a.int("group", 1)).unwrap_or(0);
                if g == 0 || c % g != 0 || o % g != 0 || cg != c / g {
                    return Err(format!("weight {:?} with {g} groups on {c} channels", w.dims));
                }
                if let Some(k) = a.ints("kernel_shape") {
                    if k != [kh as i64, kw as i64] {
                        return Err(format!("kernel_shape {k:?} but weight {:?}", w.dims));
                    }
                }
                let (stride, padding, [oh, ow]) = window(&a, [kh, kw], [h, wd])?;
                let bias = match ins.get(2).filter(|s| !s.is_empty()) {
                    Some(b) => {
                        let b = self.konst(b)?;
                        if b.data.len() != o {
                            return Err(format!("bias of shape {:?} for {o} channels", b.dims));
                        }
                        Some(b.data.clone())
                    }
                    None => None,
                };
                let name = self.name_for(n, idx);
                let wn = self.tensor(format!("{name}.weight"), w.dims.clone(), w.data);
                let bn = bias.map(|b| self.tensor(format!("{name}.bias"), vec![o], b));
                let kind = LayerKind::Conv2d {
                    in_channels: c,
                    out_channels: o,
                    kernel: [kh, kw],
                    stride,
                    padding,
                    groups: g,
                    weight: wn,
                    bias: bn,
                };
                let r = self.push(name, kind, vec![v.layer], v.shape, vec![o, oh, ow]);
                self.publish(out, r);
                Ok(())
            }
            "BatchNormalization" => {
                let x = arg(0)?;
                let v = self.val(x)?;
                let ch = v.shape[0];
                let mut p = Vec::new();
                for i in 1..5 {
                    let c = self.konst(arg(i)?)?;
                    if c.data.len() != ch {
                        return Err(format!(
                            "parameter {i} has {} values for {ch} channels",
                            c.data.len()
                        ));
                    }
                    p.push(c.data.clone());
                }
                let eps = a.float("epsilon", 1e-5);
                let scale: Vec<f64> = (0..ch).map(|k| p[0][k] / (p[3][k] + eps).sqrt()).collect();
                let shift: Vec<f64> = (0..ch).map(|k| p[1][k] - p[2][k] * scale[k]).collect();
                if let Some(s) = scale.iter().find(|s| !s.is_finite()) {
                    return Err(format!("folds to the non-finite scale {s}"));
                }
                let name = self.name_for(n, idx);
                self.affine(name, x, out, &scale, &shift)
            }
            "Add" | "Mul" => {
                let (x, y) = (arg(0)?, arg(1)?);
                let (cx, cy) = (self.consts.contains_key(x), self.consts.contains_key(y));
                if op == "Mul" && self.silu_mul.contains(&idx) {
                    let data = if self.fused_out(y) { x } else { y };
                    let name = self.name_for(n, idx);
                    return self.activation(name, data, out, "silu");
                }
                match (cx, cy) {
                    (false, false) => {
                        let (vx, vy) = (self.val(x)?, self.val(y)?);
                        let name = self.name_for(n, idx);
                        if op == "Mul" {
                            if x != y && vx.layer != vy.layer {
                                self.names.remove(&name);
                                return Err(
                                    "multiplies two different values (only x·x is supported)"
                                        .into(),
                                );
                            }
                            let k = LayerKind::Activation(Activation::Square);
                            let r = self.push(name, k, vec![vx.layer], vx.shape.clone(), vx.shape);
                            self.publish(out, r);
                            return Ok(());
                        }
                        if vx.shape != vy.shape {
                            self.names.remove(&name);
                            return Err(format!("adds shapes {:?} and {:?}", vx.shape, vy.shape));
                        }
                        let r = self.push(
                            name,
                            LayerKind::Add,
                            vec![vx.layer, vy.layer],
                            vx.shape.clone(),
                            vx.shape,
                        );
                        self.publish(out, r);
                        Ok(())
                    }
                    (true, true) => Err("both operands are constants".into()),
                    _ => {
                        let (data, c) = if cx { (y, x) } else { (x, y) };
                        let v = self.val(data)?;
                        let c = self.konst(c)?;
                        let vals = per_channel(c, &v.shape).ok_or(format!(
                            "constant of shape {:?} on per-sample shape {:?} (a scalar or one value per channel expected)",
                            c.dims, v.shape
                        ))?;
                        let ones = vec![1.0; vals.len()];
                        let zeros = vec![0.0; vals.len()];
                        let name = self.name_for(n, idx);
                        if op == "Add" {
                            self.affine(name, data, out, &ones, &vals)
                        } else {
                            self.affine(name, data, out, &vals, &zeros)
                        }
                    }
                }
            }
            "Pow" => {
                let e = self.konst(arg(1)?)?;
                if e.data != [2.0] {
                    return Err(format!("exponent {:?} (only 2 is supported)", e.data));
                }
                let v = self.val(arg(0)?)?;
                let name = self.name_for(n, idx);
                let k = LayerKind::Activation(Activation::Square);
                let r = self.push(name, k, vec![v.layer], v.shape.clone(), v.shape);
                self.publish(out, r);
                Ok(())
            }
            "Relu" | "Sigmoid" | "Tanh" | "Swish" => {
                if self.fused_sigmoid.contains(&idx) {
                    return Ok(());
                }
                if op == "Swish" && a.float("alpha", 1.0) != 1.0 {
                    return Err("alpha ≠ 1".into());
                }
                let func = match op {
                    "Relu" => "relu",
                    "Sigmoid" => "sigmoid",
                    "Tanh" => "tanh",
                    _ => "silu",
                };
                let name = self.name_for(n, idx);
                self.activation(name, arg(0)?, out, func)
            }
            "AveragePool" | "GlobalAveragePool" => {
                let v = self.val(arg(0)?)?;
                let &[c, h, wd] = v.shape.as_slice() else {
                    return Err(format!("needs a [C, H, W] input, got {:?}", v.shape));
                };
                let (kernel, stride, padding, [oh, ow]) = if op == "GlobalAveragePool" {
                    ([h, wd], [1, 1], [0; 4], [1, 1])
                } else {
                    if a.int("ceil_mode", 0) != 0 {
                        return Err("ceil_mode = 1".into());
                    }
                    let k = pairs(a.ints("kernel_shape").unwrap_or(&[]), "kernel_shape", [0, 0])?;
                    let (s, p, o) = window(&a, k, [h, wd])?;
                    if a.int("count_include_pad", 0) == 0 && p.iter().any(|&x| x > 0) {
                        return Err("padding with count_include_pad = 0 (hetier counts the zero padding in the mean)".into());
                    }
                    (k, s, p, o)
                };
                let name = self.name_for(n, idx);
                let r = self.push(
                    name,
                    LayerKind::AvgPool { kernel, stride, padding },
                    vec![v.layer],
                    v.shape,
                    vec![c, oh, ow],
                );
                self.publish(out, r);
                Ok(())
            }
            "Flatten" | "Reshape" => {
                let v = self.val(arg(0)?)?;
                let total: usize = v.shape.iter().product();
                if op == "Flatten" && a.int("axis", 1) != 1 {
                    return Err(format!(
                        "axis {} (only 1, flattening each sample, is supported)",
                        a.int("axis", 1)
                    ));
                }
                if op == "Reshape" {
                    let t = self.konst(arg(1)?)?;
                    let ok = match t.data.as_slice() {
                        [b, k] => {
                            [-1.0, 0.0, 1.0].contains(b) && (*k == -1.0 || *k == total as f64)
                        }
                        _ => false,
                    };
                    if !ok {
                        return Err(format!(
                            "reshape to {:?} (only flattening each sample to [N, {total}] is supported)",
                            t.data
                        ));
                    }
                }
                if v.shape.len() == 1 {
                    self.values.insert(out.to_owned(), v);
                    return Ok(());
                }
                let name = self.name_for(n, idx);
                let r = self.push(name, LayerKind::Flatten, vec![v.layer], v.shape, vec![total]);
                self.publish(out, r);
                Ok(())
            }
            _ => Err(String::new()),
        }
    }

    fn fused_out(&self, onnx: &str) -> bool {
        !self.values.contains_key(onnx)
    }
}

/// Finds Sigmoid(x) whose only reader is Mul(x, Sigmoid(x)): the pair is SiLU.
fn silu_pairs(
    g: &GraphProto,
    consumers: &HashMap<String, usize>,
) -> (HashSet<usize>, HashSet<usize>) {
    let mut sig = HashSet::new();
    let mut mul = HashSet::new();
    for (i, n) in g.node.iter().enumerate() {
        if op_of(n) != "Sigmoid" || n.input.len() != 1 || n.output.len() != 1 {
            continue;
        }
        let (x, s) = (&n.input[0], &n.output[0]);
        if consumers.get(s).copied() != Some(1) {
            continue;
        }
        if let Some((j, _)) = g.node.iter().enumerate().skip(i + 1).find(|(_, m)| {
            op_of(m) == "Mul"
                && m.input.len() == 2
                && ((&m.input[0] == x && &m.input[1] == s)
                    || (&m.input[1] == x && &m.input[0] == s))
        }) {
            sig.insert(i);
            mul.insert(j);
        }
    }
    (sig, mul)
}

/// Lowers `g` given its data input (name and per-sample shape) and constants.
pub(crate) fn lower(
    g: &GraphProto,
    input: (&str, Vec<usize>),
    consts: HashMap<String, Const>,
    output: &str,
    act: ActSpec,
) -> std::result::Result<(Lowered, String), Vec<String>> {
    let mut consumers: HashMap<String, usize> = HashMap::new();
    for n in &g.node {
        for i in &n.input {
            *consumers.entry(i.clone()).or_default() += 1;
        }
    }
    *consumers.entry(output.to_owned()).or_default() += 1;
    let (fused_sigmoid, silu_mul) = silu_pairs(g, &consumers);
    let mut l = Lowering {
        layers: Vec::new(),
        tensors: BTreeMap::new(),
        values: HashMap::new(),
        consts,
        consumers,
        primary: HashMap::new(),
        names: HashSet::from(["input".to_owned()]),
        problems: Vec::new(),
        poisoned: HashSet::new(),
        act,
        approx: Vec::new(),
        fused_sigmoid,
        silu_mul,
    };
    l.values.insert(input.0.to_owned(), Val { layer: "input".into(), shape: input.1.clone() });
    for (idx, n) in g.node.iter().enumerate() {
        let op = op_of(n);
        let label = format!(
            "{} ({op})",
            n.name.as_deref().filter(|s| !s.is_empty()).unwrap_or("<unnamed>")
        );
        let supported = SUPPORTED_OPS.contains(&op) && n.domain.as_deref().unwrap_or("").is_empty();
        if n.input.iter().any(|i| l.poisoned.contains(i)) {
            // Downstream of a node already reported: only a different unsupported op is news.
            if !supported {
                l.problems.push(label);
            }
            l.poisoned.extend(n.output.iter().cloned());
            continue;
        }
        let r = if supported { l.node(idx, n) } else { Err(String::new()) };
        if let Err(why) = r {
            l.problems.push(if why.is_empty() { label } else { format!("{label}: {why}") });
            l.poisoned.extend(n.output.iter().cloned());
        }
    }
    if !l.problems.is_empty() {
        return Err(l.problems);
    }
    let out_layer = match l.values.get(output) {
        Some(v) => v.layer.clone(),
        None => return Err(vec![format!("graph output {output:?} is not computed by any node")]),
    };
    Ok((
        Lowered { layers: l.layers, tensors: l.tensors, input_shape: input.1, approx: l.approx },
        out_layer,
    ))
}
