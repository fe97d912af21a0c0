//! Key-switching operations of the evaluator: relinearisation, rotations, conjugation and
//! hoisted rotations (one ModUp decomposition shared by many rotations of one ciphertext).

use super::ciphertext::Ciphertext;
use super::evaluator::Evaluator;
use super::key_limbs::SwitchKeyWords;
use super::keys::{GaloisKey, GaloisKeySet, KeySwitchKey, RelinKey};
use super::keyswitch::{decompose, inner_product, mod_down, Finish, Scratch};
use crate::error::{Error, Result};

/// A ciphertext with its c_1 already decomposed (ModUp of every digit), ready for any number
/// of rotations at the cost of an inner product and a ModDown each.
/// Its buffers are `Vec`s by default, or a caller's ([`Evaluator::hoist_into`]).
#[derive(Debug, Clone)]
pub struct HoistedCiphertext<B = Vec<u64>> {
    c0: B,
    dec: B,
    level: usize,
    scale: f64,
    params_id: u64,
    slots: Option<usize>,
}

impl<B> HoistedCiphertext<B> {
    /// Words of the c_0 and decomposition buffers [`Evaluator::hoist_into`] needs for a
    /// ciphertext at `level` under `ctx`.
    pub fn words_at(ctx: &super::context::Context, level: usize) -> (usize, usize) {
        let n = ctx.n();
        let width = level + 1 + ctx.p_len();
        ((level + 1) * n, ctx.params().digits_at(level) * width * n)
    }

    /// Level of the hoisted ciphertext.
    pub fn level(&self) -> usize {
        self.level
    }
}

impl Evaluator {
    /// Fresh key-switching buffers for this evaluator's parameters.
    pub fn scratch(&self) -> Scratch {
        Scratch::new(&self.ctx)
    }

    fn check_key<K: SwitchKeyWords>(&self, key: &KeySwitchKey<K>) -> Result<()> {
        key.check_shape(&self.ctx)
    }

    /// Key switches `d` (NTT form, level+1 limbs, or its ready decomposition) with `key`,
    /// delivering the two result polynomials to `out0`, `out1` as `finish0`, `finish1` say.
    #[allow(clippy::too_many_arguments)]
    fn switch<K: SwitchKeyWords, S: AsRef<[u64]> + AsMut<[u64]>>(
        &self,
        level: usize,
        key: &KeySwitchKey<K>,
        scratch: &mut Scratch<S>,
        dec_ready: Option<&[u64]>,
        d: &[u64],
        out0: &mut [u64],
        out1: &mut [u64],
        finish0: Finish<'_>,
        finish1: Finish<'_>,
    ) -> Result<()> {
        let ctx = &*self.ctx;
        let n = ctx.n();
        let width = level + 1 + ctx.p_len();
        scratch.check_level(ctx, level, dec_ready.is_none())?;
        let Scratch { coeff, y, acc, md, dec, v, .. } = scratch;
        let (y, acc, md, v) = (y.as_mut(), acc.as_mut(), md.as_mut(), v.as_mut());
        let dec: &[u64] = match dec_ready {
            Some(d) => d,
            None => {
                decompose(ctx, level, d, coeff.as_mut(), y, v, dec.as_mut());
                dec.as_ref()
            }
        };
        inner_product(ctx, level, dec, key, acc)?;
        let (acc0, acc1) = acc[..2 * width * n].split_at_mut(width * n);
        mod_down(ctx, level, acc0, y, v, md, out0, finish0, None);
        mod_down(ctx, level, acc1, y, v, md, out1, finish1, None);
        Ok(())
    }

    /// Switches a degree-1 ciphertext to the secret of `key`
    /// ([`super::KeyGenerator::switching_key`]): (c_0 + ks_0(c_1), ks_1(c_1)).
    pub fn key_switch<A: AsRef<[u64]>, K: SwitchKeyWords, S: AsRef<[u64]> + AsMut<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        key: &KeySwitchKey<K>,
        scratch: &mut Scratch<S>,
    ) -> Result<Ciphertext> {
        self.check_ct(a)?;
        let out = vec![0; 2 * (a.level + 1) * a.n];
        self.key_switch_into(a, key, scratch, out)
    }

    /// [`Self::key_switch`] into a caller's buffer of 2·(level+1)·N words (every word is
    /// written), returned as the result ciphertext; nothing is allocated.
    pub fn key_switch_into<A, K, S, O>(
        &self,
        a: &Ciphertext<A>,
        key: &KeySwitchKey<K>,
        scratch: &mut Scratch<S>,
        out: O,
    ) -> Result<Ciphertext<O>>
    where
        A: AsRef<[u64]>,
        K: SwitchKeyWords,
        S: AsRef<[u64]> + AsMut<[u64]>,
        O: AsRef<[u64]> + AsMut<[u64]>,
    {
        self.check_ct(a)?;
        self.check_key(key)?;
        if a.parts != 2 {
            return Err(Error::InvalidDegree { degree: a.degree(), expected: 1 });
        }
        let n = self.ctx.n();
        let l1 = a.level + 1;
        let mut out = Ciphertext::from_raw(out, 2, a.level, a.scale, n, a.params_id)?;
        out.slots = a.slots;
        let (o0, o1) = out.data.as_mut()[..2 * l1 * n].split_at_mut(l1 * n);
        let c0 = Finish::Plus(a.part(0));
        self.switch(a.level, key, scratch, None, a.part(1), o0, o1, c0, Finish::Store)?;
        Ok(out)
    }

    /// Relinearises a degree-2 ciphertext back to degree 1.
    pub fn relinearize<A: AsRef<[u64]>, K: SwitchKeyWords, S: AsRef<[u64]> + AsMut<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        rk: &RelinKey<K>,
        scratch: &mut Scratch<S>,
    ) -> Result<Ciphertext> {
        self.check_ct(a)?;
        let out = vec![0; 2 * (a.level + 1) * a.n];
        self.relinearize_into(a, rk, scratch, out)
    }

    /// [`Self::relinearize`] into a caller's buffer of 2·(level+1)·N words (e.g. a store
    /// block being written), returned as the result ciphertext; nothing is allocated.
    pub fn relinearize_into<A, K, S, O>(
        &self,
        a: &Ciphertext<A>,
        rk: &RelinKey<K>,
        scratch: &mut Scratch<S>,
        out: O,
    ) -> Result<Ciphertext<O>>
    where
        A: AsRef<[u64]>,
        K: SwitchKeyWords,
        S: AsRef<[u64]> + AsMut<[u64]>,
        O: AsRef<[u64]> + AsMut<[u64]>,
    {
        self.check_ct(a)?;
        self.check_key(&rk.key)?;
        if a.parts != 3 {
            return Err(Error::InvalidDegree { degree: a.degree(), expected: 2 });
        }
        let n = self.ctx.n();
        let l1 = a.level + 1;
        let mut out = Ciphertext::from_raw(out, 2, a.level, a.scale, n, a.params_id)?;
        out.slots = a.slots;
        let (o0, o1) = out.data.as_mut()[..2 * l1 * n].split_at_mut(l1 * n);
        let (c0, c1) = (Finish::Plus(a.part(0)), Finish::Plus(a.part(1)));
        self.switch(a.level, &rk.key, scratch, None, a.part(2), o0, o1, c0, c1)?;
        Ok(out)
    }

    /// a·b followed by relinearisation (rescale separately).
    pub fn mul_relin<
        A: AsRef<[u64]>,
        B: AsRef<[u64]>,
        K: SwitchKeyWords,
        S: AsRef<[u64]> + AsMut<[u64]>,
    >(
        &self,
        a: &Ciphertext<A>,
        b: &Ciphertext<B>,
        rk: &RelinKey<K>,
        scratch: &mut Scratch<S>,
    ) -> Result<Ciphertext> {
        let t = self.mul(a, b)?;
        self.relinearize(&t, rk, scratch)
    }

    /// [`Self::mul_relin`] with the degree-2 product in `tensor` (3·(level+1)·N words) and the
    /// result in `out` (2·(level+1)·N words): caller's buffers, e.g. a scratch buffer and a
    /// store block charged to a DRAM budget; nothing is allocated.
    #[allow(clippy::too_many_arguments)]
    pub fn mul_relin_into<A, B, K, S, T, O>(
        &self,
        a: &Ciphertext<A>,
        b: &Ciphertext<B>,
        rk: &RelinKey<K>,
        scratch: &mut Scratch<S>,
        tensor: T,
        out: O,
    ) -> Result<Ciphertext<O>>
    where
        A: AsRef<[u64]>,
        B: AsRef<[u64]>,
        K: SwitchKeyWords,
        S: AsRef<[u64]> + AsMut<[u64]>,
        T: AsRef<[u64]> + AsMut<[u64]>,
        O: AsRef<[u64]> + AsMut<[u64]>,
    {
        let t = self.mul_into(a, b, tensor)?;
        self.relinearize_into(&t, rk, scratch, out)
    }

    pub(crate) fn check_galois<K: SwitchKeyWords>(
        &self,
        key: &GaloisKey<K>,
        g: u64,
        step: Option<i64>,
    ) -> Result<()> {
        if key.galois_element != g {
            return Err(Error::MissingGaloisKey { galois_element: g, step });
        }
        self.check_key(&key.key)
    }

    /// Applies X → X^g with its Galois key to a degree-1 ciphertext.
    pub fn apply_galois<A: AsRef<[u64]>, K: SwitchKeyWords, S: AsRef<[u64]> + AsMut<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        g: u64,
        key: &GaloisKey<K>,
        scratch: &mut Scratch<S>,
    ) -> Result<Ciphertext> {
        let out = self.output_for(a)?;
        self.galois_into(a, g, None, key, scratch, out)
    }

    /// Rotates the slots left by `step` (negative: right) with the matching Galois key.
    pub fn rotate<A: AsRef<[u64]>, K: SwitchKeyWords, S: AsRef<[u64]> + AsMut<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        step: i64,
        key: &GaloisKey<K>,
        scratch: &mut Scratch<S>,
    ) -> Result<Ciphertext> {
        let out = self.output_for(a)?;
        self.rotate_into(a, step, key, scratch, out)
    }

    /// [`Self::rotate`] into a caller's buffer of 2·(level+1)·N words (e.g. a store block being
    /// written), returned as the result ciphertext; nothing is allocated.
    pub fn rotate_into<
        A: AsRef<[u64]>,
        K: SwitchKeyWords,
        O: AsRef<[u64]> + AsMut<[u64]>,
        S: AsRef<[u64]> + AsMut<[u64]>,
    >(
        &self,
        a: &Ciphertext<A>,
        step: i64,
        key: &GaloisKey<K>,
        scratch: &mut Scratch<S>,
        out: O,
    ) -> Result<Ciphertext<O>> {
        let g = self.ctx.galois_element_for_step(step);
        self.galois_into(a, g, Some(step), key, scratch, out)
    }

    /// A zeroed result buffer shaped like the degree-1 ciphertext `a`.
    fn output_for<A: AsRef<[u64]>>(&self, a: &Ciphertext<A>) -> Result<Vec<u64>> {
        self.check_ct(a)?;
        Ok(vec![0; 2 * (a.level + 1) * a.n])
    }

    /// Key switching of c_1 with the decomposition computed into `scratch`, then σ_g.
    fn galois_into<
        A: AsRef<[u64]>,
        K: SwitchKeyWords,
        O: AsRef<[u64]> + AsMut<[u64]>,
        S: AsRef<[u64]> + AsMut<[u64]>,
    >(
        &self,
        a: &Ciphertext<A>,
        g: u64,
        step: Option<i64>,
        key: &GaloisKey<K>,
        scratch: &mut Scratch<S>,
        out: O,
    ) -> Result<Ciphertext<O>> {
        self.check_ct(a)?;
        if a.parts != 2 {
            return Err(Error::InvalidDegree { degree: a.degree(), expected: 1 });
        }
        self.check_galois(key, g, step)?;
        let mut out = Ciphertext::from_raw(out, 2, a.level, a.scale, a.n, a.params_id)?;
        out.slots = a.slots;
        let l1 = a.level + 1;
        let perm = self.ctx.galois_perm(g);
        let (o0, o1) = out.data.as_mut()[..2 * l1 * a.n].split_at_mut(l1 * a.n);
        let p0 = Finish::Permute { perm: &perm, plus: Some(a.part(0)) };
        let p1 = Finish::Permute { perm: &perm, plus: None };
        self.switch(a.level, &key.key, scratch, None, a.part(1), o0, o1, p0, p1)?;
        Ok(out)
    }

    /// Rotates by `step`, looking the key up in `keys` (a typed error if it is missing).
    pub fn rotate_with<S: AsRef<[u64]> + AsMut<[u64]>>(
        &self,
        a: &Ciphertext<impl AsRef<[u64]>>,
        step: i64,
        keys: &GaloisKeySet,
        scratch: &mut Scratch<S>,
    ) -> Result<Ciphertext> {
        let g = self.ctx.galois_element_for_step(step);
        let key =
            keys.get(g).ok_or(Error::MissingGaloisKey { galois_element: g, step: Some(step) })?;
        self.rotate(a, step, key, scratch)
    }

    /// Complex conjugation of every slot.
    pub fn conjugate<A: AsRef<[u64]>, K: SwitchKeyWords, S: AsRef<[u64]> + AsMut<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        key: &GaloisKey<K>,
        scratch: &mut Scratch<S>,
    ) -> Result<Ciphertext> {
        let out = self.output_for(a)?;
        self.conjugate_into(a, key, scratch, out)
    }

    /// [`Self::conjugate`] into a caller's buffer of 2·(level+1)·N words.
    pub fn conjugate_into<
        A: AsRef<[u64]>,
        K: SwitchKeyWords,
        O: AsRef<[u64]> + AsMut<[u64]>,
        S: AsRef<[u64]> + AsMut<[u64]>,
    >(
        &self,
        a: &Ciphertext<A>,
        key: &GaloisKey<K>,
        scratch: &mut Scratch<S>,
        out: O,
    ) -> Result<Ciphertext<O>> {
        let g = self.ctx.galois_element_conjugate();
        self.galois_into(a, g, None, key, scratch, out)
    }

    /// Decomposes c_1 once (ModUp of every digit) for any number of hoisted rotations.
    pub fn hoist<A: AsRef<[u64]>, S: AsRef<[u64]> + AsMut<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        scratch: &mut Scratch<S>,
    ) -> Result<HoistedCiphertext> {
        self.check_ct(a)?;
        let (c0, dec) = HoistedCiphertext::<Vec<u64>>::words_at(&self.ctx, a.level);
        self.hoist_into(a, scratch, vec![0; c0], vec![0; dec])
    }

    /// [`Self::hoist`] into a caller's buffers of [`HoistedCiphertext::words_at`] words (c_0
    /// and the decomposition; every word is written); nothing is allocated.
    pub fn hoist_into<
        A: AsRef<[u64]>,
        S: AsRef<[u64]> + AsMut<[u64]>,
        H: AsRef<[u64]> + AsMut<[u64]>,
    >(
        &self,
        a: &Ciphertext<A>,
        scratch: &mut Scratch<S>,
        mut c0: H,
        mut dec: H,
    ) -> Result<HoistedCiphertext<H>> {
        self.check_ct(a)?;
        if a.parts != 2 {
            return Err(Error::InvalidDegree { degree: a.degree(), expected: 1 });
        }
        let ctx = &*self.ctx;
        let (c0_words, dec_words) = HoistedCiphertext::<H>::words_at(ctx, a.level);
        for (b, want) in [(c0.as_ref().len(), c0_words), (dec.as_ref().len(), dec_words)] {
            if b != want {
                return Err(Error::BufferLength { expected: want, found: b });
            }
        }
        scratch.check_level(ctx, a.level, false)?;
        decompose(
            ctx,
            a.level,
            a.part(1),
            scratch.coeff.as_mut(),
            scratch.y.as_mut(),
            scratch.v.as_mut(),
            dec.as_mut(),
        );
        c0.as_mut().copy_from_slice(a.part(0));
        Ok(HoistedCiphertext {
            c0,
            dec,
            level: a.level,
            scale: a.scale,
            params_id: a.params_id,
            slots: a.slots,
        })
    }

    fn galois_hoisted<
        H: AsRef<[u64]>,
        K: SwitchKeyWords,
        O: AsRef<[u64]> + AsMut<[u64]>,
        S: AsRef<[u64]> + AsMut<[u64]>,
    >(
        &self,
        h: &HoistedCiphertext<H>,
        g: u64,
        step: Option<i64>,
        key: &GaloisKey<K>,
        scratch: &mut Scratch<S>,
        out: O,
    ) -> Result<Ciphertext<O>> {
        self.ctx.check_id(h.params_id)?;
        self.check_galois(key, g, step)?;
        let n = self.ctx.n();
        let l1 = h.level + 1;
        let mut out = Ciphertext::from_raw(out, 2, h.level, h.scale, n, h.params_id)?;
        out.slots = h.slots;
        // Key-switch c_1 from s to σ^-1(s); σ is applied to each limb as ModDown finishes it,
        // c_0 added on the way: out_0 = σ(t_0 + c_0), out_1 = σ(t_1).
        let perm = self.ctx.galois_perm(g);
        let (o0, o1) = out.data.as_mut()[..2 * l1 * n].split_at_mut(l1 * n);
        let p0 = Finish::Permute { perm: &perm, plus: Some(h.c0.as_ref()) };
        let p1 = Finish::Permute { perm: &perm, plus: None };
        self.switch(h.level, &key.key, scratch, Some(h.dec.as_ref()), &[], o0, o1, p0, p1)?;
        Ok(out)
    }

    /// Rotates a hoisted ciphertext by `step`.
    pub fn rotate_hoisted<H: AsRef<[u64]>, K: SwitchKeyWords, S: AsRef<[u64]> + AsMut<[u64]>>(
        &self,
        h: &HoistedCiphertext<H>,
        step: i64,
        key: &GaloisKey<K>,
        scratch: &mut Scratch<S>,
    ) -> Result<Ciphertext> {
        let out = vec![0; 2 * (h.level + 1) * self.ctx.n()];
        self.rotate_hoisted_into(h, step, key, scratch, out)
    }

    /// [`Self::rotate_hoisted`] into a caller's buffer of 2·(level+1)·N words, returned as the
    /// result ciphertext; nothing is allocated.
    pub fn rotate_hoisted_into<
        H: AsRef<[u64]>,
        K: SwitchKeyWords,
        O: AsRef<[u64]> + AsMut<[u64]>,
        S: AsRef<[u64]> + AsMut<[u64]>,
    >(
        &self,
        h: &HoistedCiphertext<H>,
        step: i64,
        key: &GaloisKey<K>,
        scratch: &mut Scratch<S>,
        out: O,
    ) -> Result<Ciphertext<O>> {
        let g = self.ctx.galois_element_for_step(step);
        self.galois_hoisted(h, g, Some(step), key, scratch, out)
    }

    /// Rotations of one ciphertext by several steps sharing one decomposition.
    pub fn rotate_many<A: AsRef<[u64]>, S: AsRef<[u64]> + AsMut<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        steps: &[i64],
        keys: &GaloisKeySet,
        scratch: &mut Scratch<S>,
    ) -> Result<Vec<Ciphertext>> {
        let h = self.hoist(a, scratch)?;
        steps
            .iter()
            .map(|&s| {
                let g = self.ctx.galois_element_for_step(s);
                let key = keys
                    .get(g)
                    .ok_or(Error::MissingGaloisKey { galois_element: g, step: Some(s) })?;
                self.rotate_hoisted(&h, s, key, scratch)
            })
            .collect()
    }
}
