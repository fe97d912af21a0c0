//! Least-recently-used eviction: the reactive baseline, with a warm start from the hint.

use std::collections::{BTreeMap, HashMap};

use super::Policy;
use crate::ids::ObjectId;

/// Evicts the object whose last access is oldest. Given a hint, it also fills DRAM that
/// nothing occupies with hinted objects not used since the hint, in order of first use (a
/// warm start, as the other policies' initial loads and the kernel's page cache get); it
/// never evicts anything for such a load, so every eviction is still pure LRU.
#[derive(Debug, Default)]
pub struct LruPolicy {
    clock: u64,
    last: HashMap<ObjectId, u64>,
    /// Hinted objects not accessed since the hint: their first-use position, both ways.
    warm: BTreeMap<u64, ObjectId>,
    warm_at: HashMap<ObjectId, u64>,
}

impl LruPolicy {
    /// An empty LRU policy.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn last_use(&self, id: ObjectId) -> u64 {
        self.last.get(&id).copied().unwrap_or(0)
    }

    /// The position of `id` in the warm-start order (first use in the hint), while it has
    /// not been accessed since the hint.
    pub(crate) fn warm_position(&self, id: ObjectId) -> Option<u64> {
        self.warm_at.get(&id).copied()
    }

    fn cool(&mut self, id: ObjectId) {
        if let Some(p) = self.warm_at.remove(&id) {
            self.warm.remove(&p);
        }
    }
}

impl Policy for LruPolicy {
    fn name(&self) -> &'static str {
        "lru"
    }

    fn on_insert(&mut self, id: ObjectId, _len: u64) {
        // A fresh object counts as just used: it was written a moment ago.
        self.clock += 1;
        self.last.insert(id, self.clock);
    }

    fn on_access(&mut self, id: ObjectId) {
        self.clock += 1;
        self.last.insert(id, self.clock);
        self.cool(id);
    }

    fn on_remove(&mut self, id: ObjectId) {
        self.last.remove(&id);
        self.cool(id);
    }

    fn on_hint(&mut self, future: &[ObjectId], _: u64, _: &dyn Fn(ObjectId) -> Option<u64>) {
        self.warm.clear();
        self.warm_at.clear();
        for (i, &id) in future.iter().enumerate() {
            if let std::collections::hash_map::Entry::Vacant(v) = self.warm_at.entry(id) {
                v.insert(i as u64);
                self.warm.insert(i as u64, id);
            }
        }
    }

    fn evict_priority(&self, id: ObjectId) -> u64 {
        u64::MAX - self.last_use(id)
    }

    /// Every occupant ranks 0, as low as any candidate: a warm-start load never evicts.
    fn prefetch_rank(&self, _id: ObjectId, _candidate: ObjectId) -> (u64, bool) {
        (0, false)
    }

    fn prefetch_candidates(&self) -> Vec<ObjectId> {
        self.warm.values().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_start_lists_unused_hinted_objects_in_first_use_order() {
        let mut p = LruPolicy::new();
        for i in 1..=3 {
            p.on_insert(ObjectId(i), 10);
        }
        let seq: Vec<_> = [2, 1, 2, 3].iter().map(|&i| ObjectId(i)).collect();
        p.on_hint(&seq, 100, &|_| Some(10));
        assert_eq!(p.prefetch_candidates(), vec![ObjectId(2), ObjectId(1), ObjectId(3)]);
        p.on_access(ObjectId(2));
        p.on_remove(ObjectId(3));
        assert_eq!(p.prefetch_candidates(), vec![ObjectId(1)]);
        assert_eq!((p.warm_position(ObjectId(1)), p.warm_position(ObjectId(2))), (Some(1), None));
        // Eviction stays pure LRU, and a warm load outranks no occupant.
        assert!(p.evict_priority(ObjectId(1)) > p.evict_priority(ObjectId(2)));
        assert_eq!(p.prefetch_rank(ObjectId(1), ObjectId(1)), (0, false));
    }
}
