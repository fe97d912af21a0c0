//! A bootstrap's pre-encoded diagonals as store objects ([`Bootstrapper::diagonals`]), pinned
//! only for the one term that multiplies by each and named in the bootstrap's access hint
//! between the keys, so `planned` prefetches both in order. Two lifetimes
//! ([`DiagonalStorage`]):
//!
//! - transient: encoded once per process straight into budgeted blocks and put as scratch
//!   objects, removed with the keys. An evicted one is written to the pool and read back.
//! - durable: encoded once per parameter set into durable pool objects whose ids are derived
//!   from what they are encoded from ([`Bootstrapper::diagonal_fingerprint`]), so a later
//!   process with the same parameters finds and reuses them without encoding, and at a budget
//!   below the diagonals the store drops an evicted one for free (its pool copy is clean) and
//!   reads it back with the keys: I/O in place of the encoding's CPU work.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hetier_tiering::{Durability, ObjectId, ObjectKind, PinGuard, TieredStore};
use serde::Serialize;

use super::error::Result;
use super::ids::diagonal_id;
use crate::ckks::bootstrap::{compact_runs, Bootstrapper, DiagonalUse};
use crate::Error as CoreError;

/// Ids of the diagonal objects of one [`StoredDiagonals`] set: a tag, a per-process set
/// number and the diagonal's id, apart from the hashed ids of keys and program objects.
fn object_id(set: u64, diagonal: usize) -> ObjectId {
    ObjectId(0x6469_6167_0000_0000 ^ (set << 24) ^ diagonal as u64)
}

/// How long a bootstrap's stored diagonals live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiagonalStorage {
    /// Scratch objects encoded by this process and removed with its keys.
    Transient,
    /// Durable pool objects encoded once per parameter set and reused by later processes.
    Durable,
    /// Not encoded: each diagonal's unscaled coefficients (N `f64`s, 1/(level+1+K) of its
    /// encoding) as a transient object, which the transform encodes from at every use; for a
    /// budget that holds no encoded diagonals, so the coefficients are in the budget too
    /// instead of on the heap ([`Bootstrapper::release_diagonal_coefficients`]).
    Coefficients,
}

/// What the diagonals of a bootstrap cost and how they were used.
#[derive(Debug, Clone, Serialize)]
pub struct DiagonalReport {
    /// Their lifetime.
    pub storage: DiagonalStorage,
    /// Diagonals stored.
    pub count: usize,
    /// Durable diagonals found in the pool and reused instead of encoded.
    pub reused: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Seconds encoding them and putting them in the store (durable: finding the reused
    /// ones too).
    pub encode_seconds: f64,
    /// Pins of a diagonal so far.
    pub pins: u64,
    /// Seconds those pins waited for the store (summed).
    pub wait_seconds: f64,
    /// Diagonals asked for in an encoding not stored (left to the transform) so far,
    /// including the share encoded at every use.
    pub encoded_on_the_fly: u64,
    /// The share of the stored diagonals encoded at every use from their coefficients
    /// (`StoredBootstrapKeys::with_encode_share`).
    pub encode_share: f64,
    /// Pins of those coefficients by the share's uses so far.
    pub coefficient_pins: u64,
    /// Seconds the coefficient pins waited for the store (summed).
    pub coefficient_wait_seconds: f64,
}

/// Every diagonal of a bootstrapper as a store object; transient ones are removed on drop.
#[derive(Debug)]
pub(crate) struct StoredDiagonals<'s> {
    store: &'s TieredStore,
    storage: DiagonalStorage,
    reused: usize,
    uses: Vec<DiagonalUse>,
    pub(super) ids: Vec<ObjectId>,
    bytes: u64,
    encode_seconds: f64,
    pins: AtomicU64,
    wait_ns: AtomicU64,
    encoded: AtomicU64,
}

impl<'s> StoredDiagonals<'s> {
    /// Puts every diagonal of `bs` in the store as `storage` says, each encoded into a block
    /// of the store's budget. Durable ones already in the pool at their length are reused; an
    /// object of another length at a diagonal's id (not one this code wrote) is replaced.
    pub(crate) fn put(
        store: &'s TieredStore,
        bs: &Bootstrapper,
        storage: DiagonalStorage,
    ) -> Result<Self> {
        Self::put_from(store, bs, storage, None)
    }

    /// [`Self::put`] encoding from `from`'s stored coefficients (pinned one at a time) rather
    /// than the bootstrapper's own, which it may have released.
    pub(crate) fn put_from(
        store: &'s TieredStore,
        bs: &Bootstrapper,
        storage: DiagonalStorage,
        from: Option<&StoredDiagonals<'_>>,
    ) -> Result<Self> {
        // Coefficients are copied from the bootstrapper only; encodings come from either.
        let from =
            from.filter(|f| f.holds_coefficients() && storage != DiagonalStorage::Coefficients);
        static SETS: AtomicU64 = AtomicU64::new(0);
        let set = SETS.fetch_add(1, Ordering::Relaxed);
        let clock = Instant::now();
        let uses = bs.diagonals();
        let mut this = Self {
            store,
            storage,
            reused: 0,
            uses: Vec::with_capacity(uses.len()),
            ids: Vec::with_capacity(uses.len()),
            bytes: 0,
            encode_seconds: 0.0,
            pins: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
            encoded: AtomicU64::new(0),
        };
        let n = bs.context().n();
        for d in uses {
            let bits = from.map(|f| f.pin_object(d.id)).transpose()?;
            let bits = bits.as_ref().map(|g| g.as_u64s());
            // An encoding keeps one word per run of equal ones (compact.rs): most diagonals
            // are polynomials in X^32 or X^1024, a 32 or 1,024 times smaller object.
            let (words, repeat) = match (storage, bits) {
                (DiagonalStorage::Coefficients, _) => (n, 1),
                (_, Some(b)) => (bs.diagonal_words(&d), bs.diagonal_repeat_from_bits(b)),
                (_, None) => (bs.diagonal_words(&d), bs.diagonal_repeat(d.id)?),
            };
            let (id, durability) = match (storage, bits) {
                (DiagonalStorage::Transient | DiagonalStorage::Coefficients, _) => {
                    (object_id(set, d.id), Durability::Scratch)
                }
                (DiagonalStorage::Durable, Some(b)) => {
                    (diagonal_id(bs.diagonal_fingerprint_from_bits(&d, b)), Durability::Durable)
                }
                (DiagonalStorage::Durable, None) => {
                    (diagonal_id(bs.diagonal_fingerprint(&d)?), Durability::Durable)
                }
            };
            let compact = (words / repeat) as u64 * 8;
            let found = store.len_of(id);
            let bytes = if storage == DiagonalStorage::Durable && found == Some(compact) {
                this.reused += 1;
                compact
            } else {
                // An object of another length (one every word of which was stored, by an
                // older build) is replaced.
                if found.is_some() {
                    store.remove(id)?;
                }
                let mut block = store.alloc_for_overwrite(words as u64 * 8)?;
                let out = block.as_u64s_mut();
                match (storage, bits) {
                    (DiagonalStorage::Coefficients, _) => {
                        bs.diagonal_coefficient_bits(d.id, out)?
                    }
                    (_, Some(b)) => bs.encode_diagonal_from_bits(&d, b, out)?,
                    (_, None) => bs.encode_diagonal(&d, out)?,
                }
                let block = if repeat > 1 {
                    let mut runs = store.alloc_for_overwrite(compact)?;
                    if compact_runs(block.as_ref(), n, repeat, runs.as_u64s_mut()) {
                        runs
                    } else {
                        // Not runs after all (never seen): every word is kept.
                        block
                    }
                } else {
                    block
                };
                let bytes = block.len();
                store.put_block(id, ObjectKind::Plaintext, durability, block)?;
                bytes
            };
            // Recorded as soon as put, so a failure further on still removes a transient one.
            this.uses.push(d);
            this.ids.push(id);
            this.bytes += bytes;
        }
        this.encode_seconds = clock.elapsed().as_secs_f64();
        Ok(this)
    }

    /// The pinned words of `want` if stored in exactly that encoding (`None`: another one,
    /// which the transform encodes itself); a typed error for an id not stored.
    pub(crate) fn pin(&self, want: &DiagonalUse) -> Result<Option<PinGuard<'s>>> {
        let held = self.uses.get(want.id).ok_or(CoreError::MissingDiagonal { id: want.id })?;
        if self.storage == DiagonalStorage::Coefficients || !held.is(want) {
            self.encoded.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        self.pin_object(want.id).map(Some)
    }

    /// Starts the pin and wait counters again: for coefficients kept after the stored
    /// diagonals were named or encoded from them, so their report counts the uses alone.
    pub(crate) fn restart_use_counters(&self) {
        self.pins.store(0, Ordering::Relaxed);
        self.wait_ns.store(0, Ordering::Relaxed);
    }

    /// Counts a use of a stored diagonal that its transform encodes instead (a share encoded
    /// at every use).
    pub(crate) fn count_encoded(&self) {
        self.encoded.fetch_add(1, Ordering::Relaxed);
    }

    /// The pinned coefficients of diagonal `id` when they are what is stored (`None`
    /// otherwise: an encoding that is not stored is then made from the bootstrapper's own).
    pub(crate) fn pin_coefficients(&self, id: usize) -> Result<Option<PinGuard<'s>>> {
        if self.storage != DiagonalStorage::Coefficients {
            return Ok(None);
        }
        self.pin_object(id).map(Some)
    }

    fn pin_object(&self, id: usize) -> Result<PinGuard<'s>> {
        let object = self.object(id)?;
        let clock = Instant::now();
        let guard = self.store.pin(object)?;
        self.wait_ns.fetch_add(clock.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.pins.fetch_add(1, Ordering::Relaxed);
        Ok(guard)
    }

    /// Bytes of the largest object a bootstrap pins at once: an encoded diagonal, or one
    /// diagonal's coefficients.
    pub(crate) fn pinned_bytes(&self, bs: &Bootstrapper) -> u64 {
        pinned_diagonal_bytes(bs, self.storage)
    }

    /// Whether these are coefficients ([`DiagonalStorage::Coefficients`]).
    pub(crate) fn holds_coefficients(&self) -> bool {
        self.storage == DiagonalStorage::Coefficients
    }

    /// The store object of diagonal `id`.
    pub(crate) fn object(&self, id: usize) -> Result<ObjectId> {
        Ok(*self.ids.get(id).ok_or(CoreError::MissingDiagonal { id })?)
    }

    /// Bytes of every diagonal.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Nanoseconds the pins so far waited for the store.
    pub(crate) fn wait_ns(&self) -> u64 {
        self.wait_ns.load(Ordering::Relaxed)
    }

    /// Costs and use so far.
    pub(crate) fn report(&self) -> DiagonalReport {
        DiagonalReport {
            storage: self.storage,
            count: self.ids.len(),
            reused: self.reused,
            bytes: self.bytes,
            encode_seconds: self.encode_seconds,
            pins: self.pins.load(Ordering::Relaxed),
            wait_seconds: self.wait_ns.load(Ordering::Relaxed) as f64 * 1e-9,
            encoded_on_the_fly: self.encoded.load(Ordering::Relaxed),
            encode_share: 0.0,
            coefficient_pins: 0,
            coefficient_wait_seconds: 0.0,
        }
    }
}

/// A bootstrapper's diagonal coefficients as transient store objects
/// ([`DiagonalStorage::Coefficients`]), put before its keys are made so that the bootstrapper
/// can release its own copy first ([`Bootstrapper::release_diagonal_coefficients`]); handed to
/// the keys with [`super::StoredBootstrapKeys::with_coefficients`], which encode any stored or
/// durable diagonals from them. Removed from the store on drop.
#[derive(Debug)]
pub struct StoredCoefficients<'s>(pub(crate) StoredDiagonals<'s>);

impl<'s> StoredCoefficients<'s> {
    /// Puts every diagonal's coefficients of `bs` (which must still hold them) in `store`.
    pub fn put(store: &'s TieredStore, bs: &Bootstrapper) -> Result<Self> {
        Ok(Self(StoredDiagonals::put(store, bs, DiagonalStorage::Coefficients)?))
    }

    /// Bytes of them in the store.
    pub fn bytes(&self) -> u64 {
        self.0.bytes()
    }
}

/// Bytes of the largest diagonal object a bootstrap of `bs` pins at once with its diagonals
/// stored as `storage` says: part of its working set.
pub fn pinned_diagonal_bytes(bs: &Bootstrapper, storage: DiagonalStorage) -> u64 {
    let words = match storage {
        DiagonalStorage::Coefficients => bs.context().n(),
        DiagonalStorage::Transient | DiagonalStorage::Durable => bs.max_diagonal_words(),
    };
    words as u64 * 8
}

impl Drop for StoredDiagonals<'_> {
    fn drop(&mut self) {
        if self.storage == DiagonalStorage::Durable {
            return;
        }
        // Best effort: they are scratch objects, which the pool drops on reopen anyway.
        for &id in &self.ids {
            let _ = self.store.remove(id);
        }
    }
}
