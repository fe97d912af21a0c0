//! Helpers shared by the integration tests.
#![allow(dead_code)]

use hetier_allocator::{Backend, PoolOptions};
use tempfile::TempDir;

/// A temp dir on the real disk (the target dir), so O_DIRECT works even where /tmp is tmpfs.
pub fn disk_dir() -> TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// Small geometry: 1 MiB segments, 64 table slots, at most 16 MiB.
pub fn small(backend: Backend) -> PoolOptions {
    PoolOptions::default()
        .backend(backend)
        .segment_size(1 << 20)
        .table_slots(64)
        .max_pool_bytes(16 << 20)
}

/// Deterministic bytes for object `id` of `len` bytes.
pub fn pattern(id: u64, len: usize) -> Vec<u8> {
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
