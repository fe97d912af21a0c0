//! Polynomials in the Chebyshev basis on an interval [a, b], computed in f64: interpolation at
//! Chebyshev nodes (for ReLU, SiLU or any function), exact conversion of monomial polynomials
//! (the sigmoid Taylor polynomial), Clenshaw evaluation, and the depth an encrypted evaluation
//! needs.

use crate::error::{Error, Result};

/// p(x) = Σ_k c_k T_k(t) with t = (2x − a − b)/(b − a) mapping [a, b] onto [−1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct ChebPoly {
    /// Left end of the interval.
    pub a: f64,
    /// Right end of the interval.
    pub b: f64,
    /// Chebyshev coefficients c_0..c_d.
    pub coeffs: Vec<f64>,
}

/// ⌈log2(d + 1)⌉: the multiplicative depth of a degree-d polynomial (0 for constants).
pub fn depth_for_degree(d: usize) -> usize {
    (d + 1).next_power_of_two().trailing_zeros() as usize
}

/// The largest degree evaluable within `depth` levels: 2^depth − 1.
pub fn degree_for_depth(depth: usize) -> usize {
    (1usize << depth.min(30)) - 1
}

fn check_interval(a: f64, b: f64) -> Result<()> {
    if a.is_finite() && b.is_finite() && a < b {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name: "interval",
            reason: format!("[{a}, {b}] is not a finite non-empty interval"),
        })
    }
}

impl ChebPoly {
    /// Interpolates `f` at the d+1 Chebyshev nodes of [a, b] (degree d).
    pub fn interpolate(f: impl Fn(f64) -> f64, a: f64, b: f64, degree: usize) -> Result<Self> {
        check_interval(a, b)?;
        let m = degree + 1;
        let nodes: Vec<f64> =
            (0..m).map(|j| (std::f64::consts::PI * (j as f64 + 0.5) / m as f64).cos()).collect();
        let fv: Vec<f64> = nodes.iter().map(|&t| f(0.5 * (b - a) * t + 0.5 * (a + b))).collect();
        let coeffs = (0..m)
            .map(|k| {
                let s: f64 = (0..m)
                    .map(|j| {
                        let theta = std::f64::consts::PI * (j as f64 + 0.5) / m as f64;
                        fv[j] * (k as f64 * theta).cos()
                    })
                    .sum();
                s * if k == 0 { 1.0 } else { 2.0 } / m as f64
            })
            .collect();
        Ok(Self { a, b, coeffs })
    }

    /// The monomial polynomial Σ m_k x^k rewritten in the Chebyshev basis of [a, b] (exact up
    /// to rounding, since interpolation at d+1 nodes reproduces a degree-d polynomial).
    pub fn from_monomial(m: &[f64], a: f64, b: f64) -> Result<Self> {
        let horner = |x: f64| m.iter().rev().fold(0.0, |acc, &c| acc * x + c);
        let mut p = Self::interpolate(horner, a, b, m.len().saturating_sub(1))?;
        p.trim(1e-14);
        Ok(p)
    }

    /// Sets coefficients below `tol` (relative to the largest) to exactly zero and drops
    /// trailing zeros, so odd or even functions skip the unused terms.
    pub fn trim(&mut self, tol: f64) {
        let big = self.coeffs.iter().fold(0.0f64, |m, c| m.max(c.abs()));
        for c in &mut self.coeffs {
            if c.abs() <= tol * big {
                *c = 0.0;
            }
        }
        while self.coeffs.len() > 1 && self.coeffs.last() == Some(&0.0) {
            self.coeffs.pop();
        }
    }

    /// Degree (after trailing zeros).
    pub fn degree(&self) -> usize {
        self.coeffs.iter().rposition(|&c| c != 0.0).unwrap_or(0)
    }

    /// Multiplicative depth of evaluating it on a ciphertext already mapped to t.
    pub fn depth(&self) -> usize {
        depth_for_degree(self.degree())
    }

    /// t = (2x − a − b)/(b − a) as (α, β) with t = αx + β.
    pub fn affine(&self) -> (f64, f64) {
        let alpha = 2.0 / (self.b - self.a);
        (alpha, -(self.a + self.b) / (self.b - self.a))
    }

    /// Whether the interval is [−1, 1], so t = x needs no work.
    pub fn is_unit_interval(&self) -> bool {
        self.a == -1.0 && self.b == 1.0
    }

    /// p(x) by the Clenshaw recurrence.
    pub fn eval(&self, x: f64) -> f64 {
        let (alpha, beta) = self.affine();
        let t = alpha * x + beta;
        let (mut b1, mut b2) = (0.0, 0.0);
        for &c in self.coeffs.iter().skip(1).rev() {
            let b0 = 2.0 * t * b1 - b2 + c;
            b2 = b1;
            b1 = b0;
        }
        t * b1 - b2 + self.coeffs.first().copied().unwrap_or(0.0)
    }

    /// Largest |p(x) − f(x)| over `samples` evenly spaced points of [a, b].
    pub fn max_error(&self, f: impl Fn(f64) -> f64, samples: usize) -> f64 {
        (0..samples.max(2))
            .map(|i| {
                let x = self.a + (self.b - self.a) * i as f64 / (samples.max(2) - 1) as f64;
                (self.eval(x) - f(x)).abs()
            })
            .fold(0.0, f64::max)
    }
}

/// ReLU, max(x, 0).
pub fn relu(x: f64) -> f64 {
    x.max(0.0)
}

/// SiLU, x·σ(x).
pub fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// The logistic function σ(x).
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Monomial coefficients of the sigmoid Taylor polynomial 1/2 + x/4 − x³/48 + x⁵/480.
pub const SIGMOID_TAYLOR: [f64; 6] = [0.5, 0.25, 0.0, -1.0 / 48.0, 0.0, 1.0 / 480.0];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_ceil_log2_of_degree_plus_one() {
        let want = [(0, 0), (1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 3), (8, 4), (31, 5)];
        for (d, k) in want {
            assert_eq!(depth_for_degree(d), k, "degree {d}");
        }
        assert_eq!(degree_for_depth(4), 15);
    }

    #[test]
    fn monomial_conversion_is_exact() {
        let p = ChebPoly::from_monomial(&SIGMOID_TAYLOR, -4.0, 4.0).unwrap();
        assert_eq!(p.degree(), 5);
        for i in 0..=80 {
            let x = -4.0 + 0.1 * i as f64;
            let want = 0.5 + x / 4.0 - x.powi(3) / 48.0 + x.powi(5) / 480.0;
            assert!((p.eval(x) - want).abs() < 1e-12, "{x}");
        }
        // Even Chebyshev terms of an odd-plus-constant polynomial vanish.
        assert_eq!(p.coeffs[2], 0.0);
        assert_eq!(p.coeffs[4], 0.0);
    }

    #[test]
    fn interpolation_converges_for_smooth_functions() {
        let p = ChebPoly::interpolate(silu, -8.0, 8.0, 31).unwrap();
        assert!(p.max_error(silu, 2001) < 1e-3, "{}", p.max_error(silu, 2001));
        let p = ChebPoly::interpolate(f64::exp, -1.0, 1.0, 15).unwrap();
        assert!(p.max_error(f64::exp, 501) < 1e-13);
    }

    #[test]
    fn bad_interval_is_a_typed_error() {
        assert!(matches!(
            ChebPoly::interpolate(relu, 1.0, -1.0, 3),
            Err(Error::InvalidParameter { name: "interval", .. })
        ));
    }
}
