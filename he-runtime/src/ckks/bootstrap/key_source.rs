//! Where a bootstrap's evaluation keys come from. Each key is asked for just before the step
//! that uses it and dropped right after, so a tiered store can keep most of them out of DRAM;
//! `Bootstrapper::key_sequence` tells such a store the whole order in advance.

use super::super::context::Context;
use super::super::key_limbs::SwitchKeyWords;
use super::super::keys::{GaloisKey, GaloisKeySet, KeySwitchKey, RelinKey};
use crate::error::{Error, Result};

/// One use of an evaluation key by a bootstrap, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyUse {
    /// The relinearisation key.
    Relin,
    /// The Galois key of this element (a rotation or the conjugation).
    Galois(u64),
    /// The dense-to-sparse switching key of the encapsulation.
    ToSparse,
    /// The sparse-to-dense switching key of the encapsulation.
    FromSparse,
}

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

/// A provider of evaluation keys, borrowed one at a time. Shared between threads: a bootstrap
/// on a pool of several threads runs the EvalMods of the real and imaginary halves side by side,
/// each borrowing its own keys.
pub trait KeySource: Sync {
    /// What a failed lookup reports (a store's error for a store-backed source); bootstrapping
    /// reports its own failures in it too.
    type Error: From<Error> + Send;
    /// The words of a borrowed diagonal (a slice, or a guard pinning a store block).
    type Words<'a>: AsRef<[u64]>
    where
        Self: 'a;
    /// The words of a borrowed key: expanded words (a slice, a pinned or expanded block) or a
    /// seed-compressed key's pinned blobs read in place ([`crate::ckks::KeyLimbs::Packed`]).
    type KeyWords<'a>: SwitchKeyWords
    where
        Self: 'a;

    /// The Galois key of element `g`, for a key switch at `level` (the level of the
    /// ciphertext it switches). The key may serve switches up to `level` only
    /// ([`KeySwitchKey::max_level`]): a source expanding seed-compressed keys writes just the
    /// digits and limbs such a switch reads.
    fn galois(
        &self,
        g: u64,
        level: usize,
    ) -> std::result::Result<GaloisKey<Self::KeyWords<'_>>, Self::Error>;
    /// The relinearisation key, for a switch at `level` (as [`Self::galois`]).
    fn relin(&self, level: usize)
        -> std::result::Result<RelinKey<Self::KeyWords<'_>>, Self::Error>;
    /// An encapsulation switching key ([`KeyUse::ToSparse`] or [`KeyUse::FromSparse`]), for a
    /// switch at `level` (as [`Self::galois`]).
    fn switching(
        &self,
        which: KeyUse,
        level: usize,
    ) -> std::result::Result<KeySwitchKey<Self::KeyWords<'_>>, Self::Error>;

    /// Whether two threads may borrow the same key at once at no extra memory (true for keys
    /// in memory or pinned in place; false for a source that expands a fresh copy per borrow).
    /// A bootstrap on several threads runs its two EvalMods side by side only when it is.
    fn shared_borrows(&self) -> bool {
        true
    }

    /// The words of a diagonal of the bootstrap's linear transforms already encoded as `want`
    /// asks (NTT form over Q_level·P at `want.scale`, (level+1+K)·N words), borrowed for one
    /// term; `None` has it encoded on the fly (the default, and the answer for an encoding
    /// the source does not hold, e.g. [`super::Bootstrapper::dft_round_trip`]'s other scales).
    fn diagonal(
        &self,
        want: &DiagonalUse,
    ) -> std::result::Result<Option<Self::Words<'_>>, Self::Error> {
        let _ = want;
        Ok(None)
    }

    /// The unscaled coefficients of diagonal `id` as the bit patterns of their `f64`s (N
    /// words, [`super::Bootstrapper::diagonal_coefficient_bits`]), borrowed for one encoding:
    /// asked for only by a bootstrapper that has released its own
    /// ([`super::Bootstrapper::release_diagonal_coefficients`]) when [`Self::diagonal`] has no
    /// encoding. `None` (the default) fails that bootstrap with a typed error.
    fn diagonal_coefficients(
        &self,
        id: usize,
    ) -> std::result::Result<Option<Self::Words<'_>>, Self::Error> {
        let _ = id;
        Ok(None)
    }

    /// Called as a bootstrap enters each phase, in order, on the thread that runs it: a
    /// source that measures its borrows (a store's waits) can split them by phase. Does
    /// nothing by default.
    fn phase_started(&self, phase: Phase) {
        let _ = phase;
    }
}

/// A phase of a bootstrap, as [`KeySource::phase_started`] reports it (the phases of
/// [`super::PhaseTimes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Encapsulation, ModRaise and the switch back.
    ModRaise,
    /// The trace of a sparse bootstrap, CoeffToSlot and the real/imaginary split.
    CoeffToSlot,
    /// EvalMod of both halves.
    EvalMod,
    /// SlotToCoeff.
    SlotToCoeff,
}

/// Every key a bootstrap uses, held in memory.
#[derive(Debug, Clone)]
pub struct BootstrapKeys {
    /// Relinearisation key (EvalMod's products).
    pub relin: RelinKey,
    /// Rotation and conjugation keys.
    pub galois: GaloisKeySet,
    /// Dense → sparse secret, used at level 0.
    pub to_sparse: Option<KeySwitchKey>,
    /// Sparse → dense secret, used after ModRaise.
    pub from_sparse: Option<KeySwitchKey>,
}

impl BootstrapKeys {
    /// Number of keys.
    pub fn count(&self) -> usize {
        1 + self.galois.len()
            + usize::from(self.to_sparse.is_some())
            + usize::from(self.from_sparse.is_some())
    }

    /// Words of every key together (each key expanded; a seed-compressed copy is half).
    pub fn words(&self, ctx: &Context) -> usize {
        let per_key = ctx.params().dnum() * 2 * (ctx.q_len() + ctx.p_len()) * ctx.n();
        per_key * self.count()
    }
}

/// A borrowed view of an owned key.
pub(crate) fn view(k: &KeySwitchKey) -> KeySwitchKey<&[u64]> {
    KeySwitchKey {
        data: k.data.as_slice(),
        seed: k.seed,
        dnum: k.dnum,
        params_id: k.params_id,
        max_level: k.max_level,
    }
}

/// The key of `set` for Galois element `g`, borrowed: what every in-memory key source hands
/// out, a typed error naming a missing one.
pub(crate) fn galois_view(set: &GaloisKeySet, g: u64) -> Result<GaloisKey<&[u64]>> {
    let k = set.get(g).ok_or(Error::MissingGaloisKey { galois_element: g, step: None })?;
    Ok(GaloisKey { galois_element: k.galois_element, key: view(&k.key) })
}

/// The encapsulation key `which` asks for (dense → sparse for [`KeyUse::ToSparse`], else
/// sparse → dense) of an in-memory pair, borrowed; a typed error when that one is missing.
pub(crate) fn encapsulation_view<'a>(
    which: KeyUse,
    to_sparse: Option<&'a KeySwitchKey>,
    from_sparse: Option<&'a KeySwitchKey>,
) -> Result<KeySwitchKey<&'a [u64]>> {
    let (key, what) = match which {
        KeyUse::ToSparse => (to_sparse, "dense-to-sparse switching key"),
        _ => (from_sparse, "sparse-to-dense switching key"),
    };
    key.map(view).ok_or(Error::MissingKey { what })
}

impl KeySource for BootstrapKeys {
    type Error = Error;
    type Words<'a> = &'a [u64];
    type KeyWords<'a> = &'a [u64];

    fn galois(&self, g: u64, _level: usize) -> Result<GaloisKey<&[u64]>> {
        galois_view(&self.galois, g)
    }

    fn relin(&self, _level: usize) -> Result<RelinKey<&[u64]>> {
        Ok(RelinKey { key: view(&self.relin.key) })
    }

    fn switching(&self, which: KeyUse, _level: usize) -> Result<KeySwitchKey<&[u64]>> {
        encapsulation_view(which, self.to_sparse.as_ref(), self.from_sparse.as_ref())
    }
}

/// A key source that records every key it hands out, in order, with the level it was asked
/// for and the time: how an executor turns one bootstrap into its per-key trace steps (and
/// checks that the bootstrapper used its keys in the order it announced).
#[derive(Debug)]
pub struct RecordingKeys<'k, K> {
    inner: &'k K,
    uses: std::sync::Mutex<Vec<(KeyUse, usize, std::time::Instant)>>,
    phases: std::sync::Mutex<Vec<(Phase, std::time::Instant)>>,
}

impl<'k, K: KeySource> RecordingKeys<'k, K> {
    /// Records the uses of `inner`'s keys.
    pub fn new(inner: &'k K) -> Self {
        Self { inner, uses: std::sync::Mutex::new(Vec::new()), phases: Default::default() }
    }

    /// The phases the bootstraps entered so far, in order, with the instant each began.
    pub fn phases(&self) -> Vec<(Phase, std::time::Instant)> {
        self.phases.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The uses so far, in order, with the instant each key was asked for.
    pub fn into_uses(self) -> Vec<(KeyUse, std::time::Instant)> {
        self.into_uses_at().into_iter().map(|(u, _, t)| (u, t)).collect()
    }

    /// The uses so far, in order, with the level each key was asked for and the instant.
    pub fn into_uses_at(self) -> Vec<(KeyUse, usize, std::time::Instant)> {
        self.uses.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    fn note(&self, u: KeyUse, level: usize) {
        let now = std::time::Instant::now();
        self.uses.lock().unwrap_or_else(|e| e.into_inner()).push((u, level, now));
    }
}

impl<K: KeySource> KeySource for RecordingKeys<'_, K> {
    type Error = K::Error;
    type Words<'a>
        = K::Words<'a>
    where
        Self: 'a;
    type KeyWords<'a>
        = K::KeyWords<'a>
    where
        Self: 'a;

    fn galois(
        &self,
        g: u64,
        level: usize,
    ) -> std::result::Result<GaloisKey<Self::KeyWords<'_>>, Self::Error> {
        self.note(KeyUse::Galois(g), level);
        self.inner.galois(g, level)
    }

    fn relin(
        &self,
        level: usize,
    ) -> std::result::Result<RelinKey<Self::KeyWords<'_>>, Self::Error> {
        self.note(KeyUse::Relin, level);
        self.inner.relin(level)
    }

    fn switching(
        &self,
        which: KeyUse,
        level: usize,
    ) -> std::result::Result<KeySwitchKey<Self::KeyWords<'_>>, Self::Error> {
        self.note(which, level);
        self.inner.switching(which, level)
    }

    fn shared_borrows(&self) -> bool {
        self.inner.shared_borrows()
    }

    fn diagonal(
        &self,
        want: &DiagonalUse,
    ) -> std::result::Result<Option<Self::Words<'_>>, Self::Error> {
        self.inner.diagonal(want)
    }

    fn diagonal_coefficients(
        &self,
        id: usize,
    ) -> std::result::Result<Option<Self::Words<'_>>, Self::Error> {
        self.inner.diagonal_coefficients(id)
    }

    fn phase_started(&self, phase: Phase) {
        let now = std::time::Instant::now();
        self.phases.lock().unwrap_or_else(|e| e.into_inner()).push((phase, now));
        self.inner.phase_started(phase);
    }
}
