//! The process's C heap: large buffers that the store does not hold (a bootstrap's output, a
//! client's ciphertexts, setup) are freed back to the OS instead of staying resident.

use crate::sys::heap;

/// The mmap threshold [`release_large_frees`] sets: 128 KiB (glibc's starting value, kept
/// from growing), at most one ring element's words from N = 2^14 up, the size of most
/// per-operation buffers there. Measured outside the store in `hetier bootstrap`: at log N = 16
/// 355 MiB with glibc's default or a 1 MiB threshold, 223 MiB at 256 KiB or 128 KiB; at
/// log N = 14, 34 MiB at the default or 256 KiB, 19 MiB at 128 KiB.
pub const MMAP_THRESHOLD: usize = 128 << 10;

/// Makes every heap allocation of [`MMAP_THRESHOLD`] bytes or more a mapping of its own that
/// goes back to the OS when freed. glibc's default raises the threshold to the largest block
/// freed so far, after which freed large blocks stay resident outside any budget. Returns
/// false where the C library does not support it (then nothing changes). Call it once at
/// start, before the large allocations.
pub fn release_large_frees() -> bool {
    heap::fix_mmap_threshold(MMAP_THRESHOLD)
}

#[cfg(test)]
mod tests {
    /// On glibc the threshold is accepted.
    #[test]
    fn the_threshold_is_set_on_glibc() {
        let ok = super::release_large_frees();
        assert_eq!(ok, cfg!(all(target_os = "linux", target_env = "gnu")));
    }
}
