//! The model description (schema `hetier-model/1`, documented in `models/README.md`): serde
//! structs for the JSON and their conversion into typed layers, so an unknown kind or a
//! missing field is an error naming the layer rather than an opaque parse failure.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Value of the description's `schema` field this reader understands.
pub const MODEL_SCHEMA: &str = "hetier-model/1";

/// How a sample is stored and mapped to the network input (`raw * scale + offset`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InputDesc {
    /// Shape of one sample: `[n]` or `[C, H, W]`.
    pub shape: Vec<usize>,
    /// Storage type of the raw values: `uint8` (mapped by scale and offset) or `float32`
    /// (network values given directly, as for imported ONNX models).
    pub dtype: String,
    /// Multiplier applied to the raw values.
    pub scale: f64,
    /// Offset added after scaling.
    pub offset: f64,
    /// Free-form description of the element order.
    #[serde(default)]
    pub layout: String,
}

/// Largest |output| of a layer over the train and test splits.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct MaxAbs {
    /// Over the training split.
    pub train: f64,
    /// Over the held-out split.
    pub test: f64,
}

/// An element-wise polynomial activation.
#[derive(Debug, Clone, PartialEq)]
pub enum Activation {
    /// x².
    Square,
    /// Σ coeffs\[k\]·x^k (ascending powers).
    Poly {
        /// Coefficients c0, c1, ….
        coeffs: Vec<f64>,
    },
    /// Σ coeffs\[k\]·T_k(t) with t = (2x − lo − hi)/(hi − lo).
    Chebyshev {
        /// The approximated function (`relu`, `silu` or `sigmoid`).
        func: String,
        /// The interval [lo, hi] the approximation is made on.
        range: [f64; 2],
        /// Polynomial degree.
        degree: usize,
        /// Chebyshev coefficients, `degree + 1` of them.
        coeffs: Vec<f64>,
    },
}

impl Activation {
    /// Polynomial degree of the activation.
    pub fn degree(&self) -> usize {
        match self {
            Self::Square => 2,
            Self::Poly { coeffs } => coeffs.len().saturating_sub(1),
            Self::Chebyshev { degree, .. } => *degree,
        }
    }

    /// Multiplicative depth: ⌈log2(d+1)⌉ levels for degree d (Paterson–Stockmeyer evaluation),
    /// one for the square (and for an affine map: the rescale of its product).
    pub fn depth(&self) -> usize {
        let d = self.degree();
        if matches!(self, Self::Square) || d <= 1 {
            return 1;
        }
        (usize::BITS - d.leading_zeros()) as usize
    }

    /// Evaluates the activation at `x` in f64 (the plaintext reference).
    pub fn eval(&self, x: f64) -> f64 {
        match self {
            Self::Square => x * x,
            Self::Poly { coeffs } => coeffs.iter().rev().fold(0.0, |acc, c| acc * x + c),
            Self::Chebyshev { range, coeffs, .. } => {
                let t = (2.0 * x - range[0] - range[1]) / (range[1] - range[0]);
                let (mut t0, mut t1) = (1.0, t);
                let mut sum = 0.0;
                for (k, c) in coeffs.iter().enumerate() {
                    let tk = match k {
                        0 => 1.0,
                        1 => t,
                        _ => {
                            let t2 = 2.0 * t * t1 - t0;
                            t0 = t1;
                            t1 = t2;
                            t2
                        }
                    };
                    sum += c * tk;
                }
                sum
            }
        }
    }
}

/// What a layer computes, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerKind {
    /// y = W x + b, W `[out, in]`.
    Dense {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
        /// Weight tensor name.
        weight: String,
        /// Bias tensor name, if any.
        bias: Option<String>,
    },
    /// 2-D cross-correlation, W `[out, in/groups, kh, kw]`.
    Conv2d {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel height and width.
        kernel: [usize; 2],
        /// Vertical and horizontal stride.
        stride: [usize; 2],
        /// Zero padding top, bottom, left, right.
        padding: [usize; 4],
        /// Channel groups (depthwise: groups == in == out).
        groups: usize,
        /// Weight tensor name.
        weight: String,
        /// Bias tensor name, if any.
        bias: Option<String>,
    },
    /// An element-wise polynomial.
    Activation(Activation),
    /// Mean over each window, zero padding counted in the mean.
    AvgPool {
        /// Window height and width.
        kernel: [usize; 2],
        /// Vertical and horizontal stride.
        stride: [usize; 2],
        /// Zero padding top, bottom, left, right.
        padding: [usize; 4],
    },
    /// `[C, H, W]` → `[C·H·W]`.
    Flatten,
    /// Residual add of two equal-shaped values.
    Add,
}

impl LayerKind {
    /// The `kind` string of the description.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Dense { .. } => "dense",
            Self::Conv2d { .. } => "conv2d",
            Self::Activation(_) => "activation",
            Self::AvgPool { .. } => "avgpool",
            Self::Flatten => "flatten",
            Self::Add => "add",
        }
    }

    /// Levels the layer consumes when run encrypted: one rescale per plaintext product
    /// (dense, conv, the 1/k² of a pool) and the activation's depth.
    pub fn depth(&self) -> usize {
        match self {
            Self::Dense { .. } | Self::Conv2d { .. } | Self::AvgPool { .. } => 1,
            Self::Activation(a) => a.depth(),
            Self::Flatten | Self::Add => 0,
        }
    }
}

/// One layer of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Unique name.
    pub name: String,
    /// What it computes.
    pub kind: LayerKind,
    /// Names of the values it reads (`"input"` or earlier layers).
    pub inputs: Vec<String>,
    /// Declared per-sample input shape.
    pub in_shape: Vec<usize>,
    /// Declared per-sample output shape.
    pub out_shape: Vec<usize>,
    /// Recorded output range, if present.
    pub max_abs: Option<MaxAbs>,
}

/// The raw JSON document before layer typing.
#[derive(Debug, Deserialize)]
struct RawModel {
    schema: String,
    name: String,
    #[serde(default)]
    description: String,
    input: InputDesc,
    classes: usize,
    layers: Vec<RawLayer>,
    weights: String,
    #[serde(default)]
    weights_dtype: Option<String>,
    #[serde(default)]
    test_set: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawLayer {
    name: String,
    kind: String,
    in_shape: Vec<usize>,
    out_shape: Vec<usize>,
    #[serde(default)]
    inputs: Option<Vec<String>>,
    #[serde(default)]
    max_abs: Option<MaxAbs>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Deserialize)]
struct DenseFields {
    in_features: usize,
    out_features: usize,
    weight: String,
    bias: Option<String>,
}

#[derive(Deserialize)]
struct ConvFields {
    in_channels: usize,
    out_channels: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 4],
    groups: usize,
    weight: String,
    bias: Option<String>,
}

#[derive(Deserialize)]
struct PoolFields {
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 4],
}

#[derive(Deserialize)]
struct ActFields {
    activation: RawActivation,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawActivation {
    Square,
    Poly {
        coeffs: Vec<f64>,
    },
    Chebyshev {
        #[serde(rename = "fn")]
        func: String,
        range: [f64; 2],
        degree: usize,
        coeffs: Vec<f64>,
    },
    /// ReLU interpolated at the Chebyshev nodes of `range` (degree d: depth ⌈log2(d+1)⌉).
    Relu {
        range: [f64; 2],
        degree: usize,
    },
    /// SiLU, likewise.
    Silu {
        range: [f64; 2],
        degree: usize,
    },
}

/// Largest degree of an interpolated activation (depth 8).
const MAX_INTERPOLATED_DEGREE: usize = 255;

/// The Chebyshev interpolant of `func` on `range` as a description activation.
fn interpolated(layer: &str, func: &str, range: [f64; 2], degree: usize) -> Result<Activation> {
    if degree == 0 || degree > MAX_INTERPOLATED_DEGREE {
        return Err(layer_err(
            layer,
            format!("{func} degree {degree} outside 1..={MAX_INTERPOLATED_DEGREE}"),
        ));
    }
    let f = match func {
        "relu" => crate::nn::poly::relu,
        _ => crate::nn::poly::silu,
    };
    let p = crate::nn::poly::ChebPoly::interpolate(f, range[0], range[1], degree)
        .map_err(|e| layer_err(layer, e.to_string()))?;
    Ok(Activation::Chebyshev { func: func.into(), range, degree, coeffs: p.coeffs })
}

/// A parsed model description (graph only; weights are loaded separately).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDesc {
    /// Model name.
    pub name: String,
    /// Free-form description.
    pub description: String,
    /// Input format.
    pub input: InputDesc,
    /// Number of logits.
    pub classes: usize,
    /// Layers in execution order.
    pub layers: Vec<Layer>,
    /// File name of the weights (same folder).
    pub weights: String,
    /// File name of the test set, if any.
    pub test_set: Option<String>,
}

fn layer_err(layer: &str, reason: impl Into<String>) -> Error {
    Error::ModelLayer { layer: layer.to_owned(), reason: reason.into() }
}

fn fields<T: serde::de::DeserializeOwned>(name: &str, rest: &Map<String, Value>) -> Result<T> {
    serde_json::from_value(Value::Object(rest.clone())).map_err(|e| layer_err(name, e.to_string()))
}

impl ModelDesc {
    /// Parses a JSON description and types every layer (no shape checks yet: see
    /// [`super::Model`]).
    pub fn from_json(text: &str) -> Result<Self> {
        let raw: RawModel =
            serde_json::from_str(text).map_err(|e| Error::ModelFormat { reason: e.to_string() })?;
        if raw.schema != MODEL_SCHEMA {
            return Err(Error::ModelFormat {
                reason: format!("schema {:?}, expected {MODEL_SCHEMA:?}", raw.schema),
            });
        }
        if let Some(dt) = raw.weights_dtype.as_deref() {
            if dt != "float32" && dt != "float64" {
                return Err(Error::ModelFormat { reason: format!("weights_dtype {dt:?}") });
            }
        }
        if raw.input.dtype != "uint8" && raw.input.dtype != "float32" {
            return Err(Error::ModelFormat {
                reason: format!(
                    "input dtype {:?}, expected \"uint8\" or \"float32\"",
                    raw.input.dtype
                ),
            });
        }
        if raw.layers.is_empty() {
            return Err(Error::ModelFormat { reason: "no layers".into() });
        }
        let mut layers = Vec::with_capacity(raw.layers.len());
        for (i, l) in raw.layers.into_iter().enumerate() {
            let name = l.name.as_str();
            let kind = match l.kind.as_str() {
                "dense" => {
                    let f: DenseFields = fields(name, &l.rest)?;
                    LayerKind::Dense {
                        in_features: f.in_features,
                        out_features: f.out_features,
                        weight: f.weight,
                        bias: f.bias,
                    }
                }
                "conv2d" => {
                    let f: ConvFields = fields(name, &l.rest)?;
                    LayerKind::Conv2d {
                        in_channels: f.in_channels,
                        out_channels: f.out_channels,
                        kernel: f.kernel,
                        stride: f.stride,
                        padding: f.padding,
                        groups: f.groups,
                        weight: f.weight,
                        bias: f.bias,
                    }
                }
                "activation" => {
                    let f: ActFields = fields(name, &l.rest)?;
                    LayerKind::Activation(match f.activation {
                        RawActivation::Square => Activation::Square,
                        RawActivation::Poly { coeffs } => Activation::Poly { coeffs },
                        RawActivation::Chebyshev { func, range, degree, coeffs } => {
                            Activation::Chebyshev { func, range, degree, coeffs }
                        }
                        RawActivation::Relu { range, degree } => {
                            interpolated(name, "relu", range, degree)?
                        }
                        RawActivation::Silu { range, degree } => {
                            interpolated(name, "silu", range, degree)?
                        }
                    })
                }
                "avgpool" => {
                    let f: PoolFields = fields(name, &l.rest)?;
                    LayerKind::AvgPool { kernel: f.kernel, stride: f.stride, padding: f.padding }
                }
                "flatten" => LayerKind::Flatten,
                "add" => LayerKind::Add,
                other => {
                    return Err(Error::UnknownLayerKind {
                        layer: l.name.clone(),
                        kind: other.to_owned(),
                    })
                }
            };
            let inputs = match l.inputs {
                Some(v) => v,
                None if i == 0 => vec!["input".to_owned()],
                None => vec![layers.last().map_or_else(String::new, |p: &Layer| p.name.clone())],
            };
            layers.push(Layer {
                name: l.name,
                kind,
                inputs,
                in_shape: l.in_shape,
                out_shape: l.out_shape,
                max_abs: l.max_abs,
            });
        }
        Ok(Self {
            name: raw.name,
            description: raw.description,
            input: raw.input,
            classes: raw.classes,
            layers,
            weights: raw.weights,
            test_set: raw.test_set,
        })
    }
}
