//! Least-recently-used eviction: the reactive baseline.

use std::collections::HashMap;

use super::Policy;
use crate::ids::ObjectId;

/// Evicts the object whose last access is oldest; never prefetches.
#[derive(Debug, Default)]
pub struct LruPolicy {
    clock: u64,
    last: HashMap<ObjectId, u64>,
}

impl LruPolicy {
    /// An empty LRU policy.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn last_use(&self, id: ObjectId) -> u64 {
        self.last.get(&id).copied().unwrap_or(0)
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
    }

    fn on_remove(&mut self, id: ObjectId) {
        self.last.remove(&id);
    }

    fn on_hint(&mut self, _: &[ObjectId], _: u64, _: &dyn Fn(ObjectId) -> Option<u64>) {}

    fn evict_priority(&self, id: ObjectId) -> u64 {
        u64::MAX - self.last_use(id)
    }
}
