//! A Fenwick (binary indexed) tree: point updates and prefix sums in O(log n), for the fast
//! engine's byte and object counts over plan positions.

/// Sums of signed values over positions `0..n`.
#[derive(Clone, Debug)]
pub(super) struct Fenwick {
    tree: Vec<i64>,
}

impl Fenwick {
    /// A tree over positions `0..n`, all zero.
    pub fn new(n: usize) -> Self {
        Self { tree: vec![0; n + 1] }
    }

    /// Adds `delta` at position `pos` (ignored when out of range).
    pub fn add(&mut self, pos: usize, delta: i64) {
        let mut i = pos + 1;
        while i < self.tree.len() {
            self.tree[i] += delta;
            i += i & i.wrapping_neg();
        }
    }

    /// Sum over positions `0..end`.
    pub fn prefix(&self, end: usize) -> i64 {
        let mut i = end.min(self.tree.len() - 1);
        let mut s = 0;
        while i > 0 {
            s += self.tree[i];
            i -= i & i.wrapping_neg();
        }
        s
    }

    /// Sum over positions `start..end`.
    pub fn range(&self, start: usize, end: usize) -> i64 {
        if end <= start {
            return 0;
        }
        self.prefix(end) - self.prefix(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_sums() {
        let mut f = Fenwick::new(37);
        let mut naive = vec![0i64; 37];
        let mut x = 12345u64;
        for _ in 0..500 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let pos = (x >> 33) as usize % 37;
            let d = (x >> 20) as i64 % 100 - 50;
            f.add(pos, d);
            naive[pos] += d;
            let (a, b) = ((x >> 8) as usize % 38, (x >> 13) as usize % 38);
            let want: i64 = if a < b { naive[a..b].iter().sum() } else { 0 };
            assert_eq!(f.range(a, b), want);
        }
    }
}
