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

/// Maximum over ranges of positions with point assignment, in O(log n).
#[derive(Clone, Debug)]
pub(super) struct MaxTree {
    n: usize,
    tree: Vec<u64>,
}

impl MaxTree {
    /// A tree over positions `0..n`, all zero.
    pub fn new(n: usize) -> Self {
        Self { n, tree: vec![0; 2 * n.max(1)] }
    }

    /// Sets the value at `pos` (ignored when out of range).
    pub fn set(&mut self, pos: usize, v: u64) {
        if pos >= self.n {
            return;
        }
        let mut i = pos + self.n;
        self.tree[i] = v;
        while i > 1 {
            i /= 2;
            self.tree[i] = self.tree[2 * i].max(self.tree[2 * i + 1]);
        }
    }

    /// Maximum over positions `start..end` (0 when empty).
    pub fn max(&self, start: usize, end: usize) -> u64 {
        let (mut l, mut r) = (start.min(self.n) + self.n, end.min(self.n) + self.n);
        let mut m = 0;
        while l < r {
            if l % 2 == 1 {
                m = m.max(self.tree[l]);
                l += 1;
            }
            if r % 2 == 1 {
                r -= 1;
                m = m.max(self.tree[r]);
            }
            l /= 2;
            r /= 2;
        }
        m
    }
}

#[cfg(test)]
mod max_tests {
    use super::*;

    #[test]
    fn matches_naive_max() {
        let mut t = MaxTree::new(29);
        let mut naive = vec![0u64; 29];
        let mut x = 777u64;
        for _ in 0..500 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let pos = (x >> 33) as usize % 29;
            let v = (x >> 40) % 1000;
            t.set(pos, v);
            naive[pos] = v;
            let (a, b) = ((x >> 8) as usize % 30, (x >> 13) as usize % 30);
            let want = if a < b { naive[a..b].iter().copied().max().unwrap_or(0) } else { 0 };
            assert_eq!(t.max(a, b), want);
        }
    }
}
