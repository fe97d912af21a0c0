//! The process's own resource counters, for tests and benchmarks that check memory from the
//! process's side (the cgroup's view is read from outside).

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
