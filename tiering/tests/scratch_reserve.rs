//! Scratch borrowed step after step beside a plan: a standing reservation
//! (`TieredStore::reserve_scratch`) keeps it from evicting prefetched objects, and the store's
//! guard bounds what plain per-step scratch can make the prefetcher read (the
//! prefetch-evict-prefetch livelock `hetier run --model cryptonets --dram-mib 32` once fell into).

mod common;

use common::{content, store};
use hetier_tiering::{Durability, ObjectId, ObjectKind, PolicyConfig, PrefetchRule, TieredStore};

const K: u64 = 4096;

/// `n` durable one-page objects, all in the pool and none in DRAM once the store is reopened
/// by the caller's plan (they are evicted by the budget as they are put).
fn put_objects(s: &TieredStore, n: u64) -> Vec<ObjectId> {
    let ids: Vec<ObjectId> = (1..=n).map(ObjectId).collect();
    for &id in &ids {
        s.put(id, ObjectKind::Blob, Durability::Durable, &content(id, K as usize)).unwrap();
    }
    ids
}

#[test]
fn a_reservation_is_charged_once_and_lends_without_evicting() {
    let (_d, s) = store(8 * K, PolicyConfig::Lru, 0);
    let ids = put_objects(&s, 4);
    let r = s.reserve_scratch(3 * K).unwrap();
    let st = s.stats();
    assert_eq!((st.scratch_reserved, st.dram_in_use, st.evictions), (3 * K, 7 * K, 0));
    // One more object fills the budget; lending the reservation evicts nothing, again and
    // again, at any size within it.
    s.put(ObjectId(9), ObjectKind::Blob, Durability::Durable, &content(ObjectId(9), K as usize))
        .unwrap();
    for len in [3 * K, K + 8, 2 * K, 1] {
        let a = r.scratch(len).unwrap();
        assert_eq!(a.len(), len);
        drop(a);
    }
    {
        let (a, b) = (r.scratch(2 * K).unwrap(), r.scratch_zeroed(K).unwrap());
        assert!(b.iter().all(|&x| x == 0));
        let st = s.stats();
        assert_eq!((st.evictions, st.scratch_in_use, st.dram_in_use), (0, 3 * K, 8 * K));
        // Beyond the reservation: made room for like a pin (one object leaves).
        let c = r.scratch(K).unwrap();
        let st = s.stats();
        assert_eq!((st.evictions, st.scratch_beyond_reserve, st.dram_in_use), (1, 1, 8 * K));
        drop((a, b, c));
    }
    assert_eq!(s.stats().dram_in_use, 7 * K);
    // A buffer may outlive its reservation: it is then an ordinary scratch buffer.
    let late = r.scratch(K).unwrap();
    drop(r);
    let st = s.stats();
    assert_eq!((st.scratch_reserved, st.dram_in_use, st.scratch_in_use), (0, 5 * K, K));
    drop(late);
    assert_eq!(s.stats().dram_in_use, 4 * K);
    // Pins leave no room: the reservation fails like a pin would, nothing is charged.
    let guards: Vec<_> = ids.iter().map(|&id| s.pin(id).unwrap()).collect();
    assert!(s.reserve_scratch(5 * K).is_err());
    drop(guards);
    assert!(s.stats().scratch_reserved == 0 && s.stats().dram_in_use <= 8 * K);
    assert!(s.allocator_peak() <= 8 * K);
}

/// The plan: `objects` one-page objects pinned in a cycle `rounds` times; each step borrows
/// `borrows` scratch buffers of `scratch` bytes while its object is pinned.
struct Shape {
    budget: u64,
    objects: u64,
    rounds: usize,
    borrows: usize,
    scratch: u64,
}

/// Runs `shape` under `planned` with two migrator threads and returns the store's stats.
/// With `reserve`, the scratch comes from one reservation held for the run.
fn run(shape: &Shape, reserve: bool) -> hetier_tiering::StoreStats {
    let (_d, s) = store(shape.budget, PolicyConfig::planned(PrefetchRule::Conservative), 2);
    let ids = put_objects(&s, shape.objects);
    s.quiesce();
    let plan: Vec<ObjectId> = (0..shape.rounds).flat_map(|_| ids.iter().copied()).collect();
    let room = reserve.then(|| s.reserve_scratch(shape.scratch).unwrap());
    let before = s.stats();
    s.hint(&plan);
    for &id in &plan {
        let g = s.pin(id).unwrap();
        assert_eq!(&g[..], &content(id, K as usize)[..]);
        for _ in 0..shape.borrows {
            let mut b = match &room {
                Some(r) => r.scratch(shape.scratch).unwrap(),
                None => s.scratch(shape.scratch).unwrap(),
            };
            b[0] = 1;
        }
        drop(g);
    }
    drop(room);
    s.quiesce();
    let mut st = s.stats();
    st.bytes_pm_to_dram -= before.bytes_pm_to_dram;
    st.prefetch_evicted_unused -= before.prefetch_evicted_unused;
    assert!(st.peak_dram <= shape.budget && s.allocator_peak() <= shape.budget);
    st
}

/// The livelock's shape at small size: every step's scratch takes all the room but the pinned
/// object, so it evicts whatever was prefetched for the next steps, and each buffer's release
/// lets the prefetcher fetch it all again while the borrow waits for the fetches in flight.
/// Without a guard this read 639,053 pages (2.6 GB) for 36 pins before it ended, 10 s (at
/// 32 MiB in CryptoNets it did not end). The guard — nothing prefetched and evicted unused is fetched
/// again before the next pin — bounds what is read between two pins by the plan's distinct
/// objects.
#[test]
fn per_step_scratch_cannot_make_the_prefetcher_loop() {
    let shape = Shape { budget: 10 * K, objects: 12, rounds: 3, borrows: 40, scratch: 9 * K };
    let st = run(&shape, false);
    let pins = shape.objects * shape.rounds as u64;
    // The guarantee: a pin's own read plus each object at most once between two pins.
    assert!(st.bytes_pm_to_dram <= pins * (shape.objects + 1) * K, "{st:?}");
    assert!(st.prefetch_evicted_unused <= pins * shape.objects, "{st:?}");
}

/// The same steps with their scratch reserved once for the run: no prefetched object is ever
/// evicted unused, and the pool is read at most once per pin.
#[test]
fn a_standing_reservation_keeps_prefetched_objects_until_their_use() {
    let shape = Shape { budget: 12 * K, objects: 12, rounds: 3, borrows: 40, scratch: 9 * K };
    let st = run(&shape, true);
    let pins = shape.objects * shape.rounds as u64;
    assert_eq!(st.prefetch_evicted_unused, 0, "{st:?}");
    assert!(st.bytes_pm_to_dram <= pins * K, "{st:?}");
    assert_eq!(st.scratch_beyond_reserve, 0, "{st:?}");
    assert!(st.prefetch_hits > 0, "{st:?}");
}
