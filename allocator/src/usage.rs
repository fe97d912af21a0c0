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
/// would then find nothing to reap). The kernel starts a child's peak from the memory it was
/// created with: for a child spawned through vfork (std's default `posix_spawn` path) that is
/// the parent's lifetime peak, so a parent that measures children should fork them (e.g. by
/// setting `CommandExt::uid` to its own uid).
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

    /// Runs `sh -c script` forked (not vfork-spawned: a child's peak RSS starts from the memory
    /// it was created with, which through vfork is this process's lifetime peak) and reaps it.
    // Reaped by `try_wait_child` (wait4), not by `Child::wait`.
    #[allow(clippy::zombie_processes)]
    fn run_sh(script: &str) -> ChildExit {
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::process::CommandExt;
        let uid = std::fs::metadata("/proc/self").expect("/proc/self").uid();
        // Our own uid: changes nothing, but makes std fork.
        let child =
            std::process::Command::new("sh").args(["-c", script]).uid(uid).spawn().expect("sh");
        loop {
            if let Some(e) = try_wait_child(child.id()).expect("wait4") {
                return e;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn a_childs_peak_rss_and_exit_are_read_when_it_is_reaped() {
        // One shell holds a 128 MiB string and exits 3, the other holds nothing.
        let big = run_sh("x=$(head -c 134217728 /dev/zero | tr '\\0' a); exit 3");
        let small = run_sh("exit 0");
        assert!(!big.success && big.signal.is_none(), "{big:?}");
        assert!(small.success && small.signal.is_none(), "{small:?}");
        assert!(big.peak_rss_bytes >= small.peak_rss_bytes + (64 << 20), "{big:?} {small:?}");
        assert!(big.peak_rss_bytes < 1 << 30, "{big:?}");
        assert!(run_sh("kill -9 $$").signal == Some(9));
    }
}
