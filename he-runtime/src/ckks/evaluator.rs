//! Homomorphic arithmetic: add, sub, negate, plaintext and constant operations, products,
//! rescaling, level dropping and level/scale matching. Key-switching operations (relinearise,
//! rotate, conjugate, hoisted rotations) are in `rotation.rs`. Limb loops run on rayon, so the
//! caller controls parallelism with `ThreadPool::install`.

use std::sync::Arc;

use rayon::prelude::*;

use super::ciphertext::{merge_slots, Ciphertext, Plaintext};
use super::context::Context;
use super::fft::Complex64;
use super::ring::neg_mod;
use crate::error::{Error, Result};
use crate::math::Modulus;

/// Relative tolerance under which two scales count as equal.
const SCALE_TOL: f64 = 1e-12;

/// Evaluates homomorphic operations for one context.
#[derive(Debug, Clone)]
pub struct Evaluator {
    pub(crate) ctx: Arc<Context>,
}

pub(crate) fn scales_match(a: f64, b: f64) -> bool {
    (a - b).abs() <= SCALE_TOL * a.abs().max(b.abs())
}

impl Evaluator {
    /// An evaluator for `ctx`.
    pub fn new(ctx: &Arc<Context>) -> Self {
        Self { ctx: Arc::clone(ctx) }
    }

    /// The context.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    pub(crate) fn check_ct<C: AsRef<[u64]>>(&self, ct: &Ciphertext<C>) -> Result<()> {
        self.ctx.check_id(ct.params_id)?;
        if ct.n != self.ctx.n() {
            return Err(Error::DegreeMismatch { expected: self.ctx.n(), found: ct.n });
        }
        if ct.level > self.ctx.params().max_level() {
            return Err(Error::InvalidLevel {
                level: ct.level,
                max: self.ctx.params().max_level(),
            });
        }
        Ok(())
    }

    pub(crate) fn check_pair<A: AsRef<[u64]>, B: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        b: &Ciphertext<B>,
        scale: bool,
    ) -> Result<()> {
        self.check_ct(a)?;
        self.check_ct(b)?;
        if a.level != b.level {
            return Err(Error::LevelMismatch { left: a.level, right: b.level });
        }
        if scale && !scales_match(a.scale, b.scale) {
            return Err(Error::ScaleMismatch {
                left_log2: a.scale.log2(),
                right_log2: b.scale.log2(),
            });
        }
        Ok(())
    }

    pub(crate) fn check_plain<A: AsRef<[u64]>, B: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        p: &Plaintext<B>,
        scale: bool,
    ) -> Result<()> {
        self.check_ct(a)?;
        self.ctx.check_id(p.params_id)?;
        if p.n != self.ctx.n() {
            return Err(Error::DegreeMismatch { expected: self.ctx.n(), found: p.n });
        }
        if p.level < a.level {
            return Err(Error::LevelMismatch { left: a.level, right: p.level });
        }
        if scale && !scales_match(a.scale, p.scale) {
            return Err(Error::ScaleMismatch {
                left_log2: a.scale.log2(),
                right_log2: p.scale.log2(),
            });
        }
        Ok(())
    }

    /// Applies `f(prime, out_limb, a_limb, b_limb)` to every limb of every part shared by a, b.
    fn zip_limbs<A, B, F>(&self, a: &Ciphertext<A>, b: &Ciphertext<B>, f: F) -> Ciphertext
    where
        A: AsRef<[u64]>,
        B: AsRef<[u64]>,
        F: Fn(&Modulus, &mut [u64], &[u64]) + Sync,
    {
        let n = self.ctx.n();
        let l1 = a.level + 1;
        let parts = a.parts.max(b.parts);
        let len = parts * l1 * n;
        let part = |c: &[u64], p: usize, i: usize| -> Option<std::ops::Range<usize>> {
            (c.len() >= (p + 1) * l1 * n).then(|| (p * l1 + i) * n..(p * l1 + i + 1) * n)
        };
        let (ad, bd) = (&a.data.as_ref()[..a.parts * l1 * n], &b.data.as_ref()[..b.parts * l1 * n]);
        let data = if rayon::current_num_threads() == 1 {
            // One thread: build the result limb by limb, each copied from a and combined
            // with b while it is still in cache, in memory that is written once (no zero-fill
            // pass, no second pass over the whole ciphertext).
            let mut data = Vec::with_capacity(len);
            for p in 0..parts {
                for i in 0..l1 {
                    let start = data.len();
                    match part(ad, p, i) {
                        Some(r) => data.extend_from_slice(&ad[r]),
                        None => data.resize(start + n, 0),
                    }
                    if let Some(r) = part(bd, p, i) {
                        f(&self.ctx.prime(i).modulus, &mut data[start..], &bd[r]);
                    }
                }
            }
            data
        } else {
            let mut data = Vec::with_capacity(len);
            data.extend_from_slice(ad);
            data.resize(len, 0);
            data.par_chunks_mut(n).enumerate().for_each(|(k, o)| {
                if let Some(r) = part(bd, k / l1, k % l1) {
                    f(&self.ctx.prime(k % l1).modulus, o, &bd[r]);
                }
            });
            data
        };
        let (level, scale, params_id) = (a.level, a.scale, a.params_id);
        let slots = merge_slots(a.slots, b.slots);
        Ciphertext { data, level, scale, n, parts, params_id, slots }
    }

    /// a + b (same level and scale).
    pub fn add<A: AsRef<[u64]>, B: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        b: &Ciphertext<B>,
    ) -> Result<Ciphertext> {
        self.check_pair(a, b, true)?;
        Ok(self.zip_limbs(a, b, |m, o, x| m.add_assign_slice(o, x)))
    }

    /// a − b (same level and scale).
    pub fn sub<A: AsRef<[u64]>, B: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        b: &Ciphertext<B>,
    ) -> Result<Ciphertext> {
        self.check_pair(a, b, true)?;
        Ok(self.zip_limbs(a, b, |m, o, x| m.sub_assign_slice(o, x)))
    }

    /// −a.
    pub fn negate<A: AsRef<[u64]>>(&self, a: &Ciphertext<A>) -> Result<Ciphertext> {
        self.check_ct(a)?;
        let n = self.ctx.n();
        let mut out = a.to_owned_ct();
        let l1 = a.level + 1;
        out.data.par_chunks_mut(n).enumerate().for_each(|(k, limb)| {
            let q = self.ctx.prime(k % l1).q;
            limb.iter_mut().for_each(|x| *x = neg_mod(*x, q));
        });
        Ok(out)
    }

    /// ct + pt (pt at the ciphertext's level or above, same scale).
    pub fn add_plain<A: AsRef<[u64]>, B: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        p: &Plaintext<B>,
    ) -> Result<Ciphertext> {
        let mut out = a.to_owned_ct();
        self.add_plain_assign(&mut out, p)?;
        Ok(out)
    }

    /// ct − pt (pt at the ciphertext's level or above, same scale).
    pub fn sub_plain<A: AsRef<[u64]>, B: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        p: &Plaintext<B>,
    ) -> Result<Ciphertext> {
        let mut out = a.to_owned_ct();
        self.sub_plain_assign(&mut out, p)?;
        Ok(out)
    }

    /// ct · pt; the result's scale is the product of the scales.
    pub fn mul_plain<A: AsRef<[u64]>, B: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        p: &Plaintext<B>,
    ) -> Result<Ciphertext> {
        let mut out = a.to_owned_ct();
        self.mul_plain_assign(&mut out, p)?;
        Ok(out)
    }

    /// Adds the constant `c` to every slot (exact at the ciphertext's scale).
    pub fn add_const<A: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        c: Complex64,
    ) -> Result<Ciphertext> {
        let mut out = a.to_owned_ct();
        self.add_const_assign(&mut out, c)?;
        Ok(out)
    }

    /// Multiplies by the integer `k` (no scale change).
    pub fn mul_integer<A: AsRef<[u64]>>(&self, a: &Ciphertext<A>, k: i64) -> Result<Ciphertext> {
        let mut out = a.to_owned_ct();
        self.mul_integer_assign(&mut out, k)?;
        Ok(out)
    }

    /// Multiplies by the real constant `c` encoded at `scale` (round(c·scale)); the result's
    /// scale is multiplied by `scale`, so rescale afterwards.
    pub fn mul_const<A: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        c: f64,
        scale: f64,
    ) -> Result<Ciphertext> {
        let mut out = a.to_owned_ct();
        self.mul_const_assign(&mut out, c, scale)?;
        Ok(out)
    }

    /// The degree-2 product (a_0b_0, a_0b_1 + a_1b_0, a_1b_1); relinearise afterwards.
    pub fn mul<A: AsRef<[u64]>, B: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        b: &Ciphertext<B>,
    ) -> Result<Ciphertext> {
        self.check_ct(a)?;
        let out = vec![0; 3 * (a.level + 1) * self.ctx.n()];
        self.mul_into(a, b, out)
    }

    /// [`Self::mul`] into a caller's buffer of 3·(level+1)·N words (every word is written),
    /// returned as the degree-2 result; nothing is allocated.
    pub fn mul_into<A, B, O>(
        &self,
        a: &Ciphertext<A>,
        b: &Ciphertext<B>,
        out: O,
    ) -> Result<Ciphertext<O>>
    where
        A: AsRef<[u64]>,
        B: AsRef<[u64]>,
        O: AsRef<[u64]> + AsMut<[u64]>,
    {
        self.check_pair(a, b, false)?;
        for c in [a.degree(), b.degree()] {
            if c != 1 {
                return Err(Error::InvalidDegree { degree: c, expected: 1 });
            }
        }
        let n = self.ctx.n();
        let l1 = a.level + 1;
        let mut out = Ciphertext::from_raw(out, 3, a.level, a.scale * b.scale, n, a.params_id)?;
        out.slots = merge_slots(a.slots, b.slots);
        let (o0, rest) = out.data.as_mut()[..3 * l1 * n].split_at_mut(l1 * n);
        let (o1, o2) = rest.split_at_mut(l1 * n);
        let (a0, a1, b0, b1) = (a.part(0), a.part(1), b.part(0), b.part(1));
        o0.par_chunks_mut(n)
            .zip(o1.par_chunks_mut(n))
            .zip(o2.par_chunks_mut(n))
            .enumerate()
            .for_each(|(i, ((x0, x1), x2))| {
                let p = self.ctx.prime(i);
                let r = i * n..(i + 1) * n;
                let (a0, a1, b0, b1) = (&a0[r.clone()], &a1[r.clone()], &b0[r.clone()], &b1[r]);
                let m = &p.modulus;
                x0.copy_from_slice(a0);
                m.mul_assign_slice(x0, b0);
                x1.copy_from_slice(a0);
                m.mul_assign_slice(x1, b1);
                m.mul_add_assign_slice(x1, a1, b0);
                x2.copy_from_slice(a1);
                m.mul_assign_slice(x2, b1);
            });
        Ok(out)
    }

    /// Divides by the last prime q_level (rounding), dropping one level; the scale is divided
    /// by q_level.
    pub fn rescale<A: AsRef<[u64]>>(&self, a: &Ciphertext<A>) -> Result<Ciphertext> {
        self.check_ct(a)?;
        let level = a.level.checked_sub(1).ok_or(Error::LevelExhausted { level: 0, needed: 1 })?;
        let out = vec![0; a.parts * (level + 1) * a.n];
        self.rescale_into(a, out)
    }

    /// The same ciphertext restricted to q_0..q_level (no scale change).
    pub fn drop_to_level<A: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        level: usize,
    ) -> Result<Ciphertext> {
        self.check_ct(a)?;
        if level > a.level {
            return Err(Error::InvalidLevel { level, max: a.level });
        }
        self.drop_to_level_into(a, level, vec![0; a.parts * (level + 1) * a.n])
    }

    /// Brings two ciphertexts to a common level and scale: the higher one is dropped, and if
    /// the scales differ the smaller-scaled one is multiplied by round(ratio·q_t) and rescaled,
    /// which costs it one level. Errors when no level is left for that.
    pub fn match_pair<A: AsRef<[u64]>, B: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        b: &Ciphertext<B>,
    ) -> Result<(Ciphertext, Ciphertext)> {
        self.check_ct(a)?;
        self.check_ct(b)?;
        if scales_match(a.scale, b.scale) {
            let l = a.level.min(b.level);
            return Ok((self.drop_to_level(a, l)?, self.drop_to_level(b, l)?));
        }
        let swap = a.scale > b.scale;
        let (small, big) = if swap {
            (b.to_owned_ct(), a.to_owned_ct())
        } else {
            (a.to_owned_ct(), b.to_owned_ct())
        };
        let t = small.level.min(big.level + 1);
        if t == 0 {
            return Err(Error::LevelExhausted { level: 0, needed: 1 });
        }
        let small = self.drop_to_level(&small, t)?;
        let qt = self.ctx.prime(t).q as f64;
        let factor = big.scale / small.scale * qt;
        let mut adj = self.rescale(&self.mul_const(&small, 1.0, factor)?)?;
        let l = adj.level.min(big.level);
        adj = self.drop_to_level(&adj, l)?;
        adj.scale = big.scale;
        let big = self.drop_to_level(&big, l)?;
        Ok(if swap { (big, adj) } else { (adj, big) })
    }

    /// a + b after [`Evaluator::match_pair`].
    pub fn add_matched<A: AsRef<[u64]>, B: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        b: &Ciphertext<B>,
    ) -> Result<Ciphertext> {
        let (x, y) = self.match_pair(a, b)?;
        self.add(&x, &y)
    }

    /// a − b after [`Evaluator::match_pair`].
    pub fn sub_matched<A: AsRef<[u64]>, B: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        b: &Ciphertext<B>,
    ) -> Result<Ciphertext> {
        let (x, y) = self.match_pair(a, b)?;
        self.sub(&x, &y)
    }
}
