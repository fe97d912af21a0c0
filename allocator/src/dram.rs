//! The DRAM tier: zeroed, 64-byte aligned blocks of anonymous memory under a hard byte budget.
//! An allocation that would exceed the budget fails with the numbers instead of risking an OOM
//! kill; a block gives its bytes back to the budget when dropped.
//!
//! Large blocks (anonymous mappings) are recycled: a dropped one is kept, still resident and
//! still counted against the budget, and the next block of the same mapping size reuses it
//! instead of mapping, faulting and zeroing fresh pages — for 32–130 MB HE objects that is a
//! memory-bandwidth pass saved on every put and every PM→DRAM load. Kept blocks are given back
//! (unmapped) the moment an allocation needs their share of the budget, so the budget bounds
//! resident memory, kept blocks included.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::sys::mem::RawBlock;

/// Most recycled blocks kept at once (a bound on the lookup, not on memory: the budget is).
const MAX_KEPT: usize = 64;

#[derive(Debug)]
struct Budget {
    limit: usize,
    /// Bytes in blocks handed out.
    in_use: AtomicUsize,
    /// Bytes handed out plus bytes of kept blocks: what is resident; never above `limit`.
    resident: AtomicUsize,
    peak: AtomicUsize,
    /// Dropped large blocks kept for reuse, oldest first.
    kept: Mutex<Vec<RawBlock>>,
}

impl Budget {
    /// Charge `len` more resident bytes if they fit under the limit.
    fn try_charge(&self, len: usize) -> bool {
        let mut cur = self.resident.load(Ordering::Acquire);
        loop {
            let next = match cur.checked_add(len) {
                Some(n) if n <= self.limit => n,
                _ => return false,
            };
            match self.resident.compare_exchange_weak(
                cur,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.peak.fetch_max(next, Ordering::AcqRel);
                    return true;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Unmaps the oldest kept block; `false` if none is kept.
    fn release_kept(&self) -> bool {
        let oldest = {
            let mut kept = self.kept.lock();
            if kept.is_empty() {
                return false;
            }
            kept.remove(0)
        };
        self.resident.fetch_sub(oldest.len(), Ordering::AcqRel);
        drop(oldest);
        true
    }
}

/// A DRAM tier with a hard budget; cheap to clone (clones share the budget).
#[derive(Clone, Debug)]
pub struct DramTier {
    budget: Arc<Budget>,
}

impl DramTier {
    /// A tier that will never hand out more than `budget_bytes` at once.
    pub fn new(budget_bytes: usize) -> DramTier {
        DramTier {
            budget: Arc::new(Budget {
                limit: budget_bytes,
                in_use: AtomicUsize::new(0),
                resident: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                kept: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Allocate a zeroed block of `len` bytes (64-byte aligned; 4 KiB aligned from 4 KiB up;
    /// advised for transparent huge pages from 2 MiB up). The block is charged `len` bytes.
    pub fn alloc(&self, len: usize) -> Result<DramBlock> {
        self.alloc_inner(len, true)
    }

    /// Like [`Self::alloc`], but the contents are unspecified: zeroes for a fresh block, the
    /// bytes of an earlier block of this tier when a kept one is reused. For callers that
    /// overwrite every byte (a load from PM, an object being written), which then skip a
    /// zeroing pass. The bytes are always initialised; they may be another object's.
    pub fn alloc_for_overwrite(&self, len: usize) -> Result<DramBlock> {
        self.alloc_inner(len, false)
    }

    fn alloc_inner(&self, len: usize, zero: bool) -> Result<DramBlock> {
        if let Some(mut raw) = self.take_kept(len) {
            if zero {
                raw.as_mut_slice().fill(0);
            }
            self.budget.in_use.fetch_add(len, Ordering::AcqRel);
            return Ok(DramBlock { raw, budget: Arc::clone(&self.budget) });
        }
        self.reserve(len)?;
        match RawBlock::zeroed(len) {
            Some(raw) => {
                self.budget.in_use.fetch_add(len, Ordering::AcqRel);
                Ok(DramBlock { raw, budget: Arc::clone(&self.budget) })
            }
            None => {
                self.budget.resident.fetch_sub(len, Ordering::AcqRel);
                Err(Error::OutOfMemory { requested: len })
            }
        }
    }

    /// A kept block with the mapping size `len` needs, re-targeted and charged at `len`.
    fn take_kept(&self, len: usize) -> Option<RawBlock> {
        let map_len = RawBlock::mapping_len_for(len)?;
        let b = &self.budget;
        let mut raw = {
            let mut kept = b.kept.lock();
            let i = kept.iter().position(|r| r.mapped_len() == Some(map_len))?;
            kept.remove(i)
        };
        let old = raw.len();
        // The block's charge moves to the new block; only the difference (< one page) changes.
        if len <= old || b.try_charge(len - old) {
            b.resident.fetch_sub(old.saturating_sub(len), Ordering::AcqRel);
            raw.reuse_as(len);
            Some(raw)
        } else {
            b.resident.fetch_sub(old, Ordering::AcqRel);
            None
        }
    }

    /// Charge `len` resident bytes, giving back kept blocks if they are in the way.
    fn reserve(&self, len: usize) -> Result<()> {
        let b = &self.budget;
        loop {
            if b.try_charge(len) {
                return Ok(());
            }
            let in_use = b.in_use.load(Ordering::Acquire);
            let fits_without_kept = in_use.checked_add(len).is_some_and(|n| n <= b.limit);
            if !fits_without_kept || !b.release_kept() {
                return Err(Error::BudgetExceeded { requested: len, in_use, budget: b.limit });
            }
        }
    }

    /// Unmaps every kept block (their bytes leave the process's resident set).
    pub fn release_kept(&self) {
        while self.budget.release_kept() {}
    }

    /// Bytes in kept (recycled, not handed out) blocks: resident, reclaimable on demand.
    pub fn kept(&self) -> usize {
        self.budget.resident.load(Ordering::Acquire).saturating_sub(self.in_use())
    }

    /// Bytes currently handed out.
    pub fn in_use(&self) -> usize {
        self.budget.in_use.load(Ordering::Acquire)
    }

    /// The hard limit.
    pub fn budget(&self) -> usize {
        self.budget.limit
    }

    /// Bytes still available under the budget.
    pub fn available(&self) -> usize {
        self.budget().saturating_sub(self.in_use())
    }

    /// The highest resident byte count (handed out plus kept) since the tier was created.
    pub fn peak(&self) -> usize {
        self.budget.peak.load(Ordering::Acquire)
    }
}

/// A zeroed, aligned DRAM block charged to a [`DramTier`]; derefs to `[u8]` and offers `u64` views
/// for RNS limbs. Returns its bytes to the budget on drop.
pub struct DramBlock {
    raw: RawBlock,
    budget: Arc<Budget>,
}

impl DramBlock {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the block holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.raw.len() == 0
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.raw.as_slice()
    }

    /// The bytes, mutably.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.raw.as_mut_slice()
    }

    /// The block as native-endian `u64` words (`len / 8` of them; a partial tail word is omitted).
    pub fn as_u64s(&self) -> &[u64] {
        self.raw.as_u64s()
    }

    /// The block as mutable `u64` words (`len / 8` of them).
    pub fn as_u64s_mut(&mut self) -> &mut [u64] {
        self.raw.as_u64s_mut()
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

impl Drop for DramBlock {
    fn drop(&mut self) {
        let raw = std::mem::replace(&mut self.raw, RawBlock::empty());
        let b = &self.budget;
        let len = raw.len();
        // Keep large blocks for reuse: their charge stays in `resident`.
        let keep = raw.mapped_len().is_some() && {
            let mut kept = b.kept.lock();
            if kept.len() < MAX_KEPT {
                kept.push(raw);
                true
            } else {
                false
            }
        };
        if !keep {
            b.resident.fetch_sub(len, Ordering::AcqRel);
        }
        b.in_use.fetch_sub(len, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_hard_and_returned_on_drop() {
        let t = DramTier::new(10_000);
        let a = t.alloc(6000).unwrap();
        assert_eq!(t.in_use(), 6000);
        match t.alloc(5000) {
            Err(Error::BudgetExceeded { requested, in_use, budget }) => {
                assert_eq!((requested, in_use, budget), (5000, 6000, 10_000));
            }
            other => panic!("expected BudgetExceeded, got {other:?}"),
        }
        let b = t.alloc(4000).unwrap();
        assert_eq!(t.available(), 0);
        drop(a);
        assert_eq!(t.in_use(), 4000);
        drop(b);
        assert_eq!(t.in_use(), 0);
        assert_eq!(t.peak(), 10_000);
    }

    #[test]
    fn large_blocks_are_recycled_within_the_budget() {
        const MIB: usize = 1 << 20;
        let t = DramTier::new(10 * MIB);
        let mut a = t.alloc(4 * MIB).unwrap();
        a.fill(0xab);
        let addr = a.as_ptr();
        drop(a);
        // Kept: still resident and charged, but not in use.
        assert_eq!((t.in_use(), t.kept()), (0, 4 * MIB));
        // Same mapping size (a page-rounded length): the same memory, zeroed for `alloc`.
        let b = t.alloc(4 * MIB - 100).unwrap();
        assert_eq!(b.as_ptr(), addr);
        assert!(b.iter().all(|&x| x == 0));
        assert_eq!((t.in_use(), t.kept()), (4 * MIB - 100, 0));
        let mut b = b;
        b.fill(0xcd);
        drop(b);
        // `alloc_for_overwrite` skips the zeroing: the earlier bytes are still there.
        let c = t.alloc_for_overwrite(4 * MIB).unwrap();
        assert_eq!(c.as_ptr(), addr);
        assert!(c[..4 * MIB - 100].iter().all(|&x| x == 0xcd));
        drop(c);
        // A block that only fits if the kept one goes: it is unmapped to make room.
        let d = t.alloc(8 * MIB).unwrap();
        assert_eq!((t.in_use(), t.kept()), (8 * MIB, 0));
        assert!(t.peak() <= 10 * MIB, "resident peak {} over the budget", t.peak());
        // A request over the budget with nothing kept still fails with the numbers.
        assert!(matches!(
            t.alloc(3 * MIB),
            Err(Error::BudgetExceeded { requested, in_use, .. }) if requested == 3 * MIB && in_use == 8 * MIB
        ));
        drop(d);
        t.release_kept();
        assert_eq!((t.in_use(), t.kept()), (0, 0));
    }

    #[test]
    fn concurrent_recycling_keeps_resident_bytes_under_the_budget() {
        const MIB: usize = 1 << 20;
        let t = DramTier::new(24 * MIB);
        std::thread::scope(|s| {
            for k in 0..4usize {
                let t = t.clone();
                s.spawn(move || {
                    for i in 0..200usize {
                        let len = (2 + (i + k) % 5) * MIB;
                        if let Ok(mut b) = t.alloc_for_overwrite(len) {
                            b[0] = 1;
                            b[len - 1] = 1;
                            assert!(t.in_use() + t.kept() <= 24 * MIB);
                        }
                    }
                });
            }
        });
        assert_eq!(t.in_use(), 0);
        assert!(t.peak() <= 24 * MIB, "resident peak {}", t.peak());
    }

    #[test]
    fn budget_too_small_for_one_block() {
        let t = DramTier::new(100);
        assert!(matches!(t.alloc(101), Err(Error::BudgetExceeded { requested: 101, .. })));
        assert!(matches!(t.alloc(usize::MAX), Err(Error::BudgetExceeded { .. })));
        assert_eq!(t.in_use(), 0);
    }

    #[test]
    fn views_alias_the_same_bytes_and_alignment_holds() {
        let t = DramTier::new(64 << 20);
        for len in [8usize, 100, 4096, 3 << 20] {
            let mut b = t.alloc(len).unwrap();
            assert_eq!(b.as_ptr() as usize % 64, 0);
            assert!(b.iter().all(|&x| x == 0));
            b.as_u64s_mut()[0] = 0x0807_0605_0403_0201;
            assert_eq!(&b[..8], &0x0807_0605_0403_0201u64.to_ne_bytes());
            assert_eq!(b.as_u64s().len(), len / 8);
        }
    }

    #[test]
    fn concurrent_allocations_never_exceed_the_budget() {
        let t = DramTier::new(1 << 20);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let t = t.clone();
                s.spawn(move || {
                    for i in 0..2000 {
                        if let Ok(b) = t.alloc(1000 + (i % 7) * 10_000) {
                            assert!(t.in_use() <= t.budget());
                            drop(b);
                        }
                    }
                });
            }
        });
        assert_eq!(t.in_use(), 0);
        assert!(t.peak() <= 1 << 20);
    }

    /// The VMA flags ("VmFlags:" line of /proc/self/smaps) of the mapping containing `addr`.
    fn vm_flags(addr: usize) -> Option<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    {
                        inside = a <= addr && addr < b;
                        continue;
                    }
                }
            }
            if inside {
                if let Some(flags) = line.strip_prefix("VmFlags:") {
                    return Some(flags.to_string());
                }
            }
        }
        None
    }

    #[test]
    fn large_blocks_are_advised_for_huge_pages() {
        let t = DramTier::new(64 << 20);
        let big = t.alloc(4 << 20).unwrap();
        let flags = vm_flags(big.as_ptr() as usize).expect("block mapping in smaps");
        assert!(flags.split_whitespace().any(|f| f == "hg"), "no MADV_HUGEPAGE: {flags}");
    }

    #[test]
    fn blocks_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<DramBlock>();
        check::<DramTier>();
    }
}
