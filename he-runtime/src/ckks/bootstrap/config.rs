//! The shape of a bootstrapping circuit: level budgets, EvalMod's range and polynomial.

use super::chebyshev;
use crate::error::{Error, Result};
use crate::nn::poly::ChebPoly;

/// What a bootstrapping circuit looks like; [`Default`] is the level budget {3, 3}, K = 12,
/// two double-angle steps (each multiplies EvalMod's noise by up to 4), the arcsine correction,
/// full slots and a sparse ephemeral secret of weight 32
/// (whose ModRaise overflow has σ ≈ 1.7, so |I| < 12 fails with probability ~10^-12 per
/// coefficient).
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapConfig {
    /// Levels (BSGS factors) of CoeffToSlot.
    pub cts_levels: usize,
    /// Levels (BSGS factors) of SlotToCoeff.
    pub stc_levels: usize,
    /// EvalMod's input range: ModRaise overflows |I| < K are removed.
    pub k: f64,
    /// Double-angle steps after the cosine interpolant.
    pub double_angle: u32,
    /// Hamming weight of the ephemeral sparse secret, or `None` to bootstrap under the dense
    /// secret (then K must cover its much larger overflow).
    pub sparse_secret: Option<usize>,
    /// Follow the sine by arcsin(u)/(2π) ≈ (u + u³/6)/(2π) (two more levels): removes the
    /// sine's relative error (2πε)²/6, which dominates for messages concentrated in few
    /// coefficients (a constant vector).
    pub arcsine: bool,
    /// Slots bootstrapped: `None` for all N/2, or a power of two n < N/2 for a sparsely packed
    /// message (its slot vector repeats with period n, the plaintext lies in the subring
    /// X^(N/2n)); sparse bootstraps run smaller DFTs and a single EvalMod.
    pub slots: Option<usize>,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            cts_levels: 3,
            stc_levels: 3,
            k: 12.0,
            double_angle: 2,
            sparse_secret: Some(32),
            arcsine: true,
            slots: None,
        }
    }
}

impl BootstrapConfig {
    /// The Chebyshev coefficients on [−1, 1] of cos(2π(K·t − 1/4)/2^r), of the lowest degree
    /// whose interpolation error is below 2^-41 (the double angles scale it by 4^r, to about
    /// the noise of the levels it runs on).
    pub(crate) fn cosine(&self) -> Result<ChebPoly> {
        if !(self.k.is_finite() && self.k >= 1.0 && self.k <= 1024.0) {
            return Err(Error::InvalidParameter {
                name: "bootstrap K",
                reason: format!("K = {} must be in 1..=1024", self.k),
            });
        }
        if self.double_angle > 8 {
            return Err(Error::InvalidParameter {
                name: "double-angle steps",
                reason: format!("{} steps; at most 8 are supported", self.double_angle),
            });
        }
        let (k, r) = (self.k, self.double_angle);
        let f = move |t: f64| {
            (2.0 * std::f64::consts::PI * (k * t - 0.25) / f64::from(1u32 << r)).cos()
        };
        let mut best = None;
        for degree in 8..=255 {
            let p = ChebPoly::interpolate(f, -1.0, 1.0, degree)?;
            if p.max_error(f, 4001) < 2f64.powi(-41) {
                best = Some(p);
                break;
            }
        }
        best.ok_or(Error::InvalidParameter {
            name: "bootstrap K",
            reason: format!("no interpolant of degree ≤ 255 for K = {k} with {r} double angles"),
        })
    }

    /// The slot count for a ring of `full` = N/2 slots: a typed error unless it is a power of
    /// two in 1..=N/2.
    pub fn slot_count(&self, full: usize) -> Result<usize> {
        match self.slots {
            None => Ok(full),
            Some(n) if n.is_power_of_two() && n <= full => Ok(n),
            Some(n) => Err(Error::InvalidParameter {
                name: "bootstrap slots",
                reason: format!("{n} slots: must be a power of two in 1..={full} (N/2)"),
            }),
        }
    }

    /// Levels the circuit consumes: CoeffToSlot, EvalMod, SlotToCoeff.
    pub fn depth(&self) -> Result<(usize, usize, usize)> {
        for (name, v) in [("cts_levels", self.cts_levels), ("stc_levels", self.stc_levels)] {
            if v == 0 {
                return Err(Error::InvalidParameter {
                    name,
                    reason: "a DFT needs at least one level".into(),
                });
            }
        }
        let p = self.cosine()?;
        let poly = chebyshev::depth(&p.coeffs, 64).ok_or(Error::InvalidParameter {
            name: "bootstrap K",
            reason: "the EvalMod polynomial needs more than 64 levels".into(),
        })?;
        let arcsine = if self.arcsine { 2 } else { 0 };
        Ok((self.cts_levels, poly + self.double_angle as usize + arcsine, self.stc_levels))
    }
}
