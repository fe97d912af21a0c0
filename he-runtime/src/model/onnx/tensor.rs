//! Constant tensors and node attributes of an ONNX graph, decoded and checked: every length
//! is compared with the shape before anything is allocated from it.

use super::proto::{data_type, AttributeProto, NodeProto, TensorProto};
use crate::error::{Error, Result};

/// A constant (initializer or `Constant` node) widened to f64, row-major.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Const {
    /// Shape (ONNX dims, batch axis included where the file has one).
    pub dims: Vec<usize>,
    /// Values.
    pub data: Vec<f64>,
}

fn format_err(reason: impl Into<String>) -> Error {
    Error::OnnxFormat { reason: reason.into() }
}

/// Largest element count accepted for one constant (2^31 values, 16 GiB as f64).
const MAX_ELEMENTS: usize = 1 << 31;

/// Decodes a tensor's values, whichever field holds them.
pub(crate) fn decode(t: &TensorProto) -> Result<Const> {
    let name = t.name.as_deref().unwrap_or("");
    if t.data_location == Some(1) || !t.external_data.is_empty() {
        return Err(format_err(format!(
            "tensor {name:?} keeps its data in an external file, which is not supported"
        )));
    }
    let mut dims = Vec::with_capacity(t.dims.len());
    let mut count: usize = 1;
    for &d in &t.dims {
        let d = usize::try_from(d)
            .map_err(|_| format_err(format!("tensor {name:?} has a negative dimension {d}")))?;
        count = count.checked_mul(d).filter(|&c| c <= MAX_ELEMENTS).ok_or_else(|| {
            format_err(format!("tensor {name:?} of shape {:?} is too large", t.dims))
        })?;
        dims.push(d);
    }
    let dt = t.data_type.unwrap_or(0);
    let width = match dt {
        data_type::FLOAT | data_type::INT32 => 4,
        data_type::DOUBLE | data_type::INT64 => 8,
        other => {
            return Err(format_err(format!(
            "tensor {name:?} has data type {other}; float, double, int32 and int64 are supported"
        )))
        }
    };
    let data: Vec<f64> = match &t.raw_data {
        Some(raw) => {
            if raw.len() != count * width {
                return Err(format_err(format!(
                    "tensor {name:?} of shape {dims:?} needs {} raw bytes, has {}",
                    count * width,
                    raw.len()
                )));
            }
            match dt {
                data_type::FLOAT => raw
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
                data_type::INT32 => raw
                    .chunks_exact(4)
                    .map(|c| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
                data_type::DOUBLE => raw
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
                _ => raw
                    .chunks_exact(8)
                    .map(|c| {
                        i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f64
                    })
                    .collect(),
            }
        }
        None => match dt {
            data_type::FLOAT => t.float_data.iter().map(|&v| f64::from(v)).collect(),
            data_type::INT32 => t.int32_data.iter().map(|&v| f64::from(v)).collect(),
            data_type::DOUBLE => t.double_data.clone(),
            _ => t.int64_data.iter().map(|&v| v as f64).collect(),
        },
    };
    if data.len() != count {
        return Err(format_err(format!(
            "tensor {name:?} of shape {dims:?} holds {} values, needs {count}",
            data.len()
        )));
    }
    if let Some(v) = data.iter().find(|v| !v.is_finite()) {
        return Err(format_err(format!("tensor {name:?} holds the non-finite value {v}")));
    }
    Ok(Const { dims, data })
}

/// Typed access to a node's attributes.
pub(crate) struct Attrs<'a> {
    node: &'a NodeProto,
}

impl<'a> Attrs<'a> {
    /// The attributes of `node`.
    pub fn of(node: &'a NodeProto) -> Self {
        Self { node }
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name.as_deref() == Some(name))
    }

    /// An integer attribute, or `default`.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).and_then(|a| a.i).unwrap_or(default)
    }

    /// A float attribute, or `default`.
    pub fn float(&self, name: &str, default: f64) -> f64 {
        self.get(name).and_then(|a| a.f).map_or(default, f64::from)
    }

    /// An integer-list attribute, if present.
    pub fn ints(&self, name: &str) -> Option<&'a [i64]> {
        self.get(name).map(|a| a.ints.as_slice())
    }

    /// A string attribute, if present.
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).and_then(|a| a.s.as_ref()).map(|s| String::from_utf8_lossy(s).into_owned())
    }

    /// A tensor attribute, if present.
    pub fn tensor(&self, name: &str) -> Option<&'a TensorProto> {
        self.get(name).and_then(|a| a.t.as_ref())
    }
}
