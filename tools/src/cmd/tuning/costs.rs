//! The cost file: what `hetier calibrate --out costs.json` writes and `--costs FILE` reads in
//! `plan`, `profile` and `tune` — the tiers' bandwidths and latencies (tiering's `CostModel`),
//! what the PM tier physically was, and the CKKS op times at one or more ring sizes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use hetier_he::exec::OpCosts;
use hetier_tiering::sim::PagingCost;
use hetier_tiering::CostModel;
use serde::{Deserialize, Serialize};

/// Value of the file's `format` field.
pub const FORMAT: &str = "hetier-costs";
/// The version this build writes (2 added the kernel-paging costs).
pub const VERSION: u32 = 2;
/// The oldest version this build reads (without kernel-paging costs).
pub const OLDEST_VERSION: u32 = 1;

/// The whole cost file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// What the PM tier was: `disk`, `tmpfs`, `dax` or `emulated`, with its details.
    pub pm_kind: String,
    /// DRAM and PM bandwidth and latency.
    pub tiers: CostModel,
    /// Op times, one entry per ring size calibrated.
    pub op_costs: Vec<OpCosts>,
    /// Page faults, cached copies and write-back through a mapped pool file: the kernel-paging
    /// line of `tune` (absent in version 1 files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<PagingCost>,
}

impl CostFile {
    /// Reads and checks a cost file; every failure names the file and how to make a good one.
    pub fn load(path: &Path) -> Result<Self> {
        let hint = || format!("make one with: hetier calibrate --out {}", path.display());
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read cost file {} ({})", path.display(), hint()))?;
        let f: Self = serde_json::from_str(&text).with_context(|| {
            format!("cost file {} is not a hetier cost file ({})", path.display(), hint())
        })?;
        if f.format != FORMAT || !(OLDEST_VERSION..=VERSION).contains(&f.version) {
            bail!(
                "cost file {} has format {:?} version {}, this build reads {FORMAT:?} versions \
                 {OLDEST_VERSION} to {VERSION} ({})",
                path.display(),
                f.format,
                f.version,
                hint()
            );
        }
        f.tiers.validate().with_context(|| format!("cost file {}", path.display()))?;
        if let Some(p) = &f.paging {
            p.validate().with_context(|| format!("cost file {}: paging", path.display()))?;
        }
        for oc in &f.op_costs {
            if let Some((k, v)) = oc.top_ns.iter().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
                bail!(
                    "cost file {}: op time {k} = {v} ns at log N = {} is not a finite \
                     non-negative number",
                    path.display(),
                    oc.log_n
                );
            }
        }
        Ok(f)
    }

    /// Writes the file as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The kernel-paging costs, or an error that says how to measure them.
    pub fn paging(&self, path: &Path) -> Result<&PagingCost> {
        self.paging.as_ref().with_context(|| {
            format!(
                "cost file {} (version {}) has no kernel-paging costs: run hetier calibrate --out \
                 {} again, or leave kernel out of --policies",
                path.display(),
                self.version,
                path.display()
            )
        })
    }

    /// The op times at `log_n`, or an error that says which ring sizes the file has.
    pub fn ops(&self, log_n: u32, path: &Path) -> Result<&OpCosts> {
        self.op_costs.iter().find(|o| o.log_n == log_n).with_context(|| {
            let have: Vec<String> = self.op_costs.iter().map(|o| o.log_n.to_string()).collect();
            format!(
                "cost file {} has op times at log N = [{}], not {log_n}: run hetier calibrate \
                 --log-n {log_n} --out {}",
                path.display(),
                have.join(", "),
                path.display()
            )
        })
    }
}

/// The `--costs FILE` flag shared by `plan`, `profile` and `tune`.
#[derive(Args, Debug, Clone)]
pub struct CostsArg {
    /// Cost file written by `hetier calibrate --out FILE` (tier bandwidths and latencies, op
    /// times). Required: predictions are only as good as this file.
    #[arg(long, value_name = "FILE")]
    pub costs: PathBuf,
}

impl CostsArg {
    /// Loads the file.
    pub fn load(&self) -> Result<CostFile> {
        CostFile::load(&self.costs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hetier_tiering::{PmDescription, TierCost};

    fn sample() -> CostFile {
        let tier = TierCost::symmetric;
        CostFile {
            format: FORMAT.into(),
            version: VERSION,
            pm_kind: "disk".into(),
            tiers: CostModel {
                dram: tier(1e10, 100.0),
                pm: tier(2e9, 1e4),
                pm_description: PmDescription { label: "test".into(), emulated: false },
                ops_ns: Default::default(),
            },
            op_costs: vec![OpCosts {
                log_n: 13,
                q_len: 3,
                p_len: 1,
                top_ns: [("rotate".to_owned(), 1e6)].into(),
            }],
            paging: Some(PagingCost {
                fault_seq_read_bw: 1e9,
                fault_random_ns: 1e5,
                readaround_bytes: 128 << 10,
                writeback_bw: 5e8,
                mapped_copy_bw: 5e9,
            }),
        }
    }

    #[test]
    fn round_trips_and_rejects_what_is_not_a_cost_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("costs.json");
        let f = sample();
        f.save(&p).unwrap();
        assert_eq!(CostFile::load(&p).unwrap(), f);
        assert!(f.ops(13, &p).is_ok());
        let e = f.ops(16, &p).unwrap_err().to_string();
        assert!(e.contains("[13], not 16") && e.contains("--log-n 16"), "{e}");

        let missing = CostFile::load(&dir.path().join("nope.json")).unwrap_err();
        assert!(format!("{missing:#}").contains("cannot read cost file"), "{missing:#}");
        std::fs::write(&p, "{ not json").unwrap();
        let e = format!("{:#}", CostFile::load(&p).unwrap_err());
        assert!(e.contains("is not a hetier cost file"), "{e}");
        let mut bad = sample();
        bad.tiers.pm.read_bw = -1.0;
        bad.save(&p).unwrap();
        assert!(CostFile::load(&p).is_err());
        let mut old = sample();
        old.version = 99;
        old.save(&p).unwrap();
        assert!(format!("{:#}", CostFile::load(&p).unwrap_err()).contains("version 99"));
        // Version 1 (no paging costs) still reads; asking it for paging says what to do.
        let mut v1 = sample();
        (v1.version, v1.paging) = (1, None);
        v1.save(&p).unwrap();
        let e = CostFile::load(&p).unwrap().paging(&p).unwrap_err().to_string();
        assert!(e.contains("version 1) has no kernel-paging costs"), "{e}");
        let mut bad = sample();
        bad.paging.as_mut().unwrap().writeback_bw = -1.0;
        bad.save(&p).unwrap();
        assert!(format!("{:#}", CostFile::load(&p).unwrap_err()).contains("writeback_bw"));
        let mut nan = sample();
        nan.op_costs[0].top_ns.insert("add".into(), -3.0);
        nan.save(&p).unwrap();
        assert!(format!("{:#}", CostFile::load(&p).unwrap_err()).contains("op time add"));
    }
}
