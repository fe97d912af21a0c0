//! The DRAM tier: 64-byte aligned blocks under a hard byte budget, carved from one arena
//! reserved up front. The arena's mapping is exactly the budget (rounded up to a page), so it
//! bounds resident memory; its pages are faulted in once and reused at any block size, without
//! new faults, and without zeroing unless the caller asks for zeroed memory. An allocation that
//! would exceed the budget fails with the numbers instead of risking an OOM kill; a block gives
//! its bytes back to the budget and its span back to the arena when dropped.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sys::arena::{Arena, Span};

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
    /// The hard limit in bytes.
    pub budget: u64,
    /// Bytes charged to live blocks.
    pub in_use: u64,
    /// The highest `in_use` seen since the tier was created.
    pub peak: u64,
    /// Length of the arena's mapping (the budget rounded up to a page): the most it can ever
    /// have resident.
    pub capacity: u64,
    /// Free bytes in the arena (alignment padding included).
    pub free: u64,
    /// The largest free extent: the biggest block that can be placed without freeing anything.
    pub largest_free: u64,
    /// Number of free extents.
    pub free_extents: u64,
    /// Bytes of the arena ever handed out (an upper bound on what it has faulted in).
    pub touched: u64,
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
    pub fn new(budget_bytes: usize) -> Result<DramTier> {
        let arena =
            Arena::reserve(budget_bytes).ok_or(Error::OutOfMemory { requested: budget_bytes })?;
        Ok(DramTier {
            budget: Arc::new(Budget {
                limit: budget_bytes,
                in_use: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }),
            arena: Arc::new(arena),
        })
    }

    /// Allocate a zeroed block of `len` bytes (64-byte aligned; 4 KiB aligned from 4 KiB up).
    /// The block is charged `len` bytes. Only bytes that earlier blocks used are zeroed here:
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
        self.budget.reserve(len)?;
        match self.arena.carve(len) {
            Some((mut span, dirty)) => {
                if zero {
                    span.as_mut_slice()[..dirty].fill(0);
                }
                Ok(DramBlock { span, _charge: Charge { budget: Arc::clone(&self.budget), len } })
            }
            None => {
                self.budget.release(len);
                let u = self.arena.usage();
                Err(Error::Fragmented {
                    requested: len,
                    free: u.free,
                    largest_free: u.largest_free,
                })
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

    /// Bytes still available under the budget (a block that large may still not fit in one
    /// piece if the arena is fragmented: see [`Self::stats`]).
    pub fn available(&self) -> usize {
        self.budget().saturating_sub(self.in_use())
    }

    /// The highest `in_use` seen since the tier was created.
    pub fn peak(&self) -> usize {
        self.budget.peak.load(Ordering::Acquire)
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
            touched: u.touched,
        }
    }
}

/// An aligned DRAM block charged to a [`DramTier`]; derefs to `[u8]` and offers `u64` views
/// for RNS limbs. Returns its bytes to the budget and its span to the arena on drop.
pub struct DramBlock {
    // Field order is drop order: the span is back in the arena before its bytes are released
    // to the budget, so an allocation that sees the bytes free also finds the space free.
    span: Span,
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
        self.span.as_mut_slice()
    }

    /// The block as native-endian `u64` words (`len / 8` of them; a partial tail word is omitted).
    pub fn as_u64s(&self) -> &[u64] {
        self.span.as_u64s()
    }

    /// The block as mutable `u64` words (`len / 8` of them).
    pub fn as_u64s_mut(&mut self) -> &mut [u64] {
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
mod tests {
    use super::*;

    #[test]
    fn budget_is_hard_and_returned_on_drop() {
        let t = DramTier::new(10_000).unwrap();
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
        let t = DramTier::new(100).unwrap();
        assert!(matches!(t.alloc(101), Err(Error::BudgetExceeded { requested: 101, .. })));
        assert!(matches!(t.alloc(usize::MAX), Err(Error::BudgetExceeded { .. })));
        assert_eq!(t.in_use(), 0);
    }

    #[test]
    fn views_alias_the_same_bytes_and_alignment_holds() {
        let t = DramTier::new(64 << 20).unwrap();
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
        let t = DramTier::new(1 << 20).unwrap();
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
        let t = DramTier::new(64 << 20).unwrap();
        let big = t.alloc(4 << 20).unwrap();
        let flags = vm_flags(big.as_ptr() as usize).expect("block mapping in smaps");
        assert!(flags.split_whitespace().any(|f| f == "hg"), "no MADV_HUGEPAGE: {flags}");
    }

    #[test]
    fn freed_memory_is_reused_at_another_size_without_faults() {
        // Below one huge page, so the arena is backed by 4 KiB pages and every first touch is
        // one counted fault.
        let t = DramTier::new(1536 << 10).unwrap();
        let faults = || crate::usage::thread_minor_faults().expect("getrusage");
        let before = faults();
        let mut a = t.alloc_for_overwrite(1 << 20).unwrap();
        a.fill(0xff);
        let fresh = faults() - before;
        assert!(fresh >= 200, "touching 1 MiB of fresh arena took only {fresh} faults");
        let addr = a.as_ptr();
        drop(a);
        let before = faults();
        let mut b = t.alloc_for_overwrite(900 << 10).unwrap();
        b.fill(0x11);
        let again = faults() - before;
        assert_eq!(b.as_ptr(), addr, "the freed span is carved again");
        assert!(again <= 4, "reusing freed memory took {again} faults (fresh: {fresh})");
        drop(b);
        // Asked for zeroed memory, the caller gets zeros even where old data was.
        let c = t.alloc(1 << 20).unwrap();
        assert!(c.iter().all(|&x| x == 0));
        assert_eq!(t.stats().touched, 1 << 20);
    }

    #[test]
    fn fragmentation_is_reported_and_explains_a_refusal() {
        let t = DramTier::new(16 * 4096).unwrap();
        let mut blocks: Vec<_> = (0..8).map(|_| t.alloc(2 * 4096).unwrap()).collect();
        assert_eq!(t.stats().free, 0);
        // Free every other block: half the arena is free, in 8 KiB holes.
        let kept: Vec<_> = blocks.drain(..).enumerate().filter(|(i, _)| i % 2 == 1).collect();
        let s = t.stats();
        assert_eq!((s.free, s.largest_free, s.free_extents), (8 * 4096, 2 * 4096, 4));
        assert!((s.fragmentation() - 0.75).abs() < 1e-9);
        match t.alloc(3 * 4096) {
            Err(Error::Fragmented { requested, free, largest_free }) => {
                assert_eq!((requested, free, largest_free), (3 * 4096, 8 * 4096, 2 * 4096));
            }
            other => panic!("expected Fragmented, got {other:?}"),
        }
        assert_eq!(t.in_use(), 8 * 4096, "a refused block leaves no charge behind");
        drop(kept);
        let s = t.stats();
        assert_eq!((s.free, s.free_extents, s.fragmentation()), (16 * 4096, 1, 0.0));
        assert!(t.alloc(16 * 4096).is_ok());
    }

    /// One step of the model test: allocate `len` bytes (zeroed or not), or free a live block.
    #[derive(Clone, Debug)]
    enum Step {
        Alloc { len: usize, zeroed: bool },
        Free(usize),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (1usize..40_000, any::<bool>()).prop_map(|(len, zeroed)| Step::Alloc { len, zeroed }),
            (0usize..64).prop_map(Step::Free),
        ]
    }

    proptest::proptest! {
        /// Against a model of live blocks: blocks never overlap and keep their bytes, stay
        /// aligned and inside the arena, the budget is never exceeded, a refusal is explained
        /// by the budget or by the largest free extent, and freeing everything leaves one
        /// free extent.
        #[test]
        fn alloc_free_sequences_match_a_model(
            budget in 4096usize..300_000,
            steps in proptest::collection::vec(step(), 1..120),
        ) {
            use proptest::prelude::*;
            let t = DramTier::new(budget).unwrap();
            let cap = t.stats().capacity as usize;
            let mut live: Vec<(DramBlock, u8)> = Vec::new();
            let mut lo = usize::MAX;
            let mut hi = 0usize;
            for (n, s) in steps.into_iter().enumerate() {
                match s {
                    Step::Free(i) if !live.is_empty() => {
                        let (b, fill) = live.swap_remove(i % live.len());
                        prop_assert!(b.iter().all(|&x| x == fill), "a block's bytes changed");
                    }
                    Step::Free(_) => {}
                    Step::Alloc { len, zeroed } => {
                        let in_use = t.in_use();
                        let largest = t.stats().largest_free as usize;
                        let res = if zeroed { t.alloc(len) } else { t.alloc_for_overwrite(len) };
                        match res {
                            Ok(mut b) => {
                                let addr = b.as_ptr() as usize;
                                prop_assert_eq!(addr % 64, 0);
                                if len >= 4096 {
                                    prop_assert_eq!(addr % 4096, 0);
                                }
                                if zeroed {
                                    prop_assert!(b.iter().all(|&x| x == 0), "not zeroed");
                                }
                                for (o, _) in &live {
                                    let oa = o.as_ptr() as usize;
                                    prop_assert!(addr + len <= oa || oa + o.len() <= addr, "overlap");
                                }
                                let fill = (n % 251) as u8 + 1;
                                b.fill(fill);
                                lo = lo.min(addr);
                                hi = hi.max(addr + len);
                                prop_assert!(hi - lo <= cap, "blocks span more than the arena");
                                live.push((b, fill));
                            }
                            Err(Error::BudgetExceeded { .. }) => prop_assert!(in_use + len > budget),
                            Err(Error::Fragmented { .. }) => {
                                // Placed at 64 B (4 KiB from 4 KiB up) granularity; offsets are
                                // multiples of 64, so a large enough extent always fits.
                                let align = if len >= 4096 { 4096 } else { 64 };
                                let placed = len.div_ceil(align) * align;
                                prop_assert!(in_use + len <= budget);
                                prop_assert!(largest < placed + align - 64, "{largest} free in one piece");
                            }
                            Err(e) => prop_assert!(false, "unexpected error {e}"),
                        }
                    }
                }
                let sum: usize = live.iter().map(|(b, _)| b.len()).sum();
                prop_assert_eq!(t.in_use(), sum);
                prop_assert!(t.in_use() <= budget && t.peak() <= budget);
            }
            drop(live);
            let s = t.stats();
            prop_assert_eq!((s.in_use, s.free, s.free_extents), (0, cap as u64, 1));
        }
    }

    #[test]
    fn blocks_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<DramBlock>();
        check::<DramTier>();
    }
}
