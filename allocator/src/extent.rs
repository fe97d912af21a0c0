//! The extent allocator: free space as 4 KiB-granular extents kept in two indexes — by address,
//! so a freed extent merges with its neighbours, and by size, for best-fit allocation.

use std::collections::{BTreeMap, BTreeSet};

/// Free-space map of the data region.
#[derive(Debug, Default)]
pub(crate) struct ExtentAllocator {
    by_offset: BTreeMap<u64, u64>,
    by_size: BTreeSet<(u64, u64)>,
    free_bytes: u64,
}

impl ExtentAllocator {
    /// Take the smallest free extent of at least `len` bytes (lowest address among equals) and
    /// return the start of a `len`-byte piece carved from its front.
    pub(crate) fn alloc(&mut self, len: u64) -> Option<u64> {
        let &(size, off) = self.by_size.range((len, 0)..).next()?;
        self.remove(off, size);
        if size > len {
            self.insert(off + len, size - len);
        }
        Some(off)
    }

    /// Take a `len`-byte piece starting at a multiple of `align` (a power of two) from the
    /// smallest free extent that holds one; the padding in front of it stays free.
    pub(crate) fn alloc_aligned(&mut self, len: u64, align: u64) -> Option<u64> {
        let mask = align - 1;
        let (size, off, start) = self.by_size.range((len, 0)..).find_map(|&(size, off)| {
            let start = off.checked_add(mask)? & !mask;
            (start - off + len <= size).then_some((size, off, start))
        })?;
        self.remove(off, size);
        if start > off {
            self.insert(off, start - off);
        }
        let end = start + len;
        if off + size > end {
            self.insert(end, off + size - end);
        }
        Some(start)
    }

    /// The free extent that contains offset `off`, if any, as `(start, len)`.
    pub(crate) fn containing(&self, off: u64) -> Option<(u64, u64)> {
        let (&o, &l) = self.by_offset.range(..=off).next_back()?;
        (off < o + l).then_some((o, l))
    }

    /// Take exactly `off..off+len`, which must lie inside one free extent (`false`, changing
    /// nothing, if it does not).
    pub(crate) fn take_at(&mut self, off: u64, len: u64) -> bool {
        let Some((o, l)) = self.containing(off) else { return false };
        if off + len > o + l {
            return false;
        }
        self.remove(o, l);
        if off > o {
            self.insert(o, off - o);
        }
        if o + l > off + len {
            self.insert(off + len, o + l - off - len);
        }
        true
    }

    /// Return `off..off+len` to the free space, merging with free neighbours.
    pub(crate) fn free(&mut self, mut off: u64, mut len: u64) {
        if len == 0 {
            return;
        }
        if let Some((&p_off, &p_len)) = self.by_offset.range(..off).next_back() {
            if p_off + p_len == off {
                self.remove(p_off, p_len);
                off = p_off;
                len += p_len;
            }
        }
        if let Some(&n_len) = self.by_offset.get(&(off + len)) {
            self.remove(off + len, n_len);
            len += n_len;
        }
        self.insert(off, len);
    }

    fn insert(&mut self, off: u64, len: u64) {
        self.by_offset.insert(off, len);
        self.by_size.insert((len, off));
        self.free_bytes += len;
    }

    fn remove(&mut self, off: u64, len: u64) {
        self.by_offset.remove(&off);
        self.by_size.remove(&(len, off));
        self.free_bytes -= len;
    }

    /// Total free bytes.
    pub(crate) fn free_bytes(&self) -> u64 {
        self.free_bytes
    }

    /// Largest single free extent.
    pub(crate) fn largest(&self) -> u64 {
        self.by_size.iter().next_back().map_or(0, |&(l, _)| l)
    }

    /// Free extents that end exactly at `end` (the tail a growth would merge with), if any.
    pub(crate) fn tail_ending_at(&self, end: u64) -> u64 {
        match self.by_offset.iter().next_back() {
            Some((&o, &l)) if o + l == end => l,
            _ => 0,
        }
    }

    /// Number of free extents.
    pub(crate) fn extent_count(&self) -> usize {
        self.by_offset.len()
    }

    /// The free extents in address order.
    #[cfg(test)]
    pub(crate) fn extents(&self) -> Vec<(u64, u64)> {
        self.by_offset.iter().map(|(&o, &l)| (o, l)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frees_coalesce_in_any_order() {
        let mut a = ExtentAllocator::default();
        a.free(0, 4096 * 10);
        let x = a.alloc(4096).unwrap();
        let y = a.alloc(8192).unwrap();
        let z = a.alloc(4096).unwrap();
        assert_eq!((x, y, z), (0, 4096, 12288));
        a.free(y, 8192);
        a.free(x, 4096);
        assert_eq!(a.extents(), vec![(0, 12288), (16384, 4096 * 6)]);
        a.free(z, 4096);
        assert_eq!(a.extents(), vec![(0, 4096 * 10)]);
    }

    #[test]
    fn best_fit_prefers_the_smallest_hole() {
        let mut a = ExtentAllocator::default();
        a.free(0, 4096 * 4);
        a.free(4096 * 10, 4096);
        assert_eq!(a.alloc(4096), Some(4096 * 10));
        assert_eq!(a.alloc(4096 * 5), None);
        assert_eq!(a.largest(), 4096 * 4);
    }

    #[test]
    fn a_piece_is_taken_at_a_chosen_offset() {
        let mut a = ExtentAllocator::default();
        a.free(0, 10 * 4096);
        assert!(a.take_at(3 * 4096, 2 * 4096));
        assert_eq!(a.extents(), vec![(0, 3 * 4096), (5 * 4096, 5 * 4096)]);
        assert!(!a.take_at(2 * 4096, 2 * 4096), "overlaps a taken piece");
        assert!(!a.take_at(9 * 4096, 2 * 4096), "runs past the free space");
        assert_eq!(a.containing(4 * 4096), None);
        assert_eq!(a.containing(6 * 4096), Some((5 * 4096, 5 * 4096)));
        a.free(3 * 4096, 2 * 4096);
        assert_eq!(a.extents(), vec![(0, 10 * 4096)]);
    }

    #[test]
    fn aligned_pieces_leave_their_padding_free() {
        let mut a = ExtentAllocator::default();
        a.free(64, 3 * 4096);
        assert_eq!(a.alloc_aligned(4096, 4096), Some(4096));
        assert_eq!(a.extents(), vec![(64, 4096 - 64), (8192, 4096 + 64)]);
        assert_eq!(a.alloc_aligned(8192, 4096), None);
        assert_eq!(a.alloc_aligned(128, 64), Some(64));
        a.free(64, 128);
        a.free(4096, 4096);
        assert_eq!(a.extents(), vec![(64, 3 * 4096)]);
    }

    proptest! {
        /// Against a bitmap model: allocations never overlap, free space adds up, and after
        /// freeing everything the region is one extent again.
        #[test]
        fn matches_a_bitmap_model(ops in proptest::collection::vec((1u64..6, any::<bool>()), 1..200)) {
            const UNITS: u64 = 64;
            let mut a = ExtentAllocator::default();
            a.free(0, UNITS * 4096);
            let mut used = [false; UNITS as usize];
            let mut live: Vec<(u64, u64)> = Vec::new();
            for (units, do_free) in ops {
                if do_free && !live.is_empty() {
                    let (o, l) = live.swap_remove(0);
                    for u in o / 4096..(o + l) / 4096 { used[u as usize] = false; }
                    a.free(o, l);
                } else if let Some(o) = a.alloc(units * 4096) {
                    for u in o / 4096..o / 4096 + units {
                        prop_assert!(!used[u as usize], "overlap at unit {}", u);
                        used[u as usize] = true;
                    }
                    live.push((o, units * 4096));
                }
                let free_units = used.iter().filter(|&&u| !u).count() as u64;
                prop_assert_eq!(a.free_bytes(), free_units * 4096);
                let ext = a.extents();
                for w in ext.windows(2) {
                    prop_assert!(w[0].0 + w[0].1 < w[1].0, "uncoalesced neighbours {:?}", w);
                }
            }
            for (o, l) in live { a.free(o, l); }
            prop_assert_eq!(a.extents(), vec![(0, UNITS * 4096)]);
        }
    }
}
