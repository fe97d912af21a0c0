//! Models: a graph description (JSON, schema `hetier-model/1`) plus `safetensors` weights,
//! validated completely — kinds, tensors, shapes and the depth the parameters must provide —
//! before any key is generated; a float64 reference forward pass; and the full-size layer
//! tables plan mode uses ([`tables`]).

pub(crate) mod bootstrapped;
pub(crate) mod compile;
mod desc;
mod export;
pub mod factors;
mod imagenet;
mod multiplexed;
pub mod onnx;
mod reference;
mod synthetic;
pub mod tables;
mod validated;
mod weights;
pub mod zoo;

pub use bootstrapped::{Packing, DEFAULT_MARGIN};
pub use compile::Compiled;
pub use desc::{Activation, InputDesc, Layer, LayerKind, MaxAbs, ModelDesc, MODEL_SCHEMA};
pub use export::tensors_to_safetensors;
pub use validated::Model;
pub use weights::{argmax, load_tensors, Tensor, TestSet};

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod tests_relu;
