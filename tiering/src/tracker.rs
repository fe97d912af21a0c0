//! Per-object access statistics: count, bytes, last use and reuse distance.
//!
//! Reuse distance here is the LRU *stack* distance: the number of distinct other objects
//! touched between two consecutive accesses to the same object. It is what decides whether an
//! LRU cache of a given size hits, so it is the number a profile should carry. It is computed
//! exactly in O(log n) per access with a Fenwick tree over access times.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::ids::{ObjectId, Tick};

/// Access statistics of one object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AccessStats {
    /// Number of accesses (pins).
    pub count: u64,
    /// Bytes touched over all accesses (count × length for whole-object pins).
    pub bytes: u64,
    /// Time of the most recent access.
    pub last_use: Tick,
    /// Stack distance at the most recent re-access (`None` until the object is re-accessed).
    pub last_reuse_distance: Option<u64>,
    /// Largest stack distance seen.
    pub max_reuse_distance: Option<u64>,
    /// Sum of all stack distances, for the mean.
    pub reuse_distance_sum: u64,
    /// Number of re-accesses (accesses after the first).
    pub reuses: u64,
}

impl AccessStats {
    /// Mean stack distance over all re-accesses, if any.
    pub fn mean_reuse_distance(&self) -> Option<f64> {
        (self.reuses > 0).then(|| self.reuse_distance_sum as f64 / self.reuses as f64)
    }
}

/// Fenwick tree over access times holding a 1 at the latest access time of each object.
#[derive(Clone, Debug, Default)]
struct Fenwick {
    tree: Vec<i64>,
}

impl Fenwick {
    fn add(&mut self, pos: usize, delta: i64) {
        if pos >= self.tree.len() {
            self.grow(pos + 1);
        }
        let mut i = pos + 1;
        while i <= self.tree.len() {
            self.tree[i - 1] += delta;
            i += i & i.wrapping_neg();
        }
    }

    /// Sum over positions `0..pos`.
    fn prefix(&self, pos: usize) -> i64 {
        let mut i = pos.min(self.tree.len());
        let mut s = 0;
        while i > 0 {
            s += self.tree[i - 1];
            i -= i & i.wrapping_neg();
        }
        s
    }

    /// Rebuilds at double the size; O(n), so appends stay amortised O(log n).
    fn grow(&mut self, min_len: usize) {
        let old_len = self.tree.len();
        let mut values = Vec::with_capacity(old_len);
        for p in 0..old_len {
            values.push(self.prefix(p + 1) - self.prefix(p));
        }
        let new_len = min_len.max(old_len * 2).max(64);
        self.tree = vec![0; new_len];
        for (p, v) in values.into_iter().enumerate() {
            if v != 0 {
                self.add(p, v);
            }
        }
    }
}

/// Records every access and keeps [`AccessStats`] per object.
#[derive(Clone, Debug, Default)]
pub struct AccessTracker {
    now: u64,
    stats: HashMap<ObjectId, AccessStats>,
    marks: Fenwick,
}

impl AccessTracker {
    /// An empty tracker at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one access of `bytes` bytes to `id` and returns its stack distance (`None` on
    /// a first access).
    pub fn record(&mut self, id: ObjectId, bytes: u64) -> Option<u64> {
        let t = self.now;
        self.now += 1;
        let s = self.stats.entry(id).or_default();
        let first = s.count == 0;
        let distance = if first {
            None
        } else {
            let last = s.last_use.0 as usize;
            // Distinct objects whose latest access lies strictly between the two accesses.
            let d = self.marks.prefix(t as usize) - self.marks.prefix(last + 1);
            self.marks.add(last, -1);
            Some(d.max(0) as u64)
        };
        self.marks.add(t as usize, 1);
        s.count += 1;
        s.bytes += bytes;
        s.last_use = Tick(t);
        if let Some(d) = distance {
            s.last_reuse_distance = Some(d);
            s.max_reuse_distance = Some(s.max_reuse_distance.map_or(d, |m| m.max(d)));
            s.reuse_distance_sum += d;
            s.reuses += 1;
        }
        distance
    }

    /// Forgets an object (after `remove`); its slot in the distance tree is cleared.
    pub fn forget(&mut self, id: ObjectId) {
        if let Some(s) = self.stats.remove(&id) {
            if s.count > 0 {
                self.marks.add(s.last_use.0 as usize, -1);
            }
        }
    }

    /// Statistics of one object.
    pub fn get(&self, id: ObjectId) -> Option<&AccessStats> {
        self.stats.get(&id)
    }

    /// All objects' statistics.
    pub fn iter(&self) -> impl Iterator<Item = (ObjectId, &AccessStats)> {
        self.stats.iter().map(|(k, v)| (*k, v))
    }

    /// Number of accesses recorded so far (the next access's tick).
    pub fn now(&self) -> Tick {
        Tick(self.now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference stack distance by scanning the history.
    fn naive(history: &[u64], t: usize) -> Option<u64> {
        let id = history[t];
        let last = history[..t].iter().rposition(|&x| x == id)?;
        let mut seen: Vec<u64> = history[last + 1..t].to_vec();
        seen.sort_unstable();
        seen.dedup();
        Some(seen.len() as u64)
    }

    #[test]
    fn hand_checked_distances() {
        let mut tr = AccessTracker::new();
        let seq = [1, 2, 3, 1, 2, 2, 4, 1];
        let got: Vec<_> = seq.iter().map(|&i| tr.record(ObjectId(i), 10)).collect();
        assert_eq!(got, vec![None, None, None, Some(2), Some(2), Some(0), None, Some(2)]);
        let s = tr.get(ObjectId(1)).unwrap();
        assert_eq!((s.count, s.bytes, s.last_use), (3, 30, Tick(7)));
        assert_eq!(s.max_reuse_distance, Some(2));
        assert_eq!(s.mean_reuse_distance(), Some(2.0));
    }

    proptest! {
        #[test]
        fn matches_naive(history in proptest::collection::vec(0u64..8, 0..300)) {
            let mut tr = AccessTracker::new();
            for t in 0..history.len() {
                prop_assert_eq!(tr.record(ObjectId(history[t]), 1), naive(&history, t));
            }
        }
    }
}
