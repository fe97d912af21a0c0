//! A bootstrap's diagonals encoded ahead of time and held in memory
//! ([`super::Bootstrapper::encode_diagonals`]), and the in-memory keys that hand them out.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::super::keys::{GaloisKey, KeySwitchKey, RelinKey};
use super::key_source::{BootstrapKeys, DiagonalUse, KeySource, KeyUse};
use crate::error::{Error, Result};

/// Every diagonal of a bootstrapper, encoded in memory, one word per run of equal words (what
/// the transforms multiply by as stored).
#[derive(Debug, Clone)]
pub struct EncodedDiagonals {
    pub(super) uses: Vec<DiagonalUse>,
    pub(super) words: Vec<Vec<u64>>,
}

impl EncodedDiagonals {
    /// Bytes held (less than [`super::Bootstrapper::diagonal_bytes`], which counts every
    /// word of every encoding, where diagonals are polynomials in X^k).
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
    type KeyWords<'b>
        = &'b [u64]
    where
        Self: 'b;

    fn galois(&self, g: u64, level: usize) -> Result<GaloisKey<&[u64]>> {
        self.keys.galois(g, level)
    }

    fn relin(&self, level: usize) -> Result<RelinKey<&[u64]>> {
        self.keys.relin(level)
    }

    fn switching(&self, which: KeyUse, level: usize) -> Result<KeySwitchKey<&[u64]>> {
        self.keys.switching(which, level)
    }

    fn diagonal(&self, want: &DiagonalUse) -> Result<Option<&[u64]>> {
        let got = self.diagonals.get(want)?;
        if got.is_none() {
            self.encoded.fetch_add(1, Ordering::Relaxed);
        }
        Ok(got)
    }
}
