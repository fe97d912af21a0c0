//! Polynomial stand-ins for the logistic sigmoid: the degree-5 Taylor polynomial at 0, or an
//! odd least-squares fit (plus 1/2) on a wider interval.

use crate::error::{Error, Result};

/// The logistic function 1/(1 + e^−x).
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Which polynomial replaces σ in the gradient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SigmoidApprox {
    /// 1/2 + x/4 − x³/48 + x⁵/480 (accurate for |x| ≲ 2).
    Taylor5,
    /// 1/2 + b₁x + b₃x³ (+ b₅x⁵ for degree 5) minimising the squared error to σ on
    /// [−half_width, half_width].
    LeastSquares {
        /// 3 or 5.
        degree: u8,
        /// Half-width of the fitting interval.
        half_width: f64,
    },
}

impl SigmoidApprox {
    /// The least-squares fit of `degree` (3 or 5) on [−half_width, half_width].
    pub fn least_squares(degree: u8, half_width: f64) -> Result<Self> {
        if degree != 3 && degree != 5 {
            return Err(Error::InvalidParameter {
                name: "sigmoid degree",
                reason: format!("{degree} (3 or 5 are supported)"),
            });
        }
        if !(half_width.is_finite() && half_width > 0.0 && half_width <= 64.0) {
            return Err(Error::InvalidParameter {
                name: "sigmoid range",
                reason: format!("half-width {half_width} not in (0, 64]"),
            });
        }
        Ok(Self::LeastSquares { degree, half_width })
    }

    /// Polynomial degree (3 or 5).
    pub fn degree(&self) -> usize {
        match self {
            Self::Taylor5 => 5,
            Self::LeastSquares { degree, .. } => *degree as usize,
        }
    }

    /// The interval on which the polynomial is meant to be used.
    pub fn valid_range(&self) -> f64 {
        match self {
            Self::Taylor5 => 2.0,
            Self::LeastSquares { half_width, .. } => *half_width,
        }
    }

    /// A short name ("taylor5", "lsq3[-8,8]").
    pub fn name(&self) -> String {
        match self {
            Self::Taylor5 => "taylor5".into(),
            Self::LeastSquares { degree, half_width } => {
                format!("lsq{degree}[-{half_width},{half_width}]")
            }
        }
    }

    /// Coefficients [c₀, c₁, c₃, c₅] of σ(x) ≈ c₀ + c₁x + c₃x³ + c₅x⁵ (c₅ = 0 for degree 3).
    pub fn coeffs(&self) -> [f64; 4] {
        match *self {
            Self::Taylor5 => [0.5, 0.25, -1.0 / 48.0, 1.0 / 480.0],
            Self::LeastSquares { degree, half_width } => {
                let b = fit_odd(degree as usize, half_width);
                [0.5, b[0], b[1], b.get(2).copied().unwrap_or(0.0)]
            }
        }
    }

    /// The polynomial at x.
    pub fn eval(&self, x: f64) -> f64 {
        let [c0, c1, c3, c5] = self.coeffs();
        let x2 = x * x;
        c0 + x * (c1 + x2 * (c3 + x2 * c5))
    }
}

/// Odd coefficients b₁, b₃[, b₅] of the least-squares fit of σ(x) − 1/2 on [−r, r].
fn fit_odd(degree: usize, r: f64) -> Vec<f64> {
    // Fit in t = x/r ∈ [−1, 1] (well conditioned), then b_k = β_k / r^k.
    let powers: Vec<i32> = (1..=degree as i32).step_by(2).collect();
    let k = powers.len();
    // Gram matrix of t^i, t^j on [-1, 1]: ∫ t^(i+j) = 2/(i+j+1) (i + j even).
    let mut a = vec![vec![0.0; k + 1]; k];
    for (i, &pi) in powers.iter().enumerate() {
        for (j, &pj) in powers.iter().enumerate() {
            a[i][j] = 2.0 / f64::from(pi + pj + 1);
        }
        // Simpson's rule for ∫ (σ(r t) − 1/2) t^p dt.
        let m = 4000;
        let h = 2.0 / f64::from(m);
        let f = |t: f64| (sigmoid(r * t) - 0.5) * t.powi(pi);
        let mut s = f(-1.0) + f(1.0);
        for q in 1..m {
            let t = -1.0 + h * f64::from(q);
            s += if q % 2 == 1 { 4.0 } else { 2.0 } * f(t);
        }
        a[i][k] = s * h / 3.0;
    }
    // Gaussian elimination (the Gram matrix is symmetric positive definite).
    for c in 0..k {
        let pivot = a[c].clone();
        for row in a.iter_mut().skip(c + 1) {
            let f = row[c] / pivot[c];
            row.iter_mut().zip(&pivot).skip(c).for_each(|(x, p)| *x -= f * p);
        }
    }
    let mut beta = vec![0.0; k];
    for c in (0..k).rev() {
        let s: f64 = (c + 1..k).map(|j| a[c][j] * beta[j]).sum();
        beta[c] = (a[c][k] - s) / a[c][c];
    }
    beta.iter().zip(&powers).map(|(b, &p)| b / r.powi(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taylor_is_the_series() {
        let s = SigmoidApprox::Taylor5;
        for x in [-1.0, -0.3, 0.0, 0.5, 1.0] {
            assert!((s.eval(x) - sigmoid(x)).abs() < 2e-3, "{x}");
        }
        assert_eq!(s.eval(0.0), 0.5);
    }

    #[test]
    fn least_squares_fits_the_wide_range() {
        let s = SigmoidApprox::least_squares(3, 8.0).unwrap();
        let [c0, c1, c3, c5] = s.coeffs();
        assert_eq!((c0, c5), (0.5, 0.0));
        // Kim et al. (2018) report 0.5 + 0.15012x − 0.001593x³ for this fit on [−8, 8].
        assert!((c1 - 0.15012).abs() < 2e-3 && (c3 + 0.001593).abs() < 1e-4, "{c1} {c3}");
        let worst = (-80..=80)
            .map(|i| f64::from(i) / 10.0)
            .map(|x| (s.eval(x) - sigmoid(x)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 0.12, "{worst}");
        let s5 = SigmoidApprox::least_squares(5, 8.0).unwrap();
        let worst5 = (-80..=80)
            .map(|i| f64::from(i) / 10.0)
            .map(|x| (s5.eval(x) - sigmoid(x)).abs())
            .fold(0.0, f64::max);
        assert!(worst5 < worst, "{worst5} vs {worst}");
    }

    #[test]
    fn bad_fits_are_typed_errors() {
        assert!(matches!(
            SigmoidApprox::least_squares(4, 8.0),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(matches!(
            SigmoidApprox::least_squares(3, f64::NAN),
            Err(Error::InvalidParameter { .. })
        ));
    }
}
