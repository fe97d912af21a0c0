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
use super::super::keyswitch::Scratch;
use super::key_source::KeySource;
use crate::error::Error;

/// Chebyshev powers of one input ciphertext, made on demand.
pub(crate) struct Powers<'a, K: KeySource> {
    eval: &'a Evaluator,
    keys: &'a K,
    cache: BTreeMap<usize, Ciphertext>,
    top: usize,
}

impl<'a, K: KeySource> Powers<'a, K> {
    /// Powers of `t` (slots in [−1, 1]).
    pub(crate) fn new(eval: &'a Evaluator, keys: &'a K, t: Ciphertext) -> Self {
        let top = t.level();
        let mut cache = BTreeMap::new();
        cache.insert(1, t);
        Self { eval, keys, cache, top }
    }

    fn product<S: AsRef<[u64]> + AsMut<[u64]>>(
        &mut self,
        a: usize,
        b: usize,
        minus: usize,
        scratch: &mut Scratch<S>,
    ) -> std::result::Result<Ciphertext, K::Error> {
        let (x, y) = (self.get(a, scratch)?, self.get(b, scratch)?);
        let l = x.level().min(y.level());
        let eval = self.eval;
        let (x, y) = (eval.drop_to_level(&x, l)?, eval.drop_to_level(&y, l)?);
        let mut p = eval.mul_relin(&x, &y, &self.keys.relin()?, scratch)?;
        eval.mul_integer_assign(&mut p, 2)?;
        let target = p.scale();
        if minus == 0 {
            eval.add_const_assign(&mut p, Complex64::new(-1.0, 0.0))?;
        } else {
            let m = self.get(minus, scratch)?;
            let m = eval.drop_to_level(&m, l)?;
            let mut m = eval.mul_const(&m, 1.0, target / m.scale())?;
            m.set_scale(target);
            eval.sub_assign(&mut p, &m)?;
        }
        Ok(eval.rescale(&p)?)
    }

    /// T_j (j ≥ 1).
    pub(crate) fn get<S: AsRef<[u64]> + AsMut<[u64]>>(
        &mut self,
        j: usize,
        scratch: &mut Scratch<S>,
    ) -> std::result::Result<Ciphertext, K::Error> {
        if let Some(c) = self.cache.get(&j) {
            return Ok(c.clone());
        }
        let ct = if j.is_power_of_two() {
            self.product(j / 2, j / 2, 0, scratch)?
        } else {
            let a = 1usize << (usize::BITS - 1 - j.leading_zeros());
            self.product(a, j - a, 2 * a - j, scratch)?
        };
        self.cache.insert(j, ct.clone());
        Ok(ct)
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

/// Relinearised products one evaluation of `c` makes: every power it needs (and the powers
/// those are built from) plus one per giant step whose quotient is not a constant.
pub(crate) fn products(c: &[f64]) -> usize {
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
    fn close(j: usize, made: &mut BTreeSet<usize>) {
        if made.contains(&j) {
            return;
        }
        if j.is_power_of_two() {
            close(j / 2, made);
        } else {
            let a = 1usize << (usize::BITS - 1 - j.leading_zeros());
            close(a, made);
            close(j - a, made);
            close(2 * a - j, made);
        }
        made.insert(j);
    }
    let mut powers = BTreeSet::new();
    let mut splits = 0;
    collect(c, baby_bound(degree(c)), &mut powers, &mut splits);
    let mut made = BTreeSet::from([1usize]);
    for j in powers {
        close(j, &mut made);
    }
    made.len() - 1 + splits
}

/// Evaluates p = Σ c_k T_k(t) and the powers it needs.
pub(crate) struct ChebyshevEvaluator<'p, 'a, K: KeySource> {
    powers: &'p mut Powers<'a, K>,
    baby: usize,
}

impl<'p, 'a, K: KeySource> ChebyshevEvaluator<'p, 'a, K> {
    /// An evaluator for polynomials of degree up to `max_degree` over `powers`.
    pub(crate) fn new(powers: &'p mut Powers<'a, K>, max_degree: usize) -> Self {
        Self { powers, baby: baby_bound(max_degree) }
    }

    /// The highest output level at which `c` can be produced (None: not enough levels).
    pub(crate) fn output_level(&self, c: &[f64]) -> Option<usize> {
        output_level(c, self.powers.top, self.baby)
    }

    /// p(t) at exactly (`level`, `scale`); `level` must not exceed [`Self::output_level`].
    pub(crate) fn eval<S: AsRef<[u64]> + AsMut<[u64]>>(
        &mut self,
        c: &[f64],
        level: usize,
        scale: f64,
        scratch: &mut Scratch<S>,
    ) -> std::result::Result<Ciphertext, K::Error> {
        let d = degree(c);
        let eval = self.powers.eval;
        let ctx = eval.context();
        let q_next = ctx.prime(level + 1).q as f64;
        if d < self.baby {
            // One sum of constant products at scale·q_(level+1), one rescale.
            let target = scale * q_next;
            let mut acc: Option<Ciphertext> = None;
            for (j, &cj) in c.iter().enumerate().take(d + 1).skip(1) {
                if cj == 0.0 {
                    continue;
                }
                let t = self.powers.get(j, scratch)?;
                let t = eval.drop_to_level(&t, level + 1)?;
                let mut term = eval.mul_const(&t, cj, target / t.scale())?;
                term.set_scale(target);
                match acc.as_mut() {
                    None => acc = Some(term),
                    Some(a) => eval.add_assign(a, &term)?,
                }
            }
            let mut acc = acc.ok_or(Error::InvalidParameter {
                name: "polynomial",
                reason: "a constant has no encrypted evaluation".into(),
            })?;
            eval.add_const_assign(&mut acc, Complex64::new(c[0], 0.0))?;
            let mut out = eval.rescale(&acc)?;
            out.set_scale(scale);
            return Ok(out);
        }
        let m = 1usize << (usize::BITS - 1 - d.leading_zeros());
        let (q, r) = divide(&c[..=d], m);
        let tm = self.powers.get(m, scratch)?;
        let tm = eval.drop_to_level(&tm, level + 1)?;
        let target = scale * q_next;
        let mut prod = if degree(&q) == 0 {
            let mut p = eval.mul_const(&tm, q[0], target / tm.scale())?;
            p.set_scale(target);
            p
        } else {
            let qs = target / tm.scale();
            let qc = self.eval(&q, level + 1, qs, scratch)?;
            let mut p = eval.mul_relin(&qc, &tm, &self.powers.keys.relin()?, scratch)?;
            p.set_scale(target);
            p
        };
        if degree(&r) == 0 {
            eval.add_const_assign(
                &mut prod,
                Complex64::new(r.first().copied().unwrap_or(0.0), 0.0),
            )?;
            let mut out = eval.rescale(&prod)?;
            out.set_scale(scale);
            return Ok(out);
        }
        let mut out = eval.rescale(&prod)?;
        out.set_scale(scale);
        let rc = self.eval(&r, level, scale, scratch)?;
        eval.add_assign(&mut out, &rc)?;
        Ok(out)
    }
}
