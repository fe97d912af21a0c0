//! Layer compilers: each emits its ops into a [`crate::nn::ProgramBuilder`] and has a plain
//! f64 reference implementation for tests.

pub mod activation;
pub mod batchnorm;
pub mod conv;
pub mod dense;
pub(crate) mod linear;
pub mod mux;
pub mod residual;

pub use activation::{PolyActivation, Square};
pub use batchnorm::BatchNorm;
pub use conv::{AvgPool2d, Conv2d};
pub use dense::Dense;
pub use mux::{mux_input_layout, MuxConv, MuxPool};
pub use residual::Residual;
