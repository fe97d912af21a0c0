//! Slot-linear transforms on ciphertexts by baby-step giant-step over pre-rotated diagonals:
//! `M x = Σ_G R^G ( Σ_J diag(R^-G u_{G+J}) · R^J x )`, the baby rotations R^J x sharing one
//! decomposition of x and staying in the extended basis Q·P (double hoisting, see
//! `ckks::hoisting`), one key switch and one ModDown per giant step.

use std::collections::BTreeMap;

use super::super::ciphertext::Ciphertext;
use super::super::context::Context;
use super::super::encoder::Encoder;
use super::super::evaluator::Evaluator;
use super::super::fft::Complex64;
use super::super::hoisting::{rotate_extended, ExtendedCiphertext, Plus, Sink};
use super::super::keyswitch::{decompose, decompose_in_coeff, Lent, Scratch, ScratchWords};
use super::compact::repeat_of;
use super::dft::DiagonalMap;
use super::key_source::{DiagonalUse, KeySource};
use super::spares::{Handle, Trace};
use crate::error::Error;

/// One giant step: its rotation and the (baby rotation, pre-rotated diagonal) terms under it,
/// each diagonal kept as the unscaled coefficients of its encoding
/// (`Encoder::slot_coefficients`), so an application pays no FFT.
#[derive(Debug, Clone)]
struct Giant {
    step: i64,
    terms: Vec<(i64, Vec<f64>)>,
}

/// A slot-linear map laid out for baby-step giant-step evaluation.
#[derive(Debug, Clone)]
pub(crate) struct LinearTransform {
    giants: Vec<Giant>,
    /// Baby rotation steps in use (0 included when used).
    babies: Vec<i64>,
    /// Id of its first diagonal among every diagonal of the bootstrap (see
    /// [`super::DiagonalUse`]); the terms follow in the order [`Self::apply`] uses them.
    first_id: usize,
}

/// One use of a transform's application, in order: a rotation key or an encoded diagonal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransformUse {
    /// The key of this rotation step.
    Rotation(i64),
    /// The diagonal of this id.
    Diagonal(usize),
}

impl LinearTransform {
    /// Lays out `map` with about √(offsets) baby steps.
    pub(crate) fn new(map: &DiagonalMap, enc: &Encoder) -> Result<Self, Error> {
        let n = map.slots;
        let signed = |d: usize| if d > n / 2 { d as i64 - n as i64 } else { d as i64 };
        // Every offset is a multiple of the stride (the smallest merged butterfly half-length).
        let stride =
            map.diags.keys().filter(|&&d| d != 0).map(|&d| 1i64 << d.trailing_zeros()).min();
        let stride = stride.unwrap_or(1).max(1);
        let ks: Vec<i64> = map.diags.keys().map(|&d| signed(d) / stride).collect();
        let span = (ks.iter().max().unwrap_or(&0) - ks.iter().min().unwrap_or(&0) + 1) as usize;
        let baby = ((span as f64).sqrt().ceil() as usize).next_power_of_two().max(1) as i64;
        let mut giants: BTreeMap<i64, Vec<(i64, Vec<f64>)>> = BTreeMap::new();
        for (&d, u) in &map.diags {
            let k = signed(d) / stride;
            let j = k.rem_euclid(baby);
            let g = (k - j) * stride;
            // diag(u)·R^(G+J) = R^G · diag(R^-G u) · R^J.
            let shift = g.rem_euclid(n as i64) as usize;
            let rotated: Vec<Complex64> = (0..n).map(|i| u[(i + n - shift) % n]).collect();
            let coeffs = enc.slot_coefficients(&rotated)?;
            giants.entry(g).or_default().push((j * stride, coeffs));
        }
        let mut babies: Vec<i64> =
            giants.values().flat_map(|t| t.iter().map(|(j, _)| *j)).collect();
        babies.sort_unstable();
        babies.dedup();
        let giants = giants.into_iter().map(|(step, terms)| Giant { step, terms }).collect();
        Ok(Self { giants, babies, first_id: 0 })
    }

    /// The same transform with its diagonals numbered from `first` on.
    pub(crate) fn numbered_from(self, first: usize) -> Self {
        Self { first_id: first, ..self }
    }

    /// Number of diagonals (terms over every giant step).
    pub(crate) fn diagonal_count(&self) -> usize {
        self.giants.iter().map(|g| g.terms.len()).sum()
    }

    /// Drops every diagonal's coefficients (an application then asks its key source for
    /// them, [`KeySource::diagonal_coefficients`]); the layout stays.
    pub(crate) fn release_coefficients(&mut self) {
        for g in &mut self.giants {
            for (_, c) in &mut g.terms {
                *c = Vec::new();
            }
        }
    }

    /// The same layout without any diagonal's coefficients (as after
    /// [`Self::release_coefficients`]), copied without copying them.
    pub(crate) fn without_coefficients(&self) -> Self {
        let giants = self
            .giants
            .iter()
            .map(|g| Giant {
                step: g.step,
                terms: g.terms.iter().map(|(j, _)| (*j, Vec::new())).collect(),
            })
            .collect();
        Self { giants, babies: self.babies.clone(), first_id: self.first_id }
    }

    /// Whether every diagonal's coefficients are held (not released).
    pub(crate) fn holds_coefficients(&self) -> bool {
        self.giants.iter().flat_map(|g| &g.terms).all(|(_, c)| !c.is_empty())
    }

    /// The unscaled coefficients of the diagonal numbered `id`, if it is one of this
    /// transform's (empty once released).
    pub(crate) fn coefficients(&self, id: usize) -> Option<&[f64]> {
        let mut i = id.checked_sub(self.first_id)?;
        for g in &self.giants {
            if let Some((_, c)) = g.terms.get(i) {
                return Some(c);
            }
            i -= g.terms.len();
        }
        None
    }

    /// The key and diagonal uses of one application, in the order [`Self::apply`] makes them.
    pub(crate) fn uses_in_order(&self) -> Vec<TransformUse> {
        let mut uses: Vec<TransformUse> =
            self.babies.iter().filter(|&&j| j != 0).map(|&j| TransformUse::Rotation(j)).collect();
        let mut id = self.first_id;
        for g in &self.giants {
            uses.extend((id..id + g.terms.len()).map(TransformUse::Diagonal));
            id += g.terms.len();
            if g.step != 0 {
                uses.push(TransformUse::Rotation(g.step));
            }
        }
        uses
    }

    /// Every rotation step the transform needs a key for.
    pub(crate) fn steps(&self) -> Vec<i64> {
        let mut s: Vec<i64> = self.babies.iter().copied().filter(|&j| j != 0).collect();
        s.extend(self.giants.iter().map(|g| g.step).filter(|&g| g != 0));
        s.sort_unstable();
        s.dedup();
        s
    }

    /// The rotation steps of one application, in the order [`Self::apply`] uses their keys.
    pub(crate) fn steps_in_order(&self) -> Vec<i64> {
        let babies = self.babies.iter().copied().filter(|&j| j != 0);
        babies.chain(self.giants.iter().map(|g| g.step).filter(|&g| g != 0)).collect()
    }

    /// The spares one application to a ciphertext at `level` takes and gives back, in the
    /// order [`Self::apply`] does: the baby rotations (but the unrotated one) and the giant
    /// steps' sum (extended ciphertexts, two spares each), the ModDown and the rescaled result,
    /// whose handle it returns. The giant steps' accumulator, c_1 and encoded diagonal live in
    /// the key-switch buffers.
    pub(crate) fn trace(&self, ctx: &Context, level: usize, tr: &mut Trace) -> Handle {
        let n = ctx.n();
        let part = ExtendedCiphertext::part_words(ctx, level);
        let rotated = self.baby_rotations();
        // Each extended ciphertext in two spares, c_0's and c_1's.
        let held: Vec<Handle> = (0..2 * (rotated + 1)).map(|_| tr.take(part)).collect();
        held.into_iter().for_each(|h| tr.give(h));
        let down = tr.take(2 * (level + 1) * n);
        let out = tr.take(2 * level * n);
        tr.give(down);
        out
    }

    /// Number of key switches one application costs.
    pub(crate) fn key_switches(&self) -> usize {
        self.baby_rotations() + self.giants.iter().filter(|g| g.step != 0).count()
    }

    /// Number of baby steps that rotate (all but the unrotated one): the extended ciphertexts
    /// an application holds through its giant steps, besides their sum.
    pub(crate) fn baby_rotations(&self) -> usize {
        self.babies.iter().filter(|&&j| j != 0).count()
    }

    /// `M x` on a ciphertext, consuming one level; the result has scale `out_scale` (the
    /// diagonals are encoded at q_level · out_scale / scale(x), so the rescale lands on it).
    /// The result is in a spare of the scratch ([`Scratch::lend`]); the caller gives it back.
    ///
    /// Double hoisting: x's c_1 is decomposed once; every baby rotation stays in the extended
    /// basis Q_l·P (no ModDown), the diagonals are encoded over Q_l·P and multiplied there.
    /// Each giant step takes one ModDown (of its c_1, which it key-switches; its c_0 stays in
    /// Q_l·P), the giant rotations accumulate in Q_l·P, and two ModDowns end the transform.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply<K: KeySource, C: AsRef<[u64]>, S: ScratchWords>(
        &self,
        eval: &Evaluator,
        enc: &Encoder,
        x: &Ciphertext<C>,
        keys: &K,
        scratch: &mut Scratch<S>,
        out_scale: f64,
    ) -> std::result::Result<Ciphertext<Lent<S>>, K::Error> {
        let ctx = &**eval.context();
        eval.check_ct(x)?;
        if x.degree() != 1 {
            return Err(Error::InvalidDegree { degree: x.degree(), expected: 1 }.into());
        }
        let level = x.level();
        if level == 0 {
            return Err(Error::LevelExhausted { level: 0, needed: 1 }.into());
        }
        let n = ctx.n();
        let q = ctx.prime(level).q as f64;
        let pt_scale = q * out_scale / x.scale();
        scratch.check_level(ctx, level, true)?;
        if self.babies.iter().any(|&j| j != 0) {
            let Scratch { coeff, y, v, dec, .. } = &mut *scratch;
            let (coeff, y, v, dec) = (coeff.as_mut(), y.as_mut(), v.as_mut(), dec.as_mut());
            decompose(ctx, level, x.part(1), coeff, y, v, dec);
        }
        // Every large buffer comes from (and goes back to) the scratch's spares, so the
        // transforms of a bootstrap reuse the pages of the first instead of faulting in fresh
        // ones for each rotation and diagonal.
        let part_words = ExtendedCiphertext::part_words(ctx, level);
        let mut rotated: BTreeMap<i64, ExtendedCiphertext<S>> = BTreeMap::new();
        // The unrotated term's baby, x lifted to Q_l·P, is not kept: it is lifted where it is
        // multiplied (the same words), which saves an extended ciphertext at the peak.
        for &j in self.babies.iter().filter(|&&j| j != 0) {
            let ct = {
                let g = ctx.galois_element_for_step(j);
                let key = keys.galois(g, level)?;
                eval.check_galois(&key, g, Some(j))?;
                // Sink::Store writes every word.
                let bufs = [scratch.take_spare(part_words)?, scratch.take_spare(part_words)?];
                let mut out = ExtendedCiphertext::from_buffers(ctx, level, bufs);
                let plus = Plus::Scaled(x.part(0));
                let perm = ctx.galois_perm(g);
                rotate_extended(
                    ctx,
                    level,
                    scratch.dec.as_ref(),
                    &key.key,
                    &perm,
                    plus,
                    &mut out,
                    Sink::Store,
                )?;
                out
            };
            rotated.insert(j, ct);
        }
        let bufs = [scratch.take_spare(part_words)?, scratch.take_spare(part_words)?];
        let mut inner = ExtendedCiphertext::from_buffers(ctx, level, bufs);
        // One diagonal at a time (a part's words), encoded into the decomposition buffer: once
        // the babies are made it is free until a giant step decomposes its c_1, after the
        // step's terms.
        // The giant steps accumulate in the key-switch accumulator, 2·(L+1+K) limbs, which
        // nothing else uses during the transform (its key switches are the hoisted rotations'):
        // an extended ciphertext less among the spares at the peak. A giant step's c_1 is
        // brought down into `coeff` and decomposed from there: no spare for it either.
        let Scratch { coeff, y, v, md, dec, acc: acc_words, .. } = &mut *scratch;
        let (coeff, y, v, md, dec) =
            (coeff.as_mut(), y.as_mut(), v.as_mut(), md.as_mut(), dec.as_mut());
        let mut acc = ExtendedCiphertext::zeros_in(ctx, level, halves(acc_words.as_mut()));
        let mut any = false;
        let mut id = self.first_id;
        for giant in &self.giants {
            if giant.terms.is_empty() {
                continue;
            }
            inner.clear();
            for (j, diag) in &giant.terms {
                // Encoded beforehand by the source (pinned for this term only), or here.
                let want = DiagonalUse { id, level, scale: pt_scale };
                id += 1;
                let stored = keys.diagonal(&want)?;
                // A stored diagonal may keep one word per run of equal ones (compact.rs); an
                // encoding made here holds every word.
                let (pt, repeat): (&[u64], usize) = match &stored {
                    Some(w) => {
                        let found = w.as_ref().len();
                        let repeat = repeat_of(part_words, found, n)
                            .ok_or(Error::BufferLength { expected: part_words, found })?;
                        (w.as_ref(), repeat)
                    }
                    None if diag.is_empty() => {
                        // Released by the bootstrapper: the source holds them (one pin).
                        let pt = &mut dec[..part_words];
                        let bits = keys
                            .diagonal_coefficients(want.id)?
                            .ok_or(Error::DiagonalCoefficientsReleased { id: want.id })?;
                        enc.encode_coefficient_bits_extended(bits.as_ref(), level, pt_scale, pt)?;
                        (pt, 1)
                    }
                    None => {
                        let pt = &mut dec[..part_words];
                        enc.encode_coefficients_extended(diag, level, pt_scale, pt)?;
                        (pt, 1)
                    }
                };
                if *j == 0 {
                    inner.mul_add_lifted_assign(ctx, x, pt, repeat);
                    continue;
                }
                let baby = rotated.get(j).ok_or(Error::MissingObject {
                    id: 0,
                    reason: "baby-step rotation of a linear transform",
                })?;
                inner.mul_add_assign(ctx, baby, pt, repeat);
            }
            any = true;
            if giant.step == 0 {
                acc.add_assign(ctx, &inner);
                continue;
            }
            let g = ctx.galois_element_for_step(giant.step);
            let key = keys.galois(g, level)?;
            eval.check_galois(&key, g, Some(giant.step))?;
            inner.mod_down_c1(ctx, y, v, md, coeff);
            decompose_in_coeff(ctx, level, coeff, y, v, dec);
            let perm = ctx.galois_perm(g);
            let plus = Plus::Extended(inner.c0());
            rotate_extended(ctx, level, dec, &key.key, &perm, plus, &mut acc, Sink::Add)?;
        }
        if !any {
            return Err(Error::InvalidParameter {
                name: "linear transform",
                reason: "a transform without diagonals".into(),
            }
            .into());
        }
        for ct in rotated.into_values().chain([inner]) {
            ct.into_buffers().into_iter().for_each(|b| scratch.give_spare(b));
        }
        // Diagonals are full-slot vectors, but a transform of the bootstrap maps a message of
        // any period to one of the same period, so the input's is kept.
        let down = scratch.lend(2 * (level + 1) * n)?;
        let (scale, id) = (x.scale() * pt_scale, x.params_id());
        let Scratch { y, v, md, acc: acc_words, .. } = &mut *scratch;
        let (y, v, md) = (y.as_mut(), v.as_mut(), md.as_mut());
        // The sum is still in the accumulator's words.
        let mut acc = ExtendedCiphertext::from_buffers(ctx, level, halves(acc_words.as_mut()));
        let down = acc.mod_down_into_with(ctx, y, v, md, down, scale, id, x.slots())?;
        let out = scratch.lend(2 * level * n)?;
        let mut out = eval.rescale_into_with(&down, out, &mut scratch.coeff)?;
        scratch.give_back(down.into_data());
        out.set_scale(out_scale);
        Ok(out)
    }
}

/// The key-switch accumulator's words as an extended ciphertext's two parts (each half of them
/// holds a part at any level: the accumulator is sized for the top one).
fn halves(words: &mut [u64]) -> [&mut [u64]; 2] {
    let (c0, c1) = words.split_at_mut(words.len() / 2);
    [c0, c1]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::ckks::bootstrap::{BootstrapKeys, BootstrapPreset};
    use crate::ckks::{Context, Decryptor, Encryptor, GaloisKeySet, KeyGenerator};

    /// A random sparse map (offsets giving several giant steps, the unrotated diagonal, negative
    /// offsets) applied with double hoisting matches the plaintext matrix-vector product, at
    /// the top level and one below.
    #[test]
    fn double_hoisted_transform_matches_the_plaintext_product() {
        let params = BootstrapPreset::insecure_test(12, 1).params().unwrap();
        let ctx = Context::new(&params).unwrap();
        let slots = params.slots();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut rand_vec = |n: usize| -> Vec<Complex64> {
            (0..n)
                .map(|_| Complex64::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
                .collect()
        };
        let mut diags = BTreeMap::new();
        for d in [0, 1, 2, 3, 5, 8, 13, 21, 40, 100, slots - 1, slots - 4, slots - 37] {
            diags.insert(d, rand_vec(slots));
        }
        let map = DiagonalMap { slots, diags };
        let lt = LinearTransform::new(&map, &Encoder::new(&ctx)).unwrap();
        assert!(lt.giants.iter().filter(|g| g.step != 0).count() >= 2, "several giant steps");
        assert!(lt.babies.len() >= 3, "several baby steps");
        let mut kg = KeyGenerator::with_seed(&ctx, [4; 32]);
        let sk = kg.secret_key();
        let mut galois = GaloisKeySet::new();
        for s in lt.steps() {
            galois.insert(kg.rotation_key(&sk, s).unwrap());
        }
        let keys = BootstrapKeys {
            relin: kg.relin_key(&sk).unwrap(),
            galois,
            to_sparse: None,
            from_sparse: None,
        };
        let (eval, enc) = (Evaluator::new(&ctx), Encoder::new(&ctx));
        let dec = Decryptor::new(&ctx, &sk).unwrap();
        let x = rand_vec(slots);
        let want: Vec<Complex64> = (0..slots)
            .map(|i| {
                map.diags
                    .iter()
                    .fold(Complex64::default(), |acc, (&d, u)| acc + u[i] * x[(i + d) % slots])
            })
            .collect();
        let mut scratch = eval.scratch();
        let top = params.max_level();
        for level in [top, top - 1] {
            let pt = enc.encode(&x, level, params.scale()).unwrap();
            let ct = Encryptor::with_seed(&ctx, [5; 32]).encrypt_sk(&sk, &pt).unwrap();
            let out = lt.apply(&eval, &enc, &ct, &keys, &mut scratch, params.scale()).unwrap();
            assert_eq!(out.level(), level - 1);
            let got = enc.decode(&dec.decrypt(&out).unwrap()).unwrap();
            let err = got.iter().zip(&want).map(|(a, b)| (*a - *b).abs()).fold(0.0, f64::max);
            assert!(err < 1e-6, "level {level}: max error {err:e}");
        }
        // A missing giant-step key is a typed error.
        let mut partial = keys.clone();
        let giant = lt.giants.iter().map(|g| g.step).find(|&g| g != 0).unwrap();
        partial.galois = GaloisKeySet::new();
        for s in lt.steps().into_iter().filter(|&s| s != giant) {
            partial.galois.insert(kg.rotation_key(&sk, s).unwrap());
        }
        let pt = enc.encode(&x, top, params.scale()).unwrap();
        let ct = Encryptor::with_seed(&ctx, [5; 32]).encrypt_sk(&sk, &pt).unwrap();
        let r = lt.apply(&eval, &enc, &ct, &partial, &mut scratch, params.scale());
        assert!(matches!(r, Err(Error::MissingGaloisKey { .. })), "{r:?}");
    }
}
