//! Reference Belady/MIN cache simulation, the yardstick the planned policy is checked against.

use std::collections::{HashMap, HashSet};

use crate::ids::ObjectId;

/// Outcome of a MIN simulation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinResult {
    /// Positions in the sequence that missed (had to be loaded).
    pub misses: Vec<usize>,
    /// `(position, evicted object)` in the order evictions happened.
    pub evictions: Vec<(usize, ObjectId)>,
}

/// Simulates MIN on `seq` with a cache of `capacity` bytes: on a miss, evict the resident
/// object whose next use is farthest (never-used-again first; ties to the smaller id) until
/// the new object fits. Objects larger than the capacity are counted as misses and not cached.
pub fn simulate_min(seq: &[ObjectId], lens: &HashMap<ObjectId, u64>, capacity: u64) -> MinResult {
    let len = |id: &ObjectId| lens.get(id).copied().unwrap_or(0);
    let mut resident: HashSet<ObjectId> = HashSet::new();
    let mut used = 0u64;
    let mut out = MinResult { misses: Vec::new(), evictions: Vec::new() };
    for (t, id) in seq.iter().enumerate() {
        if resident.contains(id) {
            continue;
        }
        out.misses.push(t);
        if len(id) > capacity {
            continue;
        }
        while used + len(id) > capacity {
            let next_use = |x: &ObjectId| {
                seq[t + 1..].iter().position(|y| y == x).map_or(usize::MAX, |p| p + t + 1)
            };
            let Some(victim) = resident
                .iter()
                .copied()
                .max_by(|a, b| next_use(a).cmp(&next_use(b)).then(b.cmp(a)))
            else {
                break;
            };
            resident.remove(&victim);
            used -= len(&victim);
            out.evictions.push((t, victim));
        }
        resident.insert(*id);
        used += len(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> Vec<ObjectId> {
        v.iter().map(|&i| ObjectId(i)).collect()
    }

    #[test]
    fn textbook_example() {
        // Classic 3-frame example: 7 0 1 2 0 3 0 4 2 3 0 3 2 1 2 0 1 7 0 1 → 9 faults with MIN.
        let seq = ids(&[7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1]);
        let lens: HashMap<_, _> = seq.iter().map(|&i| (i, 1)).collect();
        let r = simulate_min(&seq, &lens, 3);
        assert_eq!(r.misses, vec![0, 1, 2, 3, 5, 7, 10, 13, 17]);
        assert_eq!(r.evictions[0], (3, ObjectId(7)));
    }

    #[test]
    fn cyclic_keys() {
        // Cycling 4 keys through 3 slots: MIN misses once per cycle after warm-up, LRU always.
        let seq = ids(&[1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]);
        let lens: HashMap<_, _> = seq.iter().map(|&i| (i, 10)).collect();
        let r = simulate_min(&seq, &lens, 30);
        assert_eq!(r.misses, vec![0, 1, 2, 3, 6, 9]);
    }
}
