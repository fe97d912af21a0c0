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
        /// Plan bytes ahead within which a conservative prefetch follows the aggressive rule
        /// ([`PlannedPolicy::with_lead`]; 0: none, and left out of the JSON).
        #[serde(default, skip_serializing_if = "is_zero")]
        lead_bytes: u64,
    },
}

fn yes() -> bool {
    true
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

impl PolicyConfig {
    /// Builds the policy. The cost model is used by `alpha` to price DRAM against PM.
    pub fn build(&self, model: &CostModel) -> Box<dyn Policy> {
        match self {
            PolicyConfig::Lru => Box::new(LruPolicy::new()),
            PolicyConfig::Alpha { reserve_bytes } => {
                Box::new(AlphaPolicy::new(model.clone(), *reserve_bytes))
            }
            PolicyConfig::Planned { prefetch, rule, lead_bytes } => {
                Box::new(PlannedPolicy::new(*prefetch).with_rule(*rule).with_lead(*lead_bytes))
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
            PolicyConfig::Planned { prefetch: true, rule, .. } => Some(*rule),
            _ => None,
        }
    }

    /// A planned policy's prefetch lead in bytes ([`PlannedPolicy::with_lead`]): `None` for a
    /// policy that does not prefetch.
    pub fn prefetch_lead(&self) -> Option<u64> {
        match self {
            PolicyConfig::Planned { prefetch: true, lead_bytes, .. } => Some(*lead_bytes),
            _ => None,
        }
    }

    /// `planned` with prefetch under `rule`.
    pub fn planned(rule: PrefetchRule) -> Self {
        PolicyConfig::Planned { prefetch: true, rule, lead_bytes: 0 }
    }

    /// This config with a planned policy's prefetch lead set to `bytes`
    /// ([`PlannedPolicy::with_lead`]); other policies are returned unchanged.
    pub fn with_lead(self, bytes: u64) -> Self {
        match self {
            PolicyConfig::Planned { prefetch, rule, .. } => {
                PolicyConfig::Planned { prefetch, rule, lead_bytes: bytes }
            }
            other => other,
        }
    }

    /// `planned` without prefetch: pure MIN eviction.
    pub fn planned_without_prefetch() -> Self {
        PolicyConfig::Planned { prefetch: false, rule: PrefetchRule::default(), lead_bytes: 0 }
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

    /// A lead travels through JSON (absent means none, as in configs written before it) and
    /// reaches the built policy; other policies ignore it.
    #[test]
    fn a_prefetch_lead_round_trips_and_reaches_the_policy() {
        let led = PolicyConfig::planned(PrefetchRule::Conservative).with_lead(64 << 20);
        let json = serde_json::to_string(&led).unwrap();
        assert_eq!(
            json,
            r#"{"policy":"planned","prefetch":true,"rule":"conservative","lead_bytes":67108864}"#
        );
        assert_eq!(serde_json::from_str::<PolicyConfig>(&json).unwrap(), led);
        assert_eq!(PolicyConfig::Lru.with_lead(1), PolicyConfig::Lru);
        assert_eq!(led.prefetch_lead(), Some(64 << 20));
        assert_eq!(PolicyConfig::planned_without_prefetch().with_lead(1).prefetch_lead(), None);
        // Built, the lead turns a conservative prefetch aggressive only near the cursor.
        let p = led.build(&crate::cost::test_model());
        let (near, far) = (crate::ObjectId(1), crate::ObjectId(2));
        let mut p = p;
        p.on_hint(&[near, far], 1 << 40, &|id| Some(if id == near { 100 << 20 } else { 1 }));
        assert_eq!(p.prefetch_rule_for(near), PrefetchRule::Aggressive);
        assert_eq!(p.prefetch_rule_for(far), PrefetchRule::Conservative);
    }
}
