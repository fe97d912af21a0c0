//! The cost model: per-tier bandwidth and latency plus per-op compute times, saved as a JSON
//! profile. Predictions of whole runs live in [`crate::sim`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Bandwidth and latency of one tier, as measured (or emulated).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TierCost {
    /// Sustained read bandwidth in bytes per second for large transfers.
    pub read_bw: f64,
    /// Sustained write bandwidth in bytes per second for large transfers.
    pub write_bw: f64,
    /// Fixed cost of one read request in nanoseconds.
    pub read_latency_ns: f64,
    /// Fixed cost of one write request in nanoseconds.
    pub write_latency_ns: f64,
    /// Read bandwidth (bytes per second) of a transfer that runs while the compute thread
    /// computes — a migrator thread's prefetch — when it differs from `read_bw`. On a tier read
    /// by CPU copies (tmpfs, DAX) the copy shares the cores with the computation, and on a
    /// loaded machine a migrator thread also waits to be woken; a demand load runs while the
    /// compute thread waits. `None`: `read_bw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlapped_read_bw: Option<f64>,
    /// Delay from handing a prefetch to an idle migrator thread to its transfer starting (ns):
    /// the thread sleeps in a blocking receive, and on a loaded machine it then waits for a
    /// core (perf sched at load 5 on 2 cores: 1.4 ms on average for the migrators, up to
    /// 14 ms). A demand load runs on the compute thread and pays none.
    #[serde(default)]
    pub prefetch_wake_ns: f64,
}

impl TierCost {
    /// A tier that reads and writes at `bw` bytes per second with `latency_ns` per request, its
    /// prefetches no slower than its demand loads.
    pub fn symmetric(bw: f64, latency_ns: f64) -> Self {
        Self {
            read_bw: bw,
            write_bw: bw,
            read_latency_ns: latency_ns,
            write_latency_ns: latency_ns,
            overlapped_read_bw: None,
            prefetch_wake_ns: 0.0,
        }
    }

    /// Predicted time to read `bytes` in one request, in nanoseconds.
    pub fn read_ns(&self, bytes: u64) -> f64 {
        self.read_latency_ns + bytes as f64 / self.read_bw * 1e9
    }

    /// Predicted time to read `bytes` in one request while the compute thread computes (ns).
    pub fn overlapped_read_ns(&self, bytes: u64) -> f64 {
        self.read_latency_ns + bytes as f64 / self.overlapped_read_bw.unwrap_or(self.read_bw) * 1e9
    }

    /// When a read priced as overlapped, on the link from `start` until `end`, ends if the
    /// compute thread stops at `now` to wait for it: from `now` (or its start, if later) the
    /// rest runs at `read_bw`. A prefetch issued just before the pin that needs it (lru's warm
    /// start) thus costs a demand load.
    pub fn waited_read_end(&self, start: f64, end: f64, now: f64) -> f64 {
        let Some(ov) = self.overlapped_read_bw else { return end };
        if now >= end {
            return end;
        }
        let from = now.max(start);
        end.min(from + (end - from) * ov / self.read_bw)
    }

    /// Predicted time to write `bytes` in one request, in nanoseconds.
    pub fn write_ns(&self, bytes: u64) -> f64 {
        self.write_latency_ns + bytes as f64 / self.write_bw * 1e9
    }

    fn check(&self, tier: &'static str) -> Result<()> {
        for (v, name) in [
            (self.read_bw, "read_bw"),
            (self.write_bw, "write_bw"),
            (self.read_latency_ns, "read_latency_ns"),
            (self.write_latency_ns, "write_latency_ns"),
            (self.overlapped_read_bw.unwrap_or(self.read_bw), "overlapped_read_bw"),
            (self.prefetch_wake_ns, "prefetch_wake_ns"),
        ] {
            let ok = v.is_finite() && v >= 0.0 && (v > 0.0 || name.ends_with("_ns"));
            if !ok {
                return Err(Error::InvalidConfig {
                    name: tier,
                    value: format!("{name}={v}"),
                    reason: "bandwidths must be positive and latencies non-negative",
                });
            }
        }
        Ok(())
    }
}

/// What the PM tier of a profile physically was, so every output can say it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PmDescription {
    /// Human-readable label, e.g. `"ext4 file via O_DIRECT"` or `"tmpfs + optane-dcpmm"`.
    pub label: String,
    /// True when bandwidth/latency come from the throttle's emulation, not from hardware.
    pub emulated: bool,
}

impl std::fmt::Display for PmDescription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.emulated {
            write!(f, "{} (emulated)", self.label)
        } else {
            f.write_str(&self.label)
        }
    }
}

/// Calibrated costs of a host: DRAM, the PM tier, and the compute time of named operations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostModel {
    /// DRAM tier (memcpy bandwidth, random-access latency).
    pub dram: TierCost,
    /// PM tier through the configured backend (and throttle, if any).
    pub pm: TierCost,
    /// What the PM tier was.
    pub pm_description: PmDescription,
    /// Compute time of each named operation in nanoseconds (keys match trace `op` names).
    #[serde(default)]
    pub ops_ns: BTreeMap<String, f64>,
}

impl CostModel {
    /// Validates every number (positive bandwidths, finite non-negative latencies and op times).
    pub fn validate(&self) -> Result<()> {
        self.dram.check("dram")?;
        self.pm.check("pm")?;
        if let Some((k, v)) = self.ops_ns.iter().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
            return Err(Error::InvalidConfig {
                name: "ops_ns",
                value: format!("{k}={v}"),
                reason: "op times must be finite and non-negative",
            });
        }
        Ok(())
    }

    /// Compute time of the named op, falling back to `recorded_ns` (the trace's own number)
    /// when the profile does not know the op.
    pub fn op_ns(&self, name: &str, recorded_ns: u64) -> f64 {
        self.ops_ns.get(name).copied().unwrap_or(recorded_ns as f64)
    }

    /// Per-access cost of an object of `len` bytes read from DRAM (ns).
    pub fn dram_access_ns(&self, len: u64) -> f64 {
        self.dram.read_ns(len)
    }

    /// Per-access cost of an object of `len` bytes that lives in PM (ns): it is read into DRAM
    /// and then used there, so the transfer comes on top of the DRAM access. Keeping an object
    /// in DRAM therefore always saves the transfer, even where the PM tier's copy was measured
    /// faster than a DRAM memcpy (an emulated tier on a loaded machine: alpha then left DRAM
    /// empty at a budget of the whole footprint).
    pub fn pm_access_ns(&self, len: u64) -> f64 {
        self.pm.read_ns(len) + self.dram.read_ns(len)
    }

    /// Writes the profile as pretty JSON.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|cause| Error::Json { what: "cost profile", cause })?;
        std::fs::write(path.as_ref(), text).map_err(|e| Error::io(path, e))
    }

    /// Reads and validates a JSON profile.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let text = std::fs::read_to_string(path.as_ref()).map_err(|e| Error::io(&path, e))?;
        let m: Self = serde_json::from_str(&text)
            .map_err(|cause| Error::Json { what: "cost profile", cause })?;
        m.validate()?;
        Ok(m)
    }
}

#[cfg(test)]
pub(crate) fn test_model() -> CostModel {
    CostModel {
        dram: TierCost::symmetric(10e9, 100.0),
        pm: TierCost {
            read_bw: 1e9,
            write_bw: 0.5e9,
            read_latency_ns: 1000.0,
            write_latency_ns: 2000.0,
            overlapped_read_bw: None,
            prefetch_wake_ns: 0.0,
        },
        pm_description: PmDescription { label: "test".into(), emulated: true },
        ops_ns: BTreeMap::from([("key_switch".to_owned(), 1000.0)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_round_trip_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("profile.json");
        let m = test_model();
        m.save(&p).unwrap();
        assert_eq!(CostModel::load(&p).unwrap(), m);
        assert!((m.pm.read_ns(1_000_000) - 1_001_000.0).abs() < 1e-6);
        assert_eq!(m.op_ns("key_switch", 7), 1000.0);
        assert_eq!(m.op_ns("other", 7), 7.0);
        let mut bad = m.clone();
        bad.pm.read_bw = 0.0;
        bad.save(&p).unwrap();
        assert!(matches!(CostModel::load(&p), Err(Error::InvalidConfig { name: "pm", .. })));
        std::fs::write(&p, "{").unwrap();
        assert!(matches!(CostModel::load(&p), Err(Error::Json { .. })));
        assert_eq!(m.pm_description.to_string(), "test (emulated)");
        // A prefetch at half the demand rate: waited for halfway, its second half takes half
        // as long; waited for from its start (or before), it costs a demand load.
        let mut t = m.pm.clone();
        t.overlapped_read_bw = Some(t.read_bw / 2.0);
        assert_eq!(t.waited_read_end(0.0, 100.0, 50.0), 75.0);
        assert_eq!(t.waited_read_end(10.0, 110.0, 10.0), 60.0);
        assert_eq!(t.waited_read_end(10.0, 110.0, 0.0), 60.0);
        assert_eq!(t.waited_read_end(0.0, 100.0, 120.0), 100.0);
        t.overlapped_read_bw = None;
        assert_eq!(t.waited_read_end(0.0, 100.0, 50.0), 100.0);
        // A PM access costs its transfer on top of the DRAM access, whatever the two rates.
        let mut fast_pm = m.clone();
        fast_pm.pm.read_bw = 2.0 * fast_pm.dram.read_bw;
        let len = 1 << 20;
        assert!(fast_pm.pm_access_ns(len) > fast_pm.dram_access_ns(len));
        assert!(
            (fast_pm.pm_access_ns(len) - fast_pm.dram_access_ns(len) - fast_pm.pm.read_ns(len))
                .abs()
                < 1e-6
        );
    }
}
