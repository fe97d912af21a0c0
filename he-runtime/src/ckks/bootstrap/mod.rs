//! CKKS bootstrapping: a ciphertext with no levels left becomes one with
//! [`Bootstrapper::output_level`] levels, encrypting the same slots.
//!
//! The pipeline, for N/2 complex slots:
//! 1. **Sparse-secret encapsulation** (optional, on by default): at level 0 the ciphertext is
//!    switched to an ephemeral secret of Hamming weight h (32 by default), so that the
//!    overflow I of ModRaise stays within a few units and EvalMod's range K can be small.
//! 2. **ModRaise**: the level-0 residues, centred, are read modulo every prime of the chain.
//!    The ciphertext now decrypts to m + q_0·I; it is switched back to the dense secret.
//! 3. **CoeffToSlot**: the homomorphic inverse special DFT, factorised into `cts_levels` baby-
//!    step giant-step transforms (the level budget), puts the coefficients (over q_0·K, in
//!    bit-reversed order) into the slots; a conjugation splits real and imaginary parts.
//! 4. **EvalMod**: x ↦ sin(2πx)/(2π) ≈ x mod 1, as a Chebyshev interpolant of a scaled cosine
//!    followed by `double_angle` double-angle steps (Han–Ki), on both halves.
//! 5. **SlotToCoeff**: the forward special DFT in `stc_levels` factors brings the reduced
//!    coefficients back, at the input's scale.
//!
//! **Sparse packing** ([`BootstrapConfig::slots`] = n < N/2): the message lies in the subring
//! X^(N/2n) and its slot vector repeats with period n. After ModRaise the overflow q_0·I is not
//! in that subring; the trace Σ_k X ↦ X^(5^(kn)) (log2(N/2n) rotate-and-add steps by n·2^j
//! slots) projects it back, multiplying by N/2n, which the scale absorbs. The DFTs then run on
//! n slots (fewer stages, smaller diagonals), and CoeffToSlot leaves Re and Im side by side in
//! 2n real slots, so one EvalMod serves both.
//!
//! [`Bootstrapper::galois_elements`] lists every key a configuration needs, so a caller can
//! generate, store and load them one at a time.

mod chebyshev;
mod compact;
mod config;
mod dft;
mod diagonal_plan;
mod diagonals;
mod key_source;
mod linear;
mod params;
mod spare_plan;
mod spares;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_diagonals;

use std::sync::Arc;

use rayon::prelude::*;

use self::chebyshev::{rescale, ChebyshevEvaluator, Powers, Temp};
use self::linear::LinearTransform;
use super::ciphertext::Ciphertext;
use super::context::Context;
use super::encoder::Encoder;
use super::evaluator::Evaluator;
use super::fft::Complex64;

use super::keys::{GaloisKeySet, KeyGenerator, SecretKey};
use super::keyswitch::{Lent, Scratch, ScratchWords};
use super::ring::{mul_shoup, shoup};
use crate::error::{Error, Result};

pub use self::compact::{coefficient_stride, compact_runs, repeat_of};
pub use self::config::BootstrapConfig;
pub use self::diagonals::{EncodedDiagonals, WithDiagonals};
pub(crate) use self::key_source::{encapsulation_view, galois_view, view};
pub use self::key_source::{
    BootstrapKeys, BootstrapUse, DiagonalUse, KeySource, KeyUse, Phase, RecordingKeys,
};
pub use self::params::BootstrapPreset;

/// The exact integer the raised ciphertext is multiplied by before CoeffToSlot (see there).
/// CoeffToSlot's error is two terms: its key switches' noise, fixed in size, which the gain makes
/// small next to the content, and the rounding of its diagonals, whose relative size falls as
/// their encoding scale grows; that scale is what is left of EvalMod's prime over the input
/// scale G·q_0, spread over the factors, so a smaller gain encodes the diagonals more finely.
/// Measured (log N 14, 3 levels left): 2^0 24.9 bits, 2^3 25.6, 2^6 25.4, 2^12 22.5; at
/// N = 2^16, 2^3 gives 23.2 bits where 2^12 with every factor but the last at the input scale
/// gave 20.0.
const COEFF_TO_SLOT_GAIN: i64 = 1 << 3;
/// The same for sparse slots, whose trace multiplies the content by N/2n on top, which is gain
/// enough. Measured (log N 14, with the scale spread over the factors): 4,096 slots 24.3 bits at
/// 2^0, 23.6 at 2^3, 22.6 at 2^6; 256 slots 25.5 at 2^0, 25.7 at 2^3.
const SPARSE_COEFF_TO_SLOT_GAIN: i64 = 1;

impl BootstrapKeys {
    /// Generates every key `bs` needs for the secret `sk` (and a fresh sparse secret, which is
    /// dropped, zeroized, before this returns).
    pub fn generate(kg: &mut KeyGenerator, sk: &SecretKey, bs: &Bootstrapper) -> Result<Self> {
        let relin = kg.relin_key(sk)?;
        let mut galois = GaloisKeySet::new();
        for g in bs.galois_elements() {
            galois.insert(kg.galois_key(sk, g)?);
        }
        let (to_sparse, from_sparse) = match bs.config().sparse_secret {
            Some(h) => {
                let sparse = kg.sparse_secret_key(h)?;
                (Some(kg.switching_key(sk, &sparse)?), Some(kg.switching_key(&sparse, sk)?))
            }
            None => (None, None),
        };
        Ok(Self { relin, galois, to_sparse, from_sparse })
    }
}

/// Wall-clock time of each phase of one bootstrap.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct PhaseTimes {
    /// Encapsulation, ModRaise and the switch back, in seconds.
    pub mod_raise: f64,
    /// The trace of a sparse bootstrap, CoeffToSlot and the real/imaginary split, in seconds.
    pub coeff_to_slot: f64,
    /// EvalMod of both halves, in seconds.
    pub eval_mod: f64,
    /// SlotToCoeff, in seconds.
    pub slot_to_coeff: f64,
}

/// A bootstrapping circuit for one parameter set: the DFT factors and the EvalMod polynomial,
/// precomputed once and shared.
#[derive(Debug)]
pub struct Bootstrapper {
    ctx: Arc<Context>,
    config: BootstrapConfig,
    cts: Vec<LinearTransform>,
    stc: Vec<LinearTransform>,
    cosine: Vec<f64>,
    /// Slots bootstrapped (N/2 for full slots).
    slots: usize,
    /// Rotation steps of the sparse trace, in order (empty for full slots).
    trace_steps: Vec<i64>,
    /// NTT form of X^(N/2) (multiplication by i) over every Q prime, as its two values
    /// ([`i_in_ntt_form`]).
    i_ntt: Vec<HalfConstants>,
    eval_mod_depth: usize,
    /// Lengths of the spares a bootstrap takes from its scratch and from the partner scratch
    /// of EvalMod's halves side by side ([`Self::spare_words`]).
    spares: (Vec<usize>, Vec<usize>),
}

/// A prime's constant on the low and the high half of an NTT-form limb, with its Shoup
/// companion.
type HalfConstants = [(u64, u64); 2];

/// X^(N/2) in NTT form over every Q prime. Slot j holds its value at ψ^(2·brv(j)+1), a 4th root
/// of unity ω^(2·brv(j)+1) with ω = ψ^(N/2): ω on the low half of the slots (brv(j) even) and
/// −ω on the high half. Two constants per prime, not a table of N words per prime (13 MiB at
/// N = 2^16), each checked against the NTT itself.
fn i_in_ntt_form(ctx: &Context) -> Result<Vec<HalfConstants>> {
    let n = ctx.n();
    let mut limb = vec![0u64; n];
    (0..ctx.q_len())
        .map(|i| {
            let prime = ctx.prime(i);
            limb.fill(0);
            limb[n / 2] = 1;
            prime.ntt(&mut limb);
            let (low, high) = limb.split_at(n / 2);
            let halves = [low[0], high[0]];
            let constant = |h: &[u64], w: u64| h.iter().all(|&x| x == w);
            if !(constant(low, halves[0]) && constant(high, halves[1])) {
                return Err(Error::InvalidParameter {
                    name: "NTT order",
                    reason: "X^(N/2) is not constant on each half of the NTT slots".into(),
                });
            }
            Ok(halves.map(|w| (w, shoup(w, prime.q))))
        })
        .collect()
}

impl Bootstrapper {
    /// Precomputes the circuit; a typed error if the chain has too few levels for it.
    pub fn new(ctx: &Arc<Context>, config: &BootstrapConfig) -> Result<Self> {
        let params = ctx.params();
        let (cts_levels, eval_mod_depth, stc_levels) = config.depth()?;
        let needed = cts_levels + eval_mod_depth + stc_levels;
        if params.max_level() < needed {
            return Err(Error::CannotBootstrap {
                needed,
                available: params.max_level(),
                reason: "the modulus chain is shorter than the bootstrapping circuit",
            });
        }
        let full = params.slots();
        let slots = config.slot_count(full)?;
        let fft = ctx.fft();
        let mut cts_maps = dft::bootstrap_coeff_to_slot(fft, slots, full, cts_levels);
        let mut stc_maps = dft::bootstrap_slot_to_coeff(fft, slots, full, stc_levels);
        let trace_steps = (0..(full / slots).trailing_zeros()).map(|j| (slots << j) as i64);
        // Constants on the last factors: CoeffToSlot maps onto t = x/K with the 1/2 of the
        // real/imaginary split; SlotToCoeff undoes EvalMod's 2π/q_0 (the scale goes back to
        // the input's by relabelling).
        let q0 = params.q()[0] as f64;
        if let Some(last) = cts_maps.last_mut() {
            last.scale(Complex64::new(0.5 / config.k, 0.0));
        }
        // Divided by the nominal scale so that the last factor encodes at q·Δ/S, well above 1.
        if let Some(last) = stc_maps.last_mut() {
            last.scale(Complex64::new(q0 / (2.0 * std::f64::consts::PI * params.scale()), 0.0));
        }
        let enc = Encoder::new(ctx);
        // Diagonals are numbered over CoeffToSlot then SlotToCoeff, in the order of use.
        let mut next = 0;
        let mut lay_out = |m: &dft::DiagonalMap| -> Result<LinearTransform> {
            let t = LinearTransform::new(m, &enc)?.numbered_from(next);
            next += t.diagonal_count();
            Ok(t)
        };
        let cts = cts_maps.iter().map(&mut lay_out).collect::<Result<_>>()?;
        let stc = stc_maps.iter().map(&mut lay_out).collect::<Result<_>>()?;
        let i_ntt = i_in_ntt_form(ctx)?;
        let mut bs = Self {
            ctx: Arc::clone(ctx),
            config: config.clone(),
            cts,
            stc,
            cosine: config.cosine()?.coeffs,
            slots,
            trace_steps: trace_steps.collect(),
            i_ntt,
            eval_mod_depth,
            spares: (Vec::new(), Vec::new()),
        };
        bs.spares = bs.spare_buffers().ok_or(Error::CannotBootstrap {
            needed: bs.eval_mod_depth,
            available: 0,
            reason: "EvalMod runs out of levels",
        })?;
        Ok(bs)
    }

    /// The context it was built for.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The configuration.
    pub fn config(&self) -> &BootstrapConfig {
        &self.config
    }

    /// Slots bootstrapped: N/2, or the sparse slot count n (the slot vector repeats with
    /// period n, on input and output).
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Whether this is a sparse bootstrap (fewer than N/2 slots).
    fn sparse(&self) -> bool {
        !self.trace_steps.is_empty()
    }

    /// The level of a bootstrapped ciphertext: the levels left for computation.
    pub fn output_level(&self) -> usize {
        self.ctx.params().max_level() - self.cts.len() - self.eval_mod_depth - self.stc.len()
    }

    /// Every rotation step of the sparse trace and the two DFTs.
    pub fn rotation_steps(&self) -> Vec<i64> {
        let mut s: Vec<i64> = self.cts.iter().chain(&self.stc).flat_map(|t| t.steps()).collect();
        s.extend(&self.trace_steps);
        s.sort_unstable();
        s.dedup();
        s
    }

    /// Every Galois element a bootstrap needs a key for (rotations and conjugation), sorted.
    pub fn galois_elements(&self) -> Vec<u64> {
        let mut g: Vec<u64> =
            self.rotation_steps().iter().map(|&s| self.ctx.galois_element_for_step(s)).collect();
        g.push(self.ctx.galois_element_conjugate());
        g.sort_unstable();
        g.dedup();
        g
    }

    /// Every key use of one bootstrap, in the order [`Self::bootstrap`] asks its
    /// [`KeySource`] for them: the access plan a tiered store prefetches from.
    pub fn key_sequence(&self) -> Vec<KeyUse> {
        self.key_uses().into_iter().map(|(u, _)| u).collect()
    }

    /// [`Self::key_sequence`] with the level each key is asked for (the level of the ciphertext
    /// it switches). For the relinearisation key it is EvalMod's input level, which bounds
    /// every product's; the others are exact. A source that expands keys ahead of their use
    /// expands each for its level only: SlotToCoeff's keys, below EvalMod, need under a
    /// third of a key's words.
    pub fn key_uses(&self) -> Vec<(KeyUse, usize)> {
        let top = self.ctx.params().max_level();
        let mut seq = Vec::new();
        if self.config.sparse_secret.is_some() {
            seq.extend([(KeyUse::ToSparse, 0), (KeyUse::FromSparse, top)]);
        }
        let galois = |s: i64| KeyUse::Galois(self.ctx.galois_element_for_step(s));
        seq.extend(self.trace_steps.iter().map(|&s| (galois(s), top)));
        // Each transform consumes one level.
        for (i, t) in self.cts.iter().enumerate() {
            seq.extend(t.steps_in_order().into_iter().map(|s| (galois(s), top - i)));
        }
        let eval_mod_in = top - self.cts.len();
        seq.push((KeyUse::Galois(self.ctx.galois_element_conjugate()), eval_mod_in));
        let products = chebyshev::products(&self.cosine)
            + self.config.double_angle as usize
            + if self.config.arcsine { 2 } else { 0 };
        let eval_mods = if self.sparse() { 1 } else { 2 };
        seq.extend(std::iter::repeat_n((KeyUse::Relin, eval_mod_in), eval_mods * products));
        let stc_in = eval_mod_in - self.eval_mod_depth;
        for (i, t) in self.stc.iter().enumerate() {
            seq.extend(t.steps_in_order().into_iter().map(|s| (galois(s), stc_in - i)));
        }
        seq
    }

    /// Lengths in words of the spare buffers a bootstrap takes from its [`Scratch`] at once at
    /// its peak, longest first: a caller whose buffers cannot grow hands in these
    /// ([`Scratch::add_spares`]). They are its ciphertext temporaries and the linear
    /// transforms' extended ciphertexts, encoded diagonal and ModDown staging, each lent at the
    /// length its level needs (a temporary of EvalMod is shorter than one at ModRaise), as
    /// many as are alive at once and each as long as the scratch's choice of buffer
    /// (the smallest free one that holds a temporary) needs, whether EvalMod's halves run one
    /// after the other or side by side (computed exactly from the bootstrap's order of lends,
    /// see `spare_plan.rs`).
    pub fn spare_words(&self) -> Vec<usize> {
        self.spares.0.clone()
    }

    /// Lengths in words of the spare buffers the second scratch of EvalMod's halves side by
    /// side ([`Scratch::set_partner`]) takes at once: one half's temporaries but its input,
    /// which the first scratch lends it. Empty for a sparse bootstrap (one EvalMod).
    pub fn partner_spare_words(&self) -> Vec<usize> {
        self.spares.1.clone()
    }

    /// Key switches in one bootstrap (trace and DFT rotations, conjugation; encapsulation and
    /// relinearisations excluded).
    pub fn rotations_per_bootstrap(&self) -> usize {
        let dft = self.cts.iter().chain(&self.stc).map(|t| t.key_switches()).sum::<usize>();
        dft + self.trace_steps.len() + 1
    }

    /// Bootstraps `ct` (any level, degree 1) to [`Self::output_level`] at the same scale.
    /// Every ciphertext temporary is a spare of `scratch` ([`Self::spare_words`]); the result
    /// is a copy on the heap, at the output level.
    pub fn bootstrap<K: KeySource, C: AsRef<[u64]>, S: ScratchWords>(
        &self,
        ct: &Ciphertext<C>,
        keys: &K,
        scratch: &mut Scratch<S>,
    ) -> std::result::Result<Ciphertext, K::Error> {
        self.bootstrap_timed(ct, keys, scratch).map(|(c, _)| c)
    }

    /// A spare of `scratch` for a ciphertext of `parts` polynomials at `level`.
    fn lend<S: ScratchWords>(
        &self,
        scratch: &mut Scratch<S>,
        parts: usize,
        level: usize,
    ) -> Result<Lent<S>> {
        scratch.lend(parts * (level + 1) * self.ctx.n())
    }

    /// `x` moved into the smallest spare that holds it (the same words), its buffer given
    /// back. A key switch's or a transform's result is lent while its input (and a transform's
    /// ModDown staging) is alive, so over fixed spares it may sit in a buffer as long as the
    /// next transform's extended ciphertexts, which then run short of one.
    fn settle<S: ScratchWords>(
        &self,
        eval: &Evaluator,
        scratch: &mut Scratch<S>,
        x: Temp<S>,
    ) -> Result<Temp<S>> {
        let moved = eval.copy_into(&x, self.lend(scratch, 2, x.level())?)?;
        scratch.give_back(x.into_data());
        Ok(moved)
    }

    /// [`Self::bootstrap`], with the time of each phase.
    pub fn bootstrap_timed<K: KeySource, C: AsRef<[u64]>, S: ScratchWords>(
        &self,
        ct: &Ciphertext<C>,
        keys: &K,
        scratch: &mut Scratch<S>,
    ) -> std::result::Result<(Ciphertext, PhaseTimes), K::Error> {
        self.bootstrap_into(ct, keys, scratch, |words| Ok(vec![0; words]))
    }

    /// [`Self::bootstrap_timed`] with the result written into the buffer `result` makes from its
    /// length in words (e.g. a block of a store's budget, made once the last transform is
    /// done): no ciphertext of the bootstrap is then on the heap.
    pub fn bootstrap_into<K, C, S, D>(
        &self,
        ct: &Ciphertext<C>,
        keys: &K,
        scratch: &mut Scratch<S>,
        result: impl FnOnce(usize) -> std::result::Result<D, K::Error>,
    ) -> std::result::Result<(Ciphertext<D>, PhaseTimes), K::Error>
    where
        K: KeySource,
        C: AsRef<[u64]>,
        S: ScratchWords,
        D: AsRef<[u64]> + AsMut<[u64]>,
    {
        let eval = Evaluator::new(&self.ctx);
        let enc = Encoder::new(&self.ctx);
        eval.check_ct(ct)?;
        if ct.degree() != 1 {
            return Err(Error::InvalidDegree { degree: ct.degree(), expected: 1 }.into());
        }
        if let Some(found) = ct.slots().filter(|&s| s > self.slots) {
            return Err(Error::BootstrapSlots { expected: self.slots, found }.into());
        }
        let q0 = self.ctx.params().q()[0] as f64;
        let scale_in = ct.scale();
        // The coefficients Δ·m must stay well inside (−q_0/2, q_0/2), and EvalMod's sine is
        // accurate only for small (Δ/q_0)·m.
        if !(scale_in >= 1.0 && scale_in <= q0 / 32.0) {
            return Err(Error::BootstrapScale {
                scale_log2: scale_in.log2(),
                max_log2: (q0 / 32.0).log2(),
            }
            .into());
        }
        let mut times = PhaseTimes::default();
        keys.phase_started(Phase::ModRaise);
        let clock = std::time::Instant::now();
        let mut x = eval.drop_to_level_into(ct, 0, self.lend(scratch, 2, 0)?)?;
        if self.config.sparse_secret.is_some() {
            let out = self.lend(scratch, 2, 0)?;
            let y = eval.key_switch_into(
                &x,
                &keys.switching(KeyUse::ToSparse, x.level())?,
                scratch,
                out,
            )?;
            scratch.give_back(std::mem::replace(&mut x, y).into_data());
        }
        let mut y = self.mod_raise(&x, scratch)?;
        scratch.give_back(x.into_data());
        // The raised ciphertext is exact, and every key switch after it adds noise of a fixed
        // size: scaling the content up by an exact integer first makes that noise relatively
        // small through CoeffToSlot, whose error EvalMod multiplies by 2πK.
        let gain = if self.sparse() { SPARSE_COEFF_TO_SLOT_GAIN } else { COEFF_TO_SLOT_GAIN };
        if gain != 1 {
            eval.mul_integer_assign(&mut y, gain)?;
        }
        if self.config.sparse_secret.is_some() {
            let out = self.lend(scratch, 2, y.level())?;
            let key = keys.switching(KeyUse::FromSparse, y.level())?;
            let z = eval.key_switch_into(&y, &key, scratch, out)?;
            drop(key);
            scratch.give_back(std::mem::replace(&mut y, z).into_data());
            y = self.settle(&eval, scratch, y)?;
        }
        let mut x = y;
        // Decrypts to G·(Δ·m + q_0·I): read at scale G·q_0, the slots hold m·Δ/q_0 + I.
        x.set_scale(q0 * gain as f64);
        times.mod_raise = clock.elapsed().as_secs_f64();

        keys.phase_started(Phase::CoeffToSlot);
        let clock = std::time::Instant::now();
        if self.sparse() {
            // The trace keeps the subring part of I (and m) times N/2n: a larger scale.
            let scale = x.scale() * (self.ctx.params().slots() / self.slots) as f64;
            for &step in &self.trace_steps {
                let key = keys.galois(self.ctx.galois_element_for_step(step), x.level())?;
                let out = self.lend(scratch, 2, x.level())?;
                let r = eval.rotate_into(&x, step, &key, scratch, out)?;
                drop(key);
                eval.add_assign(&mut x, &r)?;
                scratch.give_back(r.into_data());
            }
            x.set_scale(scale);
        }
        let (last, rest) = self.cts.split_last().ok_or(Error::InvalidParameter {
            name: "cts_levels",
            reason: "no CoeffToSlot factor".into(),
        })?;
        // EvalMod's squarings keep the scale when it equals the prime they divide by. The way
        // up from the input scale to it is spread over every factor, as SlotToCoeff spreads its
        // way down: each factor's diagonals are then encoded at its prime times the same
        // ratio, instead of the last factor alone taking it.
        let mod_scale = self.ctx.prime(x.level() - self.cts.len()).q as f64;
        let step = (mod_scale / x.scale()).powf(1.0 / self.cts.len() as f64);
        for t in rest {
            let s = x.scale() * step;
            let y = t.apply(&eval, &enc, &x, keys, scratch, s)?;
            scratch.give_back(std::mem::replace(&mut x, y).into_data());
            x = self.settle(&eval, scratch, x)?;
        }
        let y = last.apply(&eval, &enc, &x, keys, scratch, mod_scale)?;
        scratch.give_back(std::mem::replace(&mut x, y).into_data());
        x = self.settle(&eval, scratch, x)?;
        let conj_g = self.ctx.galois_element_conjugate();
        let out = self.lend(scratch, 2, x.level())?;
        let mut conj = eval.conjugate_into(&x, &keys.galois(conj_g, x.level())?, scratch, out)?;
        let mut x = if self.sparse() {
            // (w, −i·w) plus its conjugate: (Re w, Im w) in 2n real slots, one EvalMod.
            eval.add_assign(&mut x, &conj)?;
            scratch.give_back(conj.into_data());
            times.coeff_to_slot = clock.elapsed().as_secs_f64();
            keys.phase_started(Phase::EvalMod);
            let clock = std::time::Instant::now();
            let y = self.eval_mod(&eval, x, keys, scratch)?;
            times.eval_mod = clock.elapsed().as_secs_f64();
            y
        } else {
            let mut re = eval.copy_into(&x, self.lend(scratch, 2, x.level())?)?;
            eval.add_assign(&mut re, &conj)?;
            eval.sub_assign(&mut conj, &x)?;
            scratch.give_back(x.into_data());
            let mut im = conj;
            self.mul_i_assign(&mut im);
            times.coeff_to_slot = clock.elapsed().as_secs_f64();
            keys.phase_started(Phase::EvalMod);
            let clock = std::time::Instant::now();
            let (re, mut y) = self.eval_mod_pair(&eval, re, im, keys, scratch)?;
            self.mul_i_assign(&mut y);
            eval.add_assign(&mut y, &re)?;
            scratch.give_back(re.into_data());
            times.eval_mod = clock.elapsed().as_secs_f64();
            y
        };

        keys.phase_started(Phase::SlotToCoeff);
        let clock = std::time::Instant::now();
        let (last, rest) = self.stc.split_last().ok_or(Error::InvalidParameter {
            name: "stc_levels",
            reason: "no SlotToCoeff factor".into(),
        })?;
        // EvalMod leaves a scale near its 60-bit primes; stepping it down to the nominal Δ over
        // all the factors, rather than in the last, keeps every factor's diagonals encoded at
        // about q·(Δ/S)^(1/levels), far above 2^30.
        let nominal = self.ctx.params().scale();
        let step = (nominal / x.scale()).powf(1.0 / self.stc.len() as f64);
        for t in rest {
            let s = x.scale() * step;
            let y = t.apply(&eval, &enc, &x, keys, scratch, s)?;
            scratch.give_back(std::mem::replace(&mut x, y).into_data());
            x = self.settle(&eval, scratch, x)?;
        }
        // The slots now hold (Δ_in/Δ)·z at scale Δ: relabelled, z at scale Δ_in.
        let y = last.apply(&eval, &enc, &x, keys, scratch, nominal)?;
        scratch.give_back(x.into_data());
        let mut out = eval.copy_into(&y, result(y.as_words().len())?)?;
        scratch.give_back(y.into_data());
        out.set_scale(scale_in);
        out.set_slots(ct.slots());
        times.slot_to_coeff = clock.elapsed().as_secs_f64();
        scratch.release_spare();
        Ok((out, times))
    }

    /// CoeffToSlot then SlotToCoeff (no EvalMod between; for sparse slots, with the conjugate
    /// packing between), with the transforms' constants relabelled away: the identity on the
    /// slots, up to the transforms' noise. `x` must be at the top level.
    pub fn dft_round_trip<K: KeySource, C: AsRef<[u64]>, S: ScratchWords>(
        &self,
        x: &Ciphertext<C>,
        keys: &K,
        scratch: &mut Scratch<S>,
    ) -> std::result::Result<Ciphertext, K::Error> {
        let eval = Evaluator::new(&self.ctx);
        let enc = Encoder::new(&self.ctx);
        let scale = x.scale();
        let mut y: Option<Temp<S>> = None;
        for t in &self.cts {
            let next = match &y {
                None => t.apply(&eval, &enc, x, keys, scratch, x.scale())?,
                Some(y) => t.apply(&eval, &enc, y, keys, scratch, y.scale())?,
            };
            if let Some(old) = y.replace(next) {
                scratch.give_back(old.into_data());
            }
        }
        let mut y = y.ok_or(Error::InvalidParameter {
            name: "cts_levels",
            reason: "no CoeffToSlot factor".into(),
        })?;
        // CoeffToSlot's 1/2 undoes the doubling of the conjugate packing.
        let mut half = 0.5;
        if self.sparse() {
            let conj_g = self.ctx.galois_element_conjugate();
            let out = self.lend(scratch, 2, y.level())?;
            let conj = eval.conjugate_into(&y, &keys.galois(conj_g, y.level())?, scratch, out)?;
            eval.add_assign(&mut y, &conj)?;
            scratch.give_back(conj.into_data());
            half = 1.0;
        }
        for t in &self.stc {
            let s = y.scale();
            let next = t.apply(&eval, &enc, &y, keys, scratch, s)?;
            scratch.give_back(std::mem::replace(&mut y, next).into_data());
        }
        let mut out = y.to_owned_ct();
        scratch.give_back(y.into_data());
        let q0 = self.ctx.params().q()[0] as f64;
        let c =
            half * q0 / (2.0 * std::f64::consts::PI * self.config.k * self.ctx.params().scale());
        out.set_scale(scale * c);
        scratch.release_spare();
        Ok(out)
    }

    /// EvalMod alone on slots t (real, in [−1, 1]): sin(2πK·t), consuming
    /// [`BootstrapConfig::depth`]'s EvalMod levels.
    pub fn eval_mod_only<K: KeySource, S: ScratchWords>(
        &self,
        t: Ciphertext,
        keys: &K,
        scratch: &mut Scratch<S>,
    ) -> std::result::Result<Ciphertext, K::Error> {
        let eval = Evaluator::new(&self.ctx);
        let t = eval.copy_into(&t, self.lend(scratch, 2, t.level())?)?;
        let y = self.eval_mod(&eval, t, keys, scratch)?;
        let out = y.to_owned_ct();
        scratch.give_back(y.into_data());
        scratch.release_spare();
        Ok(out)
    }

    /// The level-0 ciphertext read modulo every prime of the chain (centred lift), in a spare.
    fn mod_raise<C: AsRef<[u64]>, S: ScratchWords>(
        &self,
        x: &Ciphertext<C>,
        scratch: &mut Scratch<S>,
    ) -> Result<Temp<S>> {
        let ctx = &*self.ctx;
        let n = ctx.n();
        let top = ctx.params().max_level();
        let q0 = &ctx.prime(0).modulus;
        let out = self.lend(scratch, 2, top)?;
        let mut out = Ciphertext::from_raw(out, 2, top, x.scale(), n, x.params_id())?;
        out.set_slots(x.slots());
        for p in 0..2 {
            // Level 0's coefficients, staged in the scratch's coefficient buffer.
            let coeff = &mut scratch.coeff.as_mut()[..n];
            coeff.copy_from_slice(&x.part(p)[..n]);
            ctx.prime(0).intt(coeff);
            let coeff = &*coeff;
            out.part_mut(p).par_chunks_mut(n).enumerate().for_each(|(i, limb)| {
                let prime = ctx.prime(i);
                prime.modulus.lift_centered_slice(coeff, q0, limb);
                prime.ntt(limb);
            });
        }
        Ok(out)
    }

    /// Multiplies the slots by i (the monomial X^(N/2)), exactly.
    fn mul_i_assign<C: AsRef<[u64]> + AsMut<[u64]>>(&self, x: &mut Ciphertext<C>) {
        let ctx = &*self.ctx;
        let n = ctx.n();
        let l1 = x.level() + 1;
        for p in 0..2 {
            x.part_mut(p).par_chunks_mut(n).enumerate().take(l1).for_each(|(i, limb)| {
                let q = ctx.prime(i).q;
                let (low, high) = limb.split_at_mut(n / 2);
                for (half, &(w, w_shoup)) in [low, high].into_iter().zip(&self.i_ntt[i]) {
                    half.iter_mut().for_each(|a| *a = mul_shoup(*a, w, w_shoup, q));
                }
            });
        }
    }

    /// [`Self::eval_mod`] of the real and the imaginary half. On a pool of several threads (and
    /// keys that two threads can borrow at once, [`KeySource::shared_borrows`]) the two run side
    /// by side, the second on a scratch of its own: each is a chain of products
    /// and rescales over a dozen limbs with serial gaps between them (copies of powers, level
    /// drops, key pins), which limb parallelism alone leaves idle on the other thread; the
    /// results are the same as one after the other. The second half's input comes from the
    /// first scratch and goes back to the second, its result the other way round, so each
    /// keeps as many spares as it had.
    fn eval_mod_pair<K: KeySource, S: ScratchWords>(
        &self,
        eval: &Evaluator,
        re: Temp<S>,
        im: Temp<S>,
        keys: &K,
        scratch: &mut Scratch<S>,
    ) -> std::result::Result<(Temp<S>, Temp<S>), K::Error> {
        let second = if rayon::current_num_threads() < 2 || !keys.shared_borrows() {
            None
        } else {
            scratch.take_partner(&self.ctx)
        };
        let Some(mut second) = second else {
            let re = self.eval_mod(eval, re, keys, scratch)?;
            return Ok((re, self.eval_mod(eval, im, keys, scratch)?));
        };
        let room = im.data.room();
        let (re, im) = rayon::join(
            || self.eval_mod(eval, re, keys, scratch),
            || self.eval_mod(eval, im, keys, &mut second),
        );
        // The result goes back in a buffer as long as the one the input came in, so each
        // scratch keeps the lengths of spares it had (a copy of a few limbs, when another).
        let im = match im {
            Ok(im) if im.data.room() != room => {
                let moved = second.lend_exact(room, im.as_words().len());
                let moved = moved.and_then(|b| eval.copy_into(&im, b));
                second.give_back(im.into_data());
                moved.map_err(K::Error::from)
            }
            other => other,
        };
        scratch.set_partner(second);
        Ok((re?, im?))
    }

    /// sin(2πK·t) for slots t ∈ [−1, 1]: the cosine interpolant, then the double angles.
    fn eval_mod<K: KeySource, S: ScratchWords>(
        &self,
        eval: &Evaluator,
        t: Temp<S>,
        keys: &K,
        scratch: &mut Scratch<S>,
    ) -> std::result::Result<Temp<S>, K::Error> {
        let mut powers = Powers::new(eval, keys, t);
        powers.make(&chebyshev::powers_made(&self.cosine), scratch)?;
        powers.plan_uses(&self.cosine, self.cosine.len() - 1);
        let mut cheb = ChebyshevEvaluator::new(&mut powers, self.cosine.len() - 1);
        let level = cheb.output_level(&self.cosine).ok_or(Error::CannotBootstrap {
            needed: self.eval_mod_depth,
            available: 0,
            reason: "EvalMod ran out of levels",
        })?;
        let scale = self.ctx.prime(level).q as f64;
        let mut c = cheb.eval(&self.cosine, level, scale, scratch)?;
        powers.release(scratch);
        for _ in 0..self.config.double_angle {
            // cos 2θ = 2cos²θ − 1.
            let mut sq = self.mul_relin(eval, &c, &c, keys, scratch)?;
            scratch.give_back(c.into_data());
            eval.mul_integer_assign(&mut sq, 2)?;
            eval.add_const_assign(&mut sq, Complex64::new(-1.0, 0.0))?;
            c = rescale(eval, &sq, scratch)?;
            scratch.give_back(sq.into_data());
        }
        if self.config.arcsine {
            c = self.arcsine(eval, c, keys, scratch)?;
        }
        Ok(c)
    }

    /// a·b relinearised, in a spare (the degree-2 product in another, given back).
    fn mul_relin<K: KeySource, S: ScratchWords>(
        &self,
        eval: &Evaluator,
        a: &Temp<S>,
        b: &Temp<S>,
        keys: &K,
        scratch: &mut Scratch<S>,
    ) -> std::result::Result<Temp<S>, K::Error> {
        let rk = keys.relin(a.level())?;
        let tensor = eval.mul_into(a, b, self.lend(scratch, 3, a.level())?)?;
        let out = self.lend(scratch, 2, a.level())?;
        let p = eval.relinearize_into(&tensor, &rk, scratch, out)?;
        scratch.give_back(tensor.into_data());
        Ok(p)
    }

    /// u + u³/6 in two levels: u³ = (u·u)·u with the 1/6 folded into its scale, and u brought to
    /// that scale by an integer product before the last rescale.
    fn arcsine<K: KeySource, S: ScratchWords>(
        &self,
        eval: &Evaluator,
        u: Temp<S>,
        keys: &K,
        scratch: &mut Scratch<S>,
    ) -> std::result::Result<Temp<S>, K::Error> {
        let uu = self.mul_relin(eval, &u, &u, keys, scratch)?;
        let sq = rescale(eval, &uu, scratch)?;
        scratch.give_back(uu.into_data());
        let mut low =
            eval.drop_to_level_into(&u, sq.level(), self.lend(scratch, 2, sq.level())?)?;
        scratch.give_back(u.into_data());
        let mut cube = self.mul_relin(eval, &sq, &low, keys, scratch)?;
        scratch.give_back(sq.into_data());
        let target = 6.0 * cube.scale();
        cube.set_scale(target);
        // An integer product by target/s ≈ 6q; above 2^63 (61-bit EvalMod primes) as the
        // product by target/6s and an exact one by 6.
        let ratio = target / low.scale();
        if ratio < 9.0e18 {
            eval.mul_const_assign(&mut low, 1.0, ratio)?;
        } else {
            eval.mul_const_assign(&mut low, 1.0, ratio / 6.0)?;
            eval.mul_integer_assign(&mut low, 6)?;
        }
        low.set_scale(target);
        eval.add_assign(&mut cube, &low)?;
        scratch.give_back(low.into_data());
        let out = rescale(eval, &cube, scratch)?;
        scratch.give_back(cube.into_data());
        Ok(out)
    }
}
