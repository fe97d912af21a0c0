//! The diagonals of a bootstrap's linear transforms laid out for callers that encode them ahead
//! of time (a tiered store, [`super::EncodedDiagonals`]): their ids, levels and scales, their
//! encoding, and the access order of keys and diagonals in one bootstrap.

use std::sync::Arc;

use super::chebyshev;
use super::diagonals::EncodedDiagonals;
use super::key_source::{BootstrapUse, DiagonalUse, KeyUse};
use super::linear::{LinearTransform, TransformUse};
use super::{Bootstrapper, COEFF_TO_SLOT_GAIN, SPARSE_COEFF_TO_SLOT_GAIN};
use crate::ckks::encoder::Encoder;
use crate::error::{Error, Result};

/// Version of [`Bootstrapper::encode_diagonal`]'s output that
/// [`Bootstrapper::diagonal_fingerprint`] covers: bump it whenever the words encoded from the
/// same coefficients, level and scale change, so a durable copy made by an older build is not
/// taken for the new encoding.
const DIAGONAL_ENCODING_VERSION: u64 = 1;

/// The diagonals of the linear transforms, for callers that encode them ahead of time: within
/// one bootstrap every transform runs at a fixed level and encodes at a fixed scale, so the
/// NTT-form words of each diagonal are the same in every bootstrap of a parameter set.
impl Bootstrapper {
    /// The transforms in diagonal-id order: CoeffToSlot's factors, then SlotToCoeff's.
    fn transforms(&self) -> impl Iterator<Item = &LinearTransform> {
        self.cts.iter().chain(&self.stc)
    }

    /// The unscaled coefficients of diagonal `id`, from whichever transform holds it.
    fn coefficients(&self, id: usize) -> Result<&[f64]> {
        let c = self.transforms().find_map(|t| t.coefficients(id));
        match c.ok_or(Error::MissingDiagonal { id })? {
            [] => Err(Error::DiagonalCoefficientsReleased { id }),
            c => Ok(c),
        }
    }

    /// Writes the unscaled coefficients of diagonal `id` as the bit patterns of their `f64`s
    /// into the first N words of `out`: what a key source hands back from
    /// [`super::KeySource::diagonal_coefficients`] once this bootstrapper has released its own.
    pub fn diagonal_coefficient_bits(&self, id: usize, out: &mut [u64]) -> Result<()> {
        let coeffs = self.coefficients(id)?;
        let found = out.len();
        let out = out
            .get_mut(..coeffs.len())
            .ok_or(Error::BufferLength { expected: coeffs.len(), found })?;
        for (o, c) in out.iter_mut().zip(coeffs) {
            *o = c.to_bits();
        }
        Ok(())
    }

    /// How many neighbouring words of each limb of diagonal `id`'s encoding are equal: the
    /// diagonal is a polynomial in X^k ([`super::coefficient_stride`] of its coefficients),
    /// and such a polynomial's NTT evaluations come in runs of k. A store can keep one word per
    /// run ([`super::compact_runs`]); the transforms multiply by the runs as stored.
    pub fn diagonal_repeat(&self, id: usize) -> Result<usize> {
        let c = self.coefficients(id)?;
        Ok(super::coefficient_stride(self.ctx.n(), c.iter().map(|&x| x != 0.0)))
    }

    /// [`Self::diagonal_repeat`] from the coefficients' bit patterns
    /// ([`Self::diagonal_coefficient_bits`]), for a caller holding those instead.
    pub fn diagonal_repeat_from_bits(&self, bits: &[u64]) -> usize {
        let nonzero = bits.iter().map(|&b| f64::from_bits(b) != 0.0);
        super::coefficient_stride(self.ctx.n(), nonzero)
    }

    /// Drops the coefficients every diagonal is encoded from (N `f64`s each, about 158 MiB for
    /// the N = 2^16 presets): for a caller whose key source hands out every diagonal encoded
    /// ([`super::KeySource::diagonal`]) or its coefficients ([`super::KeySource::diagonal_coefficients`]),
    /// e.g. from a store's budget, so they do not stay on the heap as well. From then on
    /// [`Self::encode_diagonal`], [`Self::diagonal_fingerprint`] and any bootstrap whose source
    /// lacks a diagonal fail with [`Error::DiagonalCoefficientsReleased`].
    pub fn release_diagonal_coefficients(&mut self) {
        self.cts.iter_mut().chain(&mut self.stc).for_each(LinearTransform::release_coefficients);
    }

    /// A copy of this bootstrapper that has released its diagonals' coefficients
    /// ([`Self::release_diagonal_coefficients`]), made without copying them: for a holder that
    /// shares this one with others (an `Arc`) and keeps the coefficients elsewhere.
    pub fn without_diagonal_coefficients(&self) -> Bootstrapper {
        let layout = |ts: &[LinearTransform]| ts.iter().map(|t| t.without_coefficients()).collect();
        Bootstrapper {
            ctx: Arc::clone(&self.ctx),
            config: self.config.clone(),
            cts: layout(&self.cts),
            stc: layout(&self.stc),
            cosine: self.cosine.clone(),
            slots: self.slots,
            trace_steps: self.trace_steps.clone(),
            i_ntt: self.i_ntt.clone(),
            eval_mod_depth: self.eval_mod_depth,
            spares: self.spares.clone(),
        }
    }

    /// Whether this bootstrapper still holds its diagonals' coefficients.
    pub fn holds_diagonal_coefficients(&self) -> bool {
        self.transforms().all(LinearTransform::holds_coefficients)
    }

    /// Every diagonal one bootstrap multiplies by, in the order it uses them (ids ascending),
    /// with the level and scale [`Self::bootstrap`] encodes it at: the scales follow the same
    /// arithmetic as the bootstrap's (ModRaise's G·q_0, each factor's share of the way to
    /// EvalMod's prime, EvalMod's products and rescales, SlotToCoeff's way down to Δ).
    pub fn diagonals(&self) -> Vec<DiagonalUse> {
        let ctx = &*self.ctx;
        let params = ctx.params();
        let q = |l: usize| ctx.prime(l).q as f64;
        let gain = if self.sparse() { SPARSE_COEFF_TO_SLOT_GAIN } else { COEFF_TO_SLOT_GAIN };
        let mut scale = params.q()[0] as f64 * gain as f64;
        if self.sparse() {
            scale *= (params.slots() / self.slots) as f64;
        }
        let mut level = params.max_level();
        // (level, diagonal scale) of each transform, in order.
        let mut at: Vec<(usize, f64)> = Vec::new();
        let mut apply = |level: &mut usize, scale: &mut f64, out_scale: f64| {
            at.push((*level, q(*level) * out_scale / *scale));
            *level -= 1;
            *scale = out_scale;
        };
        let mod_scale = q(level - self.cts.len());
        let step = (mod_scale / scale).powf(1.0 / self.cts.len() as f64);
        for _ in 1..self.cts.len() {
            let s = scale * step;
            apply(&mut level, &mut scale, s);
        }
        apply(&mut level, &mut scale, mod_scale);
        // EvalMod: the interpolant lands on its output level's prime; each double angle squares
        // and rescales; the arcsine's cube (with its 1/6) takes two rescales.
        let arcsine = if self.config.arcsine { 2 } else { 0 };
        level -= self.eval_mod_depth - self.config.double_angle as usize - arcsine;
        scale = q(level);
        for _ in 0..self.config.double_angle {
            scale = scale * scale / q(level);
            level -= 1;
        }
        if self.config.arcsine {
            let cube = scale * scale / q(level) * scale;
            scale = 6.0 * cube / q(level - 1);
            level -= 2;
        }
        let nominal = params.scale();
        let step = (nominal / scale).powf(1.0 / self.stc.len() as f64);
        for _ in 1..self.stc.len() {
            let s = scale * step;
            apply(&mut level, &mut scale, s);
        }
        apply(&mut level, &mut scale, nominal);
        let mut out = Vec::new();
        for (t, (level, scale)) in self.transforms().zip(at) {
            let first = out.len();
            out.extend((first..first + t.diagonal_count()).map(|id| DiagonalUse {
                id,
                level,
                scale,
            }));
        }
        out
    }

    /// Words of the encoding `d`: (level+1+K)·N.
    pub fn diagonal_words(&self, d: &DiagonalUse) -> usize {
        (d.level + 1 + self.ctx.p_len()) * self.ctx.n()
    }

    /// Bytes of every diagonal of [`Self::diagonals`] encoded.
    pub fn diagonal_bytes(&self) -> u64 {
        self.diagonals().iter().map(|d| self.diagonal_words(d) as u64 * 8).sum()
    }

    /// Words of the largest encoded diagonal (the one a bootstrap pins at its peak).
    pub fn max_diagonal_words(&self) -> usize {
        self.diagonals().iter().map(|d| self.diagonal_words(d)).max().unwrap_or(0)
    }

    /// Encodes the diagonal `d` into the first [`Self::diagonal_words`] words of `out`: the
    /// words a transform would encode itself (bit for bit).
    pub fn encode_diagonal(&self, d: &DiagonalUse, out: &mut [u64]) -> Result<()> {
        let coeffs = self.coefficients(d.id)?;
        Encoder::new(&self.ctx).encode_coefficients_extended(coeffs, d.level, d.scale, out)
    }

    /// A 64-bit fingerprint of everything the words of `d` are encoded from: the parameter
    /// set, the diagonal's coefficients, level and scale, and the encoding's version. Equal
    /// fingerprints mean equal words (up to hash collisions), so a durable copy keyed by it can
    /// be reused by any later process with the same parameters and bootstrap configuration.
    pub fn diagonal_fingerprint(&self, d: &DiagonalUse) -> Result<u64> {
        let coeffs = self.coefficients(d.id)?;
        Ok(self.fingerprint(d, coeffs.len(), coeffs.iter().map(|c| c.to_bits())))
    }

    /// [`Self::encode_diagonal`] from the coefficients' bit patterns `bits` (N words, as
    /// [`Self::diagonal_coefficient_bits`] writes them: e.g. a store object), for a
    /// bootstrapper that has released its own.
    pub fn encode_diagonal_from_bits(
        &self,
        d: &DiagonalUse,
        bits: &[u64],
        out: &mut [u64],
    ) -> Result<()> {
        Encoder::new(&self.ctx).encode_coefficient_bits_extended(bits, d.level, d.scale, out)
    }

    /// [`Self::diagonal_fingerprint`] from the coefficients' bit patterns `bits`.
    pub fn diagonal_fingerprint_from_bits(&self, d: &DiagonalUse, bits: &[u64]) -> u64 {
        self.fingerprint(d, bits.len(), bits.iter().copied())
    }

    fn fingerprint(&self, d: &DiagonalUse, count: usize, bits: impl Iterator<Item = u64>) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for x in [
            DIAGONAL_ENCODING_VERSION,
            self.ctx.params().id(),
            d.id as u64,
            d.level as u64,
            d.scale.to_bits(),
            count as u64,
        ] {
            h.update(&x.to_le_bytes());
        }
        let mut bytes = [0u8; 4096];
        let mut bits = bits.peekable();
        while bits.peek().is_some() {
            let mut len = 0;
            for (b, c) in bytes.chunks_exact_mut(8).zip(&mut bits) {
                b.copy_from_slice(&c.to_le_bytes());
                len += 8;
            }
            h.update(&bytes[..len]);
        }
        h.digest()
    }

    /// Encodes every diagonal of [`Self::diagonals`] in memory, each kept one word per run of
    /// equal words ([`Self::diagonal_repeat`], [`super::compact_runs`]) as a store keeps them:
    /// at `n16_deep` 1.0 GB instead of 4.6 GB ([`EncodedDiagonals::bytes`]).
    pub fn encode_diagonals(&self) -> Result<EncodedDiagonals> {
        let uses = self.diagonals();
        let n = self.ctx.n();
        let words = uses
            .iter()
            .map(|d| {
                let mut w = vec![0u64; self.diagonal_words(d)];
                self.encode_diagonal(d, &mut w)?;
                let repeat = self.diagonal_repeat(d.id)?;
                if repeat > 1 {
                    let mut runs = vec![0u64; w.len() / repeat];
                    // Not runs after all (never seen): every word is kept.
                    if super::compact_runs(&w, n, repeat, &mut runs) {
                        return Ok(runs);
                    }
                }
                Ok(w)
            })
            .collect::<Result<_>>()?;
        Ok(EncodedDiagonals { uses, words })
    }

    /// Every key and diagonal use of one bootstrap, in order: [`Self::key_sequence`] with the
    /// diagonals where their transforms multiply by them.
    pub fn access_sequence(&self) -> Vec<BootstrapUse> {
        let galois =
            |s: i64| BootstrapUse::Key(KeyUse::Galois(self.ctx.galois_element_for_step(s)));
        let transform = |t: &LinearTransform| {
            t.uses_in_order().into_iter().map(move |u| match u {
                TransformUse::Rotation(s) => galois(s),
                TransformUse::Diagonal(i) => BootstrapUse::Diagonal(i),
            })
        };
        let mut seq = Vec::new();
        if self.config.sparse_secret.is_some() {
            seq.extend([KeyUse::ToSparse, KeyUse::FromSparse].map(BootstrapUse::Key));
        }
        seq.extend(self.trace_steps.iter().map(|&s| galois(s)));
        seq.extend(self.cts.iter().flat_map(transform));
        seq.push(BootstrapUse::Key(KeyUse::Galois(self.ctx.galois_element_conjugate())));
        let products = chebyshev::products(&self.cosine)
            + self.config.double_angle as usize
            + if self.config.arcsine { 2 } else { 0 };
        let eval_mods = if self.sparse() { 1 } else { 2 };
        seq.extend(std::iter::repeat_n(BootstrapUse::Key(KeyUse::Relin), eval_mods * products));
        seq.extend(self.stc.iter().flat_map(transform));
        seq
    }
}
