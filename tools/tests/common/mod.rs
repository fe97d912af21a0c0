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
