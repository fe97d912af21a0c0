//! The diagonals a store-backed bootstrap reads: encoded once into the store (transient or
//! durable objects), a share of them encoded at every use, or encoded each time from their
//! coefficients kept in the store.

use super::StoredBootstrapKeys;
use crate::ckks::bootstrap::Bootstrapper;
use crate::exec::diagonals::{
    DiagonalReport, DiagonalStorage, StoredCoefficients, StoredDiagonals,
};
use crate::exec::error::Result;
use crate::Error as CoreError;

impl<'s> StoredBootstrapKeys<'s> {
    /// Encodes every diagonal of `bs` into the store as a transient object (charged to the
    /// budget like any object, written to the pool when evicted), used by every bootstrap from
    /// then on instead of encoding them; the objects are removed with these keys.
    pub fn with_stored_diagonals(self, bs: &Bootstrapper) -> Result<Self> {
        self.with_encoded(bs, DiagonalStorage::Transient)
    }

    /// The diagonals put as `storage` says, encoded from the coefficients these keys hold
    /// ([`Self::with_coefficients`]) when they hold them, else from the bootstrapper's own;
    /// they then replace what the keys held.
    fn with_encoded(mut self, bs: &Bootstrapper, storage: DiagonalStorage) -> Result<Self> {
        if !self.diagonals.as_ref().is_some_and(StoredDiagonals::holds_coefficients) {
            // Encoded ones of before go first, out of the budget.
            self.diagonals = None;
        }
        let d = StoredDiagonals::put_from(self.store, bs, storage, self.diagonals.as_ref())?;
        let old = self.diagonals.replace(d).filter(StoredDiagonals::holds_coefficients);
        // A share encoded at every use keeps the coefficients it is encoded from.
        if self.encode_share > 0.0 && self.coefficients.is_none() {
            let kept = match old {
                Some(c) => c,
                None => StoredCoefficients::put(self.store, bs)?.0,
            };
            kept.restart_use_counters();
            self.coefficients = Some(kept);
        }
        Ok(self)
    }

    /// Whether diagonal `id` is one of the share encoded at every use: ids spread evenly (the
    /// `i`th taken when `⌊(i+1)·share⌋` passes `⌊i·share⌋`), so any stretch of the
    /// transforms' order, which their ids follow, encodes about that share.
    pub(super) fn encodes_on_use(&self, id: usize) -> bool {
        let share = self.encode_share;
        self.coefficients.is_some()
            && ((id + 1) as f64 * share).floor() > (id as f64 * share).floor()
    }

    /// Of the stored or durable diagonals, `share` (0 to 1, spread evenly over the transforms)
    /// are encoded at every use from their coefficients instead of pinned. At a budget below
    /// the encoded diagonals each such use reads N words of coefficients in place of
    /// (level+1+K)·N words of encoding and spends an encoding's CPU work instead, which pays
    /// where the cores would wait for the pool. The coefficients are the ones these keys
    /// hold ([`Self::with_coefficients`], kept when the diagonals are then encoded from them)
    /// or, once the diagonals are encoded, put from `bs`; they stay in the store, hinted
    /// where they are used. A share outside 0..=1 is `InvalidParameter`; coefficients neither
    /// held nor in `bs` are `DiagonalCoefficientsReleased`. Diagonals encoded at every use
    /// anyway ([`Self::with_stored_coefficients`]) are unchanged.
    pub fn with_encode_share(mut self, bs: &Bootstrapper, share: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&share) {
            return Err(CoreError::InvalidParameter {
                name: "encode_share",
                reason: format!("{share} is not a share between 0 and 1"),
            }
            .into());
        }
        self.encode_share = share;
        if share == 0.0 {
            self.coefficients = None;
            return Ok(self);
        }
        let encoded = self.diagonals.as_ref().is_some_and(|d| !d.holds_coefficients());
        if encoded && self.coefficients.is_none() {
            self.coefficients = Some(StoredCoefficients::put(self.store, bs)?.0);
        }
        Ok(self)
    }

    /// These keys handing out `coefficients` (put before the keys were made), from which
    /// [`Self::with_stored_diagonals`] and [`Self::with_durable_diagonals`] then encode.
    pub fn with_coefficients(mut self, coefficients: StoredCoefficients<'s>) -> Self {
        self.diagonals = Some(coefficients.0);
        self
    }

    /// Like [`Self::with_stored_diagonals`], with each diagonal a durable pool object named by
    /// what it is encoded from: the first process with these parameters encodes and writes
    /// them, later ones reuse them without encoding (`DiagonalReport::reused`), and an evicted
    /// one costs no write-back. The objects stay in the pool when these keys drop.
    pub fn with_durable_diagonals(self, bs: &Bootstrapper) -> Result<Self> {
        self.with_encoded(bs, DiagonalStorage::Durable)
    }

    /// Puts the unscaled coefficients of every diagonal of `bs` in the store as transient
    /// objects (N `f64`s each, charged to the budget like any object), from which each
    /// transform encodes at every use: for a budget too small for the encoded diagonals. The
    /// caller then releases the bootstrapper's own copy
    /// ([`Bootstrapper::release_diagonal_coefficients`]), which would otherwise stay on the
    /// heap outside the budget (about 158 MiB at N = 2^16).
    pub fn with_stored_coefficients(mut self, bs: &Bootstrapper) -> Result<Self> {
        // What the keys held goes first, out of the budget.
        self.diagonals = None;
        let coefficients = StoredCoefficients::put(self.store, bs)?;
        Ok(self.with_coefficients(coefficients))
    }

    /// These keys with the stored diagonals (or coefficients) of `old` moved over, so they
    /// are not removed with `old`: for keys made again over the same bootstrapper.
    pub(crate) fn with_diagonals_of(mut self, old: &mut StoredBootstrapKeys<'s>) -> Self {
        self.diagonals = old.diagonals.take();
        self.coefficients = old.coefficients.take();
        self.encode_share = old.encode_share;
        self
    }

    /// What the stored diagonals cost and how they were used (None: encoded on the fly).
    pub fn diagonal_report(&self) -> Option<DiagonalReport> {
        let mut report = self.diagonals.as_ref().map(StoredDiagonals::report)?;
        if let Some(c) = &self.coefficients {
            let used = c.report();
            report.encode_share = self.encode_share;
            report.coefficient_pins = used.pins;
            report.coefficient_wait_seconds = used.wait_seconds;
        }
        Some(report)
    }

    /// Bytes of the stored diagonals (0 when encoded on the fly).
    pub fn diagonal_bytes(&self) -> u64 {
        self.diagonals.as_ref().map_or(0, StoredDiagonals::bytes)
    }
}
