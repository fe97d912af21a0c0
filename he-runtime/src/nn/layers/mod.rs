//! Layer compilers: each emits its ops into a [`crate::nn::ProgramBuilder`] and has a plain
//! f64 reference implementation for tests.

pub mod activation;
pub mod batchnorm;
pub mod conv;
pub mod dense;
pub(crate) mod linear;
pub mod residual;

pub use activation::{PolyActivation, Square};
pub use batchnorm::BatchNorm;
pub use conv::{AvgPool2d, Conv2d};
pub use dense::Dense;
pub use residual::Residual;

use crate::error::{Error, Result};
use crate::nn::layout::{Layout, Tensor};
use crate::nn::program::ObjId;

/// The one ciphertext of `t`, or a typed error naming `layer` if it has several.
pub(crate) fn single(layer: &str, t: Tensor) -> Result<(ObjId, Layout)> {
    match t.cts.as_slice() {
        [c] => Ok((*c, t.layout)),
        cts => Err(Error::LayerShape {
            layer: layer.into(),
            reason: format!("output spans {} ciphertexts; use compile_tensor", cts.len()),
        }),
    }
}
