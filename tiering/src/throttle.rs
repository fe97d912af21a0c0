//! PM emulation: a throttle that makes a fast device (tmpfs, page cache) behave like a slower
//! persistent-memory tier with a given bandwidth and latency. Always reported as *emulated*.
//!
//! The link is one shared server, first come first served: a transfer waits for the link,
//! does its real I/O, then holds the link until `latency + bytes / bandwidth` has passed since
//! it started (longer if the real I/O took longer). Waiting is sleeping, never spinning, and
//! at most one real copy runs at a time: on a small machine, concurrent copies would steal
//! the cores the computation runs on, which a real PM device's DMA would not.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::cost::TierCost;

/// Bandwidth and latency of an emulated PM device, with the source of the numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThrottleProfile {
    /// Profile name, e.g. `"optane-dcpmm-1dimm"`.
    pub name: String,
    /// Read bandwidth in bytes per second.
    pub read_bw: f64,
    /// Write bandwidth in bytes per second.
    pub write_bw: f64,
    /// Latency added to every read request (ns).
    pub read_latency_ns: f64,
    /// Latency added to every write request (ns).
    pub write_latency_ns: f64,
    /// Where the numbers come from.
    pub source: String,
}

impl ThrottleProfile {
    /// Intel Optane DC PMM, one DIMM, App Direct: ≈305 ns random read latency, ≈6.6 GB/s read
    /// and ≈2.3 GB/s write bandwidth (Izraelevitz et al., "Basic Performance Measurements of the
    /// Intel Optane DC Persistent Memory Module", 2019). Writes are conservatively charged the
    /// read latency too.
    pub fn optane_dcpmm() -> Self {
        Self {
            name: "optane-dcpmm-1dimm".into(),
            read_bw: 6.6e9,
            write_bw: 2.3e9,
            read_latency_ns: 305.0,
            write_latency_ns: 305.0,
            source: "Izraelevitz et al. 2019, per-DIMM App Direct measurements".into(),
        }
    }

    /// CXL type-3 memory expander: DRAM plus `extra_ns` (published 70–90 ns) of latency; the
    /// bandwidth is taken from the host's measured DRAM tier, since only latency was given.
    pub fn cxl(dram: &TierCost, extra_ns: f64) -> Self {
        Self {
            name: format!("cxl-dram+{extra_ns:.0}ns"),
            read_bw: dram.read_bw,
            write_bw: dram.write_bw,
            read_latency_ns: dram.read_latency_ns + extra_ns,
            write_latency_ns: dram.write_latency_ns + extra_ns,
            source: "CXL expander: local DRAM + 70-90 ns (published); bandwidth = host DRAM".into(),
        }
    }

    /// Looks a profile up by CLI name: `optane` / `optane-dcpmm`, `cxl` (80 ns over DRAM).
    pub fn named(name: &str, dram: &TierCost) -> Option<Self> {
        match name {
            "optane" | "optane-dcpmm" | "optane-dcpmm-1dimm" => Some(Self::optane_dcpmm()),
            "cxl" => Some(Self::cxl(dram, 80.0)),
            _ => None,
        }
    }

    /// The tier costs this profile imposes (what a cost model should predict with).
    pub fn tier_cost(&self) -> TierCost {
        TierCost {
            read_bw: self.read_bw,
            write_bw: self.write_bw,
            read_latency_ns: self.read_latency_ns,
            write_latency_ns: self.write_latency_ns,
            overlapped_read_bw: None,
            prefetch_wake_ns: 0.0,
        }
    }

    /// The label used in every report: the profile name marked as emulated.
    pub fn label(&self) -> String {
        format!("{} (emulated)", self.name)
    }
}

/// A shared emulated PM link.
#[derive(Debug)]
pub struct Throttle {
    profile: ThrottleProfile,
    /// Held for the whole of each transfer: the link serves one at a time.
    link: Mutex<()>,
}

/// Direction of a throttled transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// PM → DRAM.
    Read,
    /// DRAM → PM.
    Write,
}

impl Throttle {
    /// A throttle with the given profile.
    pub fn new(profile: ThrottleProfile) -> Self {
        Self { profile, link: Mutex::new(()) }
    }

    /// The profile in force.
    pub fn profile(&self) -> &ThrottleProfile {
        &self.profile
    }

    /// Emulated duration of one transfer of `bytes`.
    pub fn duration(&self, dir: Direction, bytes: u64) -> Duration {
        let (bw, lat) = match dir {
            Direction::Read => (self.profile.read_bw, self.profile.read_latency_ns),
            Direction::Write => (self.profile.write_bw, self.profile.write_latency_ns),
        };
        Duration::from_nanos((lat + bytes as f64 / bw * 1e9) as u64)
    }

    /// Runs the real I/O `io` of one transfer of `bytes` on the emulated link: waits for the
    /// link, runs `io`, and returns no earlier than the emulated duration after the start.
    pub fn transfer<R>(&self, dir: Direction, bytes: u64, io: impl FnOnce() -> R) -> R {
        let dur = self.duration(dir, bytes);
        let _link = self.link.lock();
        let start = Instant::now();
        let out = io();
        let end = start + dur;
        let now = Instant::now();
        if end > now {
            std::thread::sleep(end - now);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_carry_published_numbers() {
        let o = ThrottleProfile::optane_dcpmm();
        assert_eq!((o.read_bw, o.write_bw, o.read_latency_ns), (6.6e9, 2.3e9, 305.0));
        assert!(o.label().ends_with("(emulated)"));
        let dram = TierCost {
            read_bw: 10e9,
            write_bw: 8e9,
            read_latency_ns: 90.0,
            write_latency_ns: 90.0,
            overlapped_read_bw: None,
            prefetch_wake_ns: 0.0,
        };
        let c = ThrottleProfile::named("cxl", &dram).unwrap();
        assert_eq!(c.read_latency_ns, 170.0);
        assert!(ThrottleProfile::named("nope", &dram).is_none());
    }

    #[test]
    fn transfers_queue_on_the_link() {
        // 1 GB/s: three 2 MB reads from three threads occupy the link back to back (≈6 ms),
        // and their real I/O never overlaps.
        let t = Throttle::new(ThrottleProfile {
            name: "t".into(),
            read_bw: 1e9,
            write_bw: 1e9,
            read_latency_ns: 0.0,
            write_latency_ns: 0.0,
            source: String::new(),
        });
        let active = std::sync::atomic::AtomicU32::new(0);
        let max_active = std::sync::atomic::AtomicU32::new(0);
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    t.transfer(Direction::Read, 2_000_000, || {
                        use std::sync::atomic::Ordering::SeqCst;
                        let n = active.fetch_add(1, SeqCst) + 1;
                        max_active.fetch_max(n, SeqCst);
                        std::thread::sleep(Duration::from_micros(200));
                        active.fetch_sub(1, SeqCst);
                    })
                });
            }
        });
        assert!(start.elapsed() >= Duration::from_micros(5_900));
        assert_eq!(max_active.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(t.duration(Direction::Write, 1_000_000), Duration::from_millis(1));
    }
}
