//! Eviction and prefetch policies: a trait the store consults under its lock, and a serde
//! config enum for choosing one at run time (`lru`, `alpha`, `planned`).

mod alpha;
mod interface;
mod lru;
mod planned;

pub use alpha::AlphaPolicy;
pub use interface::{Policy, PolicyReport, PrefetchRule};
pub use lru::LruPolicy;
pub use planned::PlannedPolicy;

use serde::{Deserialize, Serialize};

use crate::cost::CostModel;
use crate::partition::Partition;

/// Run-time choice of policy, as read from CLI flags or JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum PolicyConfig {
    /// Least recently used eviction, no prefetch.
    #[default]
    Lru,
    /// Static α-partition from the hinted access profile (or an explicit partition).
    Alpha {
        /// Bytes kept free for objects outside the partition while they are pinned; `None`
        /// reserves the two largest objects (an op pins a ciphertext and a key).
        #[serde(default)]
        reserve_bytes: Option<u64>,
    },
    /// Belady/MIN eviction over the hinted future plus prefetch within the budget.
    Planned {
        /// Whether to prefetch (false gives pure MIN eviction, for comparison).
        #[serde(default = "yes")]
        prefetch: bool,
        /// When a prefetch may evict ([`PrefetchRule`]).
        #[serde(default)]
        rule: PrefetchRule,
    },
}

fn yes() -> bool {
    true
}

impl PolicyConfig {
    /// Builds the policy. The cost model is used by `alpha` to price DRAM against PM.
    pub fn build(&self, model: &CostModel) -> Box<dyn Policy> {
        match self {
            PolicyConfig::Lru => Box::new(LruPolicy::new()),
            PolicyConfig::Alpha { reserve_bytes } => {
                Box::new(AlphaPolicy::new(model.clone(), *reserve_bytes))
            }
            PolicyConfig::Planned { prefetch, rule } => {
                Box::new(PlannedPolicy::new(*prefetch).with_rule(*rule))
            }
        }
    }

    /// Short name (`lru`, `alpha`, `planned`).
    pub fn name(&self) -> &'static str {
        match self {
            PolicyConfig::Lru => "lru",
            PolicyConfig::Alpha { .. } => "alpha",
            PolicyConfig::Planned { .. } => "planned",
        }
    }

    /// The rule prefetches follow: `None` for a policy that does not prefetch.
    pub fn prefetch_rule(&self) -> Option<PrefetchRule> {
        match self {
            PolicyConfig::Planned { prefetch: true, rule } => Some(*rule),
            _ => None,
        }
    }

    /// `planned` with prefetch under `rule`.
    pub fn planned(rule: PrefetchRule) -> Self {
        PolicyConfig::Planned { prefetch: true, rule }
    }

    /// `planned` without prefetch: pure MIN eviction.
    pub fn planned_without_prefetch() -> Self {
        PolicyConfig::Planned { prefetch: false, rule: PrefetchRule::default() }
    }

    /// Parses a CLI spelling: `lru`, `alpha`, `planned`, `planned-aggressive`,
    /// `planned-noprefetch`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "lru" => Some(PolicyConfig::Lru),
            "alpha" => Some(PolicyConfig::Alpha { reserve_bytes: None }),
            "planned" => Some(PolicyConfig::planned(PrefetchRule::Conservative)),
            "planned-aggressive" => Some(PolicyConfig::planned(PrefetchRule::Aggressive)),
            "planned-noprefetch" => Some(PolicyConfig::planned_without_prefetch()),
            _ => None,
        }
    }
}

/// A partition chosen from an explicit profile, for callers that solved α themselves.
pub fn alpha_from_partition(model: &CostModel, partition: Partition) -> AlphaPolicy {
    AlphaPolicy::with_partition(model.clone(), partition)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_serde_and_parse() {
        let c: PolicyConfig = serde_json::from_str(r#"{"policy":"planned"}"#).unwrap();
        assert_eq!(c, PolicyConfig::planned(PrefetchRule::Conservative));
        let json = r#"{"policy":"planned","prefetch":true,"rule":"aggressive"}"#;
        assert_eq!(
            serde_json::to_string(&PolicyConfig::planned(PrefetchRule::Aggressive)).unwrap(),
            json
        );
        let c: PolicyConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.build(&crate::cost::test_model()).prefetch_rule(), PrefetchRule::Aggressive);
        let c: PolicyConfig = serde_json::from_str(r#"{"policy":"alpha"}"#).unwrap();
        assert_eq!(c, PolicyConfig::Alpha { reserve_bytes: None });
        assert_eq!(serde_json::to_string(&PolicyConfig::Lru).unwrap(), r#"{"policy":"lru"}"#);
        for s in ["lru", "alpha", "planned", "planned-aggressive", "planned-noprefetch"] {
            let c = PolicyConfig::parse(s).unwrap();
            assert!(s.starts_with(c.name()));
            assert_eq!(c.build(&crate::cost::test_model()).name(), c.name());
        }
        assert!(PolicyConfig::parse("fifo").is_none());
        let rule = |s| PolicyConfig::parse(s).unwrap().prefetch_rule();
        assert_eq!(rule("planned"), Some(PrefetchRule::Conservative));
        assert_eq!(rule("planned-aggressive"), Some(PrefetchRule::Aggressive));
        assert_eq!((rule("planned-noprefetch"), rule("lru"), rule("alpha")), (None, None, None));
    }
}
