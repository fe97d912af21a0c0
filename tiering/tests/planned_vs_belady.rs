//! The planned policy's eviction equals Belady/MIN on hand-checked traces (equal-sized
//! objects, cache of k objects). With prefetch on, the victim of a prefetch issued while an
//! object is pinned is chosen among the unpinned ones (one slot rotates for the transfer), so
//! its PM reads lie between MIN's with k slots and MIN's with k − 1.

mod common;

use std::collections::HashMap;

use common::{content, file_pool};
use hetier_tiering::belady::simulate_min;
use hetier_tiering::{Durability, ObjectId, ObjectKind, PolicyConfig, PrefetchRule, TieredStore};

const LEN: usize = 4096;

fn ids(v: &[u64]) -> Vec<ObjectId> {
    v.iter().map(|&i| ObjectId(i)).collect()
}

/// Replays `seq` one pin at a time on a store whose objects all start in PM; returns how many
/// PM reads happened and at which positions a pin found its object missing.
fn replay(seq: &[ObjectId], slots: u64, prefetch: bool) -> (u64, Vec<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let pool = file_pool(dir.path());
    let mut distinct = seq.to_vec();
    distinct.sort();
    distinct.dedup();
    for id in &distinct {
        pool.put(*id, ObjectKind::Blob, Durability::Durable, &content(*id, LEN)).unwrap();
    }
    let s = TieredStore::builder()
        .dram_budget(slots * LEN as u64)
        .pool(pool)
        .policy(if prefetch {
            PolicyConfig::planned(PrefetchRule::Conservative)
        } else {
            PolicyConfig::planned_without_prefetch()
        })
        .migrator_threads(if prefetch { 1 } else { 0 })
        .build()
        .unwrap();
    s.hint(seq);
    let mut misses = Vec::new();
    for (t, id) in seq.iter().enumerate() {
        s.quiesce();
        let before = s.stats().misses;
        let g = s.pin(*id).unwrap();
        assert_eq!(&g[..], &content(*id, LEN)[..]);
        if s.stats().misses > before {
            misses.push(t);
        }
    }
    s.quiesce();
    (s.stats().pm_reads, misses)
}

fn lens(seq: &[ObjectId]) -> HashMap<ObjectId, u64> {
    seq.iter().map(|&i| (i, LEN as u64)).collect()
}

#[test]
fn textbook_trace_three_slots() {
    // Hand-checked: MIN faults at positions 0 1 2 3 5 7 10 13 17 (9 faults) on this string.
    let seq = ids(&[7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1]);
    let min = simulate_min(&seq, &lens(&seq), 3 * LEN as u64);
    assert_eq!(min.misses, vec![0, 1, 2, 3, 5, 7, 10, 13, 17]);
    let (reads, misses) = replay(&seq, 3, false);
    assert_eq!(misses, min.misses);
    assert_eq!(reads, 9);
    let (reads, _) = replay(&seq, 3, true);
    let min2 = simulate_min(&seq, &lens(&seq), 2 * LEN as u64).misses.len() as u64;
    assert!((9..=min2).contains(&reads), "prefetch reads {reads} outside [9, {min2}]");
}

#[test]
fn cyclic_keys_where_lru_always_misses() {
    // 4 keys cycled through 3 slots: MIN misses 0 1 2 3 6 9 (hand-checked: after warm-up it
    // keeps two keys and rotates the third slot), LRU misses every access.
    let seq = ids(&[1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]);
    let min = simulate_min(&seq, &lens(&seq), 3 * LEN as u64);
    assert_eq!(min.misses, vec![0, 1, 2, 3, 6, 9]);
    let (reads, misses) = replay(&seq, 3, false);
    assert_eq!((reads, misses), (6, min.misses.clone()));
    let (reads, misses) = replay(&seq, 3, true);
    let min2 = simulate_min(&seq, &lens(&seq), 2 * LEN as u64).misses.len() as u64;
    assert!((6..=min2).contains(&reads), "prefetch reads {reads} outside [6, {min2}]");
    assert!(misses.is_empty(), "prefetch should hide every load: {misses:?}");
}

#[test]
fn two_slots_with_a_long_gap() {
    // Hand-checked with 2 slots: a b a c a b → misses at 0 1 3 5 (c evicts b, the later one;
    // b evicts c or a, both never used again... MIN evicts the farthest: a and c unused → a).
    let seq = ids(&[10, 11, 10, 12, 10, 11]);
    let min = simulate_min(&seq, &lens(&seq), 2 * LEN as u64);
    assert_eq!(min.misses, vec![0, 1, 3, 5]);
    let (_, misses) = replay(&seq, 2, false);
    assert_eq!(misses, min.misses);
}
