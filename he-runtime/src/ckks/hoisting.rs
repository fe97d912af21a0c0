//! Double hoisting (Bossuat, Mouchet, Troncoso-Pastoriza and Hubaux, EUROCRYPT 2021): sums
//! Σ_j d_j ⊙ R^(k_j)(x) of plaintext-weighted rotations of one ciphertext with one ModUp of x
//! and one ModDown per output polynomial.
//!
//! A rotation is stopped before its ModDown: P·c_0 plus the inner product of x's digits with
//! the Galois key, under the automorphism, encrypts P·R^k(x) over the extended basis Q_l·P.
//! Products with diagonals encoded over Q_l·P ([`ExtendedPlaintext`]) and sums stay in that
//! basis, and ModDown (a division by P with rounding) is linear up to its rounding, so one
//! ModDown of the sum stands for one per rotation, which is about three quarters of a hoisted
//! rotation's time.

use rayon::prelude::*;

use super::ciphertext::{merge_slots, Ciphertext};
use super::context::Context;
use super::evaluator::Evaluator;
use super::key_limbs::{key_dot_product, SwitchKeyWords};
use super::keys::{GaloisKeySet, KeySwitchKey};
use super::keyswitch::{decompose, mod_down, qp_prime, Finish, Scratch, ScratchWords};
use super::limb_scratch::with_scratch;
use super::ring::add_mod;
use crate::error::{Error, Result};

/// A plaintext over the extended basis q_0..q_level, p_0..p_(K−1) in NTT form, made by
/// [`Encoder::encode_extended`](super::Encoder::encode_extended).
#[derive(Debug, Clone)]
pub struct ExtendedPlaintext {
    pub(crate) data: Vec<u64>,
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) params_id: u64,
    /// The slot period of the encoded vector, when known (as [`super::Plaintext::slots`]).
    pub(crate) slots: Option<usize>,
}

impl ExtendedPlaintext {
    /// The level of its Q part.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The scale it was encoded at.
    pub fn scale(&self) -> f64 {
        self.scale
    }
}

/// A degree-1 ciphertext over Q_l·P that encrypts P times its message (a key switch before its
/// ModDown): c_0 and c_1, each level+1+K limbs in NTT form, in the first
/// [`Self::part_words`] words of its own buffer. Two buffers, not one: half-size spares also
/// serve the smaller ciphertexts of EvalMod, so a bootstrap's spares need not hold a whole
/// extended ciphertext's length for each of them.
#[derive(Debug, Clone)]
pub(crate) struct ExtendedCiphertext<B = Vec<u64>> {
    parts: [B; 2],
    level: usize,
    width: usize,
    n: usize,
}

impl ExtendedCiphertext {
    /// The zero ciphertext at `level`.
    pub(crate) fn zeros(ctx: &Context, level: usize) -> Self {
        Self::zeros_in(ctx, level, [Vec::new(), Vec::new()])
    }

    /// Words of one part of the ciphertext at `level` (level+1+K limbs), whatever its buffers.
    pub(crate) fn part_words(ctx: &Context, level: usize) -> usize {
        (level + 1 + ctx.p_len()) * ctx.n()
    }
}

impl<B: ScratchWords> ExtendedCiphertext<B> {
    /// The zero ciphertext at `level` in `bufs` (c_0's and c_1's; reused: any contents).
    pub(crate) fn zeros_in(ctx: &Context, level: usize, bufs: [B; 2]) -> Self {
        let mut out = Self::from_buffers(ctx, level, bufs);
        out.clear();
        out
    }

    /// A ciphertext at `level` over `bufs` (c_0's and c_1's) with unspecified contents, for a
    /// caller that writes every word ([`Sink::Store`]). A growable buffer is grown to
    /// [`Self::part_words`]; a fixed one must hold them (from [`Scratch::take_spare`]).
    pub(crate) fn from_buffers(ctx: &Context, level: usize, mut bufs: [B; 2]) -> Self {
        let n = ctx.n();
        let width = level + 1 + ctx.p_len();
        for buf in &mut bufs {
            buf.grow(width * n);
            assert!(buf.as_ref().len() >= width * n, "extended ciphertext buffer too short");
        }
        Self { parts: bufs, level, width, n }
    }

    /// The buffers (c_0's, c_1's), for reuse.
    pub(crate) fn into_buffers(self) -> [B; 2] {
        self.parts
    }

    /// Every limb, c_0's then c_1's: the k-th is limb k % width of part k / width.
    fn limbs(&self) -> impl IndexedParallelIterator<Item = &[u64]> {
        let len = self.width * self.n;
        let [a, b] = &self.parts;
        a.as_ref()[..len].par_chunks(self.n).chain(b.as_ref()[..len].par_chunks(self.n))
    }

    /// [`Self::limbs`], mutably.
    fn limbs_mut(&mut self) -> impl IndexedParallelIterator<Item = &mut [u64]> {
        let (n, len) = (self.n, self.width * self.n);
        let [a, b] = &mut self.parts;
        a.as_mut()[..len].par_chunks_mut(n).chain(b.as_mut()[..len].par_chunks_mut(n))
    }

    /// (P·c_0, P·c_1), whose P limbs are zero (the unrotated term of a sum), in `bufs`
    /// (reused: any contents).
    pub(crate) fn lift_in<C: AsRef<[u64]>>(
        ctx: &Context,
        ct: &Ciphertext<C>,
        bufs: [B; 2],
    ) -> Self {
        let mut out = Self::from_buffers(ctx, ct.level, bufs);
        let (n, width) = (out.n, out.width);
        let l1 = ct.level + 1;
        let plan = ctx.moddown(ct.level);
        let parts = [ct.part(0), ct.part(1)];
        out.limbs_mut().enumerate().for_each(|(k, limb)| {
            let (p, i) = (k / width, k % width);
            if i < l1 {
                let c = &parts[p][i * n..(i + 1) * n];
                limb.copy_from_slice(c);
                ctx.prime(i).modulus.mul_scalar_assign_slice(limb, plan.p_mod[i].0);
            } else {
                limb.fill(0);
            }
        });
        out
    }

    /// c_0 over Q_l·P.
    pub(crate) fn c0(&self) -> &[u64] {
        &self.parts[0].as_ref()[..self.width * self.n]
    }

    fn parts_mut(&mut self) -> (&mut [u64], &mut [u64]) {
        let len = self.width * self.n;
        let [a, b] = &mut self.parts;
        (&mut a.as_mut()[..len], &mut b.as_mut()[..len])
    }

    /// Sets every word to zero (reuse across the giant steps of a transform).
    pub(crate) fn clear(&mut self) {
        self.limbs_mut().for_each(|l| l.fill(0));
    }

    /// self += pt ⊙ x over every limb of both parts, `pt` an extended plaintext's words at
    /// this level (level+1+K limbs), each word standing for `repeat` equal neighbours (1: every
    /// word stored; a compacted diagonal, [`crate::ckks::bootstrap::compact_runs`]).
    pub(crate) fn mul_add_assign<X: ScratchWords>(
        &mut self,
        ctx: &Context,
        x: &ExtendedCiphertext<X>,
        pt: &[u64],
        repeat: usize,
    ) {
        let (n, width, level) = (self.n, self.width, self.level);
        let stored = n / repeat;
        self.limbs_mut().zip(x.limbs()).enumerate().for_each(|(k, (acc, xl))| {
            let pos = k % width;
            let m = &ctx.prime(qp_prime(ctx, level, pos)).modulus;
            let d = &pt[pos * stored..(pos + 1) * stored];
            if repeat == 1 {
                m.mul_add_assign_slice(acc, xl, d);
                return;
            }
            let mut runs = [0u64; SLICE];
            for (i, (acc, xl)) in acc.chunks_mut(SLICE).zip(xl.chunks(SLICE)).enumerate() {
                let runs = expand_runs(&mut runs[..acc.len()], d, i * SLICE, repeat);
                m.mul_add_assign_slice(acc, xl, runs);
            }
        });
    }

    /// self += pt ⊙ (P·c_0, P·c_1) for a ciphertext `ct` over Q_l at this level: the same words
    /// as [`Self::mul_add_assign`] of [`Self::lift_in`]`(ct)`, without a buffer for the lifted
    /// copy (each limb is lifted a slice at a time; its P limbs are zero and add nothing).
    pub(crate) fn mul_add_lifted_assign<C: AsRef<[u64]>>(
        &mut self,
        ctx: &Context,
        ct: &Ciphertext<C>,
        pt: &[u64],
        repeat: usize,
    ) {
        let (n, width, level) = (self.n, self.width, self.level);
        let stored = n / repeat;
        let plan = ctx.moddown(level);
        let parts = [ct.part(0), ct.part(1)];
        self.limbs_mut().enumerate().for_each(|(k, acc)| {
            let (p, pos) = (k / width, k % width);
            if pos > level {
                return;
            }
            let m = &ctx.prime(pos).modulus;
            let c = &parts[p][pos * n..(pos + 1) * n];
            let d = &pt[pos * stored..(pos + 1) * stored];
            let (mut lifted, mut runs) = ([0u64; SLICE], [0u64; SLICE]);
            for (i, (acc, c)) in acc.chunks_mut(SLICE).zip(c.chunks(SLICE)).enumerate() {
                let lifted = &mut lifted[..c.len()];
                lifted.copy_from_slice(c);
                m.mul_scalar_assign_slice(lifted, plan.p_mod[pos].0);
                let d = if repeat == 1 {
                    &d[i * SLICE..i * SLICE + c.len()]
                } else {
                    expand_runs(&mut runs[..c.len()], d, i * SLICE, repeat)
                };
                m.mul_add_assign_slice(acc, lifted, d);
            }
        });
    }

    /// self += x.
    pub(crate) fn add_assign<X: ScratchWords>(&mut self, ctx: &Context, x: &ExtendedCiphertext<X>) {
        let (width, level) = (self.width, self.level);
        self.limbs_mut().zip(x.limbs()).enumerate().for_each(|(k, (acc, xl))| {
            let m = &ctx.prime(qp_prime(ctx, level, k % width)).modulus;
            m.add_assign_slice(acc, xl);
        });
    }

    /// ModDown of c_1 alone into `out` (level+1 limbs) with a scratch's basis-extension (`y`,
    /// `v`) and ModDown (`md`) staging; c_1's P limbs are destroyed.
    pub(crate) fn mod_down_c1(
        &mut self,
        ctx: &Context,
        y: &mut [u64],
        v: &mut [u64],
        md: &mut [u64],
        out: &mut [u64],
    ) {
        let level = self.level;
        let (_, c1) = self.parts_mut();
        mod_down(ctx, level, c1, y, v, md, out, Finish::Store, None);
    }

    /// ModDown of both parts: the ciphertext over Q_l at `scale` (both parts' P limbs are
    /// destroyed).
    pub(crate) fn mod_down<S: AsRef<[u64]> + AsMut<[u64]>>(
        &mut self,
        ctx: &Context,
        scratch: &mut Scratch<S>,
        scale: f64,
        params_id: u64,
        slots: Option<usize>,
    ) -> Result<Ciphertext> {
        let out = vec![0; 2 * (self.level + 1) * self.n];
        self.mod_down_into(ctx, scratch, out, scale, params_id, slots)
    }

    /// [`Self::mod_down`] into a caller's buffer of 2·(level+1)·N words (every word is
    /// written); nothing is allocated.
    pub(crate) fn mod_down_into<S, O>(
        &mut self,
        ctx: &Context,
        scratch: &mut Scratch<S>,
        out: O,
        scale: f64,
        params_id: u64,
        slots: Option<usize>,
    ) -> Result<Ciphertext<O>>
    where
        S: AsRef<[u64]> + AsMut<[u64]>,
        O: AsRef<[u64]> + AsMut<[u64]>,
    {
        let Scratch { y, v, md, .. } = scratch;
        let (y, v, md) = (y.as_mut(), v.as_mut(), md.as_mut());
        self.mod_down_into_with(ctx, y, v, md, out, scale, params_id, slots)
    }

    /// [`Self::mod_down_into`] with the scratch's staging handed in alone (see
    /// [`Self::mod_down_c1`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mod_down_into_with<O: AsRef<[u64]> + AsMut<[u64]>>(
        &mut self,
        ctx: &Context,
        y: &mut [u64],
        v: &mut [u64],
        md: &mut [u64],
        out: O,
        scale: f64,
        params_id: u64,
        slots: Option<usize>,
    ) -> Result<Ciphertext<O>> {
        let (level, n) = (self.level, self.n);
        let l1 = level + 1;
        let mut out = Ciphertext::from_raw(out, 2, level, scale, n, params_id)?;
        out.slots = slots;
        let (o0, o1) = out.data.as_mut().split_at_mut(l1 * n);
        let (a0, a1) = self.parts_mut();
        mod_down(ctx, level, a0, y, v, md, o0, Finish::Store, None);
        mod_down(ctx, level, a1, y, v, md, o1, Finish::Store, None);
        Ok(out)
    }
}

/// The c_0 that [`rotate_extended`] adds to the key-switched c_0 before the automorphism.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Plus<'a> {
    /// c_0 over Q_l (level+1 limbs), multiplied by P on the way.
    Scaled(&'a [u64]),
    /// c_0 already over Q_l·P (level+1+K limbs).
    Extended(&'a [u64]),
}

/// What [`rotate_extended`] does with each rotated limb r of `out`'s matching limb o.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sink<'a> {
    /// o = r.
    Store,
    /// o += r.
    Add,
    /// o += d ⊙ r for the extended plaintext d (level+1+K limbs).
    MulAdd(&'a [u64]),
}

/// A rotation left in the extended basis: (σ(plus + ⟨dec, k_0⟩), σ(⟨dec, k_1⟩)) over Q_l·P,
/// delivered limb by limb into `out` as `sink` says. `dec` is the ModUp of c_1's digits
/// ([`decompose`]), `perm` the automorphism σ in NTT form, `key` its (checked) Galois key.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rotate_extended<K: SwitchKeyWords, O: ScratchWords>(
    ctx: &Context,
    level: usize,
    dec: &[u64],
    key: &KeySwitchKey<K>,
    perm: &[u32],
    plus: Plus<'_>,
    out: &mut ExtendedCiphertext<O>,
    sink: Sink<'_>,
) -> Result<()> {
    let n = ctx.n();
    let l1 = level + 1;
    let width = l1 + ctx.p_len();
    let digits = ctx.params().digits_at(level);
    key.check_level(level)?;
    let limbs = key.data.key_limbs();
    let plan = ctx.moddown(level);
    let (o0, o1) = out.parts_mut();
    o0.par_chunks_mut(n).zip(o1.par_chunks_mut(n)).enumerate().try_for_each(|(pos, (r0, r1))| {
        with_scratch(3 * n, |words| {
            let (t0, rest) = words.split_at_mut(n);
            let (t1, g) = rest.split_at_mut(n);
            let gi = qp_prime(ctx, level, pos);
            let prime = ctx.prime(gi);
            let m = &prime.modulus;
            let a: Vec<&[u64]> = (0..digits)
                .map(|j| &dec[(j * width + pos) * n..(j * width + pos + 1) * n])
                .collect();
            key_dot_product(ctx, &limbs, gi, &a, [&mut *t0, &mut *t1])?;
            match plus {
                Plus::Scaled(c) if pos < l1 => {
                    m.mul_scalar_add_assign_slice(t0, &c[pos * n..(pos + 1) * n], plan.p_mod[pos].0)
                }
                Plus::Extended(c) => m.add_assign_slice(t0, &c[pos * n..(pos + 1) * n]),
                Plus::Scaled(_) => {}
            }
            for (r, t) in [(r0, &*t0), (r1, &*t1)] {
                match sink {
                    Sink::Store => {
                        for (y, &j) in r.iter_mut().zip(perm) {
                            *y = t[j as usize];
                        }
                    }
                    Sink::Add => {
                        for (y, &j) in r.iter_mut().zip(perm) {
                            *y = add_mod(*y, t[j as usize], prime.q);
                        }
                    }
                    Sink::MulAdd(d) => {
                        for (y, &j) in g.iter_mut().zip(perm) {
                            *y = t[j as usize];
                        }
                        m.mul_add_assign_slice(r, g, &d[pos * n..(pos + 1) * n]);
                    }
                }
            }
            Ok(())
        })
    })
}

impl Evaluator {
    /// Σ_j pt_j ⊙ R^(step_j)(a) by double hoisting: one ModUp of a's c_1, every rotation and
    /// product in the extended basis, one ModDown per output polynomial. The plaintexts come
    /// from [`Encoder::encode_extended`](super::Encoder::encode_extended) at a's level and share
    /// one scale; the result's scale is a's times theirs (rescale afterwards). Step 0 (or any
    /// multiple of the slot count) is the unrotated term and needs no key.
    pub fn rotate_mul_sum<A: AsRef<[u64]>>(
        &self,
        a: &Ciphertext<A>,
        terms: &[(i64, &ExtendedPlaintext)],
        keys: &GaloisKeySet,
        scratch: &mut Scratch,
    ) -> Result<Ciphertext> {
        self.check_ct(a)?;
        if a.parts != 2 {
            return Err(Error::InvalidDegree { degree: a.degree(), expected: 1 });
        }
        let ctx = &*self.ctx;
        let Some(first) = terms.first() else {
            return Err(Error::InvalidParameter {
                name: "terms",
                reason: "a rotation sum needs at least one term".into(),
            });
        };
        let pt_scale = first.1.scale;
        for (_, pt) in terms {
            ctx.check_id(pt.params_id)?;
            if pt.level != a.level {
                return Err(Error::LevelMismatch { left: a.level, right: pt.level });
            }
            if !super::evaluator::scales_match(pt.scale, pt_scale) {
                return Err(Error::ScaleMismatch {
                    left_log2: pt_scale.log2(),
                    right_log2: pt.scale.log2(),
                });
            }
        }
        let level = a.level;
        let mut acc = ExtendedCiphertext::zeros(ctx, level);
        let mut decomposed = false;
        for &(step, pt) in terms {
            let g = ctx.galois_element_for_step(step);
            if g == 1 {
                let words = ExtendedCiphertext::part_words(ctx, level);
                let bufs = [scratch.take_spare(words)?, scratch.take_spare(words)?];
                let lifted = ExtendedCiphertext::lift_in(ctx, a, bufs);
                acc.mul_add_assign(ctx, &lifted, &pt.data, 1);
                lifted.into_buffers().into_iter().for_each(|b| scratch.give_spare(b));
                continue;
            }
            let key = keys
                .get(g)
                .ok_or(Error::MissingGaloisKey { galois_element: g, step: Some(step) })?;
            self.check_galois(key, g, Some(step))?;
            let Scratch { coeff, y, v, dec, .. } = &mut *scratch;
            if !decomposed {
                decompose(ctx, level, a.part(1), coeff, y, v, dec);
                decomposed = true;
            }
            let perm = ctx.galois_perm(g);
            let plus = Plus::Scaled(a.part(0));
            rotate_extended(
                ctx,
                level,
                dec,
                &key.key,
                &perm,
                plus,
                &mut acc,
                Sink::MulAdd(&pt.data),
            )?;
        }
        let slots = terms.iter().fold(a.slots, |s, (_, pt)| merge_slots(s, pt.slots));
        let out = acc.mod_down(ctx, scratch, a.scale * pt_scale, a.params_id, slots)?;
        scratch.release_spare();
        Ok(out)
    }
}

/// Words a limb is worked through at a time where a slice is made on the stack.
const SLICE: usize = 512;

/// Fills `out` with the words `from..from + out.len()` of a limb stored one word per run of
/// `repeat` (`stored[i / repeat]`), and returns it.
fn expand_runs<'a>(out: &'a mut [u64], stored: &[u64], from: usize, repeat: usize) -> &'a [u64] {
    let shift = repeat.trailing_zeros();
    // Whole runs are filled with one word each (vector stores) instead of read word by word
    // through the index: at `n16_deep`'s runs of 32 and 1,024 words the per-word loop took
    // ~2.8% of a budgeted bootstrap's CPU.
    let mut pos = from;
    let mut rest = &mut out[..];
    while !rest.is_empty() {
        let run = pos >> shift;
        let take = (((run + 1) << shift) - pos).min(rest.len());
        let (head, tail) = rest.split_at_mut(take);
        head.fill(stored[run]);
        pos += take;
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run-filling path gives the words of the definition `stored[i / repeat]` for every
    /// run length, start and slice length, aligned to a run or not.
    #[test]
    fn expanded_runs_are_the_stored_word_of_each_run() {
        let stored: Vec<u64> =
            (0..4096u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        for repeat in [2usize, 4, 8, 16, 32, 1024, 2048] {
            for from in [0usize, 512, 1024, 3 * SLICE, 5, 37, 1023, 2047] {
                for len in [SLICE, 100, 7, 1] {
                    if (from + len).div_ceil(repeat) > stored.len() {
                        continue;
                    }
                    let mut out = vec![u64::MAX; len];
                    let got = expand_runs(&mut out, &stored, from, repeat).to_vec();
                    let want: Vec<u64> = (from..from + len).map(|i| stored[i / repeat]).collect();
                    assert_eq!(got, want, "repeat {repeat}, from {from}, len {len}");
                }
            }
        }
    }
}
