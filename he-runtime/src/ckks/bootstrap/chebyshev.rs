//! Encrypted evaluation of p(t) = Σ c_k T_k(t) on t ∈ [−1, 1], with exact scale bookkeeping.
//!
//! * Powers: T_2j = 2·T_j² − 1 and T_j = 2·T_a·T_(j−a) − T_(2a−j) (a the largest power of two
//!   below j), so T_j sits ⌈log2 j⌉ levels below t. The subtracted term is brought to the
//!   product's scale by a constant product before the rescale, so each power costs one
//!   relinearised product.
//! * Baby-step giant-step: p = q·T_m + r (m the largest power of two ≤ deg p, Chebyshev
//!   division), recursively, down to parts below the baby bound, which are one sum of constant
//!   products and a single rescale. Every part is produced at the exact (level, scale) its
//!   consumer asks for, so additions never need matching.

use std::collections::{BTreeMap, BTreeSet};

use super::super::ciphertext::Ciphertext;
use super::super::evaluator::Evaluator;
use super::super::fft::Complex64;
use super::super::keyswitch::{Lent, Scratch, ScratchWords};
use super::key_source::KeySource;
use super::spares::{Handle, Trace};
use crate::error::Error;

/// A ciphertext temporary in a spare of the scratch ([`Scratch::lend`]).
pub(crate) type Temp<S> = Ciphertext<Lent<S>>;

/// Chebyshev powers of one input ciphertext, all made up front ([`Powers::make`]) into spares
/// of the scratch and given back by [`Powers::release`].
pub(crate) struct Powers<'a, K: KeySource, S> {
    eval: &'a Evaluator,
    keys: &'a K,
    cache: BTreeMap<usize, Temp<S>>,
    top: usize,
    /// Uses left of each power in the evaluation ([`Self::plan_uses`]): a power is given back
    /// after its last one (a power without a count stays to [`Self::release`]).
    uses: BTreeMap<usize, usize>,
}

impl<'a, K: KeySource, S: ScratchWords> Powers<'a, K, S> {
    /// Powers of `t` (slots in [−1, 1]).
    pub(crate) fn new(eval: &'a Evaluator, keys: &'a K, t: Temp<S>) -> Self {
        let top = t.level();
        let mut cache = BTreeMap::new();
        cache.insert(1, t);
        Self { eval, keys, cache, top, uses: BTreeMap::new() }
    }

    /// Makes every power in `needed` (a set closed under [`recipe`], see [`powers_made`]) in
    /// increasing order, so that each one's operands are ready.
    pub(crate) fn make(
        &mut self,
        needed: &BTreeSet<usize>,
        scratch: &mut Scratch<S>,
    ) -> std::result::Result<(), K::Error> {
        for &j in needed {
            if !self.cache.contains_key(&j) {
                let (a, b, minus) = recipe(j);
                let ct = self.product(a, b, minus, scratch)?;
                self.cache.insert(j, ct);
            }
        }
        Ok(())
    }

    /// 2·T_a·T_b − T_minus (T_0 = 1), one level below the lower operand.
    fn product(
        &mut self,
        a: usize,
        b: usize,
        minus: usize,
        scratch: &mut Scratch<S>,
    ) -> std::result::Result<Temp<S>, K::Error> {
        let eval = self.eval;
        let missing = || Error::InvalidParameter {
            name: "Chebyshev power",
            reason: "an operand was not made before the power".into(),
        };
        let x = self.cache.get(&a).ok_or_else(missing)?;
        let y = self.cache.get(&b).ok_or_else(missing)?;
        let l = x.level().min(y.level());
        let n = eval.context().n();
        // The operand above the common level is copied down (at most one is).
        let drop = |c: &Temp<S>, s: &mut Scratch<S>| -> crate::error::Result<Option<Temp<S>>> {
            if c.level() == l {
                return Ok(None);
            }
            Ok(Some(eval.drop_to_level_into(c, l, s.lend(2 * (l + 1) * n)?)?))
        };
        let xd = drop(x, scratch)?;
        let yd = drop(y, scratch)?;
        let (xr, yr) = (xd.as_ref().unwrap_or(x), yd.as_ref().unwrap_or(y));
        let tensor = eval.mul_into(xr, yr, scratch.lend(3 * (l + 1) * n)?)?;
        // The copied operand goes back before the relinearisation's output is lent.
        for c in [xd, yd].into_iter().flatten() {
            scratch.give_back(c.into_data());
        }
        let out = scratch.lend(2 * (l + 1) * n)?;
        let mut p =
            eval.relinearize_into(&tensor, &self.keys.relin(tensor.level())?, scratch, out)?;
        scratch.give_back(tensor.into_data());
        eval.mul_integer_assign(&mut p, 2)?;
        let target = p.scale();
        if minus == 0 {
            eval.add_const_assign(&mut p, Complex64::new(-1.0, 0.0))?;
        } else {
            // T_minus is read at its own level: no copy down.
            let m = self.cache.get(&minus).ok_or_else(missing)?;
            eval.mul_const_add_assign(&mut p, m, -1.0, target / m.scale())?;
        }
        let r = rescale(eval, &p, scratch)?;
        scratch.give_back(p.into_data());
        Ok(r)
    }

    /// A copy of T_j (made by [`Self::make`]) at `level`, in a spare.
    fn dropped(
        &self,
        j: usize,
        level: usize,
        scratch: &mut Scratch<S>,
    ) -> crate::error::Result<Temp<S>> {
        let t = self.power(j)?;
        let out = scratch.lend(2 * (level + 1) * self.eval.context().n())?;
        self.eval.drop_to_level_into(t, level, out)
    }

    /// Counts the uses [`ChebyshevEvaluator::eval`] of `c` (degree at most `max_degree`)
    /// makes of each power, so that each is given back after its last one.
    pub(crate) fn plan_uses(&mut self, c: &[f64], max_degree: usize) {
        self.uses = uses(c, baby_bound(max_degree));
    }

    /// T_j at `level` for one use of the evaluation, in a spare: a copy while the power has
    /// uses left, else the power itself when it is at `level` (the copy would be the same
    /// words), or a copy after which the power is given back.
    fn use_at(
        &mut self,
        j: usize,
        level: usize,
        scratch: &mut Scratch<S>,
    ) -> crate::error::Result<Temp<S>> {
        if !count_use(&mut self.uses, j) {
            return self.dropped(j, level, scratch);
        }
        if self.cache.get(&j).is_some_and(|t| t.level() == level) {
            if let Some(t) = self.cache.remove(&j) {
                return Ok(t);
            }
        }
        let copy = self.dropped(j, level, scratch)?;
        if let Some(t) = self.cache.remove(&j) {
            scratch.give_back(t.into_data());
        }
        Ok(copy)
    }

    /// acc += c·T_j for one use of the evaluation, T_j read at acc's level where it is kept
    /// (no copy); the power is given back after its last use. The constant is encoded at
    /// acc's scale over T_j's.
    fn add_use(
        &mut self,
        acc: &mut Temp<S>,
        j: usize,
        c: f64,
        scratch: &mut Scratch<S>,
    ) -> crate::error::Result<()> {
        let last = count_use(&mut self.uses, j);
        let t = self.power(j)?;
        self.eval.mul_const_add_assign(acc, t, c, acc.scale() / t.scale())?;
        if last {
            if let Some(t) = self.cache.remove(&j) {
                scratch.give_back(t.into_data());
            }
        }
        Ok(())
    }

    /// T_j where it is kept (made by [`Self::make`]).
    fn power(&self, j: usize) -> crate::error::Result<&Temp<S>> {
        self.cache.get(&j).ok_or(Error::InvalidParameter {
            name: "Chebyshev power",
            reason: format!("T_{j} was not made"),
        })
    }

    /// The scale of T_j (made by [`Self::make`]).
    fn scale_of(&self, j: usize) -> crate::error::Result<f64> {
        Ok(self.power(j)?.scale())
    }

    /// Gives every power's buffer back to `scratch`.
    pub(crate) fn release(self, scratch: &mut Scratch<S>) {
        for (_, c) in self.cache {
            scratch.give_back(c.into_data());
        }
    }
}

/// `a` rescaled into a spare (the last limbs staged in the scratch's coefficient buffer, so
/// nothing is allocated).
pub(crate) fn rescale<S: ScratchWords>(
    eval: &Evaluator,
    a: &Temp<S>,
    scratch: &mut Scratch<S>,
) -> crate::error::Result<Temp<S>> {
    let level = a.level().checked_sub(1).ok_or(Error::LevelExhausted { level: 0, needed: 1 })?;
    let out = scratch.lend((a.degree() + 1) * (level + 1) * eval.context().n())?;
    eval.rescale_into_with(a, out, &mut scratch.coeff)
}

/// The operands of T_j (j ≥ 2) = 2·T_a·T_b − T_minus (T_0 = 1): T_2j = 2·T_j² − 1, and
/// T_j = 2·T_a·T_(j−a) − T_(2a−j) with a the largest power of two below j.
fn recipe(j: usize) -> (usize, usize, usize) {
    if j.is_power_of_two() {
        (j / 2, j / 2, 0)
    } else {
        let a = 1usize << (usize::BITS - 1 - j.leading_zeros());
        (a, j - a, 2 * a - j)
    }
}

/// Splits p = q·T_m + r (Chebyshev division by T_m, deg p < 2m).
fn divide(c: &[f64], m: usize) -> (Vec<f64>, Vec<f64>) {
    let mut r = c[..m.min(c.len())].to_vec();
    let mut q = vec![0.0; c.len().saturating_sub(m)];
    for (j, &ck) in c.iter().enumerate().skip(m) {
        let j = j - m;
        if j == 0 {
            q[0] += ck;
        } else {
            q[j] += 2.0 * ck;
            r[m - j] -= ck;
        }
    }
    (q, r)
}

fn degree(c: &[f64]) -> usize {
    c.iter().rposition(|&x| x != 0.0).unwrap_or(0)
}

/// The level T_j sits at when t is at level `top`: ⌈log2 j⌉ below it.
fn level_of(j: usize, top: usize) -> Option<usize> {
    let drop = usize::BITS - (j.max(1) - 1).leading_zeros();
    top.checked_sub(if j <= 1 { 0 } else { drop as usize })
}

/// The baby-step bound for polynomials up to `max_degree`: 2^⌈log2(d+1)/2⌉.
fn baby_bound(max_degree: usize) -> usize {
    let log = usize::BITS - max_degree.max(1).leading_zeros();
    1usize << log.div_ceil(2)
}

/// The highest output level at which `c` can be produced from t at level `top`, with baby-step
/// bound `baby` (None: not enough levels).
fn output_level(c: &[f64], top: usize, baby: usize) -> Option<usize> {
    let d = degree(c);
    if d == 0 {
        return Some(top);
    }
    if d < baby {
        let lowest = (1..=d).filter(|&j| c[j] != 0.0).map(|j| level_of(j, top));
        return lowest.min()??.checked_sub(1);
    }
    let m = 1usize << (usize::BITS - 1 - d.leading_zeros());
    let (q, r) = divide(&c[..=d], m);
    let mut best = level_of(m, top)?.checked_sub(1)?;
    if degree(&q) > 0 {
        best = best.min(output_level(&q, top, baby)?.checked_sub(1)?);
    }
    if degree(&r) > 0 {
        best = best.min(output_level(&r, top, baby)?);
    }
    Some(best)
}

/// Levels an evaluation of `c` consumes (None: more than `limit`).
pub(crate) fn depth(c: &[f64], limit: usize) -> Option<usize> {
    let top = limit;
    output_level(c, top, baby_bound(degree(c))).map(|l| top - l)
}

/// The powers one evaluation of `c` uses and the giant steps whose quotient is not a
/// constant (each one more product).
fn plan(c: &[f64]) -> (BTreeSet<usize>, usize) {
    fn collect(c: &[f64], baby: usize, powers: &mut BTreeSet<usize>, splits: &mut usize) {
        let d = degree(c);
        if d == 0 {
            return;
        }
        if d < baby {
            powers.extend((1..=d).filter(|&j| c[j] != 0.0));
            return;
        }
        let m = 1usize << (usize::BITS - 1 - d.leading_zeros());
        let (q, r) = divide(&c[..=d], m);
        powers.insert(m);
        if degree(&q) > 0 {
            *splits += 1;
            collect(&q, baby, powers, splits);
        }
        collect(&r, baby, powers, splits);
    }
    let mut powers = BTreeSet::new();
    let mut splits = 0;
    collect(c, baby_bound(degree(c)), &mut powers, &mut splits);
    (powers, splits)
}

/// Every power an evaluation of `c` makes (T_1 included): the powers it uses and those they
/// are built from ([`recipe`]).
pub(crate) fn powers_made(c: &[f64]) -> BTreeSet<usize> {
    fn close(j: usize, made: &mut BTreeSet<usize>) {
        if made.contains(&j) {
            return;
        }
        let (a, b, minus) = recipe(j);
        for k in [a, b, minus] {
            if k > 0 {
                close(k, made);
            }
        }
        made.insert(j);
    }
    let mut made = BTreeSet::from([1usize]);
    for j in plan(c).0 {
        close(j, &mut made);
    }
    made
}

/// Relinearised products one evaluation of `c` makes: every power it needs (and the powers
/// those are built from) plus one per giant step whose quotient is not a constant.
pub(crate) fn products(c: &[f64]) -> usize {
    powers_made(c).len() - 1 + plan(c).1
}

/// How many times [`ChebyshevEvaluator::eval`] of `c` (baby-step bound `baby`) takes each
/// power: once per nonzero term of a baby part, once per giant step.
fn uses(c: &[f64], baby: usize) -> BTreeMap<usize, usize> {
    fn count(c: &[f64], baby: usize, n: &mut BTreeMap<usize, usize>) {
        let d = degree(c);
        if d < baby {
            for j in (1..=d).filter(|&j| c[j] != 0.0) {
                *n.entry(j).or_default() += 1;
            }
            return;
        }
        let m = 1usize << (usize::BITS - 1 - d.leading_zeros());
        let (q, r) = divide(&c[..=d], m);
        *n.entry(m).or_default() += 1;
        if degree(&q) > 0 {
            count(&q, baby, n);
        }
        if degree(&r) > 0 {
            count(&r, baby, n);
        }
    }
    let mut n = BTreeMap::new();
    count(c, baby, &mut n);
    n
}

/// Counts one use of power `j` in `uses`; true if it was its last (a power without a count
/// has no last use: it stays until the powers are released).
fn count_use(uses: &mut BTreeMap<usize, usize>, j: usize) -> bool {
    uses.get_mut(&j).is_some_and(|left| {
        *left = left.saturating_sub(1);
        *left == 0
    })
}

/// The powers of a [`trace`]: each one's handle and level, and its uses left.
struct TracedPowers {
    held: BTreeMap<usize, (Handle, usize)>,
    uses: BTreeMap<usize, usize>,
    n: usize,
}

impl TracedPowers {
    /// [`Powers::use_at`].
    fn use_at(&mut self, j: usize, level: usize, tr: &mut Trace) -> Handle {
        let last = count_use(&mut self.uses, j);
        let copy_len = 2 * (level + 1) * self.n;
        let Some((h, at)) = self.held.get(&j).copied() else { return tr.take(copy_len) };
        if !last {
            return tr.take(copy_len);
        }
        self.held.remove(&j);
        if at == level {
            return h;
        }
        let copy = tr.take(copy_len);
        tr.give(h);
        copy
    }

    /// [`Powers::add_use`]: no spare; the power goes back after its last use.
    fn add_use(&mut self, j: usize, tr: &mut Trace) {
        if count_use(&mut self.uses, j) {
            if let Some((h, _)) = self.held.remove(&j) {
                tr.give(h);
            }
        }
    }
}

/// The spares one evaluation of `c` (degree at most `max_degree`) takes and gives back, in
/// the order [`Powers::make`], [`ChebyshevEvaluator::eval`] and [`Powers::release`] do, for
/// `t` (at `top`, given back with the powers) in a ring of `n` coefficients: the result's
/// handle and level (None: not enough levels).
pub(crate) fn trace(
    c: &[f64],
    max_degree: usize,
    t: Handle,
    top: usize,
    n: usize,
    tr: &mut Trace,
) -> Option<(Handle, usize)> {
    let mut powers: BTreeMap<usize, (Handle, usize)> = BTreeMap::from([(1, (t, top))]);
    for j in powers_made(c) {
        if powers.contains_key(&j) {
            continue;
        }
        let (a, b, _) = recipe(j);
        let (la, lb) = (powers[&a].1, powers[&b].1);
        let l = la.min(lb);
        let drops: Vec<Handle> =
            [la, lb].into_iter().filter(|&x| x != l).map(|_| tr.take(2 * (l + 1) * n)).collect();
        let tensor = tr.take(3 * (l + 1) * n);
        drops.into_iter().for_each(|d| tr.give(d));
        let p = tr.take(2 * (l + 1) * n);
        tr.give(tensor);
        if l == 0 {
            return None;
        }
        // The rescale to l − 1.
        let r = tr.take(2 * l * n);
        tr.give(p);
        powers.insert(j, (r, l - 1));
    }
    let baby = baby_bound(max_degree);
    let level = output_level(c, top, baby)?;
    let mut powers = TracedPowers { held: powers, uses: uses(c, baby), n };
    let out = trace_eval(c, level, baby, &mut powers, tr);
    powers.held.into_values().for_each(|(h, _)| tr.give(h));
    Some((out, level))
}

/// [`trace`] of [`ChebyshevEvaluator::eval`] of `c` at `level`.
fn trace_eval(
    c: &[f64],
    level: usize,
    baby: usize,
    powers: &mut TracedPowers,
    tr: &mut Trace,
) -> Handle {
    let n = powers.n;
    let d = degree(c);
    let above = 2 * (level + 2) * n;
    if d < baby {
        let mut acc = None;
        for j in (1..=d).filter(|&j| c[j] != 0.0) {
            match acc {
                None => acc = Some(powers.use_at(j, level + 1, tr)),
                Some(_) => powers.add_use(j, tr),
            }
        }
        let out = tr.take(2 * (level + 1) * n);
        acc.into_iter().for_each(|a| tr.give(a));
        return out;
    }
    let m = 1usize << (usize::BITS - 1 - d.leading_zeros());
    let (q, r) = divide(&c[..=d], m);
    let prod = if degree(&q) == 0 {
        powers.use_at(m, level + 1, tr)
    } else {
        let qc = trace_eval(&q, level + 1, baby, powers, tr);
        let tm = powers.use_at(m, level + 1, tr);
        let tensor = tr.take(3 * (level + 2) * n);
        tr.give(qc);
        tr.give(tm);
        let p = tr.take(above);
        tr.give(tensor);
        p
    };
    let out = tr.take(2 * (level + 1) * n);
    tr.give(prod);
    if degree(&r) > 0 {
        let rc = trace_eval(&r, level, baby, powers, tr);
        tr.give(rc);
    }
    out
}

/// Evaluates p = Σ c_k T_k(t) over powers made up front.
pub(crate) struct ChebyshevEvaluator<'p, 'a, K: KeySource, S> {
    powers: &'p mut Powers<'a, K, S>,
    baby: usize,
}

impl<'p, 'a, K: KeySource, S: ScratchWords> ChebyshevEvaluator<'p, 'a, K, S> {
    /// An evaluator for polynomials of degree up to `max_degree` over `powers`.
    pub(crate) fn new(powers: &'p mut Powers<'a, K, S>, max_degree: usize) -> Self {
        Self { powers, baby: baby_bound(max_degree) }
    }

    /// The highest output level at which `c` can be produced (None: not enough levels).
    pub(crate) fn output_level(&self, c: &[f64]) -> Option<usize> {
        output_level(c, self.powers.top, self.baby)
    }

    /// p(t) at exactly (`level`, `scale`); `level` must not exceed [`Self::output_level`], and
    /// the powers must have been made ([`Powers::make`] with [`powers_made`]).
    pub(crate) fn eval(
        &mut self,
        c: &[f64],
        level: usize,
        scale: f64,
        scratch: &mut Scratch<S>,
    ) -> std::result::Result<Temp<S>, K::Error> {
        let d = degree(c);
        let eval = self.powers.eval;
        let ctx = eval.context();
        let q_next = ctx.prime(level + 1).q as f64;
        if d < self.baby {
            // One sum of constant products at scale·q_(level+1), one rescale.
            let target = scale * q_next;
            let mut acc: Option<Temp<S>> = None;
            for (j, &cj) in c.iter().enumerate().take(d + 1).skip(1) {
                if cj == 0.0 {
                    continue;
                }
                // The first term is a copy scaled in place; later ones add into it.
                if let Some(a) = acc.as_mut() {
                    self.powers.add_use(a, j, cj, scratch)?;
                    continue;
                }
                let mut term = self.powers.use_at(j, level + 1, scratch)?;
                let s = term.scale();
                eval.mul_const_assign(&mut term, cj, target / s)?;
                term.set_scale(target);
                acc = Some(term);
            }
            let mut acc = acc.ok_or(Error::InvalidParameter {
                name: "polynomial",
                reason: "a constant has no encrypted evaluation".into(),
            })?;
            eval.add_const_assign(&mut acc, Complex64::new(c[0], 0.0))?;
            let mut out = rescale(eval, &acc, scratch)?;
            scratch.give_back(acc.into_data());
            out.set_scale(scale);
            return Ok(out);
        }
        let m = 1usize << (usize::BITS - 1 - d.leading_zeros());
        let (q, r) = divide(&c[..=d], m);
        let target = scale * q_next;
        let mut prod = if degree(&q) == 0 {
            let mut tm = self.powers.use_at(m, level + 1, scratch)?;
            let s = tm.scale();
            eval.mul_const_assign(&mut tm, q[0], target / s)?;
            tm.set_scale(target);
            tm
        } else {
            // T_m's copy is made after the quotient, not held through its evaluation (a copy
            // keeps its power's scale).
            let qs = target / self.powers.scale_of(m)?;
            let qc = self.eval(&q, level + 1, qs, scratch)?;
            let tm = self.powers.use_at(m, level + 1, scratch)?;
            let n = ctx.n();
            let tensor = eval.mul_into(&qc, &tm, scratch.lend(3 * (level + 2) * n)?)?;
            // The factors go back before the relinearisation's output is lent.
            for t in [qc, tm] {
                scratch.give_back(t.into_data());
            }
            let out = scratch.lend(2 * (level + 2) * n)?;
            let rk = self.powers.keys.relin(tensor.level())?;
            let mut p = eval.relinearize_into(&tensor, &rk, scratch, out)?;
            drop(rk);
            scratch.give_back(tensor.into_data());
            p.set_scale(target);
            p
        };
        if degree(&r) == 0 {
            eval.add_const_assign(
                &mut prod,
                Complex64::new(r.first().copied().unwrap_or(0.0), 0.0),
            )?;
        }
        let mut out = rescale(eval, &prod, scratch)?;
        scratch.give_back(prod.into_data());
        out.set_scale(scale);
        if degree(&r) == 0 {
            return Ok(out);
        }
        let rc = self.eval(&r, level, scale, scratch)?;
        eval.add_assign(&mut out, &rc)?;
        scratch.give_back(rc.into_data());
        Ok(out)
    }
}
