//! The lines of `tune`'s budget curve: the store's policies, simulated with its own rules, and
//! kernel paging — the store over its mmap pool at the smallest budget an op runs in, with the
//! kernel's page cache holding the rest of the budget ([`hetier_tiering::sim::predict_paging`]).

use std::path::Path;

use anyhow::{bail, Context, Result};
use hetier_tiering::sim::{
    predict_paging, predict_timeline, smallest_store_budget, PagingCost, PagingSetup,
    PredictOptions, Prediction, Timeline,
};
use hetier_tiering::{CostModel, PolicyConfig, Trace};

use super::costs::CostFile;

/// The name of the kernel-paging line in tables and JSON.
pub const KERNEL: &str = "kernel";

/// One line of the curve.
#[derive(Clone, Debug)]
pub enum Line {
    /// A store policy.
    Store(PolicyConfig),
    /// Kernel paging with these costs, the store at `store_budget` bytes.
    Kernel {
        /// Fault, copy and write-back costs.
        cost: PagingCost,
        /// The store's own budget: the smallest every step of the model runs in.
        store_budget: u64,
    },
}

impl Line {
    /// The legend entry of the line in plots.
    pub fn legend(name: &str) -> String {
        if name == KERNEL {
            "kernel paging".into()
        } else {
            name.into()
        }
    }
}

/// Parses `--policies`; `None` is the default (every store policy, and kernel paging when the
/// cost file has its costs — otherwise a note says why it is missing).
pub fn parse_lines(
    names: Option<&[String]>,
    file: &CostFile,
    path: &Path,
    store_budget: u64,
    quiet: bool,
) -> Result<Vec<(String, Line)>> {
    let default: Vec<String> = ["lru", "alpha", "planned", KERNEL].map(String::from).to_vec();
    let explicit = names.is_some();
    let names = names.map_or(default, <[String]>::to_vec);
    let mut out = Vec::new();
    for p in names {
        match p.as_str() {
            KERNEL | "kernel-paging" | "paging" => match (&file.paging, explicit) {
                (Some(c), _) => {
                    out.push((KERNEL.to_owned(), Line::Kernel { cost: c.clone(), store_budget }))
                }
                (None, true) => {
                    file.paging(path)?;
                }
                (None, false) => super::note(
                    quiet,
                    &format!(
                        "no kernel-paging line: cost file {} (version {}) has no paging costs \
                         (run hetier calibrate again)",
                        path.display(),
                        file.version
                    ),
                ),
            },
            _ => out.push((
                p.clone(),
                Line::Store(PolicyConfig::parse(&p).with_context(|| {
                    format!(
                        "unknown policy {p:?} (lru, alpha, planned, planned-noprefetch, kernel)"
                    )
                })?),
            )),
        }
    }
    if out.is_empty() {
        bail!("--policies names no line to predict");
    }
    Ok(out)
}

/// The store budget of a kernel-paging run: the smallest the trace's steps run in, or the
/// store's own check of the program's working sets (`working_set`), whichever is larger.
pub fn kernel_store_budget(trace: &Trace, working_set: u64) -> u64 {
    smallest_store_budget(trace).max(working_set)
}

/// Predicts `line` at a DRAM `budget`; `None` when the budget cannot hold an op's pinned set.
/// A store policy gets `budget` less `reserve` (what the executor charges to the budget
/// outside the trace's objects: the hoisted decomposition); kernel paging gives the page
/// cache what the store's small budget leaves of `budget`.
pub fn predict_line(
    trace: &Trace,
    tiers: &CostModel,
    line: &Line,
    budget: u64,
    reserve: u64,
    opts: &PredictOptions,
) -> Result<Option<(Prediction, Timeline)>> {
    let res = match line {
        Line::Store(p) => {
            if budget <= reserve {
                return Ok(None);
            }
            predict_timeline(trace, tiers, p, budget - reserve, opts)
        }
        Line::Kernel { cost: c, store_budget } => {
            let store_budget = *store_budget;
            if budget < store_budget {
                return Ok(None);
            }
            let setup = PagingSetup { store_budget, cache_bytes: budget - store_budget };
            predict_paging(trace, tiers, c, &setup)
        }
    };
    match res {
        Ok(x) => Ok(Some(x)),
        Err(hetier_tiering::Error::PinnedSetTooLarge { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Predicts kernel paging with the page cache it actually had (`cache_bytes`), for comparing
/// with a real run.
pub fn predict_kernel_with_cache(
    trace: &Trace,
    tiers: &CostModel,
    cost: &PagingCost,
    store_budget: u64,
    cache_bytes: u64,
) -> Result<(Prediction, Timeline)> {
    let setup = PagingSetup { store_budget, cache_bytes };
    Ok(predict_paging(trace, tiers, cost, &setup)?)
}
