//! The process's own resource counters (`getrusage`): minor page faults and peak resident set.

/// `getrusage(RUSAGE_SELF)`, or `None` if the call fails.
fn self_usage() -> Option<libc::rusage> {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` points to writable memory of the right size for the call to fill in.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: the struct was zero-initialised (a valid rusage) and then filled by the kernel.
    Some(unsafe { ru.assume_init() })
}

/// Minor page faults the process has taken so far (pages mapped in without I/O, such as the
/// first touch of anonymous memory).
pub(crate) fn minor_faults() -> Option<u64> {
    self_usage().map(|ru| ru.ru_minflt as u64)
}

/// The process's peak resident set size in bytes (Linux reports it in KiB).
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    self_usage().map(|ru| ru.ru_maxrss as u64 * 1024)
}

/// Minor page faults the calling thread has taken so far (`RUSAGE_THREAD`): unaffected by what
/// other threads of the process touch.
pub(crate) fn thread_minor_faults() -> Option<u64> {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` points to writable memory of the right size for the call to fill in.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: the struct was zero-initialised (a valid rusage) and then filled by the kernel.
    Some(unsafe { ru.assume_init() }.ru_minflt as u64)
}
