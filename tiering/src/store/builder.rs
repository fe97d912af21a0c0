//! Typestate builder: the budget and the pool must be given before `build` exists.

use hetier_allocator::Pool;

use crate::cost::{CostModel, PmDescription};
use crate::error::{Error, Result};
use crate::policy::{Policy, PolicyConfig};
use crate::throttle::{Throttle, ThrottleProfile};

/// Builder state: no DRAM budget given yet.
#[derive(Debug)]
pub struct NoBudget;
/// Builder state: DRAM budget given (bytes).
#[derive(Debug)]
pub struct WithBudget(u64);
/// Builder state: no pool given yet.
#[derive(Debug)]
pub struct NoPool;
/// Builder state: pool given.
#[derive(Debug)]
pub struct WithPool(Pool);

/// Builds a [`crate::TieredStore`]; `dram_budget` and `pool` are required, the rest optional.
#[derive(Debug)]
pub struct StoreBuilder<B, P> {
    budget: B,
    pool: P,
    opts: Options,
}

#[derive(Debug)]
struct Options {
    policy: PolicyConfig,
    custom: Option<Box<dyn Policy>>,
    threads: usize,
    throttle: Option<ThrottleProfile>,
    model: Option<CostModel>,
    pm_label: Option<String>,
}

impl StoreBuilder<NoBudget, NoPool> {
    pub(super) fn new() -> Self {
        Self {
            budget: NoBudget,
            pool: NoPool,
            opts: Options {
                policy: PolicyConfig::Lru,
                custom: None,
                threads: 2,
                throttle: None,
                model: None,
                pm_label: None,
            },
        }
    }
}

impl<B, P> StoreBuilder<B, P> {
    /// Chooses a built-in policy (default `lru`).
    pub fn policy(mut self, cfg: PolicyConfig) -> Self {
        self.opts.policy = cfg;
        self
    }

    /// Uses a caller-supplied policy instead of a built-in one.
    pub fn custom_policy(mut self, policy: Box<dyn Policy>) -> Self {
        self.opts.custom = Some(policy);
        self
    }

    /// Number of background migrator threads (default 2; 0 disables prefetch and background
    /// write-back, every transfer then happens in the pinning thread).
    pub fn migrator_threads(mut self, n: usize) -> Self {
        self.opts.threads = n;
        self
    }

    /// Throttles every PM transfer to an emulated device profile.
    pub fn throttle(mut self, profile: ThrottleProfile) -> Self {
        self.opts.throttle = Some(profile);
        self
    }

    /// The cost model the `alpha` policy prices placements with.
    pub fn cost_model(mut self, model: CostModel) -> Self {
        self.opts.model = Some(model);
        self
    }

    /// A label for the PM tier in reports (default: the pool's backend name).
    pub fn pm_label(mut self, label: impl Into<String>) -> Self {
        self.opts.pm_label = Some(label.into());
        self
    }
}

impl<P> StoreBuilder<NoBudget, P> {
    /// The hard DRAM budget in bytes.
    pub fn dram_budget(self, bytes: u64) -> StoreBuilder<WithBudget, P> {
        StoreBuilder { budget: WithBudget(bytes), pool: self.pool, opts: self.opts }
    }
}

impl<B> StoreBuilder<B, NoPool> {
    /// The persistent-memory pool; objects already in it are registered as PM-only.
    pub fn pool(self, pool: Pool) -> StoreBuilder<B, WithPool> {
        StoreBuilder { budget: self.budget, pool: WithPool(pool), opts: self.opts }
    }
}

/// A builder's validated options: what the store starts from.
pub(super) struct StoreParts {
    pub(super) pool: Pool,
    pub(super) budget: u64,
    pub(super) policy: Box<dyn Policy>,
    pub(super) threads: usize,
    pub(super) throttle: Option<Throttle>,
    pub(super) pm_description: PmDescription,
}

impl StoreBuilder<WithBudget, WithPool> {
    /// Validates the options (`build`, beside the store, starts it from them).
    pub(super) fn into_parts(self) -> Result<StoreParts> {
        let budget = self.budget.0;
        if budget == 0 {
            return Err(Error::InvalidConfig {
                name: "dram_budget",
                value: "0".into(),
                reason: "the budget must be at least one byte",
            });
        }
        let o = self.opts;
        let policy = match o.custom {
            Some(p) => p,
            None => {
                let model = match (&o.policy, &o.model) {
                    (_, Some(m)) => m.clone(),
                    (PolicyConfig::Alpha { .. }, None) => {
                        return Err(Error::InvalidConfig {
                            name: "policy",
                            value: "alpha".into(),
                            reason:
                                "the alpha policy needs a cost model (StoreBuilder::cost_model)",
                        })
                    }
                    // lru and planned do not price anything; any valid model will do.
                    (_, None) => neutral_model(),
                };
                model.validate()?;
                o.policy.build(&model)
            }
        };
        let pool = self.pool.0;
        let base = o.pm_label.unwrap_or_else(|| format!("pool ({})", pool.backend_name()));
        let (throttle, pm_description) = match o.throttle {
            Some(p) => {
                let d = PmDescription { label: format!("{base} + {}", p.name), emulated: true };
                (Some(Throttle::new(p)), d)
            }
            None => (None, PmDescription { label: base, emulated: false }),
        };
        Ok(StoreParts { pool, budget, policy, threads: o.threads, throttle, pm_description })
    }
}

fn neutral_model() -> CostModel {
    let t = crate::cost::TierCost::symmetric(1e9, 0.0);
    CostModel {
        dram: t.clone(),
        pm: t,
        pm_description: PmDescription { label: "unpriced".into(), emulated: false },
        ops_ns: Default::default(),
    }
}
