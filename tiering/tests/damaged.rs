//! A damaged object in the pool is a typed error naming the object, by demand load and by
//! prefetch alike, and removing it lets the same id be written again.

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;

use common::{content, opts};
use hetier_tiering::{
    Durability, Error, ObjectId, ObjectKind, PolicyConfig, Pool, PrefetchRule, TieredStore,
};

const K: usize = 4096;

fn open(dir: &Path, threads: usize) -> TieredStore {
    TieredStore::builder()
        .dram_budget(4 * K as u64)
        .pool(Pool::open(dir, opts()).unwrap().0)
        .policy(PolicyConfig::planned(PrefetchRule::Conservative))
        .migrator_threads(threads)
        .build()
        .unwrap()
}

/// A pool holding durable objects 1 and 2 with one bit of object 1 flipped.
fn damaged_pool(dir: &Path) {
    let pool = Pool::create(dir, opts()).unwrap();
    for id in [ObjectId(1), ObjectId(2)] {
        pool.put(id, ObjectKind::Blob, Durability::Durable, &content(id, K)).unwrap();
    }
    let (seg, at) = (pool.superblock().segment_size, pool.meta(ObjectId(1)).unwrap().offset.0);
    drop(pool);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(format!("segment-{:06}.hpool", at / seg)))
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at % seg + 100).unwrap();
    f.write_all_at(&[b[0] ^ 4], at % seg + 100).unwrap();
}

#[test]
fn a_damaged_object_is_a_typed_error_on_demand_and_after_a_prefetch() {
    for threads in [0, 2] {
        let dir = tempfile::tempdir().unwrap();
        damaged_pool(dir.path());
        let s = open(dir.path(), threads);
        // With migrator threads the hint prefetches object 1 and its failure waits for the pin.
        s.hint(&[ObjectId(1), ObjectId(2)]);
        s.quiesce();
        match s.pin(ObjectId(1)) {
            Err(Error::Damaged { id, stored, computed }) => {
                assert_eq!(id, ObjectId(1));
                assert_ne!(stored, computed);
            }
            other => panic!("threads {threads}: expected Damaged, got {:?}", other.err()),
        }
        assert_eq!(&s.pin(ObjectId(2)).unwrap()[..], &content(ObjectId(2), K)[..]);
        // Replacing it: remove, then put good bytes under the same id.
        s.remove(ObjectId(1)).unwrap();
        let good = content(ObjectId(1), K);
        s.put(ObjectId(1), ObjectKind::Blob, Durability::Durable, &good).unwrap();
        drop(s);
        let s = open(dir.path(), threads);
        assert_eq!(&s.pin(ObjectId(1)).unwrap()[..], &good[..]);
    }
}

/// Display of `e` and of every source below it, joined as anyhow's `{:#}` does.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out = format!("{out}: {s}");
        cur = s.source();
    }
    out
}

#[test]
fn an_allocator_error_is_said_once_down_the_chain() {
    let inner = hetier_allocator::Error::DataChecksum { id: ObjectId(7), stored: 1, computed: 2 };
    let text = chain(&Error::from(inner));
    assert_eq!(text.matches("checksum mismatch").count(), 1, "{text}");
}
