//! Writing models: a description back to `hetier-model/1` JSON and tensors to a float64
//! `safetensors` file, so an imported model is saved in the native format and reloads equal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::{json, Value};

use super::{Activation, LayerKind, Model, ModelDesc, Tensor, MODEL_SCHEMA};
use crate::error::{Error, Result};

/// The bytes of a float64 `safetensors` file holding `tensors`.
pub fn tensors_to_safetensors(file: &str, tensors: &BTreeMap<String, Tensor>) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| {
            (n.clone(), t.shape.clone(), t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        })
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (n, s, d) in &bytes {
        let v = TensorView::new(Dtype::F64, s.clone(), d).map_err(|e| Error::WeightsFormat {
            file: file.to_owned(),
            reason: format!("tensor {n}: {e}"),
        })?;
        views.push((n.clone(), v));
    }
    safetensors::serialize(views, &None)
        .map_err(|e| Error::WeightsFormat { file: file.to_owned(), reason: e.to_string() })
}

fn activation_json(a: &Activation) -> Value {
    match a {
        Activation::Square => json!({ "type": "square" }),
        Activation::Poly { coeffs } => json!({ "type": "poly", "coeffs": coeffs }),
        Activation::Chebyshev { func, range, degree, coeffs } => json!({
            "type": "chebyshev", "fn": func, "range": range, "degree": degree, "coeffs": coeffs
        }),
    }
}

impl ModelDesc {
    /// The description as `hetier-model/1` JSON (every layer with explicit `inputs`).
    pub fn to_json(&self, weights_dtype: &str) -> String {
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|l| {
                let mut o = json!({
                    "name": l.name, "kind": l.kind.name(), "inputs": l.inputs,
                    "in_shape": l.in_shape, "out_shape": l.out_shape,
                });
                let extra = match &l.kind {
                    LayerKind::Dense { in_features, out_features, weight, bias } => json!({
                        "in_features": in_features, "out_features": out_features,
                        "weight": weight, "bias": bias,
                    }),
                    LayerKind::Conv2d {
                        in_channels,
                        out_channels,
                        kernel,
                        stride,
                        padding,
                        groups,
                        weight,
                        bias,
                    } => json!({
                        "in_channels": in_channels, "out_channels": out_channels,
                        "kernel": kernel, "stride": stride, "padding": padding,
                        "groups": groups, "weight": weight, "bias": bias,
                    }),
                    LayerKind::Activation(a) => json!({ "activation": activation_json(a) }),
                    LayerKind::AvgPool { kernel, stride, padding } => {
                        json!({ "kernel": kernel, "stride": stride, "padding": padding })
                    }
                    LayerKind::Flatten | LayerKind::Add => json!({}),
                };
                if let (Some(o), Value::Object(e)) = (o.as_object_mut(), extra) {
                    o.extend(e);
                    if let Some(m) = &l.max_abs {
                        o.insert("max_abs".into(), json!({ "train": m.train, "test": m.test }));
                    }
                }
                o
            })
            .collect();
        let doc = json!({
            "schema": MODEL_SCHEMA,
            "name": self.name,
            "description": self.description,
            "input": {
                "shape": self.input.shape, "dtype": self.input.dtype, "scale": self.input.scale,
                "offset": self.input.offset, "layout": self.input.layout,
            },
            "classes": self.classes,
            "layers": layers,
            "weights": self.weights,
            "weights_dtype": weights_dtype,
            "test_set": self.test_set,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }
}

impl Model {
    /// Validates a description against in-memory tensors (as the ONNX importer produces them).
    pub fn from_tensors(desc: ModelDesc, tensors: BTreeMap<String, Tensor>) -> Result<Self> {
        let bytes = tensors_to_safetensors(&desc.weights, &tensors)?;
        Self::from_parts(desc, &bytes)
    }

    /// Every tensor of the model, by name.
    pub fn tensors(&self) -> &BTreeMap<String, Tensor> {
        &self.tensors
    }

    /// Writes `<dir>/<name>.json` and the float64 weights file it names; returns the JSON path.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<PathBuf> {
        let dir = dir.as_ref();
        let io = |p: &Path, e: std::io::Error| Error::ModelIo {
            path: p.display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let wpath = dir.join(&self.desc().weights);
        let bytes = tensors_to_safetensors(&self.desc().weights, &self.tensors)?;
        std::fs::write(&wpath, bytes).map_err(|e| io(&wpath, e))?;
        let jpath = dir.join(format!("{}.json", self.name()));
        std::fs::write(&jpath, self.desc().to_json("float64")).map_err(|e| io(&jpath, e))?;
        Ok(jpath)
    }

    /// Checks a float sample (already in network units) against the input shape.
    pub fn check_values(&self, x: &[f64]) -> Result<()> {
        let want: usize = self.desc().input.shape.iter().product();
        if x.len() != want {
            return Err(Error::ModelInput { expected: want, found: x.len() });
        }
        if let Some(v) = x.iter().find(|v| !v.is_finite()) {
            return Err(Error::ModelFormat {
                reason: format!("input holds the non-finite value {v}"),
            });
        }
        Ok(())
    }
}
