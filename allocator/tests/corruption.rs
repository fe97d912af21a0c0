//! Damaged pools: every kind of truncation and bit flip is a typed error (or, for object data, a
//! checksum error on read) — never a panic, a SIGBUS or silently wrong bytes.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::{disk_dir, pattern, small};
use hetier_allocator::format::{Superblock, FORMAT_VERSION, SUPERBLOCK_LEN};
use hetier_allocator::{
    Backend, Durability, Error, FaultConfig, FaultyDevice, ObjectId, ObjectKind, Pool,
};
use rand::{RngCore, SeedableRng};

const BACKENDS: [Backend; 2] = [Backend::Mmap, Backend::Direct];

fn seg(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("segment-{i:06}.hpool"))
}

/// A pool with one 50 000-byte durable object at the start of the data region, and a second
/// object big enough to spill into segment 1. Returns (data offset of object 1, table offset).
fn make_pool(dir: &Path) -> (u64, u64) {
    let pool = Pool::create(dir, small(Backend::Mmap)).unwrap();
    pool.put(ObjectId(1), ObjectKind::Ciphertext, Durability::Durable, &pattern(1, 50_000))
        .unwrap();
    pool.put(ObjectId(2), ObjectKind::Blob, Durability::Durable, &pattern(2, 1_200_000)).unwrap();
    let off = pool.meta(ObjectId(1)).unwrap().offset.0;
    let table = pool.superblock().table_offset();
    (off, table)
}

fn truncate(path: &Path, len: u64) {
    OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

fn flip(path: &Path, at: u64) {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x40;
    f.write_all_at(&b, at).unwrap();
}

fn open_err(dir: &Path, backend: Backend) -> Error {
    match Pool::open(dir, small(backend)) {
        Ok(_) => panic!("opening a damaged pool succeeded"),
        Err(e) => e,
    }
}

#[test]
fn truncation_at_the_superblock() {
    for backend in BACKENDS {
        let dir = disk_dir();
        make_pool(dir.path());
        truncate(&seg(dir.path(), 0), 100);
        match open_err(dir.path(), backend) {
            Error::Truncated { expected, found, .. } => {
                assert_eq!((expected, found), (SUPERBLOCK_LEN as u64, 100));
            }
            e => panic!("{e:?}"),
        }
        truncate(&seg(dir.path(), 0), 0);
        assert!(matches!(open_err(dir.path(), backend), Error::Truncated { found: 0, .. }));
    }
}

#[test]
fn truncation_inside_the_table() {
    for backend in BACKENDS {
        let dir = disk_dir();
        let (_, table) = make_pool(dir.path());
        truncate(&seg(dir.path(), 0), table + 200);
        match open_err(dir.path(), backend) {
            Error::Truncated { what, expected, found } => {
                assert!(what.ends_with("segment-000000.hpool"), "{what}");
                assert_eq!((expected, found), (1 << 20, table + 200));
            }
            e => panic!("{e:?}"),
        }
    }
}

#[test]
fn truncation_inside_a_data_extent() {
    for backend in BACKENDS {
        let dir = disk_dir();
        let (off, _) = make_pool(dir.path());
        truncate(&seg(dir.path(), 0), off + 20_000);
        assert!(matches!(open_err(dir.path(), backend), Error::Truncated { .. }));
        // The same inside a later segment.
        let dir = disk_dir();
        make_pool(dir.path());
        truncate(&seg(dir.path(), 1), 4096);
        match open_err(dir.path(), backend) {
            Error::Truncated { what, found: 4096, .. } => {
                assert!(what.ends_with("segment-000001.hpool"), "{what}")
            }
            e => panic!("{e:?}"),
        }
    }
}

#[test]
fn a_missing_segment_that_holds_an_extent_is_a_corrupt_entry() {
    let dir = disk_dir();
    make_pool(dir.path());
    let last = (0..).take_while(|&i| seg(dir.path(), i).exists()).last().unwrap();
    assert!(last >= 1);
    std::fs::remove_file(seg(dir.path(), last)).unwrap();
    assert!(matches!(open_err(dir.path(), Backend::Mmap), Error::CorruptEntry { .. }));
}

#[test]
fn a_gap_in_the_segment_numbering_is_reported() {
    let dir = disk_dir();
    let pool = Pool::create(dir.path(), small(Backend::Mmap)).unwrap();
    pool.put(ObjectId(1), ObjectKind::Blob, Durability::Durable, &pattern(1, 3 << 20)).unwrap();
    drop(pool);
    std::fs::remove_file(seg(dir.path(), 1)).unwrap();
    match open_err(dir.path(), Backend::Mmap) {
        Error::MissingSegment { path, later } => {
            assert_eq!(path, seg(dir.path(), 1));
            assert!(later.to_string_lossy().contains("segment-00000"));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn flipped_byte_in_the_superblock() {
    let dir = disk_dir();
    make_pool(dir.path());
    flip(&seg(dir.path(), 0), 20); // inside the uuid
    assert!(matches!(open_err(dir.path(), Backend::Mmap), Error::SuperblockChecksum { .. }));
    let dir = disk_dir();
    make_pool(dir.path());
    flip(&seg(dir.path(), 0), 0); // inside the magic
    assert!(matches!(open_err(dir.path(), Backend::Direct), Error::BadMagic { .. }));
}

#[test]
fn flipped_byte_in_a_table_entry() {
    for backend in BACKENDS {
        let dir = disk_dir();
        let (_, table) = make_pool(dir.path());
        // Slot 1 holds object 2; flip its length field.
        flip(&seg(dir.path(), 0), table + 128 + 17);
        match open_err(dir.path(), backend) {
            Error::CorruptEntry { slot, .. } => assert_eq!(slot, 1),
            e => panic!("{e:?}"),
        }
        // A flip in a free slot (nonzero garbage) is corruption too.
        let dir = disk_dir();
        let (_, table) = make_pool(dir.path());
        flip(&seg(dir.path(), 0), table + 128 * 40 + 3);
        assert!(matches!(open_err(dir.path(), backend), Error::CorruptEntry { slot: 40, .. }));
    }
}

#[test]
fn flipped_byte_in_object_data_is_caught_on_read() {
    for backend in BACKENDS {
        let dir = disk_dir();
        let (off, _) = make_pool(dir.path());
        flip(&seg(dir.path(), 0), off + 12_345);
        let (pool, _) = Pool::open(dir.path(), small(backend)).unwrap();
        assert!(matches!(pool.get(ObjectId(1)), Err(Error::DataChecksum { id: ObjectId(1), .. })));
        let mut buf = vec![0u8; 50_000];
        assert!(matches!(pool.read_into(ObjectId(1), &mut buf), Err(Error::DataChecksum { .. })));
        assert_eq!(pool.get(ObjectId(2)).unwrap(), pattern(2, 1_200_000));
        let fsck = pool.fsck().unwrap();
        assert_eq!(fsck.corrupt.len(), 1);
        assert_eq!(fsck.corrupt[0].0, ObjectId(1));
        assert!(fsck.space_consistent);
        assert!(!fsck.is_clean());
    }
}

#[test]
fn a_file_of_random_bytes() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for len in [10usize, 4096, 1 << 20] {
        let dir = disk_dir();
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        std::fs::write(seg(dir.path(), 0), &bytes).unwrap();
        let e = open_err(dir.path(), Backend::Mmap);
        assert!(matches!(e, Error::BadMagic { .. } | Error::Truncated { .. }), "{e:?}");
        // Random bytes behind a valid magic and version still fail (checksum).
        bytes[..8].copy_from_slice(b"HETIERPL");
        if len >= 12 {
            bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        }
        std::fs::write(seg(dir.path(), 0), &bytes).unwrap();
        let e = open_err(dir.path(), Backend::Mmap);
        assert!(matches!(e, Error::SuperblockChecksum { .. } | Error::Truncated { .. }), "{e:?}");
    }
}

#[test]
fn a_pool_of_a_newer_format_version() {
    let dir = disk_dir();
    make_pool(dir.path());
    let path = seg(dir.path(), 0);
    let f = OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut sb = [0u8; SUPERBLOCK_LEN];
    f.read_exact_at(&mut sb, 0).unwrap();
    sb[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    // A newer writer would have checksummed its own superblock correctly.
    let crc = crc32c_of(&sb[..SUPERBLOCK_LEN - 4]);
    sb[SUPERBLOCK_LEN - 4..].copy_from_slice(&crc.to_le_bytes());
    f.write_all_at(&sb, 0).unwrap();
    match open_err(dir.path(), Backend::Mmap) {
        Error::UnsupportedVersion { found, supported } => {
            assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
        }
        e => panic!("{e:?}"),
    }
}

/// Bitwise crc32c, independent of the crate's implementation.
fn crc32c_of(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn the_reference_crc_matches_the_superblock_checksum() {
    let sb = Superblock {
        uuid: [3; 16],
        segment_size: 1 << 20,
        table_slots: 64,
        max_pool_bytes: 1 << 24,
    };
    let enc = sb.encode();
    let stored = u32::from_le_bytes(enc[SUPERBLOCK_LEN - 4..].try_into().unwrap());
    assert_eq!(stored, crc32c_of(&enc[..SUPERBLOCK_LEN - 4]));
}

#[test]
fn truncated_devices_through_the_device_seam() {
    let dev = FaultyDevice::new(0, FaultConfig::default());
    let pool = Pool::create_on(Box::new(dev.clone()), small(Backend::Mmap)).unwrap();
    pool.put(ObjectId(1), ObjectKind::Blob, Durability::Durable, &pattern(1, 5000)).unwrap();
    drop(pool);
    let image = dev.durable_image();
    for cut in [0usize, 64, 5000, image.len() - 1] {
        let d = FaultyDevice::from_image(image[..cut].to_vec(), FaultConfig::default());
        let e = Pool::open_on(Box::new(d)).map(|_| ()).unwrap_err();
        assert!(matches!(e, Error::Truncated { .. }), "cut {cut}: {e:?}");
    }
    let d = FaultyDevice::from_image(image, FaultConfig::default());
    let (pool, _) = Pool::open_on(Box::new(d)).unwrap();
    assert_eq!(pool.get(ObjectId(1)).unwrap(), pattern(1, 5000));
}

#[test]
fn a_segment_truncated_behind_an_open_pool_is_an_error_not_sigbus() {
    // Another process ignoring the lock truncates a segment while the pool is open.
    let dir = disk_dir();
    let pool = Pool::create(dir.path(), small(Backend::Mmap)).unwrap();
    pool.put(ObjectId(1), ObjectKind::Blob, Durability::Durable, &pattern(1, 300_000)).unwrap();
    truncate(&seg(dir.path(), 0), 8192);
    assert!(matches!(pool.get(ObjectId(1)), Err(Error::Truncated { found: 8192, .. })));
    let r = pool.put(ObjectId(2), ObjectKind::Blob, Durability::Durable, &pattern(2, 1000));
    assert!(matches!(r, Err(Error::Truncated { .. })), "{r:?}");
}
