//! The diagonals of a bootstrap's linear transforms, encoded ahead of time.
//!
//! Within one bootstrap every transform runs at a fixed level and encodes its diagonals at a
//! fixed scale (CoeffToSlot starts at G·q_0 after ModRaise, EvalMod ends at a scale its primes
//! fix, and each factor's output scale follows from the primes), so the NTT-form words of each
//! diagonal over Q_level·P are the same in every bootstrap of a parameter set.
//! [`Bootstrapper::diagonals`] lists them (id, level, scale), [`Bootstrapper::encode_diagonal`]
//! encodes one, and a [`KeySource`] that holds them hands them out through
//! [`KeySource::diagonal`] instead of the transform encoding them on every application (at
//! N = 2^16 that encoding is about a fifth of a bootstrap). [`Bootstrapper::access_sequence`]
//! is the bootstrap's order of keys and diagonals together, for a tiered store's hint.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::super::encoder::Encoder;
use super::super::keys::{GaloisKey, KeySwitchKey, RelinKey};
use super::chebyshev;
use super::key_source::{BootstrapKeys, KeySource, KeyUse};
use super::linear::{LinearTransform, TransformUse};
use super::{Bootstrapper, COEFF_TO_SLOT_GAIN, SPARSE_COEFF_TO_SLOT_GAIN};
use crate::error::{Error, Result};

/// One encoding of a diagonal of a bootstrap's linear transforms: which diagonal (numbered
/// over CoeffToSlot's factors then SlotToCoeff's, in the order a bootstrap uses them) and the
/// level and scale it is encoded at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiagonalUse {
    /// The diagonal's number, `0..Bootstrapper::diagonals().len()`.
    pub id: usize,
    /// The level of the ciphertext it multiplies: encoded over q_0..q_level and P.
    pub level: usize,
    /// The scale its coefficients are rounded at.
    pub scale: f64,
}

impl DiagonalUse {
    /// Whether `other` asks for exactly this encoding (same diagonal, level and scale bits):
    /// a source answers only then, and leaves any other encoding to the transform.
    pub fn is(&self, other: &DiagonalUse) -> bool {
        self.id == other.id
            && self.level == other.level
            && self.scale.to_bits() == other.scale.to_bits()
    }
}

/// One use of a bootstrap, in order: an evaluation key or a pre-encoded diagonal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootstrapUse {
    /// An evaluation key.
    Key(KeyUse),
    /// The diagonal of this id ([`DiagonalUse::id`]).
    Diagonal(usize),
}

impl Bootstrapper {
    /// The transforms in diagonal-id order: CoeffToSlot's factors, then SlotToCoeff's.
    fn transforms(&self) -> impl Iterator<Item = &LinearTransform> {
        self.cts.iter().chain(&self.stc)
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
        let coeffs = self
            .transforms()
            .find_map(|t| t.coefficients(d.id))
            .ok_or(Error::MissingDiagonal { id: d.id })?;
        Encoder::new(&self.ctx).encode_coefficients_extended(coeffs, d.level, d.scale, out)
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

/// Every diagonal of a bootstrapper, encoded in memory.
#[derive(Debug, Clone)]
pub struct EncodedDiagonals {
    uses: Vec<DiagonalUse>,
    words: Vec<Vec<u64>>,
}

impl EncodedDiagonals {
    /// Encodes every diagonal of [`Bootstrapper::diagonals`].
    pub fn encode(bs: &Bootstrapper) -> Result<Self> {
        let uses = bs.diagonals();
        let words = uses
            .iter()
            .map(|d| {
                let mut w = vec![0u64; bs.diagonal_words(d)];
                bs.encode_diagonal(d, &mut w)?;
                Ok(w)
            })
            .collect::<Result<_>>()?;
        Ok(Self { uses, words })
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.words.iter().map(|w| w.len() as u64 * 8).sum()
    }

    /// The words of `want` if held in exactly that encoding; `None` for another encoding of a
    /// held diagonal; a typed error for an id it does not hold.
    pub fn get(&self, want: &DiagonalUse) -> Result<Option<&[u64]>> {
        let held = self.uses.get(want.id).ok_or(Error::MissingDiagonal { id: want.id })?;
        Ok(held.is(want).then(|| self.words[want.id].as_slice()))
    }
}

/// Keys in memory with their bootstrapper's diagonals encoded beforehand: a [`KeySource`]
/// whose bootstraps encode no diagonal (every other encoding, e.g. a DFT round trip's, is
/// left to the transform and counted).
#[derive(Debug)]
pub struct WithDiagonals<'a> {
    keys: &'a BootstrapKeys,
    diagonals: &'a EncodedDiagonals,
    encoded: AtomicUsize,
}

impl<'a> WithDiagonals<'a> {
    /// `keys` handing out `diagonals`.
    pub fn new(keys: &'a BootstrapKeys, diagonals: &'a EncodedDiagonals) -> Self {
        Self { keys, diagonals, encoded: AtomicUsize::new(0) }
    }

    /// Diagonals asked for in an encoding not held (left to the transform to encode) so far.
    pub fn encoded_on_the_fly(&self) -> usize {
        self.encoded.load(Ordering::Relaxed)
    }
}

impl KeySource for WithDiagonals<'_> {
    type Error = Error;
    type Words<'b>
        = &'b [u64]
    where
        Self: 'b;

    fn galois(&self, g: u64) -> Result<GaloisKey<&[u64]>> {
        self.keys.galois(g)
    }

    fn relin(&self) -> Result<RelinKey<&[u64]>> {
        self.keys.relin()
    }

    fn switching(&self, which: KeyUse) -> Result<KeySwitchKey<&[u64]>> {
        self.keys.switching(which)
    }

    fn diagonal(&self, want: &DiagonalUse) -> Result<Option<&[u64]>> {
        let got = self.diagonals.get(want)?;
        if got.is_none() {
            self.encoded.fetch_add(1, Ordering::Relaxed);
        }
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::ckks::bootstrap::{BootstrapConfig, BootstrapPreset};
    use crate::ckks::{
        Ciphertext, Complex64, Context, Encryptor, Evaluator, KeyGenerator, SecretKey,
    };

    fn setup(log_n: u32, slots: Option<usize>) -> (Bootstrapper, BootstrapKeys, SecretKey) {
        let mut preset = BootstrapPreset::insecure_test(log_n, 1);
        preset.config = BootstrapConfig { slots, ..Default::default() };
        let ctx = Context::new(&preset.params().unwrap()).unwrap();
        let mut kg = KeyGenerator::with_seed(&ctx, [31; 32]);
        let sk = kg.secret_key();
        let bs = Bootstrapper::new(&ctx, &preset.config).unwrap();
        let keys = BootstrapKeys::generate(&mut kg, &sk, &bs).unwrap();
        (bs, keys, sk)
    }

    fn encrypted(bs: &Bootstrapper, sk: &SecretKey, level: usize) -> Ciphertext {
        let ctx = bs.context();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let period = bs.slots();
        let z: Vec<Complex64> = (0..period)
            .map(|_| Complex64::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
            .collect();
        let z: Vec<Complex64> = z.iter().copied().cycle().take(ctx.params().slots()).collect();
        let pt = Encoder::new(ctx).encode(&z, level, ctx.params().scale()).unwrap();
        Encryptor::with_seed(ctx, [3; 32]).encrypt_sk(sk, &pt).unwrap()
    }

    /// With every diagonal encoded beforehand, a bootstrap encodes none itself and its result
    /// is the on-the-fly one word for word (full slots at log N 12 and 13, sparse slots at 12):
    /// the listed scales are the ones the bootstrap encodes at. The access sequence is the key
    /// sequence with every diagonal in id order inserted.
    #[test]
    fn pre_encoded_diagonals_give_the_on_the_fly_bootstrap_bit_for_bit() {
        for (log_n, slots) in [(12, None), (12, Some(16)), (13, None)] {
            let (bs, keys, sk) = setup(log_n, slots);
            let diagonals = EncodedDiagonals::encode(&bs).unwrap();
            let listed = bs.diagonals();
            assert!(listed.iter().enumerate().all(|(i, d)| d.id == i));
            assert_eq!(diagonals.bytes(), bs.diagonal_bytes());
            let ct = encrypted(&bs, &sk, 0);
            let mut scratch = Evaluator::new(bs.context()).scratch();
            let want = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
            let source = WithDiagonals::new(&keys, &diagonals);
            let got = bs.bootstrap(&ct, &source, &mut scratch).unwrap();
            assert_eq!(source.encoded_on_the_fly(), 0, "log N {log_n}, {slots:?} slots");
            assert_eq!(got.as_words(), want.as_words(), "log N {log_n}, {slots:?} slots");

            let seq = bs.access_sequence();
            let keys_only: Vec<KeyUse> = seq
                .iter()
                .filter_map(|u| if let BootstrapUse::Key(k) = u { Some(*k) } else { None })
                .collect();
            assert_eq!(keys_only, bs.key_sequence());
            let ids: Vec<usize> = seq
                .iter()
                .filter_map(|u| if let BootstrapUse::Diagonal(i) = u { Some(*i) } else { None })
                .collect();
            assert_eq!(ids, (0..listed.len()).collect::<Vec<_>>());
        }
    }

    /// A round trip of the DFTs encodes at other scales: the source answers none of them and
    /// the result is the plain keys' one; a diagonal of the wrong length and an id the source
    /// does not hold are typed errors.
    #[test]
    fn other_scales_are_encoded_and_bad_diagonals_are_typed_errors() {
        let (bs, keys, sk) = setup(12, None);
        let mut diagonals = EncodedDiagonals::encode(&bs).unwrap();
        let top = bs.context().params().max_level();
        let mut scratch = Evaluator::new(bs.context()).scratch();
        let x = encrypted(&bs, &sk, top);
        let want = bs.dft_round_trip(&x, &keys, &mut scratch).unwrap();
        let source = WithDiagonals::new(&keys, &diagonals);
        let got = bs.dft_round_trip(&x, &source, &mut scratch).unwrap();
        assert_eq!(got.as_words(), want.as_words());
        assert_eq!(source.encoded_on_the_fly(), bs.diagonals().len());

        let ct = encrypted(&bs, &sk, 0);
        let n = bs.context().n();
        let short = diagonals.words[3].len() - n;
        diagonals.words[3].truncate(short);
        let r = bs.bootstrap(&ct, &WithDiagonals::new(&keys, &diagonals), &mut scratch);
        assert!(matches!(r, Err(Error::BufferLength { .. })), "{r:?}");
        diagonals.uses.truncate(3);
        let r = bs.bootstrap(&ct, &WithDiagonals::new(&keys, &diagonals), &mut scratch);
        assert!(matches!(r, Err(Error::MissingDiagonal { id: 3 })), "{r:?}");
        let mut out = vec![0; bs.max_diagonal_words()];
        let past = DiagonalUse { id: bs.diagonals().len(), level: top, scale: 1e10 };
        assert!(matches!(bs.encode_diagonal(&past, &mut out), Err(Error::MissingDiagonal { .. })));
    }
}
