//! Running the benchmark's children and watching their memory from outside: a cgroup v1 memory
//! group per child, sampled `/proc/<pid>/status`, the kernel's peak RSS when the child is
//! reaped (`wait4`), and the memory cgroup the benchmark itself runs in.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The benchmark's result type.
pub(super) type R<T> = Result<T, Box<dyn std::error::Error>>;

/// Bytes per MiB.
pub(super) const MIB: f64 = 1024.0 * 1024.0;

/// `v` with `digits` decimals, or `-`.
pub(super) fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

/// A cgroup v1 memory group for one child; removed on drop.
pub(super) struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    pub(super) fn create(name: &str, limit: Option<u64>) -> R<Self> {
        let path = Path::new("/sys/fs/cgroup/memory").join(name);
        std::fs::create_dir(&path)?;
        let cg = Self { path };
        if let Some(l) = limit {
            std::fs::write(cg.path.join("memory.limit_in_bytes"), l.to_string())?;
        }
        Ok(cg)
    }

    /// Whether the kernel OOM-killed anything in the group.
    pub(super) fn oom_killed(&self) -> bool {
        std::fs::read_to_string(self.path.join("memory.oom_control"))
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("oom_kill ") && !l.ends_with(" 0")))
    }

    fn add(&self, pid: u32) -> R<()> {
        Ok(std::fs::write(self.path.join("cgroup.procs"), pid.to_string())?)
    }

    fn read(&self, file: &str) -> R<u64> {
        Ok(std::fs::read_to_string(self.path.join(file))?.trim().parse()?)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Reclaim the page cache charged here first: otherwise the pages survive rmdir
        // (recharged to the parent) and the next child would find the file already cached.
        let _ = std::fs::write(self.path.join("memory.force_empty"), "0");
        let _ = std::fs::remove_dir(&self.path);
    }
}

#[derive(Default)]
pub(super) struct Observed {
    pub(super) peak_anon: u64,
    pub(super) hwm: u64,
    /// The child's peak RSS as the kernel reports it when the child is reaped (`wait4`).
    pub(super) rusage_max: Option<u64>,
    /// The cgroup's `memory.limit_in_bytes` (a huge number when unlimited).
    pub(super) cgroup_limit: Option<u64>,
    pub(super) cgroup_max: Option<u64>,
    pub(super) killed: bool,
}

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs one child (reaped by `try_wait_child`, not `Child::wait`): moves it into `cgroup` (if any) before it starts, samples its memory until
/// it exits and returns its JSON line.
#[allow(clippy::zombie_processes)]
pub(super) fn run_child(
    mode: &str,
    job: &Path,
    cgroup: Option<&Cgroup>,
) -> R<(Option<String>, Observed)> {
    let exe = std::env::current_exe()?;
    // At nice -10 the measured process keeps its cores against other (nice 0) work on a
    // shared machine; `nice` execs the child, so the pid is the child's.
    let mut cmd = Command::new("nice");
    cmd.args(["-n", "-10"])
        .arg(exe)
        .arg(mode)
        .arg(job)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // The kernel's peak RSS of a child starts from the memory it was created with: spawned
    // through vfork (std's posix_spawn path) that is this process's lifetime peak, through
    // fork only what this process holds now. Setting the uid to our own makes std fork (and,
    // as root, drop supplementary groups, which the child does not need).
    if let Ok(meta) = std::fs::metadata("/proc/self") {
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::process::CommandExt;
        cmd.uid(meta.uid());
    }
    let mut child: Child = cmd.spawn()?;
    let pid = child.id();
    if let Some(cg) = cgroup {
        cg.add(pid)?;
    }
    child.stdin.take().ok_or("child stdin")?.write_all(b"go\n")?;
    let mut obs = Observed::default();
    let exit = loop {
        if let Some(anon) = status_kb(pid, "RssAnon:") {
            obs.peak_anon = obs.peak_anon.max(anon * 1024);
        }
        if let Some(h) = status_kb(pid, "VmHWM:") {
            obs.hwm = obs.hwm.max(h * 1024);
        }
        // Reaped here rather than by `Child::try_wait`, for the kernel's peak RSS of the child.
        if let Some(e) = hetier_allocator::usage::try_wait_child(pid)? {
            break e;
        }
        std::thread::sleep(Duration::from_millis(3));
    };
    obs.rusage_max = Some(exit.peak_rss_bytes);
    if let Some(cg) = cgroup {
        obs.cgroup_max = cg.read("memory.max_usage_in_bytes").ok();
        obs.cgroup_limit = cg.read("memory.limit_in_bytes").ok();
    }
    let mut out = String::new();
    if let Some(s) = child.stdout.take() {
        BufReader::new(s).read_line(&mut out)?;
    }
    if !exit.success {
        obs.killed = true;
        return Ok((None, obs));
    }
    Ok((Some(out), obs))
}

/// The memory cgroup this benchmark runs in (v1 `memory` controller or v2), its limit and the
/// most it has held, side by side; nothing when there is no limit to report.
pub(super) fn print_own_cgroup() {
    let Ok(s) = std::fs::read_to_string("/proc/self/cgroup") else { return };
    let read = |p: PathBuf| -> Option<u64> {
        let t = std::fs::read_to_string(p).ok()?;
        t.trim().parse().ok()
    };
    for line in s.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrl, path) = (parts.next(), parts.next(), parts.next());
        let (Some(ctrl), Some(path)) = (ctrl, path) else { continue };
        let rel = path.trim_start_matches('/');
        let (limit, max, dir) = if ctrl.split(',').any(|c| c == "memory") {
            let dir = Path::new("/sys/fs/cgroup/memory").join(rel);
            (
                read(dir.join("memory.limit_in_bytes")),
                read(dir.join("memory.max_usage_in_bytes")),
                dir,
            )
        } else if ctrl.is_empty() {
            let dir = Path::new("/sys/fs/cgroup").join(rel);
            (read(dir.join("memory.max")), read(dir.join("memory.peak")), dir)
        } else {
            continue;
        };
        // An unlimited v1 group reads as a page-rounded i64::MAX (v2 says "max", unparsed).
        if let Some(l) = limit.filter(|&l| l < 1 << 60) {
            println!(
                "\nthis benchmark's cgroup {}: limit {:.0} MiB, max {} MiB",
                dir.display(),
                l as f64 / MIB,
                fmt_opt(max.map(|m| m as f64 / MIB), 0)
            );
        }
    }
}
