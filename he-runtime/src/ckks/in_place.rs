//! In-place and into-buffer forms of the evaluator's element-wise operations. The allocating
//! forms in [`super::evaluator`] are these on a fresh copy; a runtime that keeps ciphertexts in
//! its own memory (store blocks) calls these to compute where the result will live, with no
//! heap result and no copy.

use rayon::prelude::*;

use super::ciphertext::{merge_slots, Ciphertext, Plaintext};
use super::encoder::f64_to_residue;
use super::evaluator::{scales_match, Evaluator};
use super::fft::Complex64;
use super::ring::{add_mod, neg_mod, sub_mod, Prime};
use crate::error::{Error, Result};
use crate::math::Modulus;

impl Evaluator {
    /// a += b in place (same level and scale, b of degree at most a's).
    pub fn add_assign<A, B>(&self, a: &mut Ciphertext<A>, b: &Ciphertext<B>) -> Result<()>
    where
        A: AsRef<[u64]> + AsMut<[u64]>,
        B: AsRef<[u64]>,
    {
        self.zip_assign(a, b, |m, o, x| m.add_assign_slice(o, x))
    }

    /// a −= b in place (same level and scale, b of degree at most a's).
    pub fn sub_assign<A, B>(&self, a: &mut Ciphertext<A>, b: &Ciphertext<B>) -> Result<()>
    where
        A: AsRef<[u64]> + AsMut<[u64]>,
        B: AsRef<[u64]>,
    {
        self.zip_assign(a, b, |m, o, x| m.sub_assign_slice(o, x))
    }

    /// Applies `f(modulus, a_limb, b_limb)` to every limb of every part of `b`.
    fn zip_assign<A, B, F>(&self, a: &mut Ciphertext<A>, b: &Ciphertext<B>, f: F) -> Result<()>
    where
        A: AsRef<[u64]> + AsMut<[u64]>,
        B: AsRef<[u64]>,
        F: Fn(&Modulus, &mut [u64], &[u64]) + Sync,
    {
        self.check_pair(a, b, true)?;
        if b.parts > a.parts {
            return Err(Error::InvalidDegree { degree: b.degree(), expected: a.degree() });
        }
        let n = self.ctx.n();
        for p in 0..b.parts {
            let bp = b.part(p);
            a.part_mut(p)
                .par_chunks_mut(n)
                .zip(bp.par_chunks(n))
                .enumerate()
                .for_each(|(i, (o, x))| f(&self.ctx.prime(i).modulus, o, x));
        }
        a.slots = merge_slots(a.slots, b.slots);
        Ok(())
    }

    /// Applies `f(prime, limb, pt_limb)` to the first `parts` parts of `a`.
    fn plain_assign<A, B, F>(&self, a: &mut Ciphertext<A>, p: &Plaintext<B>, parts: usize, f: F)
    where
        A: AsRef<[u64]> + AsMut<[u64]>,
        B: AsRef<[u64]>,
        F: Fn(&Prime, &mut [u64], &[u64]) + Sync,
    {
        let n = self.ctx.n();
        let pd: &[u64] = p.data.as_ref();
        for part in 0..parts {
            a.part_mut(part).par_chunks_mut(n).enumerate().for_each(|(i, o)| {
                f(self.ctx.prime(i), o, &pd[i * n..(i + 1) * n]);
            });
        }
    }

    /// ct += pt in place (pt at the ciphertext's level or above, same scale).
    pub fn add_plain_assign<A, B>(&self, a: &mut Ciphertext<A>, p: &Plaintext<B>) -> Result<()>
    where
        A: AsRef<[u64]> + AsMut<[u64]>,
        B: AsRef<[u64]>,
    {
        self.check_plain(a, p, true)?;
        self.plain_assign(a, p, 1, |pr, o, x| pr.modulus.add_assign_slice(o, x));
        a.slots = merge_slots(a.slots, p.slots);
        Ok(())
    }

    /// ct −= pt in place (pt at the ciphertext's level or above, same scale).
    pub fn sub_plain_assign<A, B>(&self, a: &mut Ciphertext<A>, p: &Plaintext<B>) -> Result<()>
    where
        A: AsRef<[u64]> + AsMut<[u64]>,
        B: AsRef<[u64]>,
    {
        self.check_plain(a, p, true)?;
        self.plain_assign(a, p, 1, |pr, o, x| pr.modulus.sub_assign_slice(o, x));
        a.slots = merge_slots(a.slots, p.slots);
        Ok(())
    }

    /// ct ·= pt in place; the scale becomes the product of the scales.
    pub fn mul_plain_assign<A, B>(&self, a: &mut Ciphertext<A>, p: &Plaintext<B>) -> Result<()>
    where
        A: AsRef<[u64]> + AsMut<[u64]>,
        B: AsRef<[u64]>,
    {
        self.check_plain(a, p, false)?;
        let parts = a.parts;
        self.plain_assign(a, p, parts, |pr, o, x| pr.modulus.mul_assign_slice(o, x));
        a.scale *= p.scale;
        a.slots = merge_slots(a.slots, p.slots);
        Ok(())
    }

    /// Adds the constant `c` to every slot in place (exact at the ciphertext's scale).
    pub fn add_const_assign<A>(&self, a: &mut Ciphertext<A>, c: Complex64) -> Result<()>
    where
        A: AsRef<[u64]> + AsMut<[u64]>,
    {
        self.check_ct(a)?;
        let n = self.ctx.n();
        let re = (c.re * a.scale).round();
        let im = (c.im * a.scale).round();
        // Products before their rescale carry scales far above 2^63 (bootstrapping's EvalMod
        // adds constants at ~2^98), so the rounded constant is reduced from its f64 value.
        if !(re.is_finite() && im.is_finite()) {
            return Err(Error::EncodingOverflow {
                value: c.re.max(c.im),
                scale_log2: a.scale.log2(),
            });
        }
        a.part_mut(0).par_chunks_mut(n).enumerate().for_each(|(i, o)| {
            let p = self.ctx.prime(i);
            if im == 0.0 {
                // A constant polynomial is the same constant at every NTT point.
                let r = f64_to_residue(re, p);
                o.iter_mut().for_each(|x| *x = add_mod(*x, r, p.q));
            } else {
                // i ↦ X^(N/2): its evaluation at ζ^(5^j) is i for every slot.
                let mut t = vec![0u64; n];
                t[0] = f64_to_residue(re, p);
                t[n / 2] = f64_to_residue(im, p);
                p.ntt(&mut t);
                o.iter_mut().zip(&t).for_each(|(x, &y)| *x = add_mod(*x, y, p.q));
            }
        });
        Ok(())
    }

    /// Multiplies by the integer `k` in place (no scale change).
    pub fn mul_integer_assign<A>(&self, a: &mut Ciphertext<A>, k: i64) -> Result<()>
    where
        A: AsRef<[u64]> + AsMut<[u64]>,
    {
        self.check_ct(a)?;
        let n = self.ctx.n();
        let l1 = a.level + 1;
        let words = a.parts * l1 * n;
        a.data.as_mut()[..words].par_chunks_mut(n).enumerate().for_each(|(idx, o)| {
            let p = self.ctx.prime(idx % l1);
            p.modulus.mul_scalar_assign_slice(o, p.reduce_i64(k));
        });
        Ok(())
    }

    /// a += round(c·scale)·b in place, b read at a's level: b may sit higher (its limbs above
    /// a's are not read), so a power kept at its own level is added to a lower sum without a
    /// copy. a's scale must be b's times `scale`; b of degree at most a's. The words are those
    /// of b dropped to a's level, [`Self::mul_const_assign`]`(c, scale)` and
    /// [`Self::add_assign`], in one pass.
    pub fn mul_const_add_assign<A, B>(
        &self,
        a: &mut Ciphertext<A>,
        b: &Ciphertext<B>,
        c: f64,
        scale: f64,
    ) -> Result<()>
    where
        A: AsRef<[u64]> + AsMut<[u64]>,
        B: AsRef<[u64]>,
    {
        self.check_ct(a)?;
        self.check_ct(b)?;
        if b.level < a.level {
            return Err(Error::InvalidLevel { level: a.level, max: b.level });
        }
        if b.parts > a.parts {
            return Err(Error::InvalidDegree { degree: b.degree(), expected: a.degree() });
        }
        if !scales_match(a.scale, b.scale * scale) {
            return Err(Error::ScaleMismatch {
                left_log2: a.scale.log2(),
                right_log2: (b.scale * scale).log2(),
            });
        }
        let v = const_integer(c, scale)?;
        let n = self.ctx.n();
        let l1 = a.level + 1;
        for p in 0..b.parts {
            let bp = &b.part(p)[..l1 * n];
            a.part_mut(p).par_chunks_mut(n).zip(bp.par_chunks(n)).enumerate().for_each(
                |(i, (o, x))| {
                    let prime = self.ctx.prime(i);
                    prime.modulus.mul_scalar_add_assign_slice(o, x, prime.reduce_i64(v));
                },
            );
        }
        a.slots = merge_slots(a.slots, b.slots);
        Ok(())
    }

    /// Multiplies by the real constant `c` encoded at `scale` (round(c·scale)) in place; the
    /// scale is multiplied by `scale`, so rescale afterwards.
    pub fn mul_const_assign<A>(&self, a: &mut Ciphertext<A>, c: f64, scale: f64) -> Result<()>
    where
        A: AsRef<[u64]> + AsMut<[u64]>,
    {
        self.mul_integer_assign(a, const_integer(c, scale)?)?;
        a.scale *= scale;
        Ok(())
    }

    /// [`Self::rescale`] into a caller's buffer of parts·level·N words (one level less).
    pub fn rescale_into<A, O>(&self, a: &Ciphertext<A>, out: O) -> Result<Ciphertext<O>>
    where
        A: AsRef<[u64]>,
        O: AsRef<[u64]> + AsMut<[u64]>,
    {
        let mut lasts = vec![0u64; a.parts * self.ctx.n()];
        self.rescale_into_with(a, out, &mut lasts)
    }

    /// [`Self::rescale_into`] with the last limbs' temporary in a caller's buffer of at least
    /// parts·N words (e.g. scratch charged to a memory budget), so nothing is allocated.
    pub fn rescale_into_with<A, O, T>(
        &self,
        a: &Ciphertext<A>,
        out: O,
        lasts: &mut T,
    ) -> Result<Ciphertext<O>>
    where
        A: AsRef<[u64]>,
        O: AsRef<[u64]> + AsMut<[u64]>,
        T: AsMut<[u64]> + ?Sized,
    {
        self.check_ct(a)?;
        let l = a.level;
        if l == 0 {
            return Err(Error::LevelExhausted { level: 0, needed: 1 });
        }
        let n = self.ctx.n();
        let lasts = lasts.as_mut();
        if lasts.len() < a.parts * n {
            return Err(Error::BufferLength { expected: a.parts * n, found: lasts.len() });
        }
        let ql = self.ctx.prime(l);
        let consts = self.ctx.rescale_consts(l);
        let scale = a.scale / ql.q as f64;
        let mut out = Ciphertext::from_raw(out, a.parts, l - 1, scale, n, a.params_id)?;
        out.slots = a.slots;
        // The last limb of every part in coefficient form, the parts' INTTs side by side.
        let srcs: Vec<&[u64]> = (0..a.parts).map(|p| a.part(p)).collect();
        let lasts = &mut lasts[..a.parts * n];
        lasts.par_chunks_mut(n).zip(srcs.par_iter()).for_each(|(last, src)| {
            last.copy_from_slice(&src[l * n..(l + 1) * n]);
            ql.intt(last);
        });
        let lasts = &*lasts;
        let half = ql.q / 2;
        let words = a.parts * l * n;
        out.data.as_mut()[..words].par_chunks_mut(n).enumerate().for_each(|(k, o)| {
            let (part, i) = (k / l, k % l);
            let p = self.ctx.prime(i);
            let ql_mod = ql.q % p.q;
            for (tv, &x) in o.iter_mut().zip(&lasts[part * n..(part + 1) * n]) {
                // Centred representative of the last limb, so the division rounds.
                *tv =
                    if x > half { sub_mod(p.reduce_u64(x), ql_mod, p.q) } else { p.reduce_u64(x) };
            }
            p.ntt(o);
            // (src − t)·q_l^-1 = (t − src)·(−q_l^-1), in one pass over the limb.
            let m = &p.modulus;
            m.sub_mul_scalar_assign_slice(
                o,
                &srcs[part][i * n..(i + 1) * n],
                neg_mod(consts[i].0, p.q),
            );
        });
        Ok(out)
    }

    /// [`Self::drop_to_level`] into a caller's buffer of parts·(level+1)·N words.
    pub fn drop_to_level_into<A, O>(
        &self,
        a: &Ciphertext<A>,
        level: usize,
        out: O,
    ) -> Result<Ciphertext<O>>
    where
        A: AsRef<[u64]>,
        O: AsRef<[u64]> + AsMut<[u64]>,
    {
        self.check_ct(a)?;
        if level > a.level {
            return Err(Error::InvalidLevel { level, max: a.level });
        }
        let n = self.ctx.n();
        let mut out = Ciphertext::from_raw(out, a.parts, level, a.scale, n, a.params_id)?;
        out.slots = a.slots;
        for p in 0..a.parts {
            out.part_mut(p).copy_from_slice(&a.part(p)[..(level + 1) * n]);
        }
        Ok(out)
    }

    /// A copy of `a` in a caller's buffer of exactly its size, to apply in-place operations to.
    pub fn copy_into<A, O>(&self, a: &Ciphertext<A>, mut out: O) -> Result<Ciphertext<O>>
    where
        A: AsRef<[u64]>,
        O: AsRef<[u64]> + AsMut<[u64]>,
    {
        self.check_ct(a)?;
        let src = a.data.as_ref();
        let dst = out.as_mut();
        if dst.len() != src.len() {
            return Err(Error::BufferLength { expected: src.len(), found: dst.len() });
        }
        dst.copy_from_slice(src);
        let mut out = Ciphertext::from_raw(out, a.parts, a.level, a.scale, a.n, a.params_id)?;
        out.slots = a.slots;
        Ok(out)
    }
}

/// The integer a real constant `c` encodes to at `scale`: round(c·scale), refused beyond one
/// signed word.
fn const_integer(c: f64, scale: f64) -> Result<i64> {
    let v = (c * scale).round();
    if !(v.is_finite() && v.abs() < 9.0e18) {
        return Err(Error::EncodingOverflow { value: c, scale_log2: scale.log2() });
    }
    Ok(v as i64)
}
