//! Guards handed out by the store: a pin (read-only, DRAM residency guaranteed while alive) and
//! a block writer (a budgeted DRAM buffer filled in place and then `put` without a copy).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use hetier_allocator::DramBlock;

use super::state::Inner;
use crate::ids::ObjectId;

/// Keeps one object in DRAM while alive; derefs to its bytes.
pub struct PinGuard<'a> {
    pub(super) inner: &'a Inner,
    pub(super) id: ObjectId,
    pub(super) block: Option<Arc<DramBlock>>,
}

impl PinGuard<'_> {
    /// The pinned object's id.
    pub fn id(&self) -> ObjectId {
        self.id
    }

    /// The bytes viewed as little-endian `u64` words (RNS limbs); the block is 64-byte aligned.
    pub fn as_u64s(&self) -> &[u64] {
        self.block_ref().as_u64s()
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.block_ref().as_bytes()
    }

    fn block_ref(&self) -> &DramBlock {
        // Invariant: `block` is Some from construction until `drop` takes it.
        match &self.block {
            Some(b) => b,
            None => unreachable_block(),
        }
    }
}

#[cold]
fn unreachable_block() -> ! {
    unreachable!("pin guard used after its block was released")
}

impl Deref for PinGuard<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for PinGuard<'_> {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u64]> for PinGuard<'_> {
    fn as_ref(&self) -> &[u64] {
        self.as_u64s()
    }
}

impl std::fmt::Debug for PinGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinGuard")
            .field("id", &self.id)
            .field("len", &self.as_bytes().len())
            .finish()
    }
}

impl Drop for PinGuard<'_> {
    fn drop(&mut self) {
        // Release our reference before unpinning, so that once the object is evictable the
        // store's reference is the last one and eviction really returns the bytes.
        drop(self.block.take());
        self.inner.unpin(self.id);
    }
}

/// A DRAM buffer charged to the store's budget, written in place and then handed to
/// [`super::TieredStore::put_block`]; dropping it unused returns the bytes.
pub struct BlockWriter<'a> {
    pub(super) inner: &'a Inner,
    pub(super) block: Option<DramBlock>,
    pub(super) len: u64,
    /// Borrowed as a [`super::ScratchBuffer`]: counted in the scratch stats.
    pub(super) scratch: bool,
    /// The scratch reservation whose bytes these are (returned to it on drop).
    pub(super) reservation: Option<u64>,
}

impl BlockWriter<'_> {
    /// The bytes, for writing.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.block_mut().as_bytes_mut()
    }

    /// The bytes as `u64` words, for writing RNS limbs in place.
    pub fn as_u64s_mut(&mut self) -> &mut [u64] {
        self.block_mut().as_u64s_mut()
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the buffer is empty (never true: empty objects are rejected).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn block_mut(&mut self) -> &mut DramBlock {
        match &mut self.block {
            Some(b) => b,
            None => unreachable_block(),
        }
    }

    pub(super) fn take(mut self) -> DramBlock {
        match self.block.take() {
            Some(b) => b,
            None => unreachable_block(),
        }
    }
}

impl Deref for BlockWriter<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.block {
            Some(b) => b.as_bytes(),
            None => unreachable_block(),
        }
    }
}

impl DerefMut for BlockWriter<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_bytes_mut()
    }
}

/// The block as RNS words, so HE code generic over `AsRef<[u64]>` can compute straight into a
/// block before it is put.
impl AsRef<[u64]> for BlockWriter<'_> {
    fn as_ref(&self) -> &[u64] {
        match &self.block {
            Some(b) => b.as_u64s(),
            None => unreachable_block(),
        }
    }
}

impl AsMut<[u64]> for BlockWriter<'_> {
    fn as_mut(&mut self) -> &mut [u64] {
        self.as_u64s_mut()
    }
}

impl Drop for BlockWriter<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.block.take() {
            drop(b);
            self.inner.release_writer(self.len, self.scratch, self.reservation);
        }
    }
}
