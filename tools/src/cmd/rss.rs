//! The process's own memory, read from `/proc/self/status`: what makes up the resident set
//! (anonymous memory vs mapped file pages) at named stages of a run.

use serde::{Deserialize, Serialize};

/// The resident set at one stage of a run, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RssSample {
    /// What had just happened.
    pub stage: String,
    /// Resident set now (VmRSS).
    pub rss: u64,
    /// Peak resident set so far (VmHWM).
    pub hwm: u64,
    /// Anonymous resident memory (heap, the store's DRAM tier, stacks).
    pub anon: u64,
    /// Resident pages of mapped files (the binary, an mmap'd pool).
    pub file: u64,
}

fn field(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Parses the memory fields of a `/proc/<pid>/status` text.
pub fn parse(stage: &str, status: &str) -> RssSample {
    RssSample {
        stage: stage.to_owned(),
        rss: field(status, "VmRSS:"),
        hwm: field(status, "VmHWM:"),
        anon: field(status, "RssAnon:"),
        file: field(status, "RssFile:"),
    }
}

/// Samples this process now (all zero where /proc is unavailable).
pub fn sample(stage: &str) -> RssSample {
    parse(stage, &std::fs::read_to_string("/proc/self/status").unwrap_or_default())
}

/// This process's peak resident set (VmHWM; `None` where /proc is unavailable) and what of it
/// lay outside the store `st`, from one reading: VmHWM can grow between two (a thread still
/// finishing), and a report's peak must be the one it splits.
pub fn peak_beside_store(st: &hetier_tiering::StoreStats) -> (Option<u64>, Option<OutsideStore>) {
    let peak = Some(sample("end of run").hwm).filter(|&hwm| hwm > 0);
    (peak, peak.map(|p| OutsideStore::measure(p, st)))
}

/// Resets the kernel's peak resident set (VmHWM) to the current one, so that a later
/// [`sample`]'s `hwm` is the peak of what ran since; false where the kernel refuses (no
/// `/proc/self/clear_refs`, Linux before 4.0), and then `hwm` stays the peak of the whole run.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// CPU seconds (user + system, every thread) this process has used so far, from
/// `/proc/self/stat` (0 where it is unavailable). On a loaded machine this, unlike wall time,
/// measures the work a step did.
pub fn cpu_seconds() -> f64 {
    parse_cpu(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// utime + stime of a `/proc/<pid>/stat` line, in seconds (Linux reports them in USER_HZ =
/// 100 ticks per second on every architecture's user ABI).
fn parse_cpu(stat: &str) -> f64 {
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis,
    // where field 3 (the state) is the first.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    match (f.get(11), f.get(12)) {
        (Some(u), Some(s)) => (u + s) as f64 / 100.0,
        _ => 0.0,
    }
}

/// The memory a run held outside its store, from outside measurements: the kernel's peak
/// resident set (VmHWM) less the most the store can have had resident. What remains is the
/// process's constant — the CKKS context's tables, the binary, the setup's key-generation
/// transients, small heap blocks glibc kept (large ones go back to the OS,
/// `hetier_allocator::heap::release_large_frees`) — which a memory limit must allow beside the
/// budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutsideStore {
    /// Peak resident set of the process (VmHWM), bytes.
    pub peak_rss: u64,
    /// The store's resident bound subtracted: the pages its arena holds resident, at most the
    /// budget.
    pub store_peak: u64,
    /// `peak_rss − store_peak`: memory held outside the store at the peak.
    pub outside_store_bytes: u64,
    /// `budget + outside_store_bytes`: what the whole process needs at this budget.
    pub budget_plus_outside: u64,
}

impl OutsideStore {
    /// From a peak resident set and the store's statistics at the end of the run.
    pub fn measure(peak_rss: u64, st: &hetier_tiering::StoreStats) -> Self {
        // The arena's resident pages never shrink (a release only makes room for as many
        // fresh ones), so at the end they are its peak. Not the peak reservation: reserved
        // room (a run's scratch) is not memory until its pages are placed, and counting it
        // hid the process's own memory (8 MiB "outside" an all-DRAM log N 16 bench-model run
        // that held at least 183 MiB).
        let store_peak = st.dram_resident.min(st.budget);
        let outside_store_bytes = peak_rss.saturating_sub(store_peak);
        Self {
            peak_rss,
            store_peak,
            outside_store_bytes,
            budget_plus_outside: st.budget + outside_store_bytes,
        }
    }

    /// The table row that prints it as part of the budget.
    pub fn row(&self, budget: u64) -> Vec<String> {
        self.row_of(budget, "context tables, binary, setup")
    }

    /// [`Self::row`] naming what the memory outside the store is (`contents`).
    pub fn row_of(&self, budget: u64, contents: &str) -> Vec<String> {
        use crate::fmt::bytes;
        vec![
            "memory outside the store".into(),
            format!(
                "{} (peak RSS {} − store peak {}: {contents}) — budget {} + {} = {} for the \
                 whole process",
                bytes(self.outside_store_bytes),
                bytes(self.peak_rss),
                bytes(self.store_peak),
                bytes(budget),
                bytes(self.outside_store_bytes),
                bytes(self.budget_plus_outside),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_the_store_is_peak_rss_less_the_stores_resident_bound() {
        let st = hetier_tiering::StoreStats {
            budget: 32 << 20,
            peak_dram: 32 << 20,
            dram_resident: 31 << 20,
            ..Default::default()
        };
        let o = OutsideStore::measure(55 << 20, &st);
        // The arena's resident pages, not the larger peak reservation.
        assert_eq!(o.store_peak, 31 << 20);
        assert_eq!(o.outside_store_bytes, 24 << 20);
        assert_eq!(o.budget_plus_outside, 56 << 20);
        // Never more than the budget is subtracted, and never below zero.
        let big = hetier_tiering::StoreStats { dram_resident: 40 << 20, ..st.clone() };
        assert_eq!(OutsideStore::measure(55 << 20, &big).store_peak, 32 << 20);
        assert_eq!(OutsideStore::measure(1 << 20, &st).outside_store_bytes, 0);
    }

    /// A peak left behind by freed memory is forgotten after a reset: what a run's later phase
    /// reports is its own peak, not the setup's.
    #[test]
    fn a_reset_peak_forgets_memory_already_returned() {
        let big = 256usize << 20;
        let mut v = vec![0u8; big];
        // Touch every page so that it is resident, and keep the writes.
        for i in (0..big).step_by(4096) {
            v[i] = 1;
        }
        std::hint::black_box(&v);
        let before = sample("touched").hwm;
        assert!(before >= big as u64, "VmHWM {before}");
        drop(v); // a block this large is its own mapping: freeing returns it to the OS
        if !reset_peak() {
            eprintln!("skipped: this kernel does not reset VmHWM");
            return;
        }
        let after = sample("reset").hwm;
        assert!(after + (128 << 20) < before, "VmHWM {after} after the reset, {before} before");
    }

    #[test]
    fn parses_the_status_fields_in_bytes() {
        let s = "Name:\thetier\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nRssAnon:\t 512 kB\nRssFile:\t 256 kB\n";
        let r = parse("x", s);
        assert_eq!((r.rss, r.hwm, r.anon, r.file), (1 << 20, 2 << 20, 512 << 10, 256 << 10));
        assert_eq!(parse("y", "").rss, 0);
    }

    #[test]
    fn cpu_time_is_utime_plus_stime() {
        let s = "42 (a b) c) R 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0";
        assert_eq!(parse_cpu(s), 4.0);
        assert_eq!(parse_cpu("garbage"), 0.0);
        assert!(cpu_seconds() >= 0.0);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        let r = sample("now");
        assert!(r.rss > 0 && r.hwm >= r.rss && r.anon > 0);
    }
}
