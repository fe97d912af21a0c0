//! Unit tests of the DRAM tier and its arena.

use super::*;

const PAGE: usize = 4096;

#[test]
fn budget_is_hard_counts_whole_pages_and_is_returned_on_drop() {
    // 10 000 B round up to three pages.
    let t = DramTier::new(10_000).unwrap();
    assert_eq!(t.budget(), 3 * PAGE);
    let a = t.alloc(6000).unwrap();
    assert_eq!((a.len(), t.in_use()), (6000, 2 * PAGE));
    match t.alloc(5000) {
        Err(Error::BudgetExceeded { requested, in_use, budget }) => {
            assert_eq!((requested, in_use, budget), (2 * PAGE, 2 * PAGE, 3 * PAGE));
        }
        other => panic!("expected BudgetExceeded, got {other:?}"),
    }
    let b = t.alloc(100).unwrap();
    assert_eq!(t.available(), 0);
    assert!(matches!(t.alloc(1), Err(Error::BudgetExceeded { requested: PAGE, .. })));
    drop(a);
    assert_eq!(t.in_use(), PAGE);
    drop(b);
    assert_eq!(t.in_use(), 0);
    assert_eq!(t.peak(), 3 * PAGE);
    assert_eq!(DramTier::footprint(0), 0);
    assert_eq!(DramTier::footprint(usize::MAX), usize::MAX);
}

#[test]
fn budget_too_small_for_one_block() {
    let t = DramTier::new(100).unwrap();
    assert!(matches!(t.alloc(PAGE + 1), Err(Error::BudgetExceeded { requested: 8192, .. })));
    assert!(matches!(t.alloc(usize::MAX), Err(Error::BudgetExceeded { .. })));
    assert_eq!(t.in_use(), 0);
}

#[test]
fn views_alias_the_same_bytes_and_alignment_holds() {
    let t = DramTier::new(64 << 20).unwrap();
    for len in [8usize, 100, 4096, 3 << 20] {
        let mut b = t.alloc(len).unwrap();
        assert_eq!(b.as_ptr() as usize % PAGE, 0);
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
                        assert!(t.stats().resident <= 1 << 20);
                        drop(b);
                    }
                }
            });
        }
    });
    assert_eq!(t.in_use(), 0);
    assert!(t.peak() <= 1 << 20);
}

/// A field of the `/proc/self/smaps` entry of the mapping containing `addr` (the line that
/// starts with `key`, without it).
fn smaps_field(addr: usize, key: &str) -> Option<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    inside = a <= addr && addr < b;
                    continue;
                }
            }
        }
        if inside {
            if let Some(v) = line.strip_prefix(key) {
                return Some(v.trim().to_string());
            }
        }
    }
    None
}

#[test]
fn the_arena_opts_out_of_huge_pages() {
    // A huge page would make 2 MiB resident on one touch and could not be released piecewise.
    let t = DramTier::new(64 << 20).unwrap();
    let big = t.alloc(4 << 20).unwrap();
    let flags = smaps_field(big.as_ptr() as usize, "VmFlags:").expect("arena mapping in smaps");
    assert!(flags.split_whitespace().any(|f| f == "nh"), "no MADV_NOHUGEPAGE: {flags}");
}

#[test]
fn freed_memory_is_reused_at_another_size_without_faults() {
    let t = DramTier::new(4 << 20).unwrap();
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
    let mut c = t.alloc(1 << 20).unwrap();
    assert!(c.iter().all(|&x| x == 0));
    // Bytes written through a mutable view are zeroed again on request.
    c[..4096].fill(7);
    c.zero_fill();
    assert!(c.iter().all(|&x| x == 0));
    let s = t.stats();
    assert_eq!((s.allocations, s.reused_allocations, s.resident), (3, 2, 1 << 20));
}

#[test]
fn resident_memory_stays_within_the_budget_when_free_space_is_scattered() {
    let t = DramTier::new(16 * PAGE).unwrap();
    let mut blocks: Vec<_> = (0..8).map(|_| t.alloc(2 * PAGE).unwrap()).collect();
    blocks.iter_mut().for_each(|b| b.fill(1));
    let first = blocks[0].as_ptr() as usize;
    assert_eq!(t.stats().resident, 16 * PAGE as u64);
    assert_eq!(t.kernel_resident(), 16 * PAGE);
    // Free every other block: half the budget is free, in two-page holes.
    let kept: Vec<_> = blocks.drain(..).enumerate().filter(|(i, _)| i % 2 == 1).collect();
    let s = t.stats();
    assert_eq!(
        (s.free, s.largest_free, s.resident),
        (8 * PAGE as u64, 8 * PAGE as u64, 16 * PAGE as u64)
    );
    // A three-page block fits no hole: it goes to fresh address space, and three freed pages
    // are moved there so that resident memory stays at the budget: no faults, old bytes
    // zeroed on request.
    let faults = crate::usage::thread_minor_faults().expect("getrusage");
    let mut big = t.alloc(3 * PAGE).unwrap();
    assert!(big.iter().all(|&x| x == 0));
    big.fill(2);
    assert_eq!(crate::usage::thread_minor_faults().expect("getrusage"), faults, "no faults");
    assert!(big.as_ptr() as usize >= first + 16 * PAGE);
    let s = t.stats();
    assert_eq!((s.free, s.resident), (5 * PAGE as u64, 16 * PAGE as u64));
    assert_eq!((s.relocated, s.faulted, s.released), (3 * PAGE as u64, 16 * PAGE as u64, 0));
    assert_eq!(t.kernel_resident(), 16 * PAGE, "the kernel agrees");
    // The two-page holes are still there for blocks that fit them.
    let small = t.alloc(2 * PAGE).unwrap();
    assert!((small.as_ptr() as usize) < first + 16 * PAGE);
    drop((kept, big, small));
    let s = t.stats();
    assert_eq!((s.free, s.free_extents, s.fragmentation()), (16 * PAGE as u64, 1, 0.0));
    assert!(t.kernel_resident() <= 16 * PAGE);
}

#[test]
fn scattered_address_space_is_a_typed_refusal_with_the_numbers() {
    // With as much address space as budget (the real arena has eight times as much), freeing every
    // other two-page block leaves half the budget free in two-page holes.
    let t = DramTier::with_address_space(16 * PAGE, 1);
    let blocks: Vec<_> = (0..8).map(|_| t.alloc(2 * PAGE).unwrap()).collect();
    let kept: Vec<_> = blocks.into_iter().enumerate().filter(|(i, _)| i % 2 == 1).collect();
    let s = t.stats();
    assert_eq!((s.free, s.largest_free, s.free_extents), (8 * PAGE as u64, 2 * PAGE as u64, 4));
    assert!((s.fragmentation() - 0.75).abs() < 1e-9);
    match t.alloc(3 * PAGE) {
        Err(Error::Fragmented { requested, free, largest_free }) => {
            assert_eq!(
                (requested, free, largest_free),
                (3 * PAGE, 8 * PAGE as u64, 2 * PAGE as u64)
            );
        }
        other => panic!("expected Fragmented, got {other:?}"),
    }
    assert_eq!(t.in_use(), 8 * PAGE, "a refused block leaves no charge behind");
    drop(kept);
    let s = t.stats();
    assert_eq!((s.free, s.free_extents, s.fragmentation()), (16 * PAGE as u64, 1, 0.0));
    assert!(t.alloc(16 * PAGE).is_ok());
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
    /// Against a model of live blocks: blocks never overlap and keep their bytes, stay page
    /// aligned, the budget and the residency limit are never exceeded, a refusal is explained
    /// by the budget or by the largest placeable block, and freeing everything leaves one free
    /// extent.
    #[test]
    fn alloc_free_sequences_match_a_model(
        budget in 4096usize..300_000,
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        use proptest::prelude::*;
        let t = DramTier::new(budget).unwrap();
        let cap = t.stats().capacity;
        let mut live: Vec<(DramBlock, u8)> = Vec::new();
        for (n, s) in steps.into_iter().enumerate() {
            match s {
                Step::Free(i) if !live.is_empty() => {
                    let (b, fill) = live.swap_remove(i % live.len());
                    prop_assert!(b.iter().all(|&x| x == fill), "a block's bytes changed");
                }
                Step::Free(_) => {}
                Step::Alloc { len, zeroed } => {
                    let in_use = t.in_use() as u64;
                    let largest = t.stats().largest_free as usize;
                    let placed = len.div_ceil(PAGE) * PAGE;
                    let res = if zeroed { t.alloc(len) } else { t.alloc_for_overwrite(len) };
                    match res {
                        Ok(mut b) => {
                            prop_assert!(placed <= largest, "placed more than reported");
                            let addr = b.as_ptr() as usize;
                            prop_assert_eq!(addr % PAGE, 0);
                            if zeroed {
                                prop_assert!(b.iter().all(|&x| x == 0), "not zeroed");
                            }
                            for (o, _) in &live {
                                let oa = o.as_ptr() as usize;
                                prop_assert!(addr + len <= oa || oa + o.len() <= addr, "overlap");
                            }
                            let fill = (n % 251) as u8 + 1;
                            b.fill(fill);
                            live.push((b, fill));
                        }
                        Err(Error::BudgetExceeded { .. }) => {
                            prop_assert!(in_use + placed as u64 > cap);
                        }
                        Err(Error::Fragmented { .. }) => {
                            prop_assert!(in_use + placed as u64 <= cap && largest < placed);
                        }
                        Err(e) => prop_assert!(false, "unexpected error {e}"),
                    }
                }
            }
            let pages: u64 = live.iter().map(|(b, _)| b.len().div_ceil(PAGE) as u64).sum();
            prop_assert_eq!(t.in_use() as u64, pages * PAGE as u64);
            prop_assert!(t.in_use() as u64 <= cap && t.peak() as u64 <= cap);
            prop_assert!(cap < budget as u64 + PAGE as u64);
            let s = t.stats();
            prop_assert_eq!(s.free, cap - pages * PAGE as u64);
            prop_assert!(s.resident <= cap);
            prop_assert!(t.kernel_resident() as u64 <= cap, "the kernel holds more");
        }
        drop(live);
        let s = t.stats();
        prop_assert_eq!((s.in_use, s.free, s.free_extents), (0, cap, 1));
    }
}

#[test]
fn blocks_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<DramBlock>();
    check::<DramTier>();
}

/// Runs a cache over `t` as the store uses it: blocks of a few sizes (a key, ciphertexts,
/// small objects), each of the latest few pinned, and room made by evicting the oldest
/// unpinned block whenever a block is refused for bytes or for address space. Returns how
/// many blocks were refused with only pinned blocks left although their bytes fit.
fn refusals_at_the_byte_limit(t: &DramTier, steps: usize) -> usize {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
    let cap = t.stats().capacity as usize;
    // (block, last step it is pinned for), oldest first.
    let mut live: std::collections::VecDeque<(DramBlock, usize)> = Default::default();
    let mut refused = 0;
    for step in 0..steps {
        let (pages, held) = match rng.gen_range(0..10) {
            0..=2 => (104, 2),
            3..=8 => (rng.gen_range(8..40), 60),
            _ => (rng.gen_range(1..4), 8),
        };
        let pinned_until = step + rng.gen_range(0..held);
        loop {
            match t.alloc_for_overwrite(pages * PAGE) {
                Ok(b) => {
                    live.push_back((b, pinned_until));
                    break;
                }
                Err(Error::BudgetExceeded { .. } | Error::Fragmented { .. }) => {
                    let Some(i) = live.iter().position(|(_, until)| *until < step) else {
                        // A pinned set that outgrew the bytes is the caller's refusal, not the arena's.
                        if t.in_use() + pages * PAGE <= cap {
                            refused += 1;
                        }
                        break;
                    };
                    live.remove(i);
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }
    refused
}

/// At the exact byte limit, with a quarter of the budget per large block and many small
/// blocks pinned around it, the real arena's address space always has room for what the
/// bytes allow. With twice the budget as address space, as the arena had before, the same
/// run is refused blocks (90 times here), as 4 in 10 runs of the batched executor's
/// smallest-budget test were: that check keeps this test able to fail.
#[test]
fn a_cache_at_its_byte_limit_is_not_refused_for_address_space() {
    let t = DramTier::new(400 * PAGE).unwrap();
    assert_eq!(refusals_at_the_byte_limit(&t, 20_000), 0);
    let tight = DramTier::with_address_space(400 * PAGE, 2);
    assert!(refusals_at_the_byte_limit(&tight, 20_000) > 0, "the run no longer fragments");
}

/// Where the OS refuses eight times the budget in address space (here: more than the 128 TiB
/// a process maps without a hint), the tier still starts, on the most it is granted, and keeps
/// its budget.
#[test]
fn a_budget_too_large_for_eight_times_its_address_space_takes_less() {
    let budget = 20usize << 40;
    let granted = crate::sys::arena::SPACE_FACTORS
        .into_iter()
        .find(|&f| Arena::reserve_with_space(budget, f).is_some())
        .expect("some address space");
    let t = DramTier::new(budget).unwrap();
    assert_eq!(t.arena.space(), budget * granted);
    assert_eq!(t.budget(), budget);
    let b = t.alloc(3 * PAGE).unwrap();
    assert_eq!(t.in_use(), 3 * PAGE);
    drop(b);
}
