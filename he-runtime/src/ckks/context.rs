//! Precomputed tables for one parameter set: NTT tables of every Q and P prime, the encoder FFT,
//! and the basis-extension constants of hybrid key switching at every level.

use std::sync::Arc;

use rayon::prelude::*;

use super::fft::SpecialFft;
use super::params::Params;
use super::ring::{bit_rev, shoup, BasisExtender, Prime};
use crate::error::{Error, Result};

/// ModUp plan of one digit at one level: extend the digit's limbs to every other Q_l limb and P.
#[derive(Debug)]
pub(crate) struct ModUpPlan {
    /// Prime indices of the digit (a contiguous range of Q).
    pub(crate) digit: std::ops::Range<usize>,
    pub(crate) ext: BasisExtender,
}

/// ModDown plan at one level: extend P to Q_l and multiply by P^-1.
#[derive(Debug)]
pub(crate) struct ModDownPlan {
    pub(crate) ext: BasisExtender,
    /// (P^-1 mod q_i, Shoup) for i ≤ l.
    pub(crate) p_inv: Vec<(u64, u64)>,
    /// (P mod q_i, Shoup) for i ≤ l.
    pub(crate) p_mod: Vec<(u64, u64)>,
}

/// All precomputation for a [`Params`]; build once and share (`Arc`) between encoder,
/// key generator, encryptor and evaluator.
#[derive(Debug)]
pub struct Context {
    params: Params,
    /// Q primes then P primes.
    primes: Vec<Prime>,
    fft: SpecialFft,
    modup: Vec<Vec<ModUpPlan>>,
    moddown: Vec<ModDownPlan>,
    /// rescale[l][i] = (q_l^-1 mod q_i, Shoup) for i < l.
    rescale: Vec<Vec<(u64, u64)>>,
}

impl Context {
    /// Precomputes the tables for `params`.
    pub fn new(params: &Params) -> Result<Arc<Self>> {
        let log_n = params.log_n();
        let all: Vec<u64> = params.q().iter().chain(params.p()).copied().collect();
        let primes: Vec<Prime> =
            all.par_iter().map(|&q| Prime::new(q, log_n)).collect::<Result<Vec<_>>>()?;
        let l1 = params.q().len();
        let k = params.p().len();
        let alpha = params.alpha();
        let p_idx: Vec<usize> = (l1..l1 + k).collect();
        let modup: Vec<Vec<ModUpPlan>> = (0..l1)
            .into_par_iter()
            .map(|level| {
                (0..params.digits_at(level))
                    .map(|j| {
                        let digit = j * alpha..((j + 1) * alpha).min(level + 1);
                        let targets: Vec<usize> = (0..=level)
                            .filter(|i| !digit.contains(i))
                            .chain(p_idx.iter().copied())
                            .collect();
                        let from: Vec<&Prime> = digit.clone().map(|i| &primes[i]).collect();
                        let to: Vec<&Prime> = targets.iter().map(|&i| &primes[i]).collect();
                        let ext = BasisExtender::new(&from, &to)?;
                        Ok(ModUpPlan { digit, ext })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let moddown = (0..l1)
            .map(|level| {
                let from: Vec<&Prime> = p_idx.iter().map(|&i| &primes[i]).collect();
                let to: Vec<&Prime> = (0..=level).map(|i| &primes[i]).collect();
                let ext = BasisExtender::new(&from, &to)?;
                let p_mod: Vec<(u64, u64)> = to
                    .iter()
                    .map(|qi| {
                        let pm = from.iter().fold(1u64, |acc, pj| qi.mul(acc, pj.q % qi.q));
                        (pm, shoup(pm, qi.q))
                    })
                    .collect();
                let p_inv = to
                    .iter()
                    .zip(&p_mod)
                    .map(|(qi, &(pm, _))| {
                        let inv = qi.inv(pm);
                        (inv, shoup(inv, qi.q))
                    })
                    .collect();
                Ok(ModDownPlan { ext, p_inv, p_mod })
            })
            .collect::<Result<Vec<_>>>()?;
        let rescale = (0..l1)
            .map(|l| {
                (0..l)
                    .map(|i| {
                        let qi = &primes[i];
                        let inv = qi.inv(primes[l].q % qi.q);
                        (inv, shoup(inv, qi.q))
                    })
                    .collect()
            })
            .collect();
        if primes.iter().any(|p| p.q == 0) {
            return Err(Error::InvalidParameter { name: "primes", reason: "zero prime".into() });
        }
        Ok(Arc::new(Self {
            params: params.clone(),
            primes,
            fft: SpecialFft::new(params.n()),
            modup,
            moddown,
            rescale,
        }))
    }

    /// The parameter set.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Ring degree N.
    pub fn n(&self) -> usize {
        self.params.n()
    }

    pub(crate) fn prime(&self, i: usize) -> &Prime {
        &self.primes[i]
    }

    pub(crate) fn primes(&self) -> &[Prime] {
        &self.primes
    }

    /// Number of Q primes (L+1).
    pub(crate) fn q_len(&self) -> usize {
        self.params.q().len()
    }

    /// Number of P primes.
    pub(crate) fn p_len(&self) -> usize {
        self.params.p().len()
    }

    pub(crate) fn fft(&self) -> &SpecialFft {
        &self.fft
    }

    pub(crate) fn modup(&self, level: usize) -> &[ModUpPlan] {
        &self.modup[level]
    }

    pub(crate) fn moddown(&self, level: usize) -> &ModDownPlan {
        &self.moddown[level]
    }

    pub(crate) fn rescale_consts(&self, level: usize) -> &[(u64, u64)] {
        &self.rescale[level]
    }

    /// Checks a plaintext's parameters, degree and level against this context.
    pub(crate) fn check_plain<C: AsRef<[u64]>>(
        &self,
        pt: &super::ciphertext::Plaintext<C>,
    ) -> Result<()> {
        self.check_id(pt.params_id)?;
        if pt.n != self.n() {
            return Err(Error::DegreeMismatch { expected: self.n(), found: pt.n });
        }
        if pt.level > self.params.max_level() {
            return Err(Error::InvalidLevel { level: pt.level, max: self.params.max_level() });
        }
        Ok(())
    }

    /// Checks that this context was built for `params` (the parameters a program or plan was
    /// compiled for): `ParamsMismatch` with the expected and this context's fingerprints.
    pub fn check_params(&self, params: &Params) -> Result<()> {
        if self.params == *params {
            Ok(())
        } else {
            Err(Error::ParamsMismatch { expected: params.id(), found: self.params.id() })
        }
    }

    /// Checks that an object made under parameters `id` belongs to this context.
    pub(crate) fn check_id(&self, id: u64) -> Result<()> {
        if id == self.params.id() {
            Ok(())
        } else {
            Err(Error::ParamsMismatch { expected: self.params.id(), found: id })
        }
    }

    /// NTT-domain index permutation of X → X^g: `out[i] = in[perm[i]]`.
    pub(crate) fn galois_perm(&self, g: u64) -> Vec<u32> {
        let log_n = self.params.log_n();
        let n = self.n();
        let mask = 2 * n as u64 - 1;
        (0..n)
            .map(|i| {
                // Slot i of the NTT holds the evaluation at ψ^(2·brv(i)+1).
                let e = 2 * bit_rev(i, log_n) as u64 + 1;
                let e2 = (e * g) & mask;
                bit_rev(((e2 - 1) / 2) as usize, log_n) as u32
            })
            .collect()
    }

    /// The Galois element of a left rotation by `step` slots (negative: right).
    pub fn galois_element_for_step(&self, step: i64) -> u64 {
        let slots = self.params.slots() as i64;
        let k = step.rem_euclid(slots) as u64;
        let m = 2 * self.n() as u64;
        let mut g = 1u64;
        let mut base = 5u64;
        let mut e = k;
        while e > 0 {
            if e & 1 == 1 {
                g = g * base % m;
            }
            base = base * base % m;
            e >>= 1;
        }
        g
    }

    /// The Galois element of complex conjugation, 2N-1.
    pub fn galois_element_conjugate(&self) -> u64 {
        2 * self.n() as u64 - 1
    }
}
