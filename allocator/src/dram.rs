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
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::sys::mem::{RawBlock, HUGE_THRESHOLD};

/// Most recycled blocks kept at once (a bound on the lookup, not on memory: the budget is).
const MAX_KEPT: usize = 64;

/// The tier's accounting. One lock keeps the counters and the kept list consistent with each
/// other (allocations are of whole objects, so the lock is taken rarely); mapping, unmapping
/// and zeroing happen outside it.
#[derive(Debug)]
struct Budget {
    limit: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Bytes in blocks handed out (or being mapped for a caller).
    in_use: usize,
    /// `in_use` plus the bytes of kept blocks: what is resident; never above the limit.
    resident: usize,
    /// The highest `resident`.
    peak: usize,
    /// Dropped large blocks kept for reuse, oldest first.
    kept: Vec<RawBlock>,
}

impl State {
    fn charge(&mut self, len: usize) {
        self.in_use += len;
        self.resident += len;
        self.peak = self.peak.max(self.resident);
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
            budget: Arc::new(Budget { limit: budget_bytes, state: Mutex::new(State::default()) }),
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
        let (reused, evicted) = self.reserve(len)?;
        // Unmapping happens outside the lock.
        drop(evicted);
        let raw = match reused {
            Some(mut raw) => {
                if zero {
                    raw.as_mut_slice().fill(0);
                }
                raw
            }
            None => match RawBlock::zeroed(len) {
                Some(raw) => raw,
                None => {
                    let mut st = self.budget.state.lock();
                    st.in_use -= len;
                    st.resident -= len;
                    return Err(Error::OutOfMemory { requested: len });
                }
            },
        };
        Ok(DramBlock { raw, budget: Arc::clone(&self.budget) })
    }

    /// Charges `len` bytes: reusing a kept block of the right mapping size if there is one,
    /// otherwise making room by giving back kept blocks (returned, to be unmapped by the
    /// caller) until `len` fits, or failing with the numbers.
    fn reserve(&self, len: usize) -> Result<(Option<RawBlock>, Vec<RawBlock>)> {
        let limit = self.budget.limit;
        let mut st = self.budget.state.lock();
        let map_len = RawBlock::mapping_len_for(len).filter(|_| len >= HUGE_THRESHOLD);
        if let Some(i) =
            map_len.and_then(|m| st.kept.iter().position(|r| r.mapped_len() == Some(m)))
        {
            let old = st.kept[i].len();
            // The block's charge moves to the new one; only the difference (< a page) changes.
            if st.resident - old + len <= limit {
                let mut raw = st.kept.remove(i);
                st.resident -= old;
                st.charge(len);
                raw.reuse_as(len);
                return Ok((Some(raw), Vec::new()));
            }
        }
        let mut evicted = Vec::new();
        loop {
            if st.resident.checked_add(len).is_some_and(|n| n <= limit) {
                st.charge(len);
                return Ok((None, evicted));
            }
            let fits = st.in_use.checked_add(len).is_some_and(|n| n <= limit);
            if !fits || st.kept.is_empty() {
                return Err(Error::BudgetExceeded {
                    requested: len,
                    in_use: st.in_use,
                    budget: limit,
                });
            }
            let oldest = st.kept.remove(0);
            st.resident -= oldest.len();
            evicted.push(oldest);
        }
    }

    /// Unmaps every kept block (their bytes leave the process's resident set).
    pub fn release_kept(&self) {
        let kept = {
            let mut st = self.budget.state.lock();
            let kept = std::mem::take(&mut st.kept);
            st.resident -= kept.iter().map(RawBlock::len).sum::<usize>();
            kept
        };
        drop(kept);
    }

    /// Bytes in kept (recycled, not handed out) blocks: resident, reclaimable on demand.
    pub fn kept(&self) -> usize {
        let st = self.budget.state.lock();
        st.resident - st.in_use
    }

    /// Bytes currently handed out.
    pub fn in_use(&self) -> usize {
        self.budget.state.lock().in_use
    }

    /// The hard limit.
    pub fn budget(&self) -> usize {
        self.budget.limit
    }

    /// Bytes still available under the budget (kept blocks count as available: they are given
    /// back on demand).
    pub fn available(&self) -> usize {
        self.budget().saturating_sub(self.in_use())
    }

    /// The highest resident byte count (handed out plus kept) since the tier was created.
    pub fn peak(&self) -> usize {
        self.budget.state.lock().peak
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
        let len = raw.len();
        let unmap = {
            let mut st = self.budget.state.lock();
            st.in_use -= len;
            // Keep large blocks for reuse: their charge stays in `resident`.
            if raw.mapped_len().is_some() && st.kept.len() < MAX_KEPT {
                st.kept.push(raw);
                None
            } else {
                st.resident -= len;
                Some(raw)
            }
        };
        // Unmapping happens outside the lock.
        drop(unmap);
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
    fn concurrent_recycling_never_fails_a_request_that_fits() {
        const MIB: usize = 1 << 20;
        // Each of 6 threads holds at most 6 MiB at once: every request fits the 36 MiB budget
        // once kept blocks are given back, so none may fail, and resident memory (kept blocks
        // included) never exceeds the budget.
        let t = DramTier::new(36 * MIB);
        std::thread::scope(|s| {
            for k in 0..6usize {
                let t = t.clone();
                s.spawn(move || {
                    for i in 0..1500usize {
                        let len = (2 + (i + k) % 5) * MIB - (i % 3) * 4096;
                        let mut b = t.alloc_for_overwrite(len).unwrap();
                        b[0] = 1;
                        b[len - 1] = 1;
                    }
                });
            }
        });
        assert_eq!(t.in_use(), 0);
        assert!(t.peak() <= 36 * MIB, "resident peak {}", t.peak());
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
