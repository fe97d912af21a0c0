//! A bootstrap's pre-encoded diagonals as store objects ([`Bootstrapper::diagonals`]): each
//! encoded once per process straight into a budgeted block and put as a transient (scratch)
//! object, pinned only for the one term that multiplies by it, and named in the bootstrap's
//! access hint between the keys so `planned` prefetches both in order.
//!
//! Transient rather than durable: they are a pure function of the parameters, encoding all of
//! them costs about one bootstrap's share of encoding (seconds, parallel over limbs), while a
//! durable copy would be gigabytes written to the pool and read back through it on every later
//! process, no cheaper than encoding them again, and would need a manifest of its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hetier_tiering::{Durability, ObjectId, ObjectKind, PinGuard, TieredStore};
use serde::Serialize;

use super::error::Result;
use crate::ckks::bootstrap::{Bootstrapper, DiagonalUse};
use crate::Error as CoreError;

/// Ids of the diagonal objects of one [`StoredDiagonals`] set: a tag, a per-process set
/// number and the diagonal's id, apart from the hashed ids of keys and program objects.
fn object_id(set: u64, diagonal: usize) -> ObjectId {
    ObjectId(0x6469_6167_0000_0000 ^ (set << 24) ^ diagonal as u64)
}

/// What the diagonals of a bootstrap cost and how they were used.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiagonalReport {
    /// Diagonals stored.
    pub count: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Seconds encoding them and putting them in the store.
    pub encode_seconds: f64,
    /// Pins of a diagonal so far.
    pub pins: u64,
    /// Seconds those pins waited for the store (summed).
    pub wait_seconds: f64,
    /// Diagonals asked for in an encoding not stored (left to the transform) so far.
    pub encoded_on_the_fly: u64,
}

/// Every diagonal of a bootstrapper as a transient store object, removed on drop.
#[derive(Debug)]
pub(crate) struct StoredDiagonals<'s> {
    store: &'s TieredStore,
    uses: Vec<DiagonalUse>,
    pub(super) ids: Vec<ObjectId>,
    bytes: u64,
    encode_seconds: f64,
    pins: AtomicU64,
    wait_ns: AtomicU64,
    encoded: AtomicU64,
}

impl<'s> StoredDiagonals<'s> {
    /// Encodes every diagonal of `bs` into a block of the store's budget and puts it.
    pub(crate) fn put(store: &'s TieredStore, bs: &Bootstrapper) -> Result<Self> {
        static SETS: AtomicU64 = AtomicU64::new(0);
        let set = SETS.fetch_add(1, Ordering::Relaxed);
        let clock = Instant::now();
        let uses = bs.diagonals();
        let mut this = Self {
            store,
            uses: Vec::with_capacity(uses.len()),
            ids: Vec::with_capacity(uses.len()),
            bytes: 0,
            encode_seconds: 0.0,
            pins: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
            encoded: AtomicU64::new(0),
        };
        for d in uses {
            let bytes = bs.diagonal_words(&d) as u64 * 8;
            let mut block = store.alloc_for_overwrite(bytes)?;
            bs.encode_diagonal(&d, block.as_u64s_mut())?;
            let id = object_id(set, d.id);
            store.put_block(id, ObjectKind::Plaintext, Durability::Scratch, block)?;
            // Recorded as soon as put, so a failure further on still removes it.
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
        if !held.is(want) {
            self.encoded.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let clock = Instant::now();
        let guard = self.store.pin(self.ids[want.id])?;
        self.wait_ns.fetch_add(clock.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.pins.fetch_add(1, Ordering::Relaxed);
        Ok(Some(guard))
    }

    /// The store object of diagonal `id`.
    pub(crate) fn object(&self, id: usize) -> Result<ObjectId> {
        Ok(*self.ids.get(id).ok_or(CoreError::MissingDiagonal { id })?)
    }

    /// Bytes of every diagonal.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Costs and use so far.
    pub(crate) fn report(&self) -> DiagonalReport {
        DiagonalReport {
            count: self.ids.len(),
            bytes: self.bytes,
            encode_seconds: self.encode_seconds,
            pins: self.pins.load(Ordering::Relaxed),
            wait_seconds: self.wait_ns.load(Ordering::Relaxed) as f64 * 1e-9,
            encoded_on_the_fly: self.encoded.load(Ordering::Relaxed),
        }
    }
}

impl Drop for StoredDiagonals<'_> {
    fn drop(&mut self) {
        // Best effort: they are scratch objects, which the pool drops on reopen anyway.
        for &id in &self.ids {
            let _ = self.store.remove(id);
        }
    }
}
