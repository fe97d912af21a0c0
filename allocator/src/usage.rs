//! Resource counters: the process's own (for tests and benchmarks that check memory from the
//! process's side) and a child's, read from outside when it is reaped (the cgroup's view is
//! read from its files).

use crate::sys::usage;

/// Minor page faults this process has taken so far (first touches of anonymous memory among
/// them), or `None` if the OS does not report them.
pub fn minor_faults() -> Option<u64> {
    usage::minor_faults()
}

/// This process's peak resident set size in bytes, or `None` if the OS does not report it.
pub fn peak_rss_bytes() -> Option<u64> {
    usage::peak_rss_bytes()
}

/// Minor page faults the calling thread has taken so far, unaffected by other threads; `None`
/// if the OS does not report them.
pub fn thread_minor_faults() -> Option<u64> {
    usage::thread_minor_faults()
}

/// How a child process ended and its peak memory, measured by the kernel (`wait4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildExit {
    /// It exited with status 0.
    pub success: bool,
    /// The signal that killed it, if one did (an OOM kill is `SIGKILL`, 9).
    pub signal: Option<i32>,
    /// Its peak resident set size in bytes (`ru_maxrss`).
    pub peak_rss_bytes: u64,
    /// Minor page faults it took.
    pub minor_faults: u64,
}

/// Reaps the child process `pid` if it has ended, returning how it ended and its peak RSS;
/// `Ok(None)` while it still runs. Use it instead of `std::process::Child::try_wait` (which
/// would then find nothing to reap).
pub fn try_wait_child(pid: u32) -> std::io::Result<Option<ChildExit>> {
    Ok(usage::try_wait_child(pid)?.map(|u| ChildExit {
        success: u.success,
        signal: u.signal,
        peak_rss_bytes: u.peak_rss_bytes,
        minor_faults: u.minor_faults,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // Reaped by `try_wait_child` (wait4), not by `Child::wait`.
    #[allow(clippy::zombie_processes)]
    fn a_childs_peak_rss_and_exit_are_read_when_it_is_reaped() {
        // A shell that touches ~64 MiB (a string of that size) and exits 3.
        let child = std::process::Command::new("sh")
            .args(["-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); exit 3"])
            .spawn()
            .expect("sh");
        let exit = loop {
            if let Some(e) = try_wait_child(child.id()).expect("wait4") {
                break e;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert!(!exit.success && exit.signal.is_none(), "{exit:?}");
        assert!(exit.peak_rss_bytes >= 64 << 20, "{exit:?}");
        assert!(exit.peak_rss_bytes < 1 << 30, "{exit:?}");
    }
}
