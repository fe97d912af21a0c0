//! Homomorphic arithmetic: add, sub, negate, plaintext and constant operations, products,
//! rescaling, level dropping and level/scale matching. Key-switching operations (relinearise,
//! rotate, conjugate, hoisted rotations) are in `rotation.rs`. Limb loops run on rayon, so the
//! caller controls parallelism with `ThreadPool::install`.

use std::sync::Arc;

use rayon::prelude::*;

use super::ciphertext::{Ciphertext, Plaintext};
use super::context::Context;
use super::fft::Complex64;
use super::ring::{add_mod, mul_shoup, neg_mod, shoup, sub_mod};
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

    fn check_pair<A: AsRef<[u64]>, B: AsRef<[u64]>>(
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

    fn check_plain<A: AsRef<[u64]>, B: AsRef<[u64]>>(
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
        // Copy a (no zero-fill pass) and extend with zero parts if b has more.
        let mut data = Vec::with_capacity(parts * l1 * n);
        data.extend_from_slice(a.data.as_ref());
        data.resize(parts * l1 * n, 0);
        let mut out =
            Ciphertext { data, level: a.level, scale: a.scale, n, parts, params_id: a.params_id };
        for p in 0..parts {
            let o = out.part_mut(p);
            if p < b.parts {
                let bp = &b.part(p)[..l1 * n];
                o.par_chunks_mut(n)
                    .zip(bp.par_chunks(n))
                    .enumerate()
                    .for_each(|(i, (ol, bl))| f(&self.ctx.prime(i).modulus, ol, bl));
            }
        }
        out
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

    /// a += b in place (same level and scale, b of degree at most a's).
    pub fn add_assign<A, B>(&self, a: &mut Ciphertext<A>, b: &Ciphertext<B>) -> Result<()>
    where
        A: AsRef<[u64]> + AsMut<[u64]>,
        B: AsRef<[u64]>,
    {
        self.check_pair(a, b, true)?;
        if b.parts > a.parts {
            return Err(Error::InvalidDegree { degree: b.degree(), expected: a.degree() });
        }
        let n = self.ctx.n();
        for p in 0..b.parts {
            let bp = b.part(p);
            a.part_mut(p).par_chunks_mut(n).zip(bp.par_chunks(n)).enumerate().for_each(
                |(i, (o, x))| {
                    self.ctx.prime(i).modulus.add_assign_slice(o, x);
                },
            );
        }
        Ok(())
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

    fn plain_op<A, B, F>(
        &self,
        a: &Ciphertext<A>,
        p: &Plaintext<B>,
        parts: usize,
        f: F,
    ) -> Ciphertext
    where
        A: AsRef<[u64]>,
        B: AsRef<[u64]>,
        F: Fn(&super::ring::Prime, &mut [u64], &[u64]) + Sync,
    {
        let n = self.ctx.n();
        let mut out = a.to_owned_ct();
        let l1 = a.level + 1;
        let pd: &[u64] = p.data.as_ref();
        for part in 0..parts {
            out.part_mut(part).par_chunks_mut(n).enumerate().for_each(|(i, o)| {
                f(self.ctx.prime(i), o, &pd[i * n..(i + 1) * n]);
            });
        }
        debug_assert!(l1 <= p.level + 1);
        out
    }

    /// ct + pt (pt at the ciphertext's level or above, same scale).
    pub fn add_plain<A: AsRef<[u64]>, B: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        p: &Plaintext<B>,
    ) -> Result<Ciphertext> {
        self.check_plain(a, p, true)?;
        Ok(self.plain_op(a, p, 1, |pr, o, x| pr.modulus.add_assign_slice(o, x)))
    }

    /// ct − pt (pt at the ciphertext's level or above, same scale).
    pub fn sub_plain<A: AsRef<[u64]>, B: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        p: &Plaintext<B>,
    ) -> Result<Ciphertext> {
        self.check_plain(a, p, true)?;
        Ok(self.plain_op(a, p, 1, |pr, o, x| pr.modulus.sub_assign_slice(o, x)))
    }

    /// ct · pt; the result's scale is the product of the scales.
    pub fn mul_plain<A: AsRef<[u64]>, B: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        p: &Plaintext<B>,
    ) -> Result<Ciphertext> {
        self.check_plain(a, p, false)?;
        let mut out = self.plain_op(a, p, a.parts, |pr, o, x| pr.modulus.mul_assign_slice(o, x));
        out.scale = a.scale * p.scale;
        Ok(out)
    }

    /// Adds the constant `c` to every slot (exact at the ciphertext's scale).
    pub fn add_const<A: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        c: Complex64,
    ) -> Result<Ciphertext> {
        self.check_ct(a)?;
        let n = self.ctx.n();
        let re = (c.re * a.scale).round();
        let im = (c.im * a.scale).round();
        if !(re.is_finite() && im.is_finite() && re.abs() < 9.0e18 && im.abs() < 9.0e18) {
            return Err(Error::EncodingOverflow {
                value: c.re.max(c.im),
                scale_log2: a.scale.log2(),
            });
        }
        let (re, im) = (re as i64, im as i64);
        let mut out = a.to_owned_ct();
        out.part_mut(0).par_chunks_mut(n).enumerate().for_each(|(i, o)| {
            let p = self.ctx.prime(i);
            if im == 0 {
                // A constant polynomial is the same constant at every NTT point.
                let r = p.reduce_i64(re);
                o.iter_mut().for_each(|x| *x = add_mod(*x, r, p.q));
            } else {
                // i ↦ X^(N/2): its evaluation at ζ^(5^j) is i for every slot.
                let mut t = vec![0u64; n];
                t[0] = p.reduce_i64(re);
                t[n / 2] = p.reduce_i64(im);
                p.ntt(&mut t);
                o.iter_mut().zip(&t).for_each(|(x, &y)| *x = add_mod(*x, y, p.q));
            }
        });
        Ok(out)
    }

    /// Multiplies by the integer `k` (no scale change).
    pub fn mul_integer<A: AsRef<[u64]>>(&self, a: &Ciphertext<A>, k: i64) -> Result<Ciphertext> {
        self.check_ct(a)?;
        let n = self.ctx.n();
        let l1 = a.level + 1;
        let mut out = a.to_owned_ct();
        out.data.par_chunks_mut(n).enumerate().for_each(|(idx, o)| {
            let p = self.ctx.prime(idx % l1);
            let w = p.reduce_i64(k);
            let ws = shoup(w, p.q);
            o.iter_mut().for_each(|x| *x = mul_shoup(*x, w, ws, p.q));
        });
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
        let v = (c * scale).round();
        if !(v.is_finite() && v.abs() < 9.0e18) {
            return Err(Error::EncodingOverflow { value: c, scale_log2: scale.log2() });
        }
        let mut out = self.mul_integer(a, v as i64)?;
        out.scale = a.scale * scale;
        Ok(out)
    }

    /// The degree-2 product (a_0b_0, a_0b_1 + a_1b_0, a_1b_1); relinearise afterwards.
    pub fn mul<A: AsRef<[u64]>, B: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        b: &Ciphertext<B>,
    ) -> Result<Ciphertext> {
        self.check_pair(a, b, false)?;
        for c in [a.degree(), b.degree()] {
            if c != 1 {
                return Err(Error::InvalidDegree { degree: c, expected: 1 });
            }
        }
        let n = self.ctx.n();
        let l1 = a.level + 1;
        let mut out = Ciphertext::zeros(3, a.level, a.scale * b.scale, n, a.params_id);
        let (o0, rest) = out.data.split_at_mut(l1 * n);
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
        let l = a.level;
        if l == 0 {
            return Err(Error::LevelExhausted { level: 0, needed: 1 });
        }
        let n = self.ctx.n();
        let ql = self.ctx.prime(l);
        let consts = self.ctx.rescale_consts(l);
        let mut out = Ciphertext::zeros(a.parts, l - 1, a.scale / ql.q as f64, n, a.params_id);
        for part in 0..a.parts {
            let src = a.part(part);
            let mut last = src[l * n..(l + 1) * n].to_vec();
            ql.intt(&mut last);
            let last = &last;
            let half = ql.q / 2;
            out.part_mut(part).par_chunks_mut(n).enumerate().for_each_init(
                || vec![0u64; n],
                |t, (i, o)| {
                    let p = self.ctx.prime(i);
                    let ql_mod = ql.q % p.q;
                    for (tv, &x) in t.iter_mut().zip(last) {
                        // Centred representative of the last limb, so the division rounds.
                        *tv = if x > half {
                            sub_mod(p.reduce_u64(x), ql_mod, p.q)
                        } else {
                            p.reduce_u64(x)
                        };
                    }
                    p.ntt(t);
                    let m = &p.modulus;
                    o.copy_from_slice(&src[i * n..(i + 1) * n]);
                    m.sub_assign_slice(o, t);
                    m.mul_scalar_assign_slice(o, consts[i].0);
                },
            );
        }
        Ok(out)
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
        let n = self.ctx.n();
        let mut out = Ciphertext::zeros(a.parts, level, a.scale, n, a.params_id);
        for p in 0..a.parts {
            out.part_mut(p).copy_from_slice(&a.part(p)[..(level + 1) * n]);
        }
        Ok(out)
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
