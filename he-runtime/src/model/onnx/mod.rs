//! ONNX import: an ONNX file (protobuf `ModelProto`) lowered to a hetier model description and
//! its tensors, so compiling, running encrypted and the plaintext reference are the same as for
//! a native description.
//!
//! Supported operators (opset-independent subset, default domain only):
//!
//! | ONNX | lowered to |
//! | --- | --- |
//! | `Gemm` (transA = 0), `MatMul` with a constant right operand | `dense` |
//! | `Conv` 2-D: groups, strides, pads, `auto_pad`, dilation 1 | `conv2d` |
//! | `BatchNormalization`; `Add`/`Mul` with a scalar or per-channel constant | folded into the `dense`/`conv2d` before it when it is that layer's only reader; otherwise a depthwise 1×1 `conv2d` or diagonal `dense` |
//! | `Add` of two values | `add` (residual) |
//! | `Mul(x, x)`, `Pow(x, 2)` | `square` activation |
//! | `Relu`, `Sigmoid`, `Tanh`, `Swish`, and `Mul(x, Sigmoid(x))` (SiLU) | Chebyshev interpolant of the function on a given or calibrated range |
//! | `AveragePool` (zero padding counted), `GlobalAveragePool` | `avgpool` |
//! | `Flatten` (axis 1), `Reshape` to `[N, features]` | `flatten` (nothing for a vector) |
//! | `Identity`, `Dropout`, `Constant` | nothing (aliases and constants) |
//!
//! The graph has one data input `[N, F]` or `[N, C, H, W]` (the batch axis is dropped) and one
//! output. Anything else is [`Error::OnnxUnsupported`] naming every node that cannot be lowered;
//! a file that is not a valid ModelProto is [`Error::OnnxFormat`].
//!
//! The protobuf messages are hand-written prost structs ([`proto`]) with the field numbers of
//! `onnx.proto`: no `protoc` at build time and no generated code to keep in sync.

mod lower;
pub mod proto;
mod tensor;

use std::collections::{BTreeMap, HashMap, HashSet};

use prost::Message;

pub use lower::SUPPORTED_OPS;

use super::{InputDesc, LayerKind, Model, ModelDesc};
use crate::error::{Error, Result};
use lower::{chebyshev, ActSpec};

/// How an import approximates activations and names the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOptions {
    /// Model name (default: the graph's name, else `onnx_model`).
    pub name: Option<String>,
    /// The interval every activation polynomial is fitted on (when not calibrated).
    pub act_range: Option<[f64; 2]>,
    /// Chebyshev degree of the activation polynomials (depth ⌈log2(degree + 1)⌉).
    pub act_degree: usize,
    /// Sample inputs, whole samples back to back (`[N, *input shape]` flattened); when given,
    /// each activation's range is set to ±1.1 × the largest |input| it sees on them
    /// (overrides `act_range`).
    pub calibration: Vec<f64>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self { name: None, act_range: None, act_degree: 15, calibration: Vec::new() }
    }
}

/// An activation whose range was chosen by the import, for reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationRange {
    /// Layer name.
    pub layer: String,
    /// Function approximated (`relu`, `sigmoid`, `tanh`, `silu`).
    pub func: String,
    /// Interval of the polynomial.
    pub range: [f64; 2],
    /// Largest |input| seen on the calibration samples (`None` without calibration).
    pub observed: Option<f64>,
}

/// An imported model with what the import decided.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The validated model.
    pub model: Model,
    /// Every approximated activation with its range.
    pub activations: Vec<ActivationRange>,
}

fn format_err(reason: impl Into<String>) -> Error {
    Error::OnnxFormat { reason: reason.into() }
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .collect();
    if s.is_empty() {
        "onnx_model".into()
    } else {
        s
    }
}

/// The per-sample shape of the graph input (batch axis dropped).
fn input_shape(name: &str, dims: &[super::onnx::proto::Dimension]) -> Result<Vec<usize>> {
    let fixed: Vec<Option<usize>> = dims
        .iter()
        .map(|d| d.dim_value.and_then(|v| usize::try_from(v).ok()).filter(|&v| v > 0))
        .collect();
    let per: Vec<Option<usize>> = match fixed.as_slice() {
        [f] => vec![*f],
        [b, rest @ ..] if matches!(b, None | Some(1)) && (rest.len() == 1 || rest.len() == 3) => {
            rest.to_vec()
        }
        _ => {
            return Err(format_err(format!(
                "input {name:?} has {} axes; [N, F] or [N, C, H, W] with a batch axis of 1 or symbolic is supported",
                dims.len()
            )))
        }
    };
    per.into_iter()
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| format_err(format!("input {name:?} has a symbolic or zero non-batch axis")))
}

/// Imports the bytes of an ONNX file.
pub fn import(bytes: &[u8], opts: &ImportOptions) -> Result<Imported> {
    let m = proto::ModelProto::decode(bytes)
        .map_err(|e| format_err(format!("not a protobuf ModelProto ({e})")))?;
    let g = m.graph.as_ref().ok_or_else(|| format_err("the file has no graph"))?;
    if g.node.is_empty() {
        return Err(format_err("the graph has no nodes"));
    }
    let mut consts = HashMap::new();
    for t in &g.initializer {
        let name = t.name.clone().unwrap_or_default();
        consts.insert(name, tensor::decode(t)?);
    }
    let data_inputs: Vec<_> =
        g.input.iter().filter(|i| !consts.contains_key(i.name.as_deref().unwrap_or(""))).collect();
    let [inp] = data_inputs.as_slice() else {
        return Err(format_err(format!(
            "the graph has {} data inputs; exactly one is supported",
            data_inputs.len()
        )));
    };
    let in_name = inp.name.clone().unwrap_or_default();
    let dims = inp
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .map(|s| s.dim.clone())
        .ok_or_else(|| format_err(format!("input {in_name:?} has no tensor shape")))?;
    let shape = input_shape(&in_name, &dims)?;
    let [out] = g.output.as_slice() else {
        return Err(format_err(format!(
            "the graph has {} outputs; exactly one is supported",
            g.output.len()
        )));
    };
    let out_name = out.name.clone().unwrap_or_default();
    if !(1..=255).contains(&opts.act_degree) {
        return Err(Error::InvalidParameter {
            name: "act_degree",
            reason: format!("{} outside 1..=255", opts.act_degree),
        });
    }
    let calibrated = !opts.calibration.is_empty();
    let act = ActSpec {
        range: if calibrated { None } else { opts.act_range },
        degree: opts.act_degree,
        calibrated,
    };
    let (low, out_layer) = lower::lower(g, (&in_name, shape.clone()), consts, &out_name, act)
        .map_err(|nodes| Error::OnnxUnsupported { nodes })?;
    match low.layers.last() {
        Some(l) if l.name == out_layer => {}
        _ => {
            return Err(format_err(format!(
                "the graph output {out_name:?} is not computed by the last lowered layer"
            )))
        }
    }
    let classes = match low.layers.last().map(|l| l.out_shape.as_slice()) {
        Some(&[k]) => k,
        other => {
            return Err(format_err(format!(
                "the output has per-sample shape {other:?}; a vector is needed (add a Flatten)"
            )))
        }
    };
    let name = sanitize(
        opts.name.as_deref().or(g.name.as_deref().filter(|s| !s.is_empty())).unwrap_or(""),
    );
    let desc = ModelDesc {
        name: name.clone(),
        description: format!(
            "imported from ONNX (producer {:?}, {} nodes)",
            m.producer_name.unwrap_or_default(),
            g.node.len()
        ),
        input: InputDesc {
            shape: low.input_shape.clone(),
            dtype: "float32".into(),
            scale: 1.0,
            offset: 0.0,
            layout: "row-major per sample, batch axis dropped".into(),
        },
        classes,
        layers: low.layers,
        weights: format!("{name}.safetensors"),
        test_set: None,
    };
    let mut model = Model::from_tensors(desc, low.tensors)?;
    let per: usize = low.input_shape.iter().product();
    if !opts.calibration.len().is_multiple_of(per) {
        return Err(Error::InvalidParameter {
            name: "calibration",
            reason: format!(
                "{} values are not whole samples of {per} values",
                opts.calibration.len()
            ),
        });
    }
    let samples: Vec<&[f64]> = opts.calibration.chunks(per).collect();
    let mut activations = Vec::new();
    // Calibrate in layer order, each range measured through the polynomials already fixed.
    for a in &low.approx {
        let mut observed = 0.0f64;
        let input_of = model.layers()[a.layer].inputs[0].clone();
        let idx = model.layers().iter().position(|l| l.name == input_of);
        for &x in &samples {
            let outs = model.forward_all(x)?;
            let v = idx.map_or(x, |i| outs[i].as_slice());
            observed = v.iter().fold(observed, |m, y| m.max(y.abs()));
        }
        let r = if observed > 0.0 { 1.1 * observed } else { 1.0 };
        let act = chebyshev(a.func, [-r, r], opts.act_degree).map_err(|reason| {
            Error::ModelLayer { layer: model.layers()[a.layer].name.clone(), reason }
        })?;
        let mut desc = model.desc().clone();
        desc.layers[a.layer].kind = LayerKind::Activation(act);
        model = Model::from_tensors(desc, model.tensors().clone())?;
        activations.push(ActivationRange {
            layer: model.layers()[a.layer].name.clone(),
            func: a.func.into(),
            range: [-r, r],
            observed: Some(observed),
        });
    }
    let calibrated_layers: HashSet<usize> = low.approx.iter().map(|a| a.layer).collect();
    for (i, l) in model.layers().iter().enumerate() {
        if let (LayerKind::Activation(super::Activation::Chebyshev { func, range, .. }), false) =
            (&l.kind, calibrated_layers.contains(&i))
        {
            activations.push(ActivationRange {
                layer: l.name.clone(),
                func: func.clone(),
                range: *range,
                observed: None,
            });
        }
    }
    Ok(Imported { model, activations })
}

/// Imports an ONNX file from disk.
pub fn import_file(path: impl AsRef<std::path::Path>, opts: &ImportOptions) -> Result<Imported> {
    let path = path.as_ref();
    let bytes = std::fs::read(path)
        .map_err(|e| Error::ModelIo { path: path.display().to_string(), reason: e.to_string() })?;
    import(&bytes, opts)
}

/// Tensors by name, as the importer hands them to [`Model::from_tensors`].
pub type Tensors = BTreeMap<String, super::Tensor>;

#[cfg(test)]
mod tests;

/// Loads a model from a path: an ONNX file (by its `.onnx` extension) is imported with
/// `opts`; anything else is read as a `hetier-model/1` JSON description with its weights.
pub fn load_any(path: impl AsRef<std::path::Path>, opts: &ImportOptions) -> Result<Imported> {
    let path = path.as_ref();
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) {
        return import_file(path, opts);
    }
    Ok(Imported { model: Model::load(path)?, activations: Vec::new() })
}

/// Parameters for a model of multiplicative depth `depth`, smallest first: the 128-bit
/// presets with enough levels, or — only with `insecure_test` — fast sets at log N = 12, 13
/// and 14 for tests (not secure: they exceed the 128-bit bound at those ring degrees).
pub fn candidate_params(depth: usize, insecure_test: bool) -> Result<Vec<crate::ckks::Params>> {
    use crate::ckks::{ParamsBuilder, Preset};
    if insecure_test {
        return (12..=14)
            .map(|log_n| {
                let mut b = ParamsBuilder::new(log_n);
                b.q_bits(50, &vec![40; depth.max(1)]).special_bits(50).dnum(3).log_scale(40.0);
                b.allow_insecure().build()
            })
            .collect();
    }
    let sets: Vec<Preset> = [Preset::N13, Preset::N14, Preset::N15, Preset::N16]
        .into_iter()
        .filter(|p| p.depth() >= depth)
        .collect();
    if sets.is_empty() {
        return Err(Error::InvalidParameter {
            name: "depth",
            reason: format!(
                "the model needs {depth} levels, more than the largest preset (30 at log N = 16); models that need bootstrapping are not supported yet"
            ),
        });
    }
    sets.into_iter().map(Preset::params).collect()
}

/// The smallest parameters of [`candidate_params`] the model compiles for (enough levels and
/// slots for its widest layer), with the compiled program.
pub fn compile_smallest(
    model: &Model,
    insecure_test: bool,
) -> Result<(crate::ckks::Params, super::Compiled)> {
    let mut last = None;
    for p in candidate_params(model.depth(), insecure_test)? {
        match model.compile(&p) {
            Ok(c) => return Ok((p, c)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(Error::InvalidParameter { name: "params", reason: "no candidates".into() }))
}
