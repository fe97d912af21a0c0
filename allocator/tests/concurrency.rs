//! Many threads putting, reading and removing at once on one pool (both file backends), checked
//! against what each thread knows it stored, then after a reopen.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{disk_dir, pattern};
use hetier_allocator::{Backend, Durability, Error, ObjectId, ObjectKind, Pool, PoolOptions};

#[test]
fn concurrent_put_read_remove_from_many_threads() {
    for backend in [Backend::Mmap, Backend::Direct] {
        let dir = disk_dir();
        let opts = PoolOptions::default()
            .backend(backend)
            .segment_size(1 << 20)
            .table_slots(512)
            .max_pool_bytes(256 << 20);
        let pool = Arc::new(Pool::create(dir.path(), opts).unwrap());
        let reads = Arc::new(AtomicU64::new(0));
        const THREADS: u64 = 6;
        const PER: u64 = 60;
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let pool = Arc::clone(&pool);
                let reads = Arc::clone(&reads);
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..PER {
                        let id = t * 1000 + i;
                        let len = 1 + ((id * 7919) % 200_000) as usize;
                        let d = if i % 3 == 0 { Durability::Scratch } else { Durability::Durable };
                        pool.put(ObjectId(id), ObjectKind::Ciphertext, d, &pattern(id, len))
                            .unwrap();
                        mine.push((id, len));
                        // Read someone else's objects too: either absent/removed or intact.
                        let other = ((t + 1) % THREADS) * 1000 + i / 2;
                        match pool.get(ObjectId(other)) {
                            Ok(v) => {
                                let olen = 1 + ((other * 7919) % 200_000) as usize;
                                assert_eq!(v, pattern(other, olen));
                                reads.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(Error::NotFound { .. }) => {}
                            Err(e) => panic!("{e}"),
                        }
                        if i % 4 == 3 {
                            let (rid, _) = mine.remove(0);
                            pool.remove(ObjectId(rid)).unwrap();
                        }
                    }
                    for (id, len) in &mine {
                        let mut buf = vec![0u8; *len];
                        assert_eq!(pool.read_into(ObjectId(*id), &mut buf).unwrap(), *len);
                        assert_eq!(buf, pattern(*id, *len));
                    }
                });
            }
        });
        assert!(reads.load(Ordering::Relaxed) > 0, "threads never saw each other's objects");
        let s = pool.stats();
        assert_eq!(s.used_bytes + s.free_bytes, s.data_bytes);
        assert_eq!(s.durable_objects + s.scratch_objects, THREADS * (PER - PER / 4));
        assert!(pool.fsck().unwrap().is_clean());
        let durable: Vec<_> =
            pool.list().into_iter().filter(|m| m.durability == Durability::Durable).collect();
        drop(pool);
        let (pool, report) = Pool::open(dir.path(), opts).unwrap();
        assert_eq!(pool.list(), durable);
        assert_eq!(report.durable_objects, durable.len() as u64);
        for m in durable {
            assert_eq!(pool.get(m.id).unwrap(), pattern(m.id.0, m.len as usize));
        }
    }
}

#[test]
fn concurrent_puts_of_one_id_admit_exactly_one() {
    let dir = disk_dir();
    let pool = Pool::create(dir.path(), common::small(Backend::Mmap)).unwrap();
    let ok = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..8u8 {
            let pool = &pool;
            let ok = &ok;
            s.spawn(move || {
                match pool.put(ObjectId(7), ObjectKind::Blob, Durability::Durable, &[t; 3000]) {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(Error::ObjectExists { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            });
        }
    });
    assert_eq!(ok.load(Ordering::Relaxed), 1);
    let v = pool.get(ObjectId(7)).unwrap();
    assert!(v.iter().all(|&b| b == v[0]));
}

#[test]
fn a_reader_keeps_a_removed_objects_extent_until_it_is_done() {
    // Removing while another thread reads must not let a new put reuse the extent under it.
    let dir = disk_dir();
    let pool = Pool::create(dir.path(), common::small(Backend::Mmap)).unwrap();
    let data = pattern(1, 900_000);
    for round in 0..20u64 {
        let id = ObjectId(round);
        pool.put(id, ObjectKind::Blob, Durability::Scratch, &data).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| match pool.get(id) {
                Ok(v) => assert_eq!(v, data),
                Err(Error::NotFound { .. }) => {}
                Err(e) => panic!("{e}"),
            });
            s.spawn(|| {
                pool.remove(id).unwrap();
                let junk = vec![0xAAu8; 900_000];
                pool.put(ObjectId(1000 + round), ObjectKind::Blob, Durability::Scratch, &junk)
                    .unwrap();
                pool.remove(ObjectId(1000 + round)).unwrap();
            });
        });
    }
}
