//! Behaviour of the tiered store: residency, budget errors, prefetch, failures, zero-copy puts.

mod common;

use std::sync::atomic::Ordering;

use common::{content, file_pool, opts, store, Flaky};
use hetier_tiering::{
    Durability, Error, ObjectId, ObjectKind, PolicyConfig, Pool, PrefetchRule, Residency,
    TieredStore,
};

const K: usize = 4096;

#[test]
fn residency_follows_durability_and_eviction() {
    let (_d, s) = store(3 * K as u64, PolicyConfig::Lru, 0);
    let (a, b, c, d) = (ObjectId(1), ObjectId(2), ObjectId(3), ObjectId(4));
    s.put(a, ObjectKind::Ciphertext, Durability::Scratch, &content(a, K)).unwrap();
    assert_eq!(s.residency(a), Some(Residency::DramOnly));
    assert_eq!(s.stats().bytes_dram_to_pm, 0, "scratch is not written on put");
    s.put(b, ObjectKind::Blob, Durability::Durable, &content(b, K)).unwrap();
    assert_eq!(s.residency(b), Some(Residency::Both));
    assert_eq!(s.stats().bytes_dram_to_pm, K as u64);
    s.put(c, ObjectKind::Blob, Durability::Durable, &content(c, K)).unwrap();
    // Budget full: putting d evicts b, the least recently used *clean* object; scratch a
    // stays because leaving would cost a write-back.
    s.put(d, ObjectKind::Blob, Durability::Durable, &content(d, K)).unwrap();
    assert_eq!(s.residency(b), Some(Residency::PmOnly));
    assert_eq!(s.residency(a), Some(Residency::DramOnly));
    assert_eq!((s.stats().writebacks, s.stats().bytes_dram_to_pm), (0, 3 * K as u64));
    // With c and d pinned, loading b can only displace a, which must be written back first.
    let (gc, gd) = (s.pin(c).unwrap(), s.pin(d).unwrap());
    let gb = s.pin(b).unwrap();
    assert_eq!(&gb[..], &content(b, K)[..]);
    assert_eq!(s.residency(a), Some(Residency::PmOnly));
    let st = s.stats();
    assert_eq!(
        (st.writebacks, st.bytes_dram_to_pm, st.misses, st.pm_reads),
        (1, 4 * K as u64, 1, 1)
    );
    drop((gb, gc, gd));
    // Loading a back displaces a clean object: nothing is written.
    let g = s.pin(a).unwrap();
    assert_eq!(&g[..], &content(a, K)[..]);
    assert_eq!(s.residency(a), Some(Residency::Both));
    let st = s.stats();
    assert_eq!((st.bytes_dram_to_pm, st.misses, st.pm_reads), (4 * K as u64, 2, 2));
    assert!(st.peak_dram <= 3 * K as u64 && s.allocator_peak() <= 3 * K as u64);
    assert_eq!(g.as_u64s().len(), K / 8);
    // Equal sizes: every eviction's block was reused by the next put or load.
    assert_eq!(st.block_reuses, 3);
    assert!(matches!(s.remove(a), Err(Error::ObjectPinned { pins: 1, .. })));
    drop(g);
    s.remove(a).unwrap();
    assert!(s.residency(a).is_none());
    assert!(!s.pool().contains(a));
    assert!(matches!(s.pin(a), Err(Error::UnknownObject { .. })));
    assert!(matches!(
        s.put(b, ObjectKind::Blob, Durability::Scratch, &[1]),
        Err(Error::DuplicateObject { .. })
    ));
    assert!(matches!(
        s.put(ObjectId(9), ObjectKind::Blob, Durability::Scratch, &[]),
        Err(Error::EmptyObject { .. })
    ));
}

#[test]
fn too_large_pinned_set_fails_with_numbers() {
    let (_d, s) = store(10 * K as u64, PolicyConfig::Lru, 1);
    for i in 0..4 {
        let id = ObjectId(i);
        s.put(id, ObjectKind::Blob, Durability::Durable, &content(id, 4 * K)).unwrap();
    }
    let g0 = s.pin(ObjectId(0)).unwrap();
    let g1 = s.pin(ObjectId(1)).unwrap();
    match s.pin(ObjectId(2)) {
        Err(Error::PinnedSetTooLarge { id, requested, pinned, budget }) => {
            assert_eq!(id, Some(ObjectId(2)));
            assert_eq!((requested, pinned, budget), (4 * K as u64, 8 * K as u64, 10 * K as u64));
        }
        other => panic!("expected PinnedSetTooLarge, got {other:?}"),
    }
    assert!(matches!(s.pin_all(&[ObjectId(2), ObjectId(3)]), Err(Error::PinnedSetTooLarge { .. })));
    // The failed pins left nothing behind: releasing one pin makes room again.
    drop(g1);
    let g2 = s.pin(ObjectId(2)).unwrap();
    assert_eq!(&g2[..], &content(ObjectId(2), 4 * K)[..]);
    drop((g0, g2));
    let big = ObjectId(7);
    s.put(big, ObjectKind::Blob, Durability::Durable, &content(big, 12 * K)).unwrap();
    assert_eq!(s.residency(big), Some(Residency::PmOnly));
    assert!(matches!(
        s.pin(big),
        Err(Error::ObjectLargerThanBudget { len, budget }) if len == 12 * K as u64 && budget == 10 * K as u64
    ));
    assert!(s.stats().peak_dram <= 10 * K as u64);
}

#[test]
fn a_plan_whose_step_cannot_fit_is_refused_up_front_with_the_smallest_budget() {
    let (_d, s) = store(10 * K as u64, PolicyConfig::Lru, 0);
    // Objects count in whole pages: 4K + 1 bytes take five.
    let plan =
        vec![vec![4 * K as u64, K as u64], vec![4 * K as u64 + 1, 4 * K as u64, 100], vec![]];
    assert_eq!(TieredStore::working_set_need(plan.clone()), (10 * K as u64, 1));
    s.check_working_sets(plan.clone()).unwrap();
    let (_d, s) = store(10 * K as u64 - 1, PolicyConfig::Lru, 0);
    match s.check_working_sets(plan) {
        Err(Error::BudgetTooSmall { budget, needed, step }) => {
            assert_eq!((budget, needed, step), (10 * K as u64 - 1, 10 * K as u64, 1));
        }
        other => panic!("expected BudgetTooSmall, got {other:?}"),
    }
    // The check reserved nothing.
    assert_eq!(s.stats().dram_in_use, 0);
}

#[test]
fn block_writer_puts_without_copy_and_counts_against_budget() {
    let (_d, s) = store(8 * K as u64, PolicyConfig::Lru, 0);
    let mut w = s.alloc(4 * K as u64).unwrap();
    w.as_u64s_mut().iter_mut().enumerate().for_each(|(i, x)| *x = i as u64 * 3);
    let ptr = w.as_ptr();
    assert_eq!(s.stats().dram_in_use, 4 * K as u64);
    // While the writer is open its bytes are pinned: a second 5K buffer cannot fit.
    assert!(matches!(s.alloc(5 * K as u64), Err(Error::PinnedSetTooLarge { id: None, .. })));
    s.put_block(ObjectId(1), ObjectKind::Ciphertext, Durability::Scratch, w).unwrap();
    let g = s.pin(ObjectId(1)).unwrap();
    assert_eq!(g.as_ptr(), ptr, "pinned bytes are the writer's block, not a copy");
    assert_eq!(g.as_u64s()[5], 15);
    drop(g);
    let w2 = s.alloc(2 * K as u64).unwrap();
    drop(w2);
    assert_eq!(s.stats().dram_in_use, 4 * K as u64, "dropped writer returned its bytes");
    let mut w3 = s.alloc(K as u64).unwrap();
    w3.as_bytes_mut().fill(9);
    s.put_block(ObjectId(2), ObjectKind::Blob, Durability::Durable, w3).unwrap();
    assert_eq!(s.residency(ObjectId(2)), Some(Residency::Both));
    assert_eq!(s.pool().get(ObjectId(2)).unwrap(), vec![9u8; K]);
}

#[test]
fn removed_blocks_are_reused_at_any_size_zeroed_for_writers() {
    let (_d, s) = store(8 * K as u64, PolicyConfig::Lru, 0);
    let mut w = s.alloc(2 * K as u64).unwrap();
    w.as_bytes_mut().fill(0xab);
    let ptr = w.as_ptr();
    s.put_block(ObjectId(1), ObjectKind::Ciphertext, Durability::Scratch, w).unwrap();
    s.remove(ObjectId(1)).unwrap();
    let st = s.stats();
    assert_eq!(
        (st.dram_in_use, st.dram_free_largest, st.dram_resident),
        (0, 8 * K as u64, 2 * K as u64)
    );
    // The freed memory goes to the next writer of any size, zeroed: no fresh pages to fault in.
    let before = s.stats().block_reuses;
    let w = s.alloc(K as u64 + 100).unwrap();
    assert_eq!(s.stats().block_reuses, before + 1);
    assert_eq!(w.as_ptr(), ptr);
    assert!(w.iter().all(|&b| b == 0));
    let mut w = w;
    w.as_bytes_mut().fill(0xcd);
    s.put_block(ObjectId(2), ObjectKind::Ciphertext, Durability::Scratch, w).unwrap();
    s.remove(ObjectId(2)).unwrap();
    // A writer that overwrites everything skips the zeroing: it sees the old bytes.
    let w = s.alloc_for_overwrite(K as u64).unwrap();
    assert_eq!(w.as_ptr(), ptr);
    assert!(w.iter().all(|&b| b == 0xcd));
    drop(w);
    // Freed memory never blocks room for something else: the whole budget is still usable.
    let big = s.alloc(8 * K as u64).unwrap();
    assert!(big.iter().all(|&b| b == 0));
    let st = s.stats();
    assert_eq!(
        (st.dram_in_use, st.dram_free_largest, st.dram_resident),
        (8 * K as u64, 0, 8 * K as u64)
    );
    drop(big);
}

#[test]
fn scratch_buffers_are_charged_to_the_budget_and_make_room_like_pins() {
    let (_d, s) = store(4 * K as u64, PolicyConfig::Lru, 0);
    for i in 1..=3 {
        let id = ObjectId(i);
        s.put(id, ObjectKind::Blob, Durability::Durable, &content(id, K)).unwrap();
    }
    // Two pages of scratch: one clean object (the least recently used) leaves DRAM.
    let mut t = s.scratch(2 * K as u64).unwrap();
    assert_eq!(s.residency(ObjectId(1)), Some(Residency::PmOnly));
    let st = s.stats();
    assert_eq!((st.dram_in_use, st.scratch_in_use), (4 * K as u64, 2 * K as u64));
    t.as_u64s_mut().iter_mut().enumerate().for_each(|(i, x)| *x = i as u64 + 7);
    assert_eq!(t.as_u64s()[10], 17);
    // Pins and scratch together are what cannot be evicted: no room for more.
    let (g2, g3) = (s.pin(ObjectId(2)).unwrap(), s.pin(ObjectId(3)).unwrap());
    match s.scratch(1) {
        Err(Error::PinnedSetTooLarge { id: None, requested, pinned, budget }) => {
            // Requested in whole pages, as the arena places it.
            assert_eq!((requested, pinned, budget), (K as u64, 4 * K as u64, 4 * K as u64));
        }
        other => panic!("expected PinnedSetTooLarge, got {other:?}"),
    }
    drop((g2, g3));
    // Dropped, the bytes go back; the next buffer of another size reuses the pages, zeroed
    // on request.
    let ptr = t.as_ptr();
    drop(t);
    let st = s.stats();
    assert_eq!(
        (st.dram_in_use, st.scratch_in_use, st.scratch_peak),
        (2 * K as u64, 0, 2 * K as u64)
    );
    let z = s.scratch_zeroed(K as u64 + 8).unwrap();
    assert_eq!(z.as_ptr(), ptr);
    assert!(z.iter().all(|&b| b == 0));
    drop(z);
    let g1 = s.pin(ObjectId(1)).unwrap();
    assert_eq!(&g1[..], &content(ObjectId(1), K)[..]);
    assert!(s.allocator_peak() <= 4 * K as u64);
}

#[test]
fn a_released_scratch_buffer_gives_its_bytes_back_until_it_is_reacquired() {
    let (_d, s) = store(4 * K as u64, PolicyConfig::Lru, 0);
    let mut t = s.scratch(2 * K as u64).unwrap();
    t.release();
    assert!(t.is_released());
    assert_eq!((t.len(), t.as_u64s().len(), t.is_empty()), (2 * K as u64, 0, false));
    let st = s.stats();
    assert_eq!((st.dram_in_use, st.scratch_in_use, st.scratch_peak), (0, 0, 2 * K as u64));
    // The released bytes hold objects meanwhile: all four pages.
    for i in 1..=4 {
        let id = ObjectId(i);
        s.put(id, ObjectKind::Blob, Durability::Durable, &content(id, K)).unwrap();
    }
    assert_eq!(s.stats().dram_in_use, 4 * K as u64);
    // Reacquired, it makes room like a new buffer: the two least recent objects leave.
    t.reacquire().unwrap();
    assert!(!t.is_released());
    assert_eq!(t.as_u64s().len(), 2 * K / 8);
    assert_eq!(s.residency(ObjectId(1)), Some(Residency::PmOnly));
    assert_eq!(s.residency(ObjectId(2)), Some(Residency::PmOnly));
    assert_eq!(s.stats().scratch_in_use, 2 * K as u64);
    t.as_u64s_mut().fill(9);
    // A second reacquire keeps the words it holds.
    t.reacquire().unwrap();
    assert!(t.as_u64s().iter().all(|&w| w == 9));
    // Released again, with the rest of the budget pinned it cannot come back: it stays
    // released, and the budget is unchanged.
    t.release();
    t.release();
    let pins: Vec<_> = (1..=4).map(|i| s.pin(ObjectId(i)).unwrap()).collect();
    assert!(matches!(t.reacquire(), Err(Error::PinnedSetTooLarge { id: None, .. })));
    assert!(t.is_released());
    let st = s.stats();
    assert_eq!((st.dram_in_use, st.scratch_in_use), (4 * K as u64, 0));
    drop(pins);
    t.reacquire().unwrap();
    drop(t);
    assert_eq!(s.stats().scratch_in_use, 0);
}

/// Objects written to the pool before the store opens it start PM-only.
fn prefilled(n: u64, len: usize) -> (tempfile::TempDir, Pool) {
    let dir = tempfile::tempdir().unwrap();
    let pool = file_pool(dir.path());
    for i in 0..n {
        let id = ObjectId(i);
        pool.put(id, ObjectKind::Blob, Durability::Durable, &content(id, len)).unwrap();
    }
    (dir, pool)
}

#[test]
fn prefetched_object_is_not_read_twice() {
    let (_d, pool) = prefilled(6, 64 * K);
    let s = TieredStore::builder()
        .dram_budget(4 * 64 * K as u64)
        .pool(pool)
        .policy(PolicyConfig::planned(PrefetchRule::Conservative))
        .migrator_threads(2)
        .build()
        .unwrap();
    let plan: Vec<ObjectId> = [0, 1, 2, 3, 0, 1].iter().map(|&i| ObjectId(i)).collect();
    s.hint(&plan);
    // Pin at once: the prefetches may still be in flight, and the pin must wait, not re-read.
    for id in &plan {
        let g = s.pin(*id).unwrap();
        assert_eq!(&g[..], &content(*id, 64 * K)[..]);
    }
    let st = s.stats();
    assert_eq!(st.pm_reads, 4, "each object crossed the PM link once: {st:?}");
    assert_eq!(st.prefetch_hits + st.hits + st.misses, 6);
    assert!(st.prefetch_hits >= 3, "{st:?}");
    assert_eq!(st.bytes_pm_to_dram, 4 * 64 * K as u64);
}

#[test]
fn failed_transfers_surface_on_the_pin_and_leave_objects_readable() {
    let (dev, fail_reads, fail_writes) = Flaky::new();
    let pool = Pool::create_on(Box::new(dev), opts()).unwrap();
    let (a, b, c) = (ObjectId(1), ObjectId(2), ObjectId(3));
    for id in [a, b] {
        pool.put(id, ObjectKind::Blob, Durability::Durable, &content(id, 16 * K)).unwrap();
    }
    let s = TieredStore::builder()
        .dram_budget(32 * K as u64)
        .pool(pool)
        .policy(PolicyConfig::planned(PrefetchRule::Conservative))
        .migrator_threads(1)
        .build()
        .unwrap();
    // A failed prefetch is reported to the pin that needed the object, once.
    fail_reads.store(true, Ordering::SeqCst);
    s.hint(&[a]);
    s.quiesce();
    assert_eq!(s.stats().transfer_failures, 1);
    assert!(matches!(
        s.pin(a),
        Err(Error::TransferFailed { id, direction: "pm->dram", .. }) if id == a
    ));
    assert_eq!(s.residency(a), Some(Residency::PmOnly));
    // A failed demand load errors its own pin.
    assert!(matches!(s.pin(b), Err(Error::TransferFailed { .. })));
    assert_eq!(s.stats().dram_in_use, 0, "failed loads returned their reservations");
    fail_reads.store(false, Ordering::SeqCst);
    assert_eq!(&s.pin(a).unwrap()[..], &content(a, 16 * K)[..]);
    assert_eq!(&s.pin(b).unwrap()[..], &content(b, 16 * K)[..]);
    // A failed write-back: scratch c must leave DRAM for a to come back, and cannot.
    // The plan needs c first, so it displaces a (clean, dropped for free) on put.
    s.hint(&[c, b, a]);
    s.put(c, ObjectKind::Ciphertext, Durability::Scratch, &content(c, 16 * K)).unwrap();
    fail_writes.store(true, Ordering::SeqCst);
    let gb = s.pin(b).unwrap();
    let err = s.pin(a);
    assert!(
        matches!(err, Err(Error::TransferFailed { id, direction: "dram->pm", .. }) if id == c),
        "{err:?}"
    );
    assert_eq!(s.residency(c), Some(Residency::DramOnly));
    assert_eq!(s.residency(a), Some(Residency::PmOnly));
    assert_eq!(&s.pin(c).unwrap()[..], &content(c, 16 * K)[..]);
    fail_writes.store(false, Ordering::SeqCst);
    drop(gb);
    assert_eq!(&s.pin(a).unwrap()[..], &content(a, 16 * K)[..]);
    assert!(s.stats().peak_dram <= 32 * K as u64);
}

#[test]
fn lru_warm_starts_free_dram_from_the_hint_and_never_evicts_for_it() {
    let (_d, pool) = prefilled(5, K);
    let s = TieredStore::builder()
        .dram_budget(3 * K as u64)
        .pool(pool)
        .policy(PolicyConfig::Lru)
        .migrator_threads(1)
        .build()
        .unwrap();
    // Object 4 is in DRAM already and not in the plan: the warm start leaves it alone.
    let g4 = s.pin(ObjectId(4)).unwrap();
    drop(g4);
    let plan: Vec<ObjectId> = [2, 0, 2, 1, 3].iter().map(|&i| ObjectId(i)).collect();
    s.hint(&plan);
    s.quiesce();
    // Free room for two objects: the first two of the plan by first use, nothing evicted.
    let res = |i| s.residency(ObjectId(i)).unwrap();
    assert_eq!(
        [res(2), res(0), res(1), res(3), res(4)],
        [Residency::Both, Residency::Both, Residency::PmOnly, Residency::PmOnly, Residency::Both]
    );
    let st = s.stats();
    assert_eq!((st.prefetches, st.evictions, st.bytes_pm_to_dram), (2, 0, 3 * K as u64));
    // Evictions stay reactive: the pin of 1 loads it on demand (the second miss, after 4's),
    // evicting the least recently used object, 4.
    for id in &plan[..4] {
        let g = s.pin(*id).unwrap();
        assert_eq!(&g[..], &content(*id, K)[..]);
    }
    s.quiesce();
    let st = s.stats();
    assert_eq!((st.prefetch_hits, st.misses, st.prefetches), (2, 2, 2));
    assert_eq!(s.residency(ObjectId(4)), Some(Residency::PmOnly));
    // Room freed later goes to the plan's object not used yet (3), not back to 4 (no plan).
    s.remove(ObjectId(2)).unwrap();
    s.quiesce();
    assert_eq!(s.stats().prefetches, 3);
    assert_eq!((res(3), res(4)), (Residency::Both, Residency::PmOnly));
}

/// Page faults the calling thread takes writing a fresh block of `len` bytes from `s`.
fn faults_writing_a_block(s: &TieredStore, len: u64) -> u64 {
    let before = hetier_allocator::usage::thread_minor_faults().unwrap();
    let mut w = s.alloc_for_overwrite(len).unwrap();
    for page in w.as_bytes_mut().chunks_mut(K) {
        page[0] = 1;
    }
    drop(w);
    hetier_allocator::usage::thread_minor_faults().unwrap() - before
}

#[test]
fn prefaulted_dram_serves_blocks_without_page_faults() {
    let budget = 8 << 20;
    let len = 6 << 20;
    // Without prefaulting, a first block faults in its 1536 pages.
    let (_d, s) = store(budget, PolicyConfig::Lru, 0);
    assert!(faults_writing_a_block(&s, len) >= 1000);
    // Prefaulted, the whole budget is faulted in once and the block takes none.
    let (_d, s) = store(budget, PolicyConfig::Lru, 0);
    assert_eq!(s.prefault_dram().unwrap(), budget);
    assert_eq!(s.stats().dram_faulted, budget);
    assert!(faults_writing_a_block(&s, len) <= 8);
    assert_eq!(s.stats().dram_faulted, budget);
    // Nothing is left charged: the whole budget is still there for objects.
    s.put(ObjectId(1), ObjectKind::Blob, Durability::Scratch, &content(ObjectId(1), 7 << 20))
        .unwrap();
}

/// Two pins of one object that is in the pool only, both waiting for room held by a
/// write-back: the first to get the room loads and pins it, and the second takes that copy.
/// Before, the second failed with `PinnedSetTooLarge` though the budget held every pinned
/// object once (it counted the first pin's copy against its own request).
#[test]
fn two_pins_waiting_for_the_same_absent_object_share_one_copy() {
    let len = 16 * K;
    let (dev, _, _) = Flaky::new();
    let gate = std::sync::Arc::clone(&dev.gate);
    let pool = Pool::create_on(Box::new(dev), opts()).unwrap();
    let s = TieredStore::builder()
        .dram_budget(2 * len as u64)
        .pool(pool)
        .policy(PolicyConfig::Lru)
        .build()
        .unwrap();
    let (x, w, scratch) = (ObjectId(1), ObjectId(2), ObjectId(3));
    s.put(x, ObjectKind::Blob, Durability::Durable, &content(x, len)).unwrap();
    s.put(w, ObjectKind::Blob, Durability::Durable, &content(w, len)).unwrap();
    let held = s.pin(w).unwrap();
    // The scratch object displaces x (clean, in the pool) and can only leave by a write-back.
    s.put(scratch, ObjectKind::Ciphertext, Durability::Scratch, &content(scratch, len)).unwrap();
    assert_eq!(s.residency(x), Some(Residency::PmOnly));
    gate.close();
    std::thread::scope(|t| {
        let pins: Vec<_> = (0..2)
            .map(|_| {
                t.spawn(|| {
                    let g = s.pin(x)?;
                    assert_eq!(&g[..], &content(x, len)[..]);
                    Ok::<_, Error>(())
                })
            })
            .collect();
        // Both pins are waiting for room (the write-back is held at the gate).
        while gate.blocked.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        gate.open();
        for p in pins {
            p.join().unwrap().unwrap();
        }
    });
    drop(held);
    let st = s.stats();
    assert!(st.peak_dram <= 2 * len as u64);
    assert_eq!(st.pm_reads, 1, "one copy of x was read");
}
