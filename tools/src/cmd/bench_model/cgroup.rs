//! Running one child process inside its own cgroup v1 memory group and observing its memory
//! from outside: sampled `/proc/<pid>/status` (VmHWM, RssAnon) and the group's
//! `memory.max_usage_in_bytes` (which also counts page cache the child caused).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

/// Where the cgroup v1 memory controller is mounted.
const MEMORY_ROOT: &str = "/sys/fs/cgroup/memory";

/// A cgroup v1 memory group for one child; removed on drop.
pub struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// Whether the cgroup v1 memory controller is mounted (creating a group needs root; the
    /// directory's mode bits say nothing about that, so `create` reports the real failure).
    pub fn available() -> bool {
        Path::new(MEMORY_ROOT).join("memory.limit_in_bytes").exists()
    }

    /// Creates group `name` with a hard limit of `limit` bytes (none when `None`).
    pub fn create(name: &str, limit: Option<u64>) -> Result<Self> {
        let path = Path::new(MEMORY_ROOT).join(name);
        if path.exists() {
            // A leftover of an interrupted run with the same name: it must be empty to go.
            let _ = std::fs::remove_dir(&path);
        }
        std::fs::create_dir(&path)
            .with_context(|| format!("creating cgroup {}", path.display()))?;
        let cg = Self { path };
        if let Some(l) = limit {
            cg.write("memory.limit_in_bytes", &l.to_string())?;
        }
        Ok(cg)
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        let p = self.path.join(file);
        std::fs::write(&p, value).with_context(|| format!("writing {}", p.display()))
    }

    /// Moves process `pid` into the group.
    pub fn add(&self, pid: u32) -> Result<()> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// Reads a numeric control file of the group.
    pub fn read(&self, file: &str) -> Result<u64> {
        let p = self.path.join(file);
        let s = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        s.trim().parse().with_context(|| format!("parsing {}", p.display()))
    }

    /// Whether the kernel's OOM killer fired in this group.
    pub fn oom_killed(&self) -> bool {
        std::fs::read_to_string(self.path.join("memory.oom_control"))
            .map(|s| s.lines().any(|l| l.starts_with("oom_kill ") && !l.ends_with(" 0")))
            .unwrap_or(false)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Reclaim page cache charged here first, or it survives rmdir (recharged to the parent).
        let _ = std::fs::write(self.path.join("memory.force_empty"), "0");
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Memory of one child, observed from outside.
#[derive(Debug, Default, Clone, Copy)]
pub struct Observed {
    /// Highest VmHWM (peak resident set) sampled from /proc.
    pub hwm: u64,
    /// Highest RssAnon sampled (anonymous memory: the store's DRAM tier, heap, stacks).
    pub peak_anon: u64,
    /// The cgroup's `memory.max_usage_in_bytes` (RSS + page cache charged to the group).
    pub cgroup_max: Option<u64>,
    /// The cgroup's `memory.failcnt` (times the limit was hit and reclaim ran).
    pub cgroup_failcnt: Option<u64>,
    /// The child did not exit successfully.
    pub failed: bool,
    /// The cgroup's OOM killer fired.
    pub oom_killed: bool,
}

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `hetier <args>` as a child, moved into `cgroup` before it does any work (it waits for
/// a line on stdin), samples its memory until it exits and returns its last stdout line.
pub fn run_child(args: &[String], cgroup: Option<&Cgroup>) -> Result<(Option<String>, Observed)> {
    let exe = std::env::current_exe().context("locating the hetier binary")?;
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a child")?;
    let pid = child.id();
    if let Some(cg) = cgroup {
        if let Err(e) = cg.add(pid) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    }
    child.stdin.take().context("child stdin")?.write_all(b"go\n")?;
    let stdout = child.stdout.take().context("child stdout")?;
    // Read stdout on a thread so a chatty child never blocks on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut last = None;
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if !line.trim().is_empty() {
                last = Some(line);
            }
        }
        last
    });
    let mut obs = Observed::default();
    let status = loop {
        if let Some(h) = status_kb(pid, "VmHWM:") {
            obs.hwm = obs.hwm.max(h * 1024);
        }
        if let Some(a) = status_kb(pid, "RssAnon:") {
            obs.peak_anon = obs.peak_anon.max(a * 1024);
        }
        if let Some(st) = child.try_wait()? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = reader.join().ok().flatten();
    if let Some(cg) = cgroup {
        obs.cgroup_max = cg.read("memory.max_usage_in_bytes").ok();
        obs.cgroup_failcnt = cg.read("memory.failcnt").ok();
        obs.oom_killed = cg.oom_killed();
    }
    obs.failed = !status.success();
    Ok((if obs.failed { None } else { out }, obs))
}
