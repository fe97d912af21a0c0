//! What a training run is: the task, the optimiser, and the settings checked against the
//! parameters' depth.

use super::sigmoid::SigmoidApprox;
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
