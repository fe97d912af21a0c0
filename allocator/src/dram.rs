//! The DRAM tier: zeroed, 64-byte aligned blocks of anonymous memory under a hard byte budget.
//! An allocation that would exceed the budget fails with the numbers instead of risking an OOM
//! kill; a block gives its bytes back to the budget when dropped.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sys::mem::RawBlock;

#[derive(Debug)]
struct Budget {
    limit: usize,
    in_use: AtomicUsize,
    peak: AtomicUsize,
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
                peak: AtomicUsize::new(0),
            }),
        }
    }

    /// Allocate a zeroed block of `len` bytes (64-byte aligned; 4 KiB aligned from 4 KiB up;
    /// advised for transparent huge pages from 2 MiB up). The block is charged `len` bytes.
    pub fn alloc(&self, len: usize) -> Result<DramBlock> {
        self.reserve(len)?;
        match RawBlock::zeroed(len) {
            Some(raw) => Ok(DramBlock { raw, budget: Arc::clone(&self.budget) }),
            None => {
                self.budget.in_use.fetch_sub(len, Ordering::AcqRel);
                Err(Error::OutOfMemory { requested: len })
            }
        }
    }

    fn reserve(&self, len: usize) -> Result<()> {
        let b = &self.budget;
        let mut cur = b.in_use.load(Ordering::Acquire);
        loop {
            let next = match cur.checked_add(len) {
                Some(n) if n <= b.limit => n,
                _ => {
                    return Err(Error::BudgetExceeded {
                        requested: len,
                        in_use: cur,
                        budget: b.limit,
                    })
                }
            };
            match b.in_use.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    b.peak.fetch_max(next, Ordering::AcqRel);
                    return Ok(());
                }
                Err(actual) => cur = actual,
            }
        }
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

    /// The highest `in_use` seen since the tier was created.
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
        self.budget.in_use.fetch_sub(self.raw.len(), Ordering::AcqRel);
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
