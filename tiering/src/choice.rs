//! Which object leaves DRAM: the rules shared by the store and the simulator, so a prediction
//! makes exactly the decisions the store would.

use crate::ids::ObjectId;
use crate::policy::{Policy, PrefetchRule};

/// One object that occupies DRAM (resident or being loaded), as the choice sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Occupant {
    pub id: ObjectId,
    pub len: u64,
    /// Has a PM copy: leaving DRAM costs nothing.
    pub clean: bool,
    /// Resident, unpinned, not waited on, no transfer in flight: can leave right now.
    pub evictable: bool,
    /// Pinned, or a pin is waiting for its load.
    pub held: bool,
}

/// The object a demand (or a put ranked at `below`) evicts: clean objects first, since a
/// scratch object leaving DRAM costs a write-back; then the policy's highest priority; ties to
/// the smaller id so runs are deterministic.
pub(crate) fn demand_victim(
    policy: &dyn Policy,
    below: Option<u64>,
    occupants: impl Iterator<Item = Occupant>,
) -> Option<ObjectId> {
    let mut best: Option<(bool, u64, std::cmp::Reverse<ObjectId>)> = None;
    for o in occupants {
        if !o.evictable {
            continue;
        }
        let p = policy.evict_priority(o.id);
        if below.is_some_and(|b| p <= b) {
            continue;
        }
        let key = (o.clean, p, std::cmp::Reverse(o.id));
        if best.is_none_or(|b| key > b) {
            best = Some(key);
        }
    }
    best.map(|(_, _, std::cmp::Reverse(id))| id)
}

/// What a prefetch of one candidate may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PrefetchScan {
    /// Bytes of objects in DRAM that are used before the candidate: they must stay until then,
    /// whatever the prefetch does.
    pub protected: u64,
    /// The object the prefetch may evict now, if any.
    pub victim: Option<ObjectId>,
}

/// Scans DRAM's occupants for a prefetch of `c` (see [`Policy::prefetch_rank`]).
///
/// The victim is the unpinned occupant not needed before `c` ranked highest (latest use at or
/// after `c`'s; ties: clean first, then the smaller id), and only if its rank exceeds `c`'s
/// own, it can leave now, and it is not a scratch object the plan never uses again — such an
/// object is about to be removed, and writing it back would spend the PM link on bytes nobody
/// reads; the prefetch waits for the removal instead. Under [`PrefetchRule::Conservative`] it
/// also waits while an occupant needed before `c` (pinned or not) has a strictly higher rank:
/// once used, that object is what MIN would evict at `c`'s use.
pub(crate) fn prefetch_scan(
    policy: &dyn Policy,
    c: ObjectId,
    occupants: impl Iterator<Item = Occupant>,
) -> PrefetchScan {
    let own = policy.prefetch_rank(c, c).0;
    let conservative = policy.prefetch_rule_for(c) == PrefetchRule::Conservative;
    let mut protected = 0u64;
    let mut blocker_rank: Option<u64> = None;
    // ((rank, clean, smaller id first), can leave now)
    type Ranked = ((u64, bool, std::cmp::Reverse<ObjectId>), bool);
    let mut best: Option<Ranked> = None;
    for o in occupants {
        if o.id == c {
            continue;
        }
        let (rank, needed_first) = policy.prefetch_rank(o.id, c);
        if needed_first {
            protected += o.len;
            blocker_rank = blocker_rank.max(Some(rank));
            continue;
        }
        if o.held {
            continue;
        }
        let dead_scratch = !o.clean && rank == u64::MAX;
        let key = (rank, o.clean, std::cmp::Reverse(o.id));
        if best.is_none_or(|(b, _)| key > b) {
            best = Some((key, o.evictable && !dead_scratch));
        }
    }
    let victim = match best {
        Some(((rank, _, std::cmp::Reverse(id)), true))
            if rank > own && (!conservative || blocker_rank.is_none_or(|b| b <= rank)) =>
        {
            Some(id)
        }
        _ => None,
    };
    PrefetchScan { protected, victim }
}

/// Whether a prefetch of `len` bytes, leaving `headroom` for objects written before its use,
/// can ever fit next to the `protected` bytes: if not, it must not start, or it would push out
/// something needed sooner.
pub(crate) fn prefetch_fits(protected: u64, len: u64, headroom: u64, budget: u64) -> bool {
    protected.saturating_add(len).saturating_add(headroom) <= budget
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PlannedPolicy;

    /// A is used before the candidate C and again last; X is used between them. At C's use MIN
    /// would evict A (its next use is farthest), which is still needed before C: the
    /// conservative rule waits for it, the aggressive one evicts X now.
    #[test]
    fn only_the_conservative_rule_waits_for_an_object_used_before_the_candidate() {
        let (a, c, x) = (ObjectId(1), ObjectId(2), ObjectId(3));
        let occupant = |id| Occupant { id, len: 10, clean: true, evictable: true, held: false };
        for (rule, victim) in
            [(PrefetchRule::Conservative, None), (PrefetchRule::Aggressive, Some(x))]
        {
            let mut p = PlannedPolicy::new(true).with_rule(rule);
            p.on_hint(&[a, c, x, a], 30, &|_| Some(10));
            let scan = prefetch_scan(&p, c, [occupant(a), occupant(x)].into_iter());
            assert_eq!(scan, PrefetchScan { protected: 10, victim }, "{rule:?}");
            // Once A is used it is MIN's victim, under either rule.
            p.on_access(a);
            let scan = prefetch_scan(&p, c, [occupant(a), occupant(x)].into_iter());
            assert_eq!(scan, PrefetchScan { protected: 0, victim: Some(a) }, "{rule:?}");
        }
    }

    /// The same plan under the conservative rule with a lead: A (10 bytes) lies between the
    /// cursor and C, so a lead above 10 bytes prefetches C as the aggressive rule does, and a
    /// lead of 10 or less waits as plain conservative does.
    #[test]
    fn a_lead_makes_a_conservative_prefetch_near_the_cursor_aggressive() {
        let (a, c, x) = (ObjectId(1), ObjectId(2), ObjectId(3));
        let occupant = |id| Occupant { id, len: 10, clean: true, evictable: true, held: false };
        for (lead, victim) in [(0, None), (10, None), (11, Some(x)), (1000, Some(x))] {
            let mut p =
                PlannedPolicy::new(true).with_rule(PrefetchRule::Conservative).with_lead(lead);
            p.on_hint(&[a, c, x, a], 30, &|_| Some(10));
            let scan = prefetch_scan(&p, c, [occupant(a), occupant(x)].into_iter());
            assert_eq!(scan, PrefetchScan { protected: 10, victim }, "lead {lead}");
            assert_eq!(
                p.rule_at(1),
                if victim.is_some() {
                    PrefetchRule::Aggressive
                } else {
                    PrefetchRule::Conservative
                }
            );
        }
    }
}
