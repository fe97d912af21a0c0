//! Hybrid key switching: ModUp of each digit of a polynomial (the hoistable part), the inner
//! product with a key (optionally under a Galois permutation), and ModDown by P.

use rayon::prelude::*;

use super::context::Context;
use super::key_limbs::{key_dot_product, SwitchKeyWords};
use super::keys::KeySwitchKey;
use super::params::Params;
use super::ring::{mul_shoup, sub_mod};
use crate::error::{Error, Result};

/// Reusable buffers for key switching at any level up to [`Scratch::level`] of one
/// parameter set. The buffers are `Vec`s by default; a runtime that keeps every buffer the
/// size of a ciphertext in its own memory (e.g. a tiered store's DRAM budget) builds one over
/// its own buffers with [`Scratch::with_buffers`], sized for the level of the operation.
#[derive(Debug)]
pub struct Scratch<B = Vec<u64>> {
    /// Coefficient form of the polynomial being decomposed, (L+1) limbs.
    pub(crate) coeff: B,
    /// Basis-extension staging, max(α, K) limbs.
    pub(crate) y: B,
    /// Inner-product accumulators, 2·(L+1+K) limbs.
    pub(crate) acc: B,
    /// ModDown staging, (L+1) limbs.
    pub(crate) md: B,
    /// Basis-extension overflow counts, one limb.
    pub(crate) v: B,
    /// The decomposition of the last operand, dnum·(L+1+K) limbs.
    pub(crate) dec: B,
    /// Large buffers (extended ciphertexts, encoded diagonals) handed back by one step of a
    /// linear transform for the next, so a bootstrap does not fault in fresh pages for each;
    /// emptied by [`Scratch::release_spare`].
    pub(crate) spare: Vec<B>,
    /// A second set of key-switch buffers for work a bootstrap runs on two threads side by
    /// side (EvalMod's real and imaginary halves), kept between bootstraps.
    pub(crate) partner: Option<Box<Scratch<B>>>,
    /// Whether the partner's buffers are released between its uses
    /// ([`Scratch::release_partner_while_idle`]).
    release_partner: bool,
    /// Times side-by-side work ran on the partner ([`Scratch::partner_runs`]).
    partner_runs: u64,
    /// The highest level the buffers are sized for.
    level: usize,
}

impl Scratch {
    /// Buffers sized for `ctx` at its top level.
    pub fn new(ctx: &Context) -> Self {
        let level = ctx.params().max_level();
        let [coeff, y, acc, md, v, dec] = Self::words_at(ctx.params(), level).map(|w| vec![0; w]);
        Self {
            coeff,
            y,
            acc,
            md,
            v,
            dec,
            spare: Vec::new(),
            partner: None,
            release_partner: false,
            partner_runs: 0,
            level,
        }
    }
}

/// A scratch buffer: words in place. A heap `Vec` also grows on demand; a fixed buffer (a
/// block of a store's budget) is used as it is, so a caller that keeps every large temporary in
/// its own memory hands in as many spares as the computation needs, up front
/// ([`Scratch::add_spares`]).
pub trait ScratchWords: AsRef<[u64]> + AsMut<[u64]> + Send {
    /// Words it holds without growing.
    fn room(&self) -> usize;

    /// Makes at least `len` words addressable if the buffer can grow (new words zero); a fixed
    /// buffer is left as it is.
    fn grow(&mut self, len: usize);

    /// A new empty buffer, for a type that can grow; `None` for fixed buffers, which are only
    /// ever handed in.
    fn fresh() -> Option<Self>
    where
        Self: Sized;

    /// Gives the buffer's memory back while it is idle, keeping its length, when it is
    /// borrowed from a budget (a store's); [`Self::reacquire`] makes it usable again. Other
    /// buffers keep their memory.
    fn release(&mut self) {}

    /// Makes a [released](Self::release) buffer usable again, its contents unspecified;
    /// `false` when its memory cannot be had now (it then stays released).
    fn reacquire(&mut self) -> bool {
        true
    }
}

impl ScratchWords for Vec<u64> {
    fn room(&self) -> usize {
        self.capacity()
    }

    fn grow(&mut self, len: usize) {
        // A bootstrap's first transform grows fresh buffers: zeroing them on every thread also
        // spreads their page faults.
        if self.len() < len {
            let extra = len - self.len();
            self.par_extend(rayon::iter::repeat_n(0u64, extra));
        }
    }

    fn fresh() -> Option<Self> {
        Some(Vec::new())
    }
}

/// A borrowed slice as a fixed buffer: the words of another buffer lent for a while (a linear
/// transform's accumulator in the key-switch accumulator's words).
impl ScratchWords for &mut [u64] {
    fn room(&self) -> usize {
        self.len()
    }

    fn grow(&mut self, _len: usize) {}

    fn fresh() -> Option<Self> {
        None
    }
}

impl<B: ScratchWords> Scratch<B> {
    /// The smallest spare buffer that holds `len` words without growing (any contents), else
    /// the largest one grown, else a new one; at least `len` words long. A typed error when
    /// none is left that holds `len` words and the buffers cannot grow (too few spares were
    /// handed in).
    pub(crate) fn take_spare(&mut self, len: usize) -> Result<B> {
        let fits = (0..self.spare.len())
            .filter(|&i| self.spare[i].room() >= len)
            .min_by_key(|&i| self.spare[i].room());
        let pick = fits.or_else(|| (0..self.spare.len()).max_by_key(|&i| self.spare[i].room()));
        let mut buf = match pick.map(|i| self.spare.swap_remove(i)).or_else(B::fresh) {
            Some(b) => b,
            None => return Err(Error::BufferLength { expected: len, found: 0 }),
        };
        buf.grow(len);
        let found = buf.as_ref().len();
        if found < len {
            self.spare.push(buf);
            return Err(Error::BufferLength { expected: len, found });
        }
        Ok(buf)
    }

    /// Keeps `buf` for a later [`Self::take_spare`].
    pub(crate) fn give_spare(&mut self, buf: B) {
        self.spare.push(buf);
    }

    /// A spare buffer lent out as its first `len` words: the buffer of a ciphertext
    /// temporary, the smallest spare that holds it ([`Self::take_spare`]). Every temporary of
    /// a bootstrap asks for the length its level needs, and the bootstrap hands in spares of
    /// those lengths (see [`super::bootstrap::Bootstrapper::spare_words`]).
    pub(crate) fn lend(&mut self, len: usize) -> Result<Lent<B>> {
        let buf = self.take_spare(len)?;
        Ok(Lent { buf, len })
    }

    /// A spare of exactly `room` words (any, if none is that long and the buffers can grow)
    /// lent out as its first `len` words: for handing back a buffer of the size another
    /// scratch lent, so both keep the spares they had.
    pub(crate) fn lend_exact(&mut self, room: usize, len: usize) -> Result<Lent<B>> {
        let exact = (0..self.spare.len()).find(|&i| self.spare[i].room() == room);
        let buf = match exact {
            Some(i) => self.spare.swap_remove(i),
            None => self.take_spare(room.max(len))?,
        };
        Ok(Lent { buf, len })
    }

    /// Takes back a buffer of [`Self::lend`].
    pub(crate) fn give_back(&mut self, lent: Lent<B>) {
        self.spare.push(lent.buf);
    }

    /// Hands in buffers for the large temporaries of linear transforms and bootstraps (see
    /// [`super::bootstrap::Bootstrapper::spare_words`] for how many a bootstrap needs).
    pub fn add_spares(&mut self, bufs: impl IntoIterator<Item = B>) {
        self.spare.extend(bufs);
    }

    /// Hands in a second scratch for the part of a bootstrap that runs on two threads side by
    /// side (EvalMod's real and imaginary halves). Without one, growable buffers make their own
    /// on first use and fixed ones (a store's budget) run the halves one after the other.
    pub fn set_partner(&mut self, mut partner: Scratch<B>) {
        if self.release_partner {
            partner.release_buffers();
        }
        self.partner = Some(Box::new(partner));
    }

    /// Releases the partner's buffers ([`ScratchWords::release`]) whenever the side-by-side
    /// work is not running, and reacquires them when it starts. Buffers borrowed from a store's
    /// budget then leave the rest of a bootstrap (CoeffToSlot, SlotToCoeff) that much more
    /// room to prefetch; when they cannot be had again, the halves run one after the other.
    pub fn release_partner_while_idle(&mut self) {
        self.release_partner = true;
        if let Some(p) = self.partner.as_mut() {
            p.release_buffers();
        }
    }

    /// The second scratch for side-by-side work: the one handed in or made before, else a new
    /// one for growable buffers; `None` when the buffers are fixed and none was handed in, or
    /// a released partner cannot have its buffers again.
    pub(crate) fn take_partner(&mut self, ctx: &Context) -> Option<Scratch<B>> {
        if let Some(mut p) = self.partner.take() {
            if self.release_partner && !p.reacquire_buffers() {
                self.partner = Some(p);
                return None;
            }
            self.partner_runs += 1;
            return Some(*p);
        }
        let made = Scratch::with_buffers(ctx, self.level, true, |w| {
            let mut b = B::fresh().ok_or(())?;
            b.grow(w);
            Ok::<B, ()>(b)
        })
        .ok();
        self.partner_runs += u64::from(made.is_some());
        made
    }

    /// How many times side-by-side work (a bootstrap's two EvalMod halves) ran on a partner
    /// scratch; the other times it ran one half after the other in this one.
    pub fn partner_runs(&self) -> u64 {
        self.partner_runs
    }

    /// Every buffer held: the key-switch buffers, then the spares.
    pub(crate) fn buffers_mut(&mut self) -> impl Iterator<Item = &mut B> {
        let Self { coeff, y, acc, md, v, dec, spare, .. } = self;
        [coeff, y, acc, md, v, dec].into_iter().chain(spare.iter_mut())
    }

    fn release_buffers(&mut self) {
        self.buffers_mut().for_each(ScratchWords::release);
    }

    /// Reacquires every buffer, or none: on a failure the ones taken are released again.
    fn reacquire_buffers(&mut self) -> bool {
        let all = self.buffers_mut().all(ScratchWords::reacquire);
        if !all {
            self.release_buffers();
        }
        all
    }

    /// Number of spare buffers held.
    pub fn spares(&self) -> usize {
        self.spare.len()
    }

    /// Frees the spare buffers kept between the steps of a transform or a bootstrap (the
    /// partner's too), when they can be made again; buffers that cannot (handed in with
    /// [`Self::add_spares`]) are kept for the next computation.
    pub fn release_spare(&mut self) {
        if B::fresh().is_some() {
            self.spare = Vec::new();
            if let Some(p) = self.partner.as_mut() {
                p.spare = Vec::new();
            }
        }
    }
}

/// A spare buffer in use for its first `len` words ([`Scratch::lend`]): the words of a
/// ciphertext temporary, whose buffer may be longer.
#[derive(Debug)]
pub(crate) struct Lent<B> {
    buf: B,
    len: usize,
}

impl<B: ScratchWords> Lent<B> {
    /// Words the lent buffer holds without growing.
    pub(crate) fn room(&self) -> usize {
        self.buf.room()
    }
}

impl<B: AsRef<[u64]>> AsRef<[u64]> for Lent<B> {
    fn as_ref(&self) -> &[u64] {
        &self.buf.as_ref()[..self.len]
    }
}

impl<B: AsMut<[u64]>> AsMut<[u64]> for Lent<B> {
    fn as_mut(&mut self) -> &mut [u64] {
        &mut self.buf.as_mut()[..self.len]
    }
}

impl<B: AsRef<[u64]> + AsMut<[u64]>> Scratch<B> {
    /// Words of each buffer for key switching operands at `level` under `params`, in the
    /// order `[coeff, y, acc, md, v, dec]` that [`Scratch::with_buffers`] asks for them.
    pub fn words_at(params: &Params, level: usize) -> [usize; 6] {
        let n = params.n();
        let l1 = level + 1;
        let k = params.p().len();
        let digits = params.digits_at(level);
        [l1 * n, params.alpha().max(k) * n, 2 * (l1 + k) * n, l1 * n, n, digits * (l1 + k) * n]
    }

    /// Total bytes of the buffers [`Scratch::with_buffers`] asks for at `level`; without
    /// `decomposition` the last one (only used when no ready decomposition is given, see
    /// [`super::Evaluator::rotate_hoisted_into`]) is a single word.
    pub fn bytes_at(params: &Params, level: usize, decomposition: bool) -> u64 {
        let mut w = Self::words_at(params, level);
        if !decomposition {
            w[5] = 1;
        }
        w.iter().map(|&w| w as u64 * 8).sum()
    }

    /// Buffers for key switching operands at `level` or below, each made by `alloc` from its
    /// length in words (at least that many; contents unspecified: every buffer is written
    /// before it is read). Without `decomposition` the decomposition buffer is one word: such
    /// a scratch only serves hoisted rotations (whose decomposition is ready).
    pub fn with_buffers<E>(
        ctx: &Context,
        level: usize,
        decomposition: bool,
        mut alloc: impl FnMut(usize) -> std::result::Result<B, E>,
    ) -> std::result::Result<Self, E> {
        let [c, y, a, m, v, d] = Self::words_at(ctx.params(), level);
        Ok(Self {
            coeff: alloc(c)?,
            y: alloc(y)?,
            acc: alloc(a)?,
            md: alloc(m)?,
            v: alloc(v)?,
            dec: alloc(if decomposition { d } else { 1 })?,
            spare: Vec::new(),
            partner: None,
            release_partner: false,
            partner_runs: 0,
            level,
        })
    }

    /// The highest operand level the buffers hold.
    pub fn level(&self) -> usize {
        self.level
    }

    /// Fails with a typed error when the buffers are too small for operands at `level` (with
    /// `decomposition`: also for decomposing them).
    pub(crate) fn check_level(
        &self,
        ctx: &Context,
        level: usize,
        decomposition: bool,
    ) -> Result<()> {
        let words = Scratch::<B>::words_at(ctx.params(), level);
        if level <= self.level && (!decomposition || self.dec.as_ref().len() >= words[5]) {
            return Ok(());
        }
        let need: usize = words.iter().sum();
        let have: usize = [&self.coeff, &self.y, &self.acc, &self.md, &self.v, &self.dec]
            .iter()
            .map(|b| b.as_ref().len())
            .sum();
        Err(Error::BufferLength { expected: need, found: have })
    }
}

/// Global prime index of position `pos` in a level-`level` extended basis (Q_l then P).
#[inline]
pub(crate) fn qp_prime(ctx: &Context, level: usize, pos: usize) -> usize {
    if pos <= level {
        pos
    } else {
        ctx.q_len() + pos - (level + 1)
    }
}

/// ModUp of every digit of `d` (NTT form, level+1 limbs) into `out`: digits·(level+1+K) limbs
/// in NTT form. Uses `coeff` and `y` as staging.
pub(crate) fn decompose(
    ctx: &Context,
    level: usize,
    d: &[u64],
    coeff: &mut [u64],
    y: &mut [u64],
    v: &mut [u64],
    out: &mut [u64],
) {
    let l1n = (level + 1) * ctx.n();
    coeff[..l1n].copy_from_slice(&d[..l1n]);
    decompose_in_coeff(ctx, level, coeff, y, v, out);
}

/// [`decompose`] of the polynomial already in `coeff` (NTT form, level+1 limbs), which is left
/// in coefficient form: a caller that can produce its operand there needs no buffer of its own
/// for it.
pub(crate) fn decompose_in_coeff(
    ctx: &Context,
    level: usize,
    coeff: &mut [u64],
    y: &mut [u64],
    v: &mut [u64],
    out: &mut [u64],
) {
    let n = ctx.n();
    let l1 = level + 1;
    let width = l1 + ctx.p_len();
    let coeff = &mut coeff[..l1 * n];
    let plans = ctx.modup(level);
    // A digit's own limbs are the operand's, still in NTT form: copied before the INTT.
    for (j, plan) in plans.iter().enumerate() {
        let dig = plan.digit.clone();
        let outj = &mut out[(j * width + dig.start) * n..(j * width + dig.end) * n];
        outj.copy_from_slice(&coeff[dig.start * n..dig.end * n]);
    }
    coeff.par_chunks_mut(n).enumerate().for_each(|(i, limb)| ctx.prime(i).intt(limb));
    let coeff = &*coeff;
    for (j, plan) in plans.iter().enumerate() {
        let dig = plan.digit.clone();
        let y = &mut y[..dig.len() * n];
        y.par_chunks_mut(n).enumerate().for_each(|(ii, yl)| {
            let i = dig.start + ii;
            plan.ext.prepare_limb(ii, &coeff[i * n..(i + 1) * n], yl);
        });
        let y = &*y;
        let v = &mut v[..n];
        plan.ext.overflow(y, v);
        let v = &*v;
        let outj = &mut out[j * width * n..(j + 1) * width * n];
        outj.par_chunks_mut(n).enumerate().filter(|(pos, _)| !dig.contains(pos)).for_each(
            |(pos, limb)| {
                let t = if pos < dig.start { pos } else { pos - dig.len() };
                let p = ctx.prime(qp_prime(ctx, level, pos));
                plan.ext.extend_limb(t, y, v, limb);
                p.ntt(limb);
            },
        );
    }
}

/// acc = Σ_j dec_j ⊙ key_j for both key parts; `acc` holds 2·(level+1+K) limbs: part b then
/// part a.
pub(crate) fn inner_product<K: SwitchKeyWords>(
    ctx: &Context,
    level: usize,
    dec: &[u64],
    key: &KeySwitchKey<K>,
    acc: &mut [u64],
) -> Result<()> {
    let n = ctx.n();
    let width = level + 1 + ctx.p_len();
    let digits = ctx.params().digits_at(level);
    key.check_level(level)?;
    let (acc0, acc1) = acc[..2 * width * n].split_at_mut(width * n);
    let limbs = key.data.key_limbs();
    acc0.par_chunks_mut(n).zip(acc1.par_chunks_mut(n)).enumerate().try_for_each(
        |(pos, (o0, o1))| {
            // One fused pass (math::dot_product, IFMA): both parts, every digit.
            let a: Vec<&[u64]> = (0..digits)
                .map(|j| &dec[(j * width + pos) * n..(j * width + pos + 1) * n])
                .collect();
            key_dot_product(ctx, &limbs, qp_prime(ctx, level, pos), &a, [o0, o1])
        },
    )
}

/// What [`mod_down`] does with each finished limb of the result.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Finish<'a> {
    /// Write it to `out`.
    Store,
    /// Add it to `out`.
    Add,
    /// Write it plus this polynomial (level+1 limbs) to `out`: [`Finish::Add`] onto a copy,
    /// without the copy's pass over the whole polynomial.
    Plus(&'a [u64]),
    /// `out[j] = limb[perm[j]] (+ plus[perm[j]])`: a Galois automorphism in NTT form (plus the
    /// unswitched c_0 of a rotation), applied while the limb is still in cache instead of in a
    /// second pass over the whole polynomial.
    Permute {
        /// The automorphism as a slot permutation.
        perm: &'a [u32],
        /// A polynomial (level+1 limbs) added before permuting.
        plus: Option<&'a [u64]>,
    },
}

/// out (level+1 limbs, NTT) = (acc − ModUp_P→Q(acc mod P))·P^-1 + `err`, delivered to `out` as
/// `finish` says. `acc` holds level+1+K limbs (its P limbs are overwritten); `err` is an optional
/// small coefficient-form polynomial (an encryption error), folded in before the NTT for free.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mod_down(
    ctx: &Context,
    level: usize,
    acc: &mut [u64],
    y: &mut [u64],
    v: &mut [u64],
    md: &mut [u64],
    out: &mut [u64],
    finish: Finish<'_>,
    err: Option<&[i64]>,
) {
    let n = ctx.n();
    let l1 = level + 1;
    let k = ctx.p_len();
    let plan = ctx.moddown(level);
    let (acc_q, acc_p) = acc[..(l1 + k) * n].split_at_mut(l1 * n);
    let y = &mut y[..k * n];
    acc_p.par_chunks_mut(n).zip(y.par_chunks_mut(n)).enumerate().for_each(|(t, (limb, yl))| {
        let p = ctx.prime(ctx.q_len() + t);
        p.intt(limb);
        plan.ext.prepare_limb(t, limb, yl);
    });
    let y = &*y;
    let v = &mut v[..n];
    plan.ext.overflow(y, v);
    let v = &*v;
    let md = &mut md[..l1 * n];
    md.par_chunks_mut(n)
        .zip(out[..l1 * n].par_chunks_mut(n))
        .zip(acc_q.par_chunks(n))
        .enumerate()
        .for_each(|(i, ((tmp, o), a))| {
            let p = ctx.prime(i);
            let m = &p.modulus;
            let build = |dst: &mut [u64]| {
                plan.ext.extend_limb(i, y, v, dst);
                if let Some(e) = err {
                    // (acc − (ext − P·e))·P^-1 = (acc − ext)·P^-1 + e.
                    let (pm, pms) = plan.p_mod[i];
                    for (x, &ev) in dst.iter_mut().zip(e) {
                        *x = sub_mod(*x, mul_shoup(p.reduce_i64(ev), pm, pms, p.q), p.q);
                    }
                }
                p.ntt(dst);
                m.sub_from_slice(dst, a);
                m.mul_scalar_assign_slice(dst, plan.p_inv[i].0);
            };
            match finish {
                // Without accumulation the result is built in `out` directly.
                Finish::Store => build(o),
                Finish::Add => {
                    build(tmp);
                    m.add_assign_slice(o, tmp);
                }
                Finish::Plus(c) => {
                    build(o);
                    m.add_assign_slice(o, &c[i * n..(i + 1) * n]);
                }
                Finish::Permute { perm, plus } => {
                    build(tmp);
                    if let Some(c) = plus {
                        // Added before the gather: a sequential pass over c instead of random
                        // reads of it.
                        m.add_assign_slice(tmp, &c[i * n..(i + 1) * n]);
                    }
                    for (y, &j) in o.iter_mut().zip(perm) {
                        *y = tmp[j as usize];
                    }
                }
            }
        });
}
