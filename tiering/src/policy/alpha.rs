//! The seed's static α-partition as a policy: objects chosen by [`solve_alpha`] stay in DRAM,
//! everything else streams through the remaining space in LRU order.

use std::collections::{HashMap, HashSet};

use super::{LruPolicy, Policy, PolicyReport};
use crate::cost::CostModel;
use crate::ids::ObjectId;
use crate::partition::{solve_alpha, Partition, PartitionItem};

/// Static placement from an access profile (the hinted sequence, or a given partition).
#[derive(Debug)]
pub struct AlphaPolicy {
    model: CostModel,
    reserve_bytes: Option<u64>,
    lru: LruPolicy,
    lens: HashMap<ObjectId, u64>,
    partition: Option<Partition>,
    resident_set: HashSet<ObjectId>,
    /// Partition members in order of first use, for the initial load.
    load_order: Vec<ObjectId>,
}

/// Priorities of objects outside the partition start here, so they always leave first.
const OUTSIDE: u64 = 1 << 62;

impl AlphaPolicy {
    /// A policy that solves its partition when it receives a hint.
    pub fn new(model: CostModel, reserve_bytes: Option<u64>) -> Self {
        Self {
            model,
            reserve_bytes,
            lru: LruPolicy::new(),
            lens: HashMap::new(),
            partition: None,
            resident_set: HashSet::new(),
            load_order: Vec::new(),
        }
    }

    /// A policy with a partition solved elsewhere (e.g. from a previous run's tracker).
    pub fn with_partition(model: CostModel, partition: Partition) -> Self {
        let mut p = Self::new(model, None);
        p.resident_set = partition.dram.iter().copied().collect();
        p.load_order.clone_from(&partition.dram);
        p.partition = Some(partition);
        p
    }

    /// The partition in force, if one has been solved.
    pub fn partition(&self) -> Option<&Partition> {
        self.partition.as_ref()
    }
}

impl Policy for AlphaPolicy {
    fn name(&self) -> &'static str {
        "alpha"
    }

    fn on_insert(&mut self, id: ObjectId, len: u64) {
        self.lens.insert(id, len);
        self.lru.on_insert(id, len);
    }

    fn on_access(&mut self, id: ObjectId) {
        self.lru.on_access(id);
    }

    fn on_remove(&mut self, id: ObjectId) {
        self.lens.remove(&id);
        self.lru.on_remove(id);
    }

    fn on_hint(
        &mut self,
        future: &[ObjectId],
        budget: u64,
        len_of: &dyn Fn(ObjectId) -> Option<u64>,
    ) {
        let mut counts: HashMap<ObjectId, u64> = HashMap::new();
        let mut order = Vec::new();
        for id in future {
            let c = counts.entry(*id).or_insert(0);
            if *c == 0 {
                order.push(*id);
            }
            *c += 1;
        }
        let items: Vec<PartitionItem> = order
            .iter()
            .filter_map(|id| {
                let len = len_of(*id).or_else(|| self.lens.get(id).copied())?;
                Some(PartitionItem { id: *id, len, accesses: counts[id] })
            })
            .collect();
        // Objects outside the partition still need room while pinned: by default the two
        // largest (a key-switch pins one ciphertext and one key).
        let reserve = self.reserve_bytes.unwrap_or_else(|| {
            let mut l: Vec<u64> = items.iter().map(|i| i.len).collect();
            l.sort_unstable_by(|a, b| b.cmp(a));
            l.iter().take(2).sum()
        });
        let p = solve_alpha(&items, budget.saturating_sub(reserve), &self.model);
        self.resident_set = p.dram.iter().copied().collect();
        self.load_order = order.into_iter().filter(|id| self.resident_set.contains(id)).collect();
        self.partition = Some(p);
    }

    fn evict_priority(&self, id: ObjectId) -> u64 {
        let lru = (u64::MAX - self.lru.evict_priority(id)).min(OUTSIDE - 1);
        let base = OUTSIDE - 1 - lru;
        if self.resident_set.contains(&id) {
            base
        } else {
            OUTSIDE + base
        }
    }

    fn prefetch_candidates(&self) -> Vec<ObjectId> {
        // The partition is static: load it once, in order of first use, and keep it.
        self.load_order.clone()
    }

    fn report(&self) -> PolicyReport {
        PolicyReport {
            name: "alpha".into(),
            alpha: self.partition.as_ref().map(|p| p.alpha),
            planned_ahead: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::test_model;

    #[test]
    fn a_pm_tier_measured_faster_than_dram_still_gets_the_partition_filled() {
        // An emulated PM copy measured faster than a DRAM memcpy on a loaded machine: keeping
        // an object in DRAM still saves its transfer.
        let mut m = test_model();
        m.pm.read_bw = 3.0 * m.dram.read_bw;
        m.pm.read_latency_ns = 0.0;
        let mut p = AlphaPolicy::new(m, Some(0));
        let seq: Vec<_> = [1, 2, 1, 2].iter().map(|&i| ObjectId(i)).collect();
        p.on_hint(&seq, 200, &|_| Some(100));
        assert_eq!(p.partition().unwrap().dram, vec![ObjectId(1), ObjectId(2)]);
    }

    #[test]
    fn hot_objects_outrank_cold_ones() {
        let mut p = AlphaPolicy::new(test_model(), Some(0));
        for i in 1..=3 {
            p.on_insert(ObjectId(i), 100);
        }
        let seq: Vec<_> = [1, 2, 1, 1, 3, 1, 2].iter().map(|&i| ObjectId(i)).collect();
        p.on_hint(&seq, 200, &|_| Some(100));
        assert_eq!(p.partition().unwrap().dram, vec![ObjectId(1), ObjectId(2)]);
        assert_eq!(p.report().alpha, Some(200.0 / 300.0));
        assert_eq!(p.prefetch_candidates(), vec![ObjectId(1), ObjectId(2)]);
        p.on_access(ObjectId(3));
        // 3 is outside the partition, so it leaves before 1 and 2 although it is the newest.
        assert!(p.evict_priority(ObjectId(3)) > p.evict_priority(ObjectId(1)));
        assert!(p.evict_priority(ObjectId(3)) > p.evict_priority(ObjectId(2)));
        p.on_access(ObjectId(2));
        assert!(p.evict_priority(ObjectId(1)) > p.evict_priority(ObjectId(2)));
    }
}
