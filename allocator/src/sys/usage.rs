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

/// How a child process ended and what it used, as `wait4` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChildUsage {
    /// Exited with status 0.
    pub success: bool,
    /// Killed by this signal, if it was.
    pub signal: Option<i32>,
    /// Its peak resident set size in bytes.
    pub peak_rss_bytes: u64,
    /// Minor page faults it took.
    pub minor_faults: u64,
}

/// Reaps child `pid` if it has ended (`wait4` with `WNOHANG`): `Ok(None)` while it runs.
pub(crate) fn try_wait_child(pid: u32) -> std::io::Result<Option<ChildUsage>> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let mut status: libc::c_int = 0;
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `status` and `ru` point to writable memory of the right types for wait4 to
    // fill in; a positive pid names one child of ours and touches no other process.
    let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, ru.as_mut_ptr()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if rc == 0 {
        return Ok(None);
    }
    // SAFETY: zero-initialised (a valid rusage), then filled by the kernel for the reaped child.
    let ru = unsafe { ru.assume_init() };
    let exited = libc::WIFEXITED(status);
    Ok(Some(ChildUsage {
        success: exited && libc::WEXITSTATUS(status) == 0,
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        peak_rss_bytes: ru.ru_maxrss as u64 * 1024,
        minor_faults: ru.ru_minflt as u64,
    }))
}
