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
mod data;
mod encrypted;
mod packing;
mod params;
mod plain;
mod sigmoid;
#[cfg(test)]
mod tests;

pub use compile::{compile, TrainProgram};
pub use data::{Dataset, Normaliser, NAMED_DATASETS};
pub use encrypted::{max_abs_diff, pack_inputs, EncryptedRun, EncryptedTrainer, IterationReport};
pub use packing::Packing;
pub use params::deep_params;
pub use plain::{metrics, score, train_plain, PlainRun, PlainStep};
pub use sigmoid::{sigmoid, SigmoidApprox};

use crate::error::{Error, Result};

/// What is trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Task {
    /// Linear regression, loss (1/2n) Σ (w·x̃ − y)² (x̃ = (1, x)).
    LinReg,
    /// Logistic regression with labels ±1, maximising Σ log σ(y·w·x̃) with σ replaced by the
    /// given polynomial in the gradient.
    LogReg(SigmoidApprox),
}

impl Task {
    /// Levels one iteration consumes.
    pub fn depth_per_iter(&self) -> usize {
        match self {
            Task::LinReg => 2,
            // u → u² → u⁴ → u⁴·(u·z): one more than the polynomial's own depth.
            Task::LogReg(s) => 1 + if s.degree() >= 5 { 3 } else { 2 },
        }
    }

    /// A short name ("linreg", "logreg (taylor5)").
    pub fn name(&self) -> String {
        match self {
            Task::LinReg => "linreg".into(),
            Task::LogReg(s) => format!("logreg ({})", s.name()),
        }
    }
}

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimizer {
    /// w ← w − γ∇.
    Gd,
    /// Nesterov's accelerated gradient: v_{t+1} = w_t − γ∇(w_t), w_{t+1} = v_{t+1} +
    /// μ_t (v_{t+1} − v_t) with μ_t = (λ_t − 1)/λ_{t+1}, λ_0 = 1,
    /// λ_{t+1} = (1 + √(1 + 4λ_t²))/2.
    Nesterov,
}

impl Optimizer {
    /// Momentum factor μ_t of iteration t (0 for plain gradient descent).
    pub fn momentum(self, t: usize) -> f64 {
        match self {
            Optimizer::Gd => 0.0,
            Optimizer::Nesterov => {
                let next = |l: f64| (1.0 + (1.0 + 4.0 * l * l).sqrt()) / 2.0;
                let mut lam = 1.0;
                for _ in 0..t {
                    lam = next(lam);
                }
                (lam - 1.0) / next(lam)
            }
        }
    }

    /// "gd" or "nesterov".
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::Gd => "gd",
            Optimizer::Nesterov => "nesterov",
        }
    }
}

/// One training run's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    /// The task.
    pub task: Task,
    /// The optimiser.
    pub optimizer: Optimizer,
    /// Learning rate γ (the gradient is the mean over samples).
    pub lr: f64,
    /// Number of iterations K.
    pub iters: usize,
}

impl TrainConfig {
    /// Levels the run needs: K iterations plus one for the margins of the final weights.
    pub fn levels_needed(&self) -> usize {
        self.task.depth_per_iter() * self.iters + 1
    }

    /// Checks the settings and that the run fits into `levels` levels (L of the parameters).
    pub fn check(&self, levels: usize) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::InvalidParameter {
                name: "learning rate",
                reason: format!("{} is not a positive number", self.lr),
            });
        }
        if self.iters == 0 {
            return Err(Error::InvalidParameter {
                name: "iterations",
                reason: "at least one iteration is needed".into(),
            });
        }
        let needed = self.levels_needed();
        if needed > levels {
            let per_iter = self.task.depth_per_iter();
            return Err(Error::TrainingTooDeep {
                task: format!("{} / {}", self.task.name(), self.optimizer.name()),
                iters: self.iters,
                per_iter,
                needed,
                available: levels,
                max_iters: levels.saturating_sub(1) / per_iter,
            });
        }
        Ok(())
    }
}
