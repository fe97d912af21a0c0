//! Request streams: per-request plans merged by the planned policy, pins counted per request,
//! cancellation, and scopes that end cleanly.

mod common;

use std::sync::Barrier;

use common::{content, store};
use hetier_tiering::{
    Cancel, Durability, Error, ObjectId, ObjectKind, PolicyConfig, PrefetchRule, StreamId,
};

const K: usize = 4096;

#[test]
fn a_scope_counts_its_own_pins_and_a_cancelled_one_stops_pinning() {
    let (_d, s) = store(8 * K as u64, PolicyConfig::Lru, 0);
    let (a, b) = (ObjectId(1), ObjectId(2));
    for id in [a, b] {
        s.put(id, ObjectKind::Blob, Durability::Durable, &content(id, K)).unwrap();
    }
    assert!(matches!(
        s.stream(StreamId::DEFAULT, Cancel::new(), 0),
        Err(Error::StreamInUse { stream: StreamId(0) })
    ));
    let cancel = Cancel::new();
    {
        let scope = s.stream(StreamId(7), cancel.clone(), 0).unwrap();
        assert!(matches!(s.stream(StreamId(7), Cancel::new(), 0), Err(Error::StreamInUse { .. })));
        assert_eq!(s.stats().open_streams, 1);
        drop(s.pin(a).unwrap());
        drop(s.pin(b).unwrap());
        assert_eq!(scope.stats().hits, 2);
        // A pin on another thread is not this scope's.
        std::thread::scope(|t| {
            t.spawn(|| drop(s.pin(a).unwrap()));
        });
        assert_eq!(scope.stats().hits, 2);
        cancel.cancel();
        assert!(matches!(s.pin(a), Err(Error::Cancelled { stream: StreamId(7) })));
    }
    // The scope ended: the stream is gone and pins outside it work again.
    assert_eq!(s.stats().open_streams, 0);
    drop(s.pin(a).unwrap());
    let scope = s.stream(StreamId(7), Cancel::new(), 0).unwrap();
    assert_eq!(scope.stats(), Default::default());
}

/// Two requests run side by side, one step each in turn, over shared objects (keys) and
/// their own: the planned policy prefetches for both from their merged plans, and nothing
/// prefetched is evicted before its use.
#[test]
fn interleaved_streams_are_both_prefetched_for_and_nothing_prefetched_is_wasted() {
    let (_d, s) = store(6 * K as u64, PolicyConfig::planned(PrefetchRule::Conservative), 1);
    let id = |i: u64| ObjectId(i);
    let own = |r: u64| (0..4).map(move |i| id(100 * r + i)).collect::<Vec<_>>();
    let shared: Vec<_> = (0..4).map(|i| id(900 + i)).collect();
    let all: Vec<_> = own(1).into_iter().chain(own(2)).chain(shared.clone()).collect();
    for &o in &all {
        s.put(o, ObjectKind::Blob, Durability::Durable, &content(o, K)).unwrap();
    }
    let barrier = Barrier::new(2);
    let results: Vec<_> = std::thread::scope(|t| {
        let handles: Vec<_> = [1u64, 2]
            .map(|r| {
                let (s, barrier, shared) = (&s, &barrier, &shared);
                t.spawn(move || {
                    let scope = s.stream(StreamId(r), Cancel::new(), K as u64).unwrap();
                    let plan: Vec<_> = own(r)
                        .into_iter()
                        .zip(shared.iter().copied())
                        .flat_map(|(a, b)| [a, b])
                        .collect();
                    s.hint(&plan);
                    barrier.wait();
                    for &o in &plan {
                        let g = s.pin(o).unwrap();
                        assert_eq!(&g[..], &content(o, K)[..]);
                        drop(g);
                        barrier.wait();
                    }
                    scope.stats()
                })
            })
            .into();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let st = s.stats();
    for (r, c) in results.iter().enumerate() {
        assert!(c.prefetches > 0, "nothing was prefetched for request {}: {c:?}", r + 1);
        assert_eq!(c.hits + c.misses + c.prefetch_hits, 8, "{c:?}");
    }
    assert!(st.prefetches > 0);
    assert_eq!(st.prefetch_evicted_unused, 0, "{st:?}");
    assert_eq!(st.open_streams, 0);
    assert_eq!(st.policy.unwrap().planned_ahead, Some(0), "ended streams leave no plan");
}

/// One request (B) has its next objects prefetched and then sits in a long step while another
/// (A) runs ahead over objects it reuses. A's next objects then look sooner, in merged time,
/// than B's, and MIN on those times would evict B's prefetched objects before B uses them.
/// They must stay: A's prefetches wait, and A's misses evict A's own objects.
#[test]
fn a_request_running_ahead_never_evicts_what_was_prefetched_for_a_stalled_one() {
    let k = K as u64;
    let budget = 6 * k;
    let (_d, s) = store(budget, PolicyConfig::planned(PrefetchRule::Conservative), 1);
    let id = |i: u64| ObjectId(i);
    // Objects never planned fill DRAM first, so the planned ones start in PM only.
    let decoys: Vec<_> = (100..106).map(id).collect();
    let b_plan: Vec<_> = (1..4).map(id).collect();
    let a_plan: Vec<_> = [11, 12, 13, 14, 11, 12, 13, 14, 11, 12, 13, 14].map(id).into();
    for &o in decoys.iter().chain(&b_plan).chain(&a_plan[..4]) {
        s.put(o, ObjectKind::Blob, Durability::Durable, &content(o, K)).unwrap();
    }
    let (b_planned, a_done) = (Barrier::new(2), Barrier::new(2));
    let (a, b) = std::thread::scope(|t| {
        let stalled = t.spawn(|| {
            let scope = s.stream(StreamId(2), Cancel::new(), k).unwrap();
            s.hint(&b_plan);
            s.quiesce();
            b_planned.wait();
            a_done.wait();
            for &o in &b_plan {
                assert_eq!(&s.pin(o).unwrap()[..], &content(o, K)[..]);
            }
            scope.stats()
        });
        b_planned.wait();
        let scope = s.stream(StreamId(1), Cancel::new(), k).unwrap();
        s.hint(&a_plan);
        for &o in &a_plan {
            s.quiesce();
            assert_eq!(&s.pin(o).unwrap()[..], &content(o, K)[..]);
        }
        let a = scope.stats();
        drop(scope);
        a_done.wait();
        (a, stalled.join().unwrap())
    });
    let st = s.stats();
    assert_eq!(b.prefetches, 3, "{b:?}");
    assert_eq!(b.prefetch_hits, 3, "what was prefetched for B stayed: {b:?}");
    assert!(a.prefetches > 0, "{a:?}");
    assert_eq!(st.prefetch_evicted_unused, 0, "{st:?}");
    assert!(st.peak_dram <= budget);
}
