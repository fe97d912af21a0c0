//! A cgroup v1 memory group for running `hetier` as a limited child, shared by the tests that
//! measure memory from outside the process.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A cgroup v1 memory group for one child process, removed on drop.
pub struct MemoryGroup(PathBuf);

impl MemoryGroup {
    /// Creates the group with a hard limit, or says why it cannot (no cgroup v1 memory
    /// controller, or no permission to write it).
    pub fn create(name: &str, limit: u64) -> Result<MemoryGroup, String> {
        let root = Path::new("/sys/fs/cgroup/memory");
        if !root.join("memory.limit_in_bytes").exists() {
            return Err(format!("no cgroup v1 memory controller at {}", root.display()));
        }
        let path = root.join(name);
        std::fs::create_dir(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let g = MemoryGroup(path);
        std::fs::write(g.0.join("memory.limit_in_bytes"), limit.to_string())
            .map_err(|e| format!("cannot set the limit of {}: {e}", g.0.display()))?;
        Ok(g)
    }

    /// [`Self::create`], or `None` after printing why the calling test is skipped: a test
    /// measured from outside runs only where cgroups can be written.
    pub fn create_or_skip(name: &str, limit: u64) -> Option<MemoryGroup> {
        Self::create(name, limit).map_err(|reason| println!("skipped: {reason}")).ok()
    }

    /// `program` run in this group: a shell joins the group and then becomes the program, so
    /// everything the program maps is charged.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("echo $$ > \"$1/cgroup.procs\" && shift && exec \"$@\"")
            .arg("sh")
            .arg(&self.0)
            .arg(program);
        cmd
    }

    /// The group's peak charge (`memory.max_usage_in_bytes`).
    pub fn max_usage(&self) -> u64 {
        self.read("memory.max_usage_in_bytes").trim().parse().unwrap()
    }

    /// Whether the kernel's OOM killer killed a process of the group.
    pub fn oom_killed(&self) -> bool {
        self.read("memory.oom_control")
            .lines()
            .any(|l| l.starts_with("oom_kill ") && l != "oom_kill 0")
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.0.join(file)).unwrap()
    }
}

impl Drop for MemoryGroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Prints what a run in a group limited to `limit` (its DRAM budget `budget` plus `headroom`)
/// used, and checks it from outside: the group's maximum `max` and the run's peak RSS within
/// the limit, and the memory it reports outside its store (`report["outside_store"]`) equal to
/// its peak RSS less the store's peak, part of its printed budget, and within the headroom.
pub fn check_outside_store(
    label: &str,
    report: &serde_json::Value,
    budget: u64,
    limit: u64,
    headroom: u64,
    max: u64,
) {
    const MIB: f64 = (1u64 << 20) as f64;
    let peak_rss = report["peak_rss"].as_u64().unwrap();
    let o = &report["outside_store"];
    let outside = o["outside_store_bytes"].as_u64().unwrap();
    println!(
        "{label}: budget {:.0} MiB, cgroup limit {:.0} MiB, cgroup max {:.1} MiB, peak RSS {:.1} \
         MiB, outside the store {:.1} MiB",
        budget as f64 / MIB,
        limit as f64 / MIB,
        max as f64 / MIB,
        peak_rss as f64 / MIB,
        outside as f64 / MIB,
    );
    assert!(max <= limit && peak_rss <= limit, "{label}: max {max}, peak RSS {peak_rss}");
    assert_eq!(o["peak_rss"].as_u64(), Some(peak_rss), "{label}");
    assert_eq!(outside + o["store_peak"].as_u64().unwrap(), peak_rss, "{label}");
    assert_eq!(o["budget_plus_outside"].as_u64(), Some(budget + outside), "{label}");
    assert!(outside <= headroom, "{label}: {outside} B outside the store");
}

/// The smallest workable budget in bytes that a refused run names on stderr
/// (`… the smallest workable budget is N B`); panics, showing stderr, when it names none.
pub fn named_budget(stderr: &[u8]) -> u64 {
    let err = String::from_utf8_lossy(stderr);
    err.split("smallest workable budget is ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no budget in: {err}"))
}
