//! Open arbitrary bytes as a pool. Whatever the bytes, the pool must answer with a typed error or
//! a pool that behaves: every listed object reads back (or fails its checksum), the space adds
//! up, and the pool accepts a new put.
#![no_main]

use hetier_allocator::format::{decode_entry, Superblock, ENTRY_LEN};
use hetier_allocator::{Durability, Error, FaultConfig, FaultyDevice, ObjectId, ObjectKind, Pool};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The pure decoders first: they must never panic.
    let _ = Superblock::decode(data);
    for (slot, raw) in data.chunks(ENTRY_LEN).enumerate() {
        let _ = decode_entry(slot as u64, raw);
    }

    // Most inputs are far too short to be a pool; grow short ones into a plausible image by
    // treating the input as a prefix over a valid small pool, so the fuzzer reaches the table.
    let image = if data.len() < 64 << 10 { overlay(data) } else { data.to_vec() };
    let dev = FaultyDevice::from_image(image, FaultConfig::default());
    let Ok((pool, report)) = Pool::open_on(Box::new(dev)) else { return };
    assert!(report.dropped_scratch.iter().all(|m| m.durability == Durability::Scratch));
    for m in pool.list() {
        match pool.get(m.id) {
            Ok(v) => assert_eq!(v.len() as u64, m.len),
            Err(Error::DataChecksum { .. }) => {}
            Err(e) => panic!("unexpected error reading {}: {e}", m.id),
        }
    }
    let s = pool.stats();
    assert_eq!(s.used_bytes + s.free_bytes + s.leaked_bytes, s.data_bytes);
    let r = pool.put(ObjectId(u64::MAX), ObjectKind::Blob, Durability::Durable, b"fuzz");
    assert!(matches!(
        r,
        Ok(()) | Err(Error::PoolFull { .. } | Error::TableFull { .. } | Error::ObjectExists { .. })
    ));
});

/// A valid 64 KiB pool image with `data` written over its start (superblock and table).
fn overlay(data: &[u8]) -> Vec<u8> {
    use hetier_allocator::PoolOptions;
    let dev = FaultyDevice::new(0, FaultConfig::default());
    let opts =
        PoolOptions::default().segment_size(64 << 10).table_slots(32).max_pool_bytes(256 << 10);
    let Ok(pool) = Pool::create_on(Box::new(dev.clone()), opts) else { return data.to_vec() };
    let _ = pool.put(ObjectId(1), ObjectKind::Blob, Durability::Durable, &[7u8; 5000]);
    drop(pool);
    let mut image = dev.durable_image();
    // Keep the superblock intact when the input is short, so the fuzzer mutates the table.
    let start = if data.len() < 4096 { 4096 } else { 0 };
    let end = (start + data.len()).min(image.len());
    image[start..end].copy_from_slice(&data[..end - start]);
    image
}
