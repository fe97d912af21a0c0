//! [`Model`]: a model description with every tensor its layers name, validated completely
//! (kinds, tensors, shapes, depth) when it is loaded. Compiling it is in `compile.rs`, the f64
//! reference pass in `reference.rs`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::ckks::Params;
use crate::error::{Error, Result};
use crate::model::desc::{Activation, Layer, LayerKind, ModelDesc};
use crate::model::weights::{load_tensors, Tensor, TestSet};

/// A validated model: its description and every tensor its layers name, with shapes checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    desc: ModelDesc,
    pub(super) tensors: BTreeMap<String, Tensor>,
    /// Cumulative depth at each layer's output, in layer order.
    depth_after: Vec<usize>,
    dir: Option<PathBuf>,
    weights_hash: u64,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::ModelIo { path: path.display().to_string(), reason: e.to_string() })
}

fn shape_err(layer: &str, reason: String) -> Error {
    Error::ModelLayer { layer: layer.to_owned(), reason }
}

impl Model {
    /// Loads `<dir>/<name>.json` and the weights file it names from the same folder.
    pub fn load(json_path: impl AsRef<Path>) -> Result<Self> {
        let json_path = json_path.as_ref();
        let text = String::from_utf8(read(json_path)?)
            .map_err(|e| Error::ModelFormat { reason: format!("not UTF-8: {e}") })?;
        let desc = ModelDesc::from_json(&text)?;
        let dir = json_path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let bytes = read(&dir.join(&desc.weights))?;
        let mut m = Self::from_parts(desc, &bytes)?;
        m.dir = Some(dir);
        Ok(m)
    }

    /// Validates a parsed description against the bytes of its weights file.
    pub fn from_parts(desc: ModelDesc, weights: &[u8]) -> Result<Self> {
        let tensors = load_tensors(&desc.weights, weights)?;
        let depth_after = validate(&desc, &tensors)?;
        let weights_hash = xxhash_rust::xxh3::xxh3_64(weights);
        Ok(Self { desc, tensors, depth_after, dir: None, weights_hash })
    }

    /// The description.
    pub fn desc(&self) -> &ModelDesc {
        &self.desc
    }

    /// A hash of the weights file's bytes (identifies encoded weights stored in a pool).
    pub fn weights_hash(&self) -> u64 {
        self.weights_hash
    }

    /// Model name.
    pub fn name(&self) -> &str {
        &self.desc.name
    }

    /// Layers in execution order.
    pub fn layers(&self) -> &[Layer] {
        &self.desc.layers
    }

    /// A tensor by name (every name a layer uses is present after validation).
    pub fn tensor(&self, name: &str) -> Result<&Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| Error::MissingTensor { layer: String::new(), tensor: name.to_owned() })
    }

    /// Multiplicative depth of the whole model (levels consumed on the deepest path).
    pub fn depth(&self) -> usize {
        self.depth_after.iter().copied().max().unwrap_or(0)
    }

    /// Checks that the parameters give enough levels, naming the first layer that would run
    /// out. Call it before generating keys.
    pub fn check_depth(&self, params: &Params) -> Result<()> {
        let available = params.max_level();
        for (l, &after) in self.desc.layers.iter().zip(&self.depth_after) {
            if after > available {
                let needed = l.kind.depth();
                return Err(Error::ModelTooDeep {
                    layer: l.name.clone(),
                    needed,
                    available: available.saturating_sub(after - needed),
                });
            }
        }
        Ok(())
    }

    /// Maps a raw sample to the network input (`raw * scale + offset`).
    pub fn prepare_input(&self, raw: &[u8]) -> Result<Vec<f64>> {
        let want: usize = self.desc.input.shape.iter().product();
        if raw.len() != want {
            return Err(Error::ModelInput { expected: want, found: raw.len() });
        }
        let (s, o) = (self.desc.input.scale, self.desc.input.offset);
        Ok(raw.iter().map(|&v| f64::from(v) * s + o).collect())
    }

    /// Loads the model's test set (from the folder the description was loaded from).
    pub fn test_set(&self) -> Result<TestSet> {
        let file = self.desc.test_set.as_deref().ok_or_else(|| Error::ModelFormat {
            reason: format!("model {} names no test_set", self.desc.name),
        })?;
        let dir = self.dir.as_deref().unwrap_or(Path::new("."));
        let ts = TestSet::from_bytes(file, &read(&dir.join(file))?)?;
        let want: usize = self.desc.input.shape.iter().product();
        if ts.sample_len != want || ts.classes != self.desc.classes {
            return Err(Error::WeightsFormat {
                file: file.to_owned(),
                reason: format!(
                    "samples of {} values / {} logits, model needs {want} / {}",
                    ts.sample_len, ts.classes, self.desc.classes
                ),
            });
        }
        Ok(ts)
    }
}

/// Checks every layer in order and returns the cumulative depth after each.
fn validate(desc: &ModelDesc, tensors: &BTreeMap<String, Tensor>) -> Result<Vec<usize>> {
    let mut shapes: HashMap<&str, (Vec<usize>, usize)> = HashMap::new();
    shapes.insert("input", (desc.input.shape.clone(), 0));
    let mut depth_after = Vec::with_capacity(desc.layers.len());
    for l in &desc.layers {
        let name = l.name.as_str();
        if shapes.contains_key(name) {
            return Err(shape_err(name, "duplicate layer name".into()));
        }
        let mut ins = Vec::new();
        for i in &l.inputs {
            let v = shapes.get(i.as_str()).ok_or_else(|| {
                shape_err(name, format!("input {i:?} is not an earlier layer or \"input\""))
            })?;
            ins.push(v.clone());
        }
        let want_inputs = if l.kind == LayerKind::Add { 2 } else { 1 };
        if ins.len() != want_inputs {
            return Err(shape_err(name, format!("{} inputs, {} expected", ins.len(), want_inputs)));
        }
        let in_shape = &ins[0].0;
        if &l.in_shape != in_shape {
            return Err(shape_err(
                name,
                format!("in_shape {:?} but its input has shape {in_shape:?}", l.in_shape),
            ));
        }
        let out = infer(l, in_shape, &ins, tensors)?;
        if out != l.out_shape {
            return Err(shape_err(
                name,
                format!("out_shape {:?} but the layer produces {out:?}", l.out_shape),
            ));
        }
        let depth = ins.iter().map(|(_, d)| *d).max().unwrap_or(0) + l.kind.depth();
        depth_after.push(depth);
        shapes.insert(name, (out, depth));
    }
    let last = desc.layers.last().map(|l| l.out_shape.clone()).unwrap_or_default();
    if last != [desc.classes] {
        return Err(Error::ModelFormat {
            reason: format!("last layer has shape {last:?}, classes = {}", desc.classes),
        });
    }
    Ok(depth_after)
}

fn check_tensor(
    layer: &str,
    tensors: &BTreeMap<String, Tensor>,
    name: &str,
    expected: &[usize],
) -> Result<()> {
    let t = tensors
        .get(name)
        .ok_or_else(|| Error::MissingTensor { layer: layer.to_owned(), tensor: name.to_owned() })?;
    if t.shape != expected {
        return Err(Error::TensorShape {
            layer: layer.to_owned(),
            tensor: name.to_owned(),
            expected: expected.to_vec(),
            found: t.shape.clone(),
        });
    }
    if let Some(v) = t.data.iter().find(|v| !v.is_finite()) {
        return Err(shape_err(layer, format!("tensor {name} holds the non-finite value {v}")));
    }
    Ok(())
}

fn window_out(layer: &str, size: usize, pad: usize, k: usize, s: usize) -> Result<usize> {
    if k == 0 || s == 0 || size + pad < k {
        return Err(shape_err(
            layer,
            format!("window {k} stride {s} does not fit an extent of {size} (+{pad} padding)"),
        ));
    }
    Ok((size + pad - k) / s + 1)
}

fn infer(
    l: &Layer,
    in_shape: &[usize],
    ins: &[(Vec<usize>, usize)],
    tensors: &BTreeMap<String, Tensor>,
) -> Result<Vec<usize>> {
    let name = l.name.as_str();
    let chw = || -> Result<[usize; 3]> {
        match *in_shape {
            [c, h, w] => Ok([c, h, w]),
            _ => Err(shape_err(name, format!("needs a [C, H, W] input, got {in_shape:?}"))),
        }
    };
    match &l.kind {
        LayerKind::Dense { in_features, out_features, weight, bias } => {
            if in_shape != [*in_features] || *in_features == 0 || *out_features == 0 {
                return Err(shape_err(
                    name,
                    format!("dense {in_features}→{out_features} on an input of shape {in_shape:?}"),
                ));
            }
            check_tensor(name, tensors, weight, &[*out_features, *in_features])?;
            if let Some(b) = bias {
                check_tensor(name, tensors, b, &[*out_features])?;
            }
            Ok(vec![*out_features])
        }
        LayerKind::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            groups,
            weight,
            bias,
        } => {
            let [c, h, w] = chw()?;
            let g = *groups;
            if c != *in_channels || g == 0 || c % g != 0 || out_channels % g != 0 {
                return Err(shape_err(
                    name,
                    format!(
                        "{in_channels}→{out_channels} channels in {g} groups on {c} input channels"
                    ),
                ));
            }
            let oh = window_out(name, h, padding[0] + padding[1], kernel[0], stride[0])?;
            let ow = window_out(name, w, padding[2] + padding[3], kernel[1], stride[1])?;
            check_tensor(name, tensors, weight, &[*out_channels, c / g, kernel[0], kernel[1]])?;
            if let Some(b) = bias {
                check_tensor(name, tensors, b, &[*out_channels])?;
            }
            Ok(vec![*out_channels, oh, ow])
        }
        LayerKind::Activation(a) => {
            if let Activation::Chebyshev { range, degree, coeffs, .. } = a {
                if coeffs.len() != degree + 1
                    || range[0].partial_cmp(&range[1]) != Some(std::cmp::Ordering::Less)
                {
                    return Err(shape_err(
                        name,
                        format!(
                            "Chebyshev of degree {degree} with {} coefficients on {range:?}",
                            coeffs.len()
                        ),
                    ));
                }
            }
            if let Activation::Poly { coeffs } = a {
                if coeffs.is_empty() {
                    return Err(shape_err(name, "polynomial without coefficients".into()));
                }
            }
            Ok(in_shape.to_vec())
        }
        LayerKind::AvgPool { kernel, stride, padding } => {
            let [c, h, w] = chw()?;
            let oh = window_out(name, h, padding[0] + padding[1], kernel[0], stride[0])?;
            let ow = window_out(name, w, padding[2] + padding[3], kernel[1], stride[1])?;
            Ok(vec![c, oh, ow])
        }
        LayerKind::Flatten => Ok(vec![in_shape.iter().product()]),
        LayerKind::Add => {
            if ins[0].0 != ins[1].0 {
                return Err(shape_err(
                    name,
                    format!("adds shapes {:?} and {:?}", ins[0].0, ins[1].0),
                ));
            }
            Ok(in_shape.to_vec())
        }
    }
}
