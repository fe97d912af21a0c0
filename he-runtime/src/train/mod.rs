//! Training on encrypted data: linear regression (mean squared error) and logistic regression
//! (the sigmoid replaced by a polynomial) by plain or Nesterov gradient descent, with the weights
//! encrypted from start to end.
//!
//! # Packing
//! Samples are packed many per ciphertext, one *row* of 2f slots each (f = the feature count
//! with the bias, rounded up to a power of two): the features fill the first f slots and the
//! second half is zero. The server doubles every row once (`z + rot(z, −f)`), so that after
//! the product with the replicated weights `[w, w]` and a rotate-and-sum over f slots, the
//! first f + 1 slots of each row hold the sample's inner product — no masking product, so no
//! level is spent on it. The gradient's sum over samples is a rotate-and-sum over rows
//! (strides 2f … N/4) after the ciphertexts are added; one rotation by −f doubles it back into
//! `[g, g]`. See [`Packing`].
//!
//! # Depth
//! Every scalar (learning rate, 1/n, the polynomial's coefficients, Nesterov's factor) is
//! folded into a constant product of the *input* data, made fresh from the top level each
//! iteration, off the critical path; its encoding scale is chosen so that each gradient term
//! lands exactly on the weights' scale. An iteration then costs 2 levels for linear regression
//! and 3 (degree-3 sigmoid) or 4 (degree 5) for logistic regression; the margins of the final
//! weights take one more. There is no bootstrapping yet: [`TrainConfig::levels_needed`] is
//! checked against the parameters, and [`deep_params`] gives the deepest chain that meets the
//! 128-bit bound (L = 31 at log N = 16: ten iterations of either task with the degree-3
//! sigmoid, seven with the degree-5 one).
//!
//! # Checking
//! [`train_plain`] runs the same iterations on f64 with the same polynomial; the encrypted run
//! ([`EncryptedTrainer`]) decrypts the final weights and, for the report only, the margins or
//! residuals each iteration computes anyway, from which loss and accuracy follow.

mod compile;
mod config;
mod data;
mod encrypted;
mod packing;
mod params;
mod plain;
mod sigmoid;
#[cfg(test)]
mod tests;

pub use compile::{compile, TrainProgram};
pub use config::{Optimizer, Task, TrainConfig};
pub use data::{Dataset, Normaliser, NAMED_DATASETS};
pub use encrypted::{max_abs_diff, pack_inputs, EncryptedRun, EncryptedTrainer, IterationReport};
pub use packing::Packing;
pub use params::deep_params;
pub use plain::{metrics, score, train_plain, PlainRun, PlainStep};
pub use sigmoid::{sigmoid, SigmoidApprox};
