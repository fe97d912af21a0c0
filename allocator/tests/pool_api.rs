//! The pool's public behaviour on both file backends: round trips, reopen, typed errors for bad
//! input, and mmap vs direct agreement.

mod common;

use common::{disk_dir, pattern, small};
use hetier_allocator::{
    Backend, DramTier, Durability, Error, ObjectId, ObjectKind, Pool, PoolOptions,
};

const BACKENDS: [Backend; 2] = [Backend::Mmap, Backend::Direct];

#[test]
fn put_get_remove_round_trip_on_both_backends() {
    for backend in BACKENDS {
        let dir = disk_dir();
        let pool = Pool::create(dir.path(), small(backend)).unwrap();
        let sizes = [1usize, 100, 4095, 4096, 4097, 300_000, 1 << 20, (3 << 20) + 17];
        for (i, &len) in sizes.iter().enumerate() {
            let id = ObjectId(i as u64 + 10);
            pool.put(id, ObjectKind::Ciphertext, Durability::Durable, &pattern(id.0, len)).unwrap();
        }
        for (i, &len) in sizes.iter().enumerate() {
            let id = ObjectId(i as u64 + 10);
            assert_eq!(pool.get(id).unwrap(), pattern(id.0, len), "{backend:?} len {len}");
            let m = pool.meta(id).unwrap();
            assert_eq!(m.len, len as u64);
            assert_eq!(m.offset.0 % 4096, 0);
        }
        assert_eq!(pool.list().len(), sizes.len());
        let stats = pool.stats();
        assert_eq!(stats.durable_objects, sizes.len() as u64);
        assert_eq!(stats.used_bytes + stats.free_bytes, stats.data_bytes);
        assert!(stats.pool_bytes > 1 << 20, "pool must have grown past one segment");
        pool.remove(ObjectId(10)).unwrap();
        assert!(matches!(pool.get(ObjectId(10)), Err(Error::NotFound { id: ObjectId(10) })));
        assert!(pool.fsck().unwrap().is_clean());
    }
}

#[test]
fn reopen_keeps_durable_drops_scratch_and_reports_it() {
    for backend in BACKENDS {
        let dir = disk_dir();
        let opts = small(backend);
        let key = ObjectKind::EvalKey { galois_element: 25, level: 7, digit: 2 };
        {
            let pool = Pool::create(dir.path(), opts).unwrap();
            pool.put(ObjectId(1), key, Durability::Durable, &pattern(1, 50_000)).unwrap();
            pool.put(ObjectId(2), ObjectKind::Ciphertext, Durability::Scratch, &pattern(2, 9000))
                .unwrap();
            pool.put(ObjectId(3), ObjectKind::Plaintext, Durability::Durable, &pattern(3, 10))
                .unwrap();
            pool.remove(ObjectId(3)).unwrap();
        }
        let (pool, report) = Pool::open(dir.path(), opts).unwrap();
        assert_eq!(report.durable_objects, 1);
        assert_eq!(report.durable_bytes, 50_000);
        // mmap writes reach the file through the page cache even unflushed; direct writes go
        // to the file at once. Either way the scratch record is found and dropped.
        assert_eq!(report.dropped_scratch.len(), 1, "{backend:?}");
        assert_eq!(report.dropped_scratch[0].id, ObjectId(2));
        assert_eq!(pool.get(ObjectId(1)).unwrap(), pattern(1, 50_000));
        assert_eq!(pool.meta(ObjectId(1)).unwrap().kind, key);
        assert!(pool.meta(ObjectId(2)).is_none());
        assert!(pool.meta(ObjectId(3)).is_none());
        let s = pool.stats();
        assert_eq!(s.used_bytes + s.free_bytes, s.data_bytes);
        assert_eq!(s.used_bytes, 53_248);
        drop(pool);
        // The dropped record was erased durably: a second reopen finds nothing to drop.
        let (_, again) = Pool::open(dir.path(), opts).unwrap();
        assert!(again.dropped_scratch.is_empty());
    }
}

#[test]
fn mmap_and_direct_backends_agree_byte_for_byte() {
    let dir = disk_dir();
    let opts = small(Backend::Mmap);
    let pool = Pool::create(dir.path(), opts).unwrap();
    let lens = [1usize, 777, 8192, 123_457, 2 << 20];
    for (i, &len) in lens.iter().enumerate() {
        pool.put(
            ObjectId(i as u64),
            ObjectKind::Blob,
            Durability::Durable,
            &pattern(i as u64, len),
        )
        .unwrap();
    }
    pool.remove(ObjectId(1)).unwrap();
    let mmap_view: Vec<_> = pool.list().iter().map(|m| (*m, pool.get(m.id).unwrap())).collect();
    let mmap_stats = pool.stats();
    drop(pool);
    let (direct, _) = Pool::open(dir.path(), opts.backend(Backend::Direct)).unwrap();
    let direct_view: Vec<_> =
        direct.list().iter().map(|m| (*m, direct.get(m.id).unwrap())).collect();
    assert_eq!(mmap_view, direct_view);
    assert_eq!(mmap_stats, direct.stats());
    // And the other way round: what direct writes, mmap reads.
    direct.put(ObjectId(99), ObjectKind::Blob, Durability::Durable, &pattern(99, 50_001)).unwrap();
    drop(direct);
    let (mmap, _) = Pool::open(dir.path(), opts).unwrap();
    assert_eq!(mmap.get(ObjectId(99)).unwrap(), pattern(99, 50_001));
}

#[test]
fn read_into_a_dram_block_without_copy_on_both_backends() {
    let tier = DramTier::new(8 << 20).unwrap();
    for backend in BACKENDS {
        let dir = disk_dir();
        let pool = Pool::create(dir.path(), small(backend)).unwrap();
        let data = pattern(5, (2 << 20) + 4096 * 3 + 5);
        pool.put(ObjectId(5), ObjectKind::Ciphertext, Durability::Scratch, &data).unwrap();
        let mut block = tier.alloc(data.len() + 100).unwrap();
        let n = pool.read_into(ObjectId(5), &mut block).unwrap();
        assert_eq!(n, data.len());
        assert_eq!(&block[..n], &data[..]);
        let mut small_buf = vec![0u8; 10];
        assert!(matches!(
            pool.read_into(ObjectId(5), &mut small_buf),
            Err(Error::BufferTooSmall { needed, got: 10, .. }) if needed == data.len() as u64
        ));
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let dir = disk_dir();
    let opts = small(Backend::Mmap);
    let pool = Pool::create(dir.path(), opts).unwrap();
    let k = ObjectKind::Blob;
    let d = Durability::Durable;
    assert!(matches!(
        pool.put(ObjectId(1), k, d, &[]),
        Err(Error::EmptyObject { id: ObjectId(1) })
    ));
    let max = pool.max_object_len();
    assert_eq!(max, (16 << 20) - pool.superblock().data_offset());
    let big = vec![0u8; max as usize + 1];
    assert!(matches!(
        pool.put(ObjectId(2), k, d, &big),
        Err(Error::ObjectTooLarge { len, max: m, .. }) if len == max + 1 && m == max
    ));
    pool.put(ObjectId(3), k, d, b"abc").unwrap();
    assert!(matches!(pool.put(ObjectId(3), k, d, b"x"), Err(Error::ObjectExists { .. })));
    pool.remove(ObjectId(3)).unwrap();
    assert!(matches!(pool.remove(ObjectId(3)), Err(Error::NotFound { .. })));
    assert!(matches!(pool.get(ObjectId(3)), Err(Error::NotFound { .. })));
    assert!(matches!(pool.read_into(ObjectId(3), &mut [0u8; 8]), Err(Error::NotFound { .. })));
    // The whole pool can hold one max-size object; a second one does not fit.
    pool.put(ObjectId(4), k, d, &vec![7u8; max as usize]).unwrap();
    assert!(matches!(pool.put(ObjectId(5), k, d, b"y"), Err(Error::PoolFull { .. })));
    pool.remove(ObjectId(4)).unwrap();
    pool.put(ObjectId(5), k, d, b"y").unwrap();
    // Table full.
    for i in 0..63 {
        pool.put(ObjectId(100 + i), k, Durability::Scratch, b"z").unwrap();
    }
    assert!(matches!(pool.put(ObjectId(999), k, d, b"z"), Err(Error::TableFull { slots: 64 })));
    // Invalid geometry.
    let bad = PoolOptions::default().segment_size(4096).table_slots(64);
    assert!(matches!(Pool::create(disk_dir().path(), bad), Err(Error::InvalidOptions { .. })));
    // Creating over an existing pool.
    drop(pool);
    assert!(matches!(Pool::create(dir.path(), opts), Err(Error::AlreadyExists { .. })));
    // Opening an empty directory.
    assert!(matches!(Pool::open(disk_dir().path(), opts), Err(Error::NoPool { .. })));
}

#[test]
fn second_writer_is_refused_with_the_holders_path() {
    let dir = disk_dir();
    let opts = small(Backend::Mmap);
    let pool = Pool::create(dir.path(), opts).unwrap();
    match Pool::open(dir.path(), opts) {
        Err(Error::Locked { path, holder_pid }) => {
            assert!(path.starts_with(dir.path()), "{path:?}");
            assert_eq!(holder_pid, Some(std::process::id()));
            let msg = Error::Locked { path: path.clone(), holder_pid }.to_string();
            assert!(msg.contains(&path.display().to_string()));
        }
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }
    assert!(matches!(
        Pool::open(dir.path(), opts.backend(Backend::Direct)),
        Err(Error::Locked { .. })
    ));
    drop(pool);
    Pool::open(dir.path(), opts).unwrap();
}

#[cfg(unix)]
#[test]
fn pool_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = disk_dir();
    let pool = Pool::create(dir.path(), small(Backend::Mmap)).unwrap();
    pool.put(ObjectId(1), ObjectKind::Blob, Durability::Durable, &vec![1u8; 3 << 20]).unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let e = e.unwrap();
        let mode = e.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{:?}", e.path());
        n += 1;
    }
    assert!(n >= 4, "LOCK plus several segments expected, found {n}");
}

/// Page faults the calling thread takes while `f` runs.
fn faults_of<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = hetier_allocator::usage::thread_minor_faults().unwrap();
    let out = f();
    (out, hetier_allocator::usage::thread_minor_faults().unwrap() - before)
}

#[test]
fn populate_at_open_maps_objects_so_first_reads_take_no_faults() {
    let len = 4 << 20;
    let data = pattern(9, len);
    let mut buf = vec![0u8; len];
    let dir = disk_dir();
    let opts = small(Backend::Mmap);
    {
        let pool = Pool::create(dir.path(), opts).unwrap();
        pool.put(ObjectId(9), ObjectKind::Blob, Durability::Durable, &data).unwrap();
    }
    buf.fill(1);
    // A fresh mapping: the first read maps the object's 1024 pages, the second maps nothing.
    let (pool, _) = Pool::open(dir.path(), opts).unwrap();
    let (n, first) = faults_of(|| pool.read_into(ObjectId(9), &mut buf).unwrap());
    let (_, second) = faults_of(|| pool.read_into(ObjectId(9), &mut buf).unwrap());
    assert_eq!(n, len);
    assert!(first >= 16 && second <= 2, "first read {first} faults, second {second}");
    drop(pool);
    // With populate the open maps them, and the first read is like the second.
    let (pool, opened) = faults_of(|| Pool::open(dir.path(), opts.populate(true)).unwrap().0);
    let (_, first) = faults_of(|| pool.read_into(ObjectId(9), &mut buf).unwrap());
    assert!(opened >= 16 && first <= 2, "open {opened} faults, first read {first}");
    assert_eq!(buf, data);
    // Nothing to map on the O_DIRECT backend.
    drop(pool);
    let (pool, _) = Pool::open(dir.path(), opts.backend(Backend::Direct)).unwrap();
    assert_eq!(pool.populate(), 0);
}
