//! The plaintext reference: the same iterations on f64 (same polynomial, same learning rate
//! and momentum), written in the textbook form rather than the encrypted run's folded one, so
//! that agreement checks the folding too.

use super::config::{Task, TrainConfig};
use super::data::Dataset;
use super::sigmoid::sigmoid;
use crate::error::{Error, Result};

/// The state at one iteration: the weights the gradient is evaluated at and what follows.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainStep {
    /// Weights (bias first).
    pub weights: Vec<f64>,
    /// Per sample: the residual w·x̃ − y (linreg) or the margin y·w·x̃ (logreg).
    pub margins: Vec<f64>,
    /// Mean squared error (linreg) or mean logistic loss log(1 + e^−margin) (logreg).
    pub loss: f64,
    /// Fraction of positive margins (logreg).
    pub accuracy: Option<f64>,
}

/// A whole reference run.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainRun {
    /// Iterations 0..=K: entry t is evaluated at w_t (w_K the final weights).
    pub steps: Vec<PlainStep>,
}

impl PlainRun {
    /// The final weights w_K.
    pub fn weights(&self) -> &[f64] {
        self.steps.last().map_or(&[], |s| &s.weights)
    }
}

/// The rows the run packs: x̃ = (1, x) for linreg, z = y·(1, x) for logreg.
pub(crate) fn design_rows(task: &Task, data: &Dataset) -> Vec<Vec<f64>> {
    data.x
        .iter()
        .zip(&data.y)
        .map(|(x, &y)| {
            let s = if matches!(task, Task::LinReg) { 1.0 } else { y };
            std::iter::once(s).chain(x.iter().map(|v| s * v)).collect()
        })
        .collect()
}

/// Loss and accuracy from residuals or margins.
pub fn metrics(task: &Task, margins: &[f64]) -> (f64, Option<f64>) {
    let n = margins.len().max(1) as f64;
    match task {
        Task::LinReg => (margins.iter().map(|r| r * r).sum::<f64>() / n, None),
        Task::LogReg(_) => {
            // log(1 + e^−m) = −log σ(m), computed without overflow for large |m|.
            let loss = margins.iter().map(|&m| -sigmoid(m).max(1e-300).ln()).sum::<f64>() / n;
            let acc = margins.iter().filter(|&&m| m > 0.0).count() as f64 / n;
            (loss, Some(acc))
        }
    }
}

/// Held-out score of `weights` (bias first): R² for linreg, accuracy for logreg.
pub fn score(task: &Task, weights: &[f64], data: &Dataset) -> Result<f64> {
    let rows = design_rows(task, data);
    if weights.len() != rows[0].len() {
        return Err(Error::FeatureCount { row: 0, expected: weights.len(), found: rows[0].len() });
    }
    let dot = |r: &[f64]| r.iter().zip(weights).map(|(a, b)| a * b).sum::<f64>();
    Ok(match task {
        Task::LinReg => {
            let mean = data.y.iter().sum::<f64>() / data.len() as f64;
            let ss_res: f64 = rows.iter().zip(&data.y).map(|(r, y)| (dot(r) - y).powi(2)).sum();
            let ss_tot: f64 = data.y.iter().map(|y| (y - mean).powi(2)).sum();
            1.0 - ss_res / ss_tot
        }
        Task::LogReg(_) => rows.iter().filter(|r| dot(r) > 0.0).count() as f64 / data.len() as f64,
    })
}

/// Runs `cfg` on (normalised) `data` in f64.
pub fn train_plain(cfg: &TrainConfig, data: &Dataset) -> Result<PlainRun> {
    let rows = design_rows(&cfg.task, data);
    let n = rows.len() as f64;
    let width = rows[0].len();
    let margins_at = |w: &[f64]| -> Vec<f64> {
        rows.iter()
            .zip(&data.y)
            .map(|(r, &y)| {
                let d: f64 = r.iter().zip(w).map(|(a, b)| a * b).sum();
                if matches!(cfg.task, Task::LinReg) {
                    d - y
                } else {
                    d
                }
            })
            .collect()
    };
    let step_at = |w: Vec<f64>| {
        let margins = margins_at(&w);
        let (loss, accuracy) = metrics(&cfg.task, &margins);
        PlainStep { weights: w, margins, loss, accuracy }
    };
    let mut w = vec![0.0; width];
    let mut v = w.clone();
    let mut steps = Vec::with_capacity(cfg.iters + 1);
    for t in 0..cfg.iters {
        let step = step_at(w.clone());
        // G = −γ ∇(loss) for linreg; +γ ∇(log-likelihood) with σ → polynomial for logreg.
        let mut g = vec![0.0; width];
        for (r, &m) in rows.iter().zip(&step.margins) {
            let coef = match cfg.task {
                Task::LinReg => -m,
                Task::LogReg(s) => s.eval(-m),
            };
            g.iter_mut().zip(r).for_each(|(gj, rj)| *gj += coef * rj);
        }
        let v_next: Vec<f64> = w.iter().zip(&g).map(|(wj, gj)| wj + cfg.lr / n * gj).collect();
        let mu = cfg.optimizer.momentum(t);
        w = v_next.iter().zip(&v).map(|(a, b)| a + mu * (a - b)).collect();
        v = v_next;
        steps.push(step);
    }
    steps.push(step_at(w));
    Ok(PlainRun { steps })
}
