//! The [`Policy`] trait the store consults and the [`PolicyReport`] each policy gives. A leaf of
//! the policy module: the policies implement it, and `mod.rs` builds them from a config.

use serde::{Deserialize, Serialize};

use crate::ids::{ObjectId, StreamId};

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

    /// As [`on_hint`](Self::on_hint) for the plan of one request `stream`: it replaces only
    /// that stream's plan. A policy that keeps one plan (the default) takes the newest.
    fn on_hint_in(
        &mut self,
        stream: StreamId,
        future: &[ObjectId],
        budget: u64,
        len_of: &dyn Fn(ObjectId) -> Option<u64>,
    ) {
        let _ = stream;
        self.on_hint(future, budget, len_of);
    }

    /// As [`on_access`](Self::on_access) for a pin made by request `stream`.
    fn on_access_in(&mut self, stream: StreamId, id: ObjectId) {
        let _ = stream;
        self.on_access(id);
    }

    /// Request `stream` ended: its plan no longer counts.
    fn on_stream_end(&mut self, stream: StreamId) {
        let _ = stream;
    }

    /// The request streams whose plans use `id` from now on (what a prefetch of it serves);
    /// empty for a policy without plans.
    fn wanted_by(&self, id: ObjectId) -> Vec<StreamId> {
        let _ = id;
        Vec::new()
    }

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

    /// When a prefetch may evict: whether it also waits for objects used before the candidate
    /// ([`PrefetchRule`]). Conservative unless the policy says otherwise.
    fn prefetch_rule(&self) -> PrefetchRule {
        PrefetchRule::Conservative
    }

    /// The rule a prefetch of `candidate` follows: [`Self::prefetch_rule`] unless the policy
    /// varies it by how soon the candidate is used (a planned policy's lead,
    /// [`crate::policy::PlannedPolicy::with_lead`]).
    fn prefetch_rule_for(&self, candidate: ObjectId) -> PrefetchRule {
        let _ = candidate;
        self.prefetch_rule()
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

/// When a prefetch may evict an object (Cao, Felten, Karlin and Li, 1995). Both evict the
/// object whose next use is farthest, only if that use comes after the prefetched object's;
/// they differ in what they wait for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefetchRule {
    /// Also waits while an object used before the prefetched one would be MIN's victim at its
    /// use: the PM reads are MIN's, issued as early as that allows.
    #[default]
    Conservative,
    /// Never waits for objects used before the prefetched one: reads ahead as far as the
    /// budget holds, at the price of reading back some of what it evicts. Better when the PM
    /// link is idle much of the time but the reads come in bursts (a bootstrap's
    /// CoeffToSlot), worse when the link is the bottleneck.
    Aggressive,
}

impl PrefetchRule {
    /// Short name (`conservative`, `aggressive`).
    pub fn name(self) -> &'static str {
        match self {
            PrefetchRule::Conservative => "conservative",
            PrefetchRule::Aggressive => "aggressive",
        }
    }
}
