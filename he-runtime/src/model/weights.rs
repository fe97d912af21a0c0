//! Tensors from `safetensors` files: the model's weights (float32 or float64, widened to f64)
//! and the held-out test set (uint8 images, int64 labels, float64 reference logits).

use std::collections::BTreeMap;

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// One tensor, widened to f64, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub data: Vec<f64>,
}

fn format_err(file: &str, reason: impl Into<String>) -> Error {
    Error::WeightsFormat { file: file.to_owned(), reason: reason.into() }
}

fn widen(file: &str, name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f64>> {
    let bad = |w: usize| {
        format_err(file, format!("tensor {name}: {} bytes is not a multiple of {w}", bytes.len()))
    };
    match dtype {
        Dtype::F32 => {
            if !bytes.len().is_multiple_of(4) {
                return Err(bad(4));
            }
            Ok(bytes
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect())
        }
        Dtype::F64 => {
            if !bytes.len().is_multiple_of(8) {
                return Err(bad(8));
            }
            Ok(bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect())
        }
        other => {
            Err(format_err(file, format!("tensor {name}: dtype {other:?}, expected F32 or F64")))
        }
    }
}

/// Every tensor of a weights file, by name.
pub fn load_tensors(file: &str, bytes: &[u8]) -> Result<BTreeMap<String, Tensor>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| format_err(file, e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let data = widen(file, &name, view.dtype(), view.data())?;
        out.insert(name, Tensor { shape: view.shape().to_vec(), data });
    }
    Ok(out)
}

/// The held-out samples of a model with their labels and reference logits.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSet {
    /// Raw sample values, `len() · sample_len` of them.
    pub images: Vec<u8>,
    /// Values per sample.
    pub sample_len: usize,
    /// Class label of each sample.
    pub labels: Vec<i64>,
    /// Reference logits of each sample (`classes` per sample), from the float64 forward pass.
    pub logits: Vec<f64>,
    /// Logits per sample.
    pub classes: usize,
}

impl TestSet {
    /// Parses a test-set file and checks that its tensors agree in sample count.
    pub fn from_bytes(file: &str, bytes: &[u8]) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| format_err(file, e.to_string()))?;
        let get = |name: &str, dtype: Dtype| {
            let v = st.tensor(name).map_err(|e| format_err(file, format!("{name}: {e}")))?;
            if v.dtype() != dtype {
                return Err(format_err(
                    file,
                    format!("{name}: dtype {:?}, expected {dtype:?}", v.dtype()),
                ));
            }
            Ok(v)
        };
        let images = get("images", Dtype::U8)?;
        let labels = get("labels", Dtype::I64)?;
        let logits = get("logits", Dtype::F64)?;
        let n = images.shape().first().copied().unwrap_or(0);
        if n == 0 || labels.shape() != [n] || logits.shape().len() != 2 || logits.shape()[0] != n {
            return Err(format_err(
                file,
                format!(
                    "inconsistent shapes: images {:?}, labels {:?}, logits {:?}",
                    images.shape(),
                    labels.shape(),
                    logits.shape()
                ),
            ));
        }
        let sample_len = images.shape()[1..].iter().product();
        let labels = labels
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        Ok(Self {
            images: images.data().to_vec(),
            sample_len,
            labels,
            classes: logits.shape()[1],
            logits: widen(file, "logits", Dtype::F64, logits.data())?,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set is empty (never true for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Raw values of sample `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * self.sample_len..(i + 1) * self.sample_len]
    }

    /// Reference logits of sample `i`.
    pub fn reference_logits(&self, i: usize) -> &[f64] {
        &self.logits[i * self.classes..(i + 1) * self.classes]
    }
}

/// Index of the largest value (the first one on ties); `None` for an empty slice.
pub fn argmax(v: &[f64]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &x) in v.iter().enumerate() {
        if best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| i)
}
