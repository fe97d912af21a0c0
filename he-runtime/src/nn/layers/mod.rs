//! Layer compilers: each emits its ops into a [`crate::nn::ProgramBuilder`] and has a plain
//! f64 reference implementation for tests.

pub mod activation;
pub mod dense;
pub(crate) mod linear;

pub use activation::{PolyActivation, Square};
pub use dense::Dense;
