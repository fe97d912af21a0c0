//! The C heap's tuning (glibc's `mallopt`).

/// Fixes glibc malloc's mmap threshold at `bytes`: every allocation of at least that many bytes
/// gets a mapping of its own, returned to the OS when freed. Without it glibc raises the
/// threshold to the largest block freed so far (up to 32 MiB), after which freed large blocks
/// stay in the heap, resident. False where the C library is not glibc or refuses the value.
pub(crate) fn fix_mmap_threshold(bytes: usize) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let Ok(value) = libc::c_int::try_from(bytes) else {
            return false;
        };
        // SAFETY: mallopt only sets one of malloc's tuning parameters from a plain integer; it
        // touches no memory of ours and is safe to call at any time.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, value) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = bytes;
        false
    }
}
