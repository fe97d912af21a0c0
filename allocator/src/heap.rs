//! The process's C heap: large buffers that the store does not hold (a bootstrap's output, a
//! client's ciphertexts, setup) are freed back to the OS instead of staying resident.

use crate::sys::heap;

/// The mmap threshold [`release_large_frees`] sets: 256 KiB, below one ring element's words at
/// N = 2^16 (512 KiB), the size of most per-operation buffers there. Measured on a log N = 16
/// bootstrap: 1 MiB leaves the memory outside the store where glibc's default does (355 MiB),
/// 256 KiB or 128 KiB bring it to 223 MiB.
pub const MMAP_THRESHOLD: usize = 256 << 10;

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
