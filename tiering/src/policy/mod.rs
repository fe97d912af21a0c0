//! Eviction and prefetch policies: a trait the store consults under its lock, and a serde
//! config enum for choosing one at run time (`lru`, `alpha`, `planned`).

mod alpha;
mod lru;
mod planned;

pub use alpha::AlphaPolicy;
pub use lru::LruPolicy;
pub use planned::PlannedPolicy;

use serde::{Deserialize, Serialize};

use crate::cost::CostModel;
use crate::ids::ObjectId;
use crate::partition::Partition;

/// Decides which DRAM-resident object leaves first and what to fetch ahead of time.
///
/// The store calls every method with its state lock held, so implementations need no locking
/// and must not block.
pub trait Policy: Send + std::fmt::Debug {
    /// Short name used in reports (`"lru"`, `"alpha"`, `"planned"`).
    fn name(&self) -> &'static str;

    /// A new object of `len` bytes now exists.
    fn on_insert(&mut self, id: ObjectId, len: u64);

    /// The object was pinned (one access).
    fn on_access(&mut self, id: ObjectId);

    /// The object was removed from the store.
    fn on_remove(&mut self, id: ObjectId);

    /// The future access sequence (pin order) from now on; replaces any earlier hint.
    /// `budget` is the DRAM budget and `len_of` gives lengths of objects that already exist.
    fn on_hint(
        &mut self,
        future: &[ObjectId],
        budget: u64,
        len_of: &dyn Fn(ObjectId) -> Option<u64>,
    );

    /// Eviction order: among unpinned DRAM-resident objects the one with the largest value
    /// leaves first — among clean objects first, since a scratch object leaving DRAM costs a
    /// write-back, so scratch ones are chosen only when no clean object qualifies.
    fn evict_priority(&self, id: ObjectId) -> u64;

    /// How a prefetch of `candidate` ranks the DRAM-resident object `id`: `(rank, needed_first)`.
    /// The store evicts for a prefetch only the object of highest rank among all unpinned
    /// resident ones, only if its rank exceeds the candidate's own (`prefetch_rank(c, c)`),
    /// and only if it is not `needed_first` (used before the candidate). The default ranks by
    /// [`evict_priority`](Self::evict_priority) and never reports `needed_first`.
    fn prefetch_rank(&self, id: ObjectId, candidate: ObjectId) -> (u64, bool) {
        let _ = candidate;
        (self.evict_priority(id), false)
    }

    /// Bytes a prefetch of `candidate` must leave free for objects that do not exist yet but
    /// will be written (and used) before it, e.g. the results of the next operations.
    fn prefetch_headroom(&self, candidate: ObjectId) -> u64 {
        let _ = candidate;
        0
    }

    /// Objects worth bringing into DRAM ahead of their use, most urgent first.
    fn prefetch_candidates(&self) -> Vec<ObjectId> {
        Vec::new()
    }

    /// Summary numbers for reports (α for the α-partition policy).
    fn report(&self) -> PolicyReport {
        PolicyReport { name: self.name().to_owned(), alpha: None, planned_ahead: None }
    }
}

/// What a policy reports about its decisions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    /// Policy name.
    pub name: String,
    /// α of the static partition (α-policy only).
    pub alpha: Option<f64>,
    /// Remaining hinted accesses (planned policy only).
    pub planned_ahead: Option<u64>,
}

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
            PolicyConfig::Planned { prefetch } => Box::new(PlannedPolicy::new(*prefetch)),
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

    /// Parses a CLI spelling: `lru`, `alpha`, `planned`, `planned-noprefetch`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "lru" => Some(PolicyConfig::Lru),
            "alpha" => Some(PolicyConfig::Alpha { reserve_bytes: None }),
            "planned" => Some(PolicyConfig::Planned { prefetch: true }),
            "planned-noprefetch" => Some(PolicyConfig::Planned { prefetch: false }),
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
        assert_eq!(c, PolicyConfig::Planned { prefetch: true });
        let c: PolicyConfig = serde_json::from_str(r#"{"policy":"alpha"}"#).unwrap();
        assert_eq!(c, PolicyConfig::Alpha { reserve_bytes: None });
        assert_eq!(serde_json::to_string(&PolicyConfig::Lru).unwrap(), r#"{"policy":"lru"}"#);
        for s in ["lru", "alpha", "planned", "planned-noprefetch"] {
            let c = PolicyConfig::parse(s).unwrap();
            assert!(s.starts_with(c.name()));
            assert_eq!(c.build(&crate::cost::test_model()).name(), c.name());
        }
        assert!(PolicyConfig::parse("fifo").is_none());
    }
}
