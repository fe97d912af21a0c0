//! The DRAM tier: page-aligned blocks under a hard byte budget, carved from one arena reserved
//! up front. The arena keeps its resident pages within the budget (rounded up to a page); a
//! freed block's pages stay faulted in and are reused by the next block of any size, without
//! new faults, and without zeroing unless the caller asks for zeroed memory. An allocation that
//! would exceed the budget fails with the numbers instead of risking an OOM kill; a block gives
//! its bytes back to the budget and its span back to the arena when dropped.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sys::arena::{Arena, Span};
use crate::sys::mem::PAGE_ALIGN;

#[derive(Debug)]
struct Budget {
    limit: usize,
    in_use: AtomicUsize,
    peak: AtomicUsize,
}

impl Budget {
    fn reserve(&self, len: usize) -> Result<()> {
        let mut cur = self.in_use.load(Ordering::Acquire);
        loop {
            let next = match cur.checked_add(len) {
                Some(n) if n <= self.limit => n,
                _ => {
                    return Err(Error::BudgetExceeded {
                        requested: len,
                        in_use: cur,
                        budget: self.limit,
                    })
                }
            };
            match self.in_use.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.peak.fetch_max(next, Ordering::AcqRel);
                    return Ok(());
                }
                Err(actual) => cur = actual,
            }
        }
    }

    fn release(&self, len: usize) {
        self.in_use.fetch_sub(len, Ordering::AcqRel);
    }
}

/// A snapshot of a [`DramTier`]: bytes charged, free space and fragmentation of its arena.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DramStats {
    /// The hard limit in bytes (the budget rounded up to a page).
    pub budget: u64,
    /// Bytes charged to live blocks (their footprints).
    pub in_use: u64,
    /// The highest `in_use` seen since the tier was created.
    pub peak: u64,
    /// The most the arena may hold resident: the budget rounded up to a page.
    pub capacity: u64,
    /// Bytes live blocks could still grow by: `capacity` minus live blocks in whole pages.
    pub free: u64,
    /// The biggest block that can be placed right now without freeing anything (bounded by
    /// `free` and by the largest free extent of the arena's address space).
    pub largest_free: u64,
    /// Number of free extents of address space.
    pub free_extents: u64,
    /// Bytes resident: live blocks plus freed pages kept for reuse. Never above `capacity`.
    pub resident: u64,
    /// Non-empty blocks allocated so far.
    pub allocations: u64,
    /// Of those, blocks placed wholly in memory an earlier block had used: no new page faults.
    pub reused_allocations: u64,
    /// Bytes of blocks placed in memory that was not resident (faulted in on first touch),
    /// since creation.
    pub faulted: u64,
    /// Bytes of freed memory given back to the OS to keep resident memory within the budget
    /// when blocks had to go to fresh memory, since creation.
    pub released: u64,
    /// Bytes of freed resident pages moved (`mremap`) into blocks placed in fresh memory, in
    /// place of a release and a fault, since creation.
    pub relocated: u64,
}

impl DramStats {
    /// `1 − largest_free / free`: 0 when the free space is one extent, towards 1 when it is
    /// scattered in small holes (0 when nothing is free).
    pub fn fragmentation(&self) -> f64 {
        if self.free == 0 {
            0.0
        } else {
            1.0 - self.largest_free as f64 / self.free as f64
        }
    }
}

/// A DRAM tier with a hard budget over one arena; cheap to clone (clones share both).
#[derive(Clone, Debug)]
pub struct DramTier {
    budget: Arc<Budget>,
    arena: Arc<Arena>,
}

impl DramTier {
    /// A tier that will never hand out more than `budget_bytes` at once. Reserves (but does not
    /// fault in) an arena of the budget's size; fails only if the OS refuses the address space.
    /// Blocks are charged in whole pages (see [`Self::footprint`]), so the limit is the
    /// budget rounded up to a page.
    pub fn new(budget_bytes: usize) -> Result<DramTier> {
        let arena =
            Arena::reserve(budget_bytes).ok_or(Error::OutOfMemory { requested: budget_bytes })?;
        Ok(Self::over(arena))
    }

    /// A tier whose arena has only `factor` bytes of address space per byte of budget (tests
    /// of fragmentation, which the real arena's eight times the budget makes rare).
    #[cfg(test)]
    fn with_address_space(budget_bytes: usize, factor: usize) -> DramTier {
        Self::over(Arena::reserve_with_space(budget_bytes, factor).expect("arena"))
    }

    fn over(arena: Arena) -> DramTier {
        DramTier {
            budget: Arc::new(Budget {
                limit: arena.capacity(),
                in_use: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }),
            arena: Arc::new(arena),
        }
    }

    /// What a block of `len` bytes is charged: its length rounded up to whole 4 KiB pages,
    /// the memory it can make resident (saturating at `usize::MAX`).
    pub fn footprint(len: usize) -> usize {
        len.checked_next_multiple_of(PAGE_ALIGN).unwrap_or(usize::MAX)
    }

    /// Allocate a zeroed block of `len` bytes (4 KiB aligned), charged its
    /// [`footprint`](Self::footprint). Only bytes that earlier blocks used are zeroed here:
    /// never-used arena memory is still the kernel's zero page.
    pub fn alloc(&self, len: usize) -> Result<DramBlock> {
        self.alloc_inner(len, true)
    }

    /// Like [`Self::alloc`], but the block's bytes are unspecified: those of blocks freed
    /// earlier, or zero. For writers that overwrite every byte (a computed result, a read from
    /// PM), which then skip the zeroing.
    pub fn alloc_for_overwrite(&self, len: usize) -> Result<DramBlock> {
        self.alloc_inner(len, false)
    }

    fn alloc_inner(&self, len: usize, zero: bool) -> Result<DramBlock> {
        let charged = Self::footprint(len);
        self.budget.reserve(charged)?;
        match self.arena.carve(len) {
            Some((span, stale)) => {
                let charge = Charge { budget: Arc::clone(&self.budget), len: charged };
                let mut block = DramBlock { span, stale, _charge: charge };
                if zero {
                    block.zero_fill();
                }
                Ok(block)
            }
            None => {
                self.budget.release(charged);
                let u = self.arena.usage();
                Err(Error::Fragmented {
                    requested: len,
                    free: u.free,
                    largest_free: u.largest_free,
                })
            }
        }
    }

    /// Bytes currently charged to live blocks (their footprints).
    pub fn in_use(&self) -> usize {
        self.budget.in_use.load(Ordering::Acquire)
    }

    /// The hard limit: the budget rounded up to a page.
    pub fn budget(&self) -> usize {
        self.budget.limit
    }

    /// Bytes still available under the budget (a block whose footprint is that large may still
    /// be refused if the arena's address space is fragmented: see [`Self::stats`]).
    pub fn available(&self) -> usize {
        self.budget().saturating_sub(self.in_use())
    }

    /// The highest `in_use` seen since the tier was created.
    pub fn peak(&self) -> usize {
        self.budget.peak.load(Ordering::Acquire)
    }

    /// Bytes of the arena the kernel has resident right now.
    #[cfg(test)]
    fn kernel_resident(&self) -> usize {
        self.arena.kernel_resident().expect("mincore")
    }

    /// Budget, use, and the arena's free space and fragmentation.
    pub fn stats(&self) -> DramStats {
        let u = self.arena.usage();
        DramStats {
            budget: self.budget() as u64,
            in_use: self.in_use() as u64,
            peak: self.peak() as u64,
            capacity: self.arena.capacity() as u64,
            free: u.free,
            largest_free: u.largest_free,
            free_extents: u.free_extents as u64,
            resident: u.resident,
            allocations: u.carves,
            reused_allocations: u.reused,
            faulted: u.faulted,
            released: u.released,
            relocated: u.moved,
        }
    }
}

/// An aligned DRAM block charged to a [`DramTier`]; derefs to `[u8]` and offers `u64` views
/// for RNS limbs. Returns its bytes to the budget and its span to the arena on drop.
pub struct DramBlock {
    // Field order is drop order: the span is back in the arena before its bytes are released
    // to the budget, so an allocation that sees the bytes free also finds the space free.
    span: Span,
    /// How many leading bytes may be non-zero (old data, or written through a mutable view).
    stale: usize,
    _charge: Charge,
}

impl DramBlock {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.span.len()
    }

    /// Whether the block holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.span.len() == 0
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.span.as_slice()
    }

    /// The bytes, mutably.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.stale = self.span.len();
        self.span.as_mut_slice()
    }

    /// Sets every byte to zero, writing only those that may not be zero already (arena memory
    /// never used before is still the kernel's zero page and is left untouched).
    pub fn zero_fill(&mut self) {
        let stale = std::mem::take(&mut self.stale);
        self.span.as_mut_slice()[..stale].fill(0);
    }

    /// The block as native-endian `u64` words (`len / 8` of them; a partial tail word is omitted).
    pub fn as_u64s(&self) -> &[u64] {
        self.span.as_u64s()
    }

    /// The block as mutable `u64` words (`len / 8` of them).
    pub fn as_u64s_mut(&mut self) -> &mut [u64] {
        self.stale = self.span.len();
        self.span.as_u64s_mut()
    }
}

impl fmt::Debug for DramBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DramBlock")
            .field("len", &self.len())
            .field("addr", &self.as_bytes().as_ptr())
            .finish()
    }
}

impl Deref for DramBlock {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl DerefMut for DramBlock {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_bytes_mut()
    }
}

impl AsRef<[u8]> for DramBlock {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsMut<[u8]> for DramBlock {
    fn as_mut(&mut self) -> &mut [u8] {
        self.as_bytes_mut()
    }
}

impl AsRef<[u64]> for DramBlock {
    fn as_ref(&self) -> &[u64] {
        self.as_u64s()
    }
}

impl AsMut<[u64]> for DramBlock {
    fn as_mut(&mut self) -> &mut [u64] {
        self.as_u64s_mut()
    }
}

/// Bytes charged to the budget by one block, released on drop.
struct Charge {
    budget: Arc<Budget>,
    len: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.release(self.len);
    }
}

#[cfg(test)]
mod tests;
