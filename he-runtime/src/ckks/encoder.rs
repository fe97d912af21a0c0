//! The CKKS encoder: complex (or real) slot vectors ↔ plaintext polynomials through the
//! canonical embedding, at any scale and level.

use std::sync::Arc;

use rayon::prelude::*;

use super::ciphertext::Plaintext;
use super::context::Context;
use super::fft::Complex64;
use super::hoisting::ExtendedPlaintext;
use super::ring::{neg_mod, sub_mod};
use crate::error::{Error, Result};

/// Encodes and decodes slot vectors; N/2 complex slots, shorter inputs are zero-padded.
#[derive(Debug, Clone)]
pub struct Encoder {
    ctx: Arc<Context>,
}

impl Encoder {
    /// An encoder for the context's parameters.
    pub fn new(ctx: &Arc<Context>) -> Self {
        Self { ctx: Arc::clone(ctx) }
    }

    /// Encodes real values at `level` and `scale`.
    pub fn encode_real(&self, values: &[f64], level: usize, scale: f64) -> Result<Plaintext> {
        let v: Vec<Complex64> = values.iter().map(|&x| Complex64::new(x, 0.0)).collect();
        self.encode(&v, level, scale)
    }

    /// [`Self::encode_real`] into a caller's buffer of (level+1)·N words (e.g. a scratch
    /// buffer charged to a DRAM budget), returned as the plaintext.
    pub fn encode_real_into<O: AsRef<[u64]> + AsMut<[u64]>>(
        &self,
        values: &[f64],
        level: usize,
        scale: f64,
        mut out: O,
    ) -> Result<Plaintext<O>> {
        let v: Vec<Complex64> = values.iter().map(|&x| Complex64::new(x, 0.0)).collect();
        self.check_level_scale(level, scale)?;
        let n = self.ctx.n();
        let words = out.as_mut();
        if words.len() != (level + 1) * n {
            return Err(Error::BufferLength { expected: (level + 1) * n, found: words.len() });
        }
        let coeffs = self.slot_coefficients(&v)?;
        let primes: Vec<usize> = (0..=level).collect();
        self.reduce_limbs_slice(coeffs.iter().copied(), scale, &primes, words)?;
        let slots = Some(slot_period(&v, self.ctx.params().slots()));
        Ok(Plaintext { data: out, level, scale, n, params_id: self.ctx.params().id(), slots })
    }

    /// Encodes complex values at `level` and `scale`.
    pub fn encode(&self, values: &[Complex64], level: usize, scale: f64) -> Result<Plaintext> {
        let primes: Vec<usize> = (0..=level).collect();
        let data = self.encode_limbs(values, level, scale, &primes)?;
        let n = self.ctx.n();
        let slots = Some(slot_period(values, self.ctx.params().slots()));
        Ok(Plaintext { data, level, scale, n, params_id: self.ctx.params().id(), slots })
    }

    /// Encodes complex values at `level` and `scale` over the extended basis q_0..q_level, P
    /// (the same integer polynomial as [`Self::encode`], with the key-switching primes' limbs
    /// added), for products with rotations left in that basis by double hoisting
    /// ([`Evaluator::rotate_mul_sum`](super::Evaluator::rotate_mul_sum)).
    pub fn encode_extended(
        &self,
        values: &[Complex64],
        level: usize,
        scale: f64,
    ) -> Result<ExtendedPlaintext> {
        let q_len = self.ctx.q_len();
        let primes: Vec<usize> = (0..=level).chain(q_len..q_len + self.ctx.p_len()).collect();
        let data = self.encode_limbs(values, level, scale, &primes)?;
        let slots = Some(slot_period(values, self.ctx.params().slots()));
        Ok(ExtendedPlaintext { data, level, scale, params_id: self.ctx.params().id(), slots })
    }

    /// The NTT-form limbs, modulo the context primes `primes`, of round(scale·values) placed
    /// by the canonical embedding.
    fn encode_limbs(
        &self,
        values: &[Complex64],
        level: usize,
        scale: f64,
        primes: &[usize],
    ) -> Result<Vec<u64>> {
        self.check_level_scale(level, scale)?;
        let coeffs = self.slot_coefficients(values)?;
        self.reduce_limbs(&coeffs, scale, primes)
    }

    /// The real coefficients (N of them, unscaled) of the polynomial whose canonical embedding
    /// is `values`: what [`Self::encode_coefficients_extended`] takes, so that a vector encoded
    /// many times at different scales pays its FFT once.
    pub(crate) fn slot_coefficients(&self, values: &[Complex64]) -> Result<Vec<f64>> {
        let ctx = &self.ctx;
        let slots = ctx.params().slots();
        if values.len() > slots {
            return Err(Error::TooManyValues { len: values.len(), slots });
        }
        let mut v = vec![Complex64::default(); slots];
        v[..values.len()].copy_from_slice(values);
        ctx.fft().inverse(&mut v);
        let mut coeffs = vec![0f64; ctx.n()];
        for (i, z) in v.iter().enumerate() {
            coeffs[i] = z.re;
            coeffs[i + slots] = z.im;
        }
        Ok(coeffs)
    }

    /// [`Self::encode_extended`]'s words from [`Self::slot_coefficients`]' output, written into
    /// the first (level+1+K)·N words of `out` (any contents before).
    pub(crate) fn encode_coefficients_extended(
        &self,
        coeffs: &[f64],
        level: usize,
        scale: f64,
        out: &mut [u64],
    ) -> Result<()> {
        self.encode_extended_from(coeffs.len(), coeffs.iter().copied(), level, scale, out)
    }

    /// [`Self::encode_coefficients_extended`] of coefficients kept as the bit patterns of
    /// their `f64`s (`f64::to_bits`): how a container of words, such as a store block, holds
    /// them.
    pub(crate) fn encode_coefficient_bits_extended(
        &self,
        bits: &[u64],
        level: usize,
        scale: f64,
        out: &mut [u64],
    ) -> Result<()> {
        let coeffs = bits.iter().map(|&b| f64::from_bits(b));
        self.encode_extended_from(bits.len(), coeffs, level, scale, out)
    }

    fn encode_extended_from(
        &self,
        count: usize,
        coeffs: impl Iterator<Item = f64>,
        level: usize,
        scale: f64,
        out: &mut [u64],
    ) -> Result<()> {
        self.check_level_scale(level, scale)?;
        if count != self.ctx.n() {
            return Err(Error::DegreeMismatch { expected: self.ctx.n(), found: count });
        }
        let q_len = self.ctx.q_len();
        let primes: Vec<usize> = (0..=level).chain(q_len..q_len + self.ctx.p_len()).collect();
        let words = primes.len() * self.ctx.n();
        if out.len() < words {
            return Err(Error::BufferLength { expected: words, found: out.len() });
        }
        self.reduce_limbs_slice(coeffs, scale, &primes, out)
    }

    fn check_level_scale(&self, level: usize, scale: f64) -> Result<()> {
        let max = self.ctx.params().max_level();
        if level > max {
            return Err(Error::InvalidLevel { level, max });
        }
        if !(scale.is_finite() && scale >= 1.0) {
            return Err(Error::InvalidParameter {
                name: "scale",
                reason: format!("scale {scale} must be finite and at least 1"),
            });
        }
        Ok(())
    }

    /// round(scale·coeffs) modulo each of the context primes `primes`, in NTT form.
    fn reduce_limbs(&self, unscaled: &[f64], scale: f64, primes: &[usize]) -> Result<Vec<u64>> {
        self.reduce_limbs_into(unscaled, scale, primes, Vec::new())
    }

    /// [`Self::reduce_limbs`] in `data` (reused: any length and contents).
    fn reduce_limbs_into(
        &self,
        unscaled: &[f64],
        scale: f64,
        primes: &[usize],
        mut data: Vec<u64>,
    ) -> Result<Vec<u64>> {
        // Every word is written; shrinking a reused buffer writes nothing.
        data.resize(primes.len() * self.ctx.n(), 0);
        self.reduce_limbs_slice(unscaled.iter().copied(), scale, primes, &mut data)?;
        Ok(data)
    }

    /// [`Self::reduce_limbs`] into `data` (primes.len()·N words, all written).
    fn reduce_limbs_slice(
        &self,
        unscaled: impl Iterator<Item = f64>,
        scale: f64,
        primes: &[usize],
        data: &mut [u64],
    ) -> Result<()> {
        let ctx = &self.ctx;
        let n = ctx.n();
        let coeffs: Vec<f64> = unscaled.map(|c| (c * scale).round()).collect();
        if let Some(&bad) = coeffs.iter().find(|c| !c.is_finite()) {
            return Err(Error::EncodingOverflow { value: bad / scale, scale_log2: scale.log2() });
        }
        let small = coeffs.iter().all(|c| c.abs() < 9.0e18);
        data[..primes.len() * n].par_chunks_mut(n).zip(primes.par_iter()).for_each(|(limb, &i)| {
            let p = ctx.prime(i);
            if small {
                for (o, &c) in limb.iter_mut().zip(&coeffs) {
                    *o = p.reduce_i64(c as i64);
                }
            } else {
                for (o, &c) in limb.iter_mut().zip(&coeffs) {
                    *o = f64_to_residue(c, p);
                }
            }
            p.ntt(limb);
        });
        Ok(())
    }

    /// Decodes a plaintext into its N/2 complex slots.
    pub fn decode<C: AsRef<[u64]>>(&self, pt: &Plaintext<C>) -> Result<Vec<Complex64>> {
        self.ctx.check_plain(pt)?;
        let l1 = pt.level + 1;
        let coeff = pt.data.as_ref()[..l1 * self.ctx.n()].to_vec();
        self.decode_limbs(coeff, l1, pt.scale)
    }

    /// [`Self::decode`] of a plaintext given up by the caller: its limbs leave NTT form where
    /// they lie, so nothing of the plaintext's size is copied (for a plaintext decrypted into a
    /// budgeted buffer, see [`crate::ckks::Decryptor::decrypt_into`]).
    pub fn decode_in_place<C: AsRef<[u64]> + AsMut<[u64]>>(
        &self,
        mut pt: Plaintext<C>,
    ) -> Result<Vec<Complex64>> {
        self.ctx.check_plain(&pt)?;
        let l1 = pt.level + 1;
        let scale = pt.scale;
        let n = self.ctx.n();
        self.decode_limbs(&mut pt.data.as_mut()[..l1 * n], l1, scale)
    }

    /// [`Self::decode_in_place`], the real parts of the slots.
    pub fn decode_real_in_place<C: AsRef<[u64]> + AsMut<[u64]>>(
        &self,
        pt: Plaintext<C>,
    ) -> Result<Vec<f64>> {
        Ok(self.decode_in_place(pt)?.into_iter().map(|z| z.re).collect())
    }

    /// The slots of `l1` NTT-form limbs at `scale`; the limbs are left in coefficient form.
    fn decode_limbs(
        &self,
        mut coeff: impl AsMut<[u64]>,
        l1: usize,
        scale: f64,
    ) -> Result<Vec<Complex64>> {
        let ctx = &self.ctx;
        let n = ctx.n();
        let slots = n / 2;
        let coeff = coeff.as_mut();
        coeff.par_chunks_mut(n).enumerate().for_each(|(i, limb)| ctx.prime(i).intt(limb));
        let values = crt_center(ctx, coeff, l1);
        let inv = 1.0 / scale;
        let mut v: Vec<Complex64> =
            (0..slots).map(|i| Complex64::new(values[i] * inv, values[i + slots] * inv)).collect();
        ctx.fft().forward(&mut v);
        Ok(v)
    }

    /// Decodes a plaintext into the real parts of its slots.
    pub fn decode_real<C: AsRef<[u64]>>(&self, pt: &Plaintext<C>) -> Result<Vec<f64>> {
        Ok(self.decode(pt)?.into_iter().map(|z| z.re).collect())
    }
}

/// x mod q for an integral f64 of any magnitude.
/// The smallest power-of-two period of `values` zero-padded to `slots` values: n for a
/// sparsely packed message (n values repeated), `slots` for a full one.
fn slot_period(values: &[Complex64], slots: usize) -> usize {
    let at = |i: usize| values.get(i).copied().unwrap_or_default();
    let mut p = 1;
    while p < slots && !(p..slots).all(|i| at(i) == at(i % p)) {
        p *= 2;
    }
    p
}

pub(crate) fn f64_to_residue(x: f64, p: &super::ring::Prime) -> u64 {
    let bits = x.abs().to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64 - 1075;
    let mant = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    let r = if exp >= 0 {
        p.mul(mant % p.q, p.pow(2, exp as u64))
    } else {
        (mant >> (-exp).min(63)) % p.q
    };
    if x < 0.0 {
        neg_mod(r, p.q)
    } else {
        r
    }
}

/// Centred CRT reconstruction of every coefficient from `l1` coefficient-form limbs, as f64.
/// Mixed-radix (Garner) digits of x + H and of H = (Q-1)/2 are subtracted digit by digit from
/// the top, so a small centred value is recovered without cancellation.
fn crt_center(ctx: &Context, coeff: &[u64], l1: usize) -> Vec<f64> {
    let n = ctx.n();
    let primes = &ctx.primes()[..l1];
    if l1 == 1 {
        let q = primes[0].q;
        return coeff[..n]
            .iter()
            .map(|&x| if x > q / 2 { -((q - x) as f64) } else { x as f64 })
            .collect();
    }
    // inv_prefix[i] = (q_0 ⋯ q_{i-1})^-1 mod q_i.
    let inv_prefix: Vec<u64> = (0..l1)
        .map(|i| {
            let p = &primes[i];
            let prod = primes[..i].iter().fold(1u64, |acc, pk| p.mul(acc, pk.q % p.q));
            p.inv(prod)
        })
        .collect();
    // q_mod[i][k] = q_k mod q_i.
    let q_mod: Vec<Vec<u64>> =
        primes.iter().map(|p| primes.iter().map(|pk| pk.q % p.q).collect()).collect();
    let garner = |x: &[u64], digits: &mut [u64]| {
        for i in 0..l1 {
            let p = &primes[i];
            // Value of the digits so far, mod q_i, by Horner from the top digit.
            let mut acc = 0u64;
            for k in (0..i).rev() {
                acc = p.mul(acc, q_mod[i][k]);
                acc = super::ring::add_mod(acc, p.reduce_u64(digits[k]), p.q);
            }
            digits[i] = p.mul(sub_mod(x[i], acc, p.q), inv_prefix[i]);
        }
    };
    let h: Vec<u64> = primes.iter().map(|p| (p.q - 1) / 2).collect();
    let mut h_digits = vec![0u64; l1];
    garner(&h, &mut h_digits);
    let mut out = vec![0f64; n];
    out.par_chunks_mut(1024).enumerate().for_each(|(c, chunk)| {
        let mut x = vec![0u64; l1];
        let mut d = vec![0u64; l1];
        for (k, o) in chunk.iter_mut().enumerate() {
            let j = c * 1024 + k;
            for i in 0..l1 {
                x[i] = super::ring::add_mod(coeff[i * n + j], h[i], primes[i].q);
            }
            garner(&x, &mut d);
            let mut v = 0f64;
            for i in (0..l1).rev() {
                v = v * primes[i].q as f64 + (d[i] as f64 - h_digits[i] as f64);
            }
            *o = v;
        }
    });
    out
}
