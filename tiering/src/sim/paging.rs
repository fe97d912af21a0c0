//! Kernel paging as a line of the budget curve: the model's objects live in a mapped file (the
//! store over its mmap pool, with the smallest DRAM budget an op can run in), and DRAM is bounded
//! by a cgroup limit, so the kernel's page cache decides what stays in DRAM.
//!
//! Model, in virtual time on one thread (every cost stalls the computation):
//! - The store's own decisions at its small budget come from the `lru` simulation: which pins
//!   copy an object out of the mapping, and which evictions copy a result into it.
//! - The page cache holds `cache_bytes` of the file in chunks, on two lists as the kernel keeps
//!   them: a chunk enters the inactive list when faulted in or written, moves to the active list
//!   when touched again, and reclaim takes the inactive tail after moving the active tail down
//!   whenever the active list is the larger (Linux's active/inactive balance).
//! - Copying out a resident chunk costs its bytes at the mapped-copy bandwidth; each run of
//!   missing chunks costs one synchronous fault (which reads the read-around window) plus the
//!   bytes beyond that window at the fault-driven sequential read bandwidth (readahead streams
//!   the rest). The neighbours a read-around brings in are not marked cached: the model does
//!   not know the file's layout.
//! - Copying a result in dirties its chunks (no read before write: results go to fresh or
//!   recycled extents); reclaiming a dirty chunk stalls for its write-back. Background flushing
//!   of dirty pages is not modelled: they are written back when reclaimed, or not at all.
//! - A removed object's chunks leave the cache model without a write-back: the pool recycles
//!   its extent for the next result, so those pages hold the next object's bytes rather than
//!   adding to the cached footprint (the write-back of bytes already freed is not charged).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::prediction::{split_setup, PredictOptions, Prediction, Timeline, Transfer};
use crate::cost::CostModel;
use crate::error::{Error, Result};
use crate::ids::ObjectId;
use crate::policy::PolicyConfig;
use crate::trace::{Trace, TraceEvent};

/// What page faults and write-back through a mapped pool file cost on this host (measured by
/// [`crate::calibrate::calibrate_paging`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PagingCost {
    /// Bytes per second of a cold sequential read through a mapping: 4 KiB page faults with the
    /// kernel's readahead.
    pub fault_seq_read_bw: f64,
    /// Nanoseconds of one fault on a cold page away from any recent access: a synchronous
    /// read of the read-around window.
    pub fault_random_ns: f64,
    /// Bytes the kernel reads around one such fault (the device's `read_ahead_kb`).
    pub readaround_bytes: u64,
    /// Bytes per second at which dirty mapped pages are written back (msync of fresh pages).
    pub writeback_bw: f64,
    /// Bytes per second of copying resident mapped pages (a page-cache hit).
    pub mapped_copy_bw: f64,
}

impl PagingCost {
    /// Checks every number: positive finite bandwidths and a finite non-negative fault time.
    pub fn validate(&self) -> Result<()> {
        for (v, name) in [
            (self.fault_seq_read_bw, "fault_seq_read_bw"),
            (self.writeback_bw, "writeback_bw"),
            (self.mapped_copy_bw, "mapped_copy_bw"),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::InvalidConfig {
                    name: "paging",
                    value: format!("{name}={v}"),
                    reason: "bandwidths must be positive and finite",
                });
            }
        }
        if !(self.fault_random_ns.is_finite() && self.fault_random_ns >= 0.0) {
            return Err(Error::InvalidConfig {
                name: "paging",
                value: format!("fault_random_ns={}", self.fault_random_ns),
                reason: "the fault time must be finite and non-negative",
            });
        }
        Ok(())
    }
}

/// The smallest store budget every op of `trace` runs in: its pinned operands and the results
/// it writes while they are pinned, in whole pages (as DRAM is placed and as the store checks a
/// plan's working sets).
pub fn smallest_store_budget(trace: &Trace) -> u64 {
    let lens = trace.object_lens();
    let page = |id: &ObjectId| lens.get(id).copied().unwrap_or(0).next_multiple_of(4096);
    let (_, timed) = split_setup(trace);
    let mut best = 0u64;
    let mut step = 0u64;
    for e in timed {
        match e {
            TraceEvent::Op { pins, .. } => {
                best = best.max(step);
                step = pins.iter().map(page).sum();
            }
            TraceEvent::Put { id, .. } => step += page(id),
            TraceEvent::Remove { .. } => {}
        }
    }
    best.max(step)
}

/// Which list a cached chunk is on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum List {
    Inactive,
    Active,
}

/// One cached chunk: its list, its place in that list (larger = more recent), its bytes and
/// whether it holds unwritten bytes.
#[derive(Clone, Copy, Debug)]
struct Slot {
    list: List,
    stamp: u64,
    bytes: u64,
    dirty: bool,
}

/// A chunk of the file: (object, chunk index within it).
type Chunk = (ObjectId, u64);

/// The page cache: two LRU lists of chunks, bounded in bytes.
struct PageCache {
    capacity: u64,
    slots: HashMap<Chunk, Slot>,
    inactive: BTreeMap<u64, Chunk>,
    active: BTreeMap<u64, Chunk>,
    /// Bytes on each list: [inactive, active].
    bytes: [u64; 2],
    clock: u64,
}

impl PageCache {
    fn new(capacity: u64) -> Self {
        Self {
            capacity,
            slots: HashMap::new(),
            inactive: BTreeMap::new(),
            active: BTreeMap::new(),
            bytes: [0, 0],
            clock: 0,
        }
    }

    fn list(&mut self, l: List) -> &mut BTreeMap<u64, Chunk> {
        match l {
            List::Inactive => &mut self.inactive,
            List::Active => &mut self.active,
        }
    }

    /// Takes `c` off its list; returns its slot.
    fn take(&mut self, c: Chunk) -> Option<Slot> {
        let s = self.slots.remove(&c)?;
        self.list(s.list).remove(&s.stamp);
        self.bytes[s.list as usize] -= s.bytes;
        Some(s)
    }

    fn place(&mut self, c: Chunk, list: List, bytes: u64, dirty: bool) {
        self.clock += 1;
        let stamp = self.clock;
        self.list(list).insert(stamp, c);
        self.bytes[list as usize] += bytes;
        self.slots.insert(c, Slot { list, stamp, bytes, dirty });
    }

    /// Forgets every chunk of `id` below `chunks`.
    fn forget(&mut self, id: ObjectId, chunks: u64) {
        for i in 0..chunks {
            self.take((id, i));
        }
    }

    /// Touches `c`; returns whether it was cached. A cached chunk moves to the active head.
    fn touch(&mut self, c: Chunk, dirty: bool) -> bool {
        match self.take(c) {
            Some(s) => {
                self.place(c, List::Active, s.bytes, s.dirty || dirty);
                true
            }
            None => false,
        }
    }

    /// Whether `c` is cached (read-around does not change its place on the lists).
    fn touch_clean(&self, c: Chunk) -> bool {
        self.slots.contains_key(&c)
    }

    /// Inserts a chunk of `bytes` that was not cached on the inactive list; returns the dirty
    /// bytes that reclaim had to write back to make room.
    fn insert(&mut self, c: Chunk, bytes: u64, dirty: bool) -> u64 {
        self.place(c, List::Inactive, bytes, dirty);
        let mut dirty_evicted = 0;
        while self.bytes[0] + self.bytes[1] > self.capacity {
            if self.bytes[1] > self.bytes[0] {
                if let Some(&a) = self.active.first_key_value().map(|(_, a)| a) {
                    if let Some(s) = self.take(a) {
                        self.place(a, List::Inactive, s.bytes, s.dirty);
                    }
                }
            }
            let Some(&v) = self.inactive.first_key_value().map(|(_, v)| v) else { break };
            if let Some(s) = self.take(v).filter(|s| s.dirty) {
                dirty_evicted += s.bytes;
            }
        }
        dirty_evicted
    }
}

/// What [`predict_paging`] is asked.
#[derive(Clone, Debug, PartialEq)]
pub struct PagingSetup {
    /// The store's own DRAM budget (its copies of the pinned objects), bytes.
    pub store_budget: u64,
    /// Bytes of the mapped file the page cache may hold: the cgroup limit less the process's
    /// anonymous memory.
    pub cache_bytes: u64,
}

/// The chunk size of the page-cache model for `trace`: 64 KiB (the kernel's fault-around),
/// coarser for traces with huge objects so a full-size network simulates in seconds.
fn chunk_size(trace: &Trace) -> u64 {
    let largest = trace.object_lens().values().copied().max().unwrap_or(0);
    (largest / 64).clamp(64 << 10, 4 << 20).next_multiple_of(4096)
}

/// Where the setup objects (keys, weights) lie in the pool file: one after another in the
/// order they were put (as a fresh pool places them), so a fault's read-around brings in the
/// neighbours. Results go to recycled extents whose place is unknown: no neighbours.
struct Layout {
    /// (offset, id) sorted by offset.
    order: Vec<(u64, ObjectId)>,
    at: HashMap<ObjectId, u64>,
    readaround: u64,
}

impl Layout {
    fn new(trace: &Trace, readaround: u64) -> Self {
        let (setup, _) = split_setup(trace);
        let mut order = Vec::new();
        let mut at = HashMap::new();
        let mut off = 0u64;
        for e in setup {
            if let TraceEvent::Put { id, len, .. } = e {
                if at.insert(*id, off).is_none() {
                    order.push((off, *id));
                    off += len.next_multiple_of(4096);
                }
            }
        }
        Self { order, at, readaround }
    }

    /// Caches the chunks of the window around chunk `i` of `id` (the read-around: half before,
    /// half after); returns the dirty bytes reclaim wrote back to make room.
    fn read_around(
        &self,
        cache: &mut PageCache,
        id: ObjectId,
        i: u64,
        chunk: u64,
        lens: &HashMap<ObjectId, u64>,
    ) -> u64 {
        let len_of = |o: ObjectId| lens.get(&o).copied().unwrap_or(0);
        let mut dirty = 0;
        let Some(&base) = self.at.get(&id) else {
            // Unknown place: the window covers this object from the fault on.
            let len = len_of(id);
            let end = (i * chunk + self.readaround).min(len);
            for j in i + 1..end.div_ceil(chunk) {
                if !cache.touch_clean((id, j)) {
                    dirty += cache.insert((id, j), (len - j * chunk).min(chunk), false);
                }
            }
            return dirty;
        };
        let fault = base + i * chunk;
        let (lo, hi) = (fault.saturating_sub(self.readaround / 2), fault + self.readaround / 2);
        let first = self.order.partition_point(|&(o, _)| o <= lo).saturating_sub(1);
        for &(o, obj) in &self.order[first..] {
            if o >= hi {
                break;
            }
            let len = len_of(obj);
            for j in 0..len.div_ceil(chunk) {
                let (a, b) = (o + j * chunk, o + ((j + 1) * chunk).min(len));
                if b <= lo || a >= hi || (obj == id && j == i) {
                    continue;
                }
                if !cache.touch_clean((obj, j)) {
                    dirty += cache.insert((obj, j), b - a, false);
                }
            }
        }
        dirty
    }
}

/// Predicts the timed phase of `trace` under kernel paging, with its disk traffic as the
/// timeline's transfers (reads: faulted bytes; writes: dirty bytes written back at reclaim).
pub fn predict_paging(
    trace: &Trace,
    model: &CostModel,
    paging: &PagingCost,
    setup: &PagingSetup,
) -> Result<(Prediction, Timeline)> {
    paging.validate()?;
    // The store's own moves at its small budget: keys and weights sit in the pool already.
    let opts = PredictOptions { migrator_threads: 2, reuse_durable: true };
    let (store, moves) =
        super::fast::predict(trace, model, &PolicyConfig::Lru, setup.store_budget, &opts, true)?;
    let moves = moves.unwrap_or_default();
    let chunk = chunk_size(trace);
    let lens = trace.object_lens();
    let mut by_op: Vec<Vec<&Transfer>> = Vec::new();
    for t in &moves.transfers {
        if by_op.len() <= t.op {
            by_op.resize_with(t.op + 1, Vec::new);
        }
        by_op[t.op].push(t);
    }
    let mut cache = PageCache::new(setup.cache_bytes);
    let layout = Layout::new(trace, paging.readaround_bytes);
    let mut out =
        Prediction { peak_dram: setup.store_budget + setup.cache_bytes, ..Default::default() };
    let mut tl = Timeline::default();
    let mut now = 0.0f64;
    let (_, timed) = split_setup(trace);
    let mut op = 0usize;
    for e in timed {
        let (name, compute_ns) = match e {
            TraceEvent::Op { name, compute_ns, .. } => (name, compute_ns),
            TraceEvent::Remove { id } => {
                let len = lens.get(id).copied().unwrap_or(0);
                cache.forget(*id, len.div_ceil(chunk));
                continue;
            }
            TraceEvent::Put { .. } => continue,
        };
        let start = now;
        for t in by_op.get(op).map_or(&[][..], |v| v.as_slice()) {
            let len = lens.get(&t.id).copied().unwrap_or(t.bytes);
            let n = len.div_ceil(chunk).max(1);
            let piece = |i: u64| (len - i * chunk).min(chunk);
            let mut dirty_evicted = 0u64;
            if t.read {
                // Copy out: hits at the mapped-copy rate; the first miss is a fault that reads
                // the window around it; the misses after it in this copy stream at the
                // sequential rate (the kernel's readahead).
                let mut streaming = false;
                for i in 0..n {
                    if cache.touch((t.id, i), false) {
                        now += piece(i) as f64 / paging.mapped_copy_bw * 1e9;
                        out.hits += 1;
                        continue;
                    }
                    let (d, bytes) = if streaming {
                        dirty_evicted += cache.insert((t.id, i), piece(i), false);
                        (piece(i) as f64 / paging.fault_seq_read_bw * 1e9, piece(i))
                    } else {
                        streaming = true;
                        out.misses += 1;
                        dirty_evicted += cache.insert((t.id, i), piece(i), false);
                        dirty_evicted += layout.read_around(&mut cache, t.id, i, chunk, &lens);
                        now += piece(i) as f64 / paging.mapped_copy_bw * 1e9;
                        (paging.fault_random_ns, paging.readaround_bytes)
                    };
                    tl.transfers.push(Transfer {
                        id: t.id,
                        bytes,
                        read: true,
                        start_ns: now,
                        end_ns: now + d,
                        op,
                    });
                    now += d;
                    out.pm_read_bytes += bytes;
                }
            } else {
                now += len as f64 / paging.mapped_copy_bw * 1e9;
                for i in 0..n {
                    if !cache.touch((t.id, i), true) {
                        dirty_evicted += cache.insert((t.id, i), piece(i), true);
                    }
                }
            }
            if dirty_evicted > 0 {
                let bytes = dirty_evicted;
                let d = bytes as f64 / paging.writeback_bw * 1e9;
                tl.transfers.push(Transfer {
                    id: t.id,
                    bytes,
                    read: false,
                    start_ns: now,
                    end_ns: now + d,
                    op,
                });
                now += d;
                out.pm_write_bytes += bytes;
            }
        }
        let c = model.op_ns(name, *compute_ns);
        now += c;
        out.compute_ns += c;
        tl.ops.push((start, now));
        op += 1;
    }
    out.total_ns = now;
    out.stall_ns = (now - out.compute_ns).max(0.0);
    debug_assert!(store.peak_dram <= setup.store_budget);
    Ok((out, tl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::test_model;
    use crate::trace::{ObjectClass, TraceDurability, TraceHeader};

    fn paging() -> PagingCost {
        PagingCost {
            fault_seq_read_bw: 1e9,
            fault_random_ns: 100_000.0,
            readaround_bytes: 128 << 10,
            writeback_bw: 0.5e9,
            mapped_copy_bw: 10e9,
        }
    }

    /// `keys` keys of 1 MiB cycled by `ops` ops of 2 ms, each reading one key and the result
    /// of the op `lag` before it (removed after this use) and writing a 256 KiB result.
    fn cyclic(keys: u64, ops: u64, lag: u64) -> Trace {
        let mut ev = Vec::new();
        let put = |id: u64, kind, durability, len| TraceEvent::Put {
            id: ObjectId(id),
            kind,
            durability,
            len,
        };
        for k in 0..keys {
            ev.push(put(k, ObjectClass::EvalKey, TraceDurability::Durable, 1 << 20));
        }
        for j in 0..lag {
            ev.push(put(1000 + j, ObjectClass::Ciphertext, TraceDurability::Scratch, 256 << 10));
        }
        for i in 0..ops {
            ev.push(TraceEvent::Op {
                name: "key_switch".into(),
                pins: vec![ObjectId(1000 + i), ObjectId(i % keys)],
                compute_ns: 2_000_000,
            });
            ev.push(put(
                1000 + lag + i,
                ObjectClass::Ciphertext,
                TraceDurability::Scratch,
                256 << 10,
            ));
            ev.push(TraceEvent::Remove { id: ObjectId(1000 + i) });
        }
        Trace { header: TraceHeader::new("paging"), events: ev }
    }

    fn at(t: &Trace, cache: u64) -> Prediction {
        let mut m = test_model();
        m.ops_ns.clear();
        let setup = PagingSetup { store_budget: smallest_store_budget(t), cache_bytes: cache };
        predict_paging(t, &m, &paging(), &setup).unwrap().0
    }

    #[test]
    fn time_rises_as_the_cache_shrinks_and_everything_cached_costs_only_copies() {
        let t = cyclic(8, 64, 1);
        let compute = 64.0 * 2e6;
        let all = at(&t, 64 << 20);
        // Everything fits: each key is faulted once (a 128 KiB read-around window, the rest of
        // its 64 KiB chunks streamed), every later copy hits. Key 0 starts in the store's DRAM
        // (lru's warm start from the hint), so 63 keys are copied out of the mapping, and key 0,
        // first copied at op 8, finds its last chunk cached by the window around key 1's first.
        let kib = 1024.0;
        assert_eq!(all.pm_read_bytes, 8 * (128 << 10) + (8 * 15 - 1) * (64 << 10));
        assert_eq!(all.pm_write_bytes, 0);
        let chunk_copy = 64.0 * kib / 10e9 * 1e9;
        let faults = 8.0 * (1e5 + chunk_copy);
        let streamed = 119.0 * 64.0 * kib / 1e9 * 1e9;
        let want = compute + faults + streamed + (55.0 * 16.0 + 1.0) * chunk_copy;
        assert!((all.total_ns - want).abs() < 1.0, "{all:?} vs {want}");
        assert_eq!((all.misses, all.hits), (8, 55 * 16 + 1));
        let mut last = all.total_ns;
        for mib in [6u64, 4, 2, 1, 0] {
            let p = at(&t, mib << 20);
            assert!(p.total_ns >= last, "{mib} MiB: {} < {last}", p.total_ns);
            last = p.total_ns;
        }
        // A cache smaller than the cycle faults every key every time (LRU's worst case).
        let none = at(&t, 0);
        assert!(none.pm_read_bytes >= 64 << 20, "{none:?}");
        assert!(none.total_ns > compute + 64.0 * 1e6, "{none:?}");
    }

    #[test]
    fn dirty_chunks_are_written_back_when_reclaimed() {
        let t = cyclic(4, 32, 6);
        // The store at its smallest budget writes results into the mapping; a tiny cache must
        // write them back to make room, a large one never does.
        let small = at(&t, 1 << 20);
        let large = at(&t, 64 << 20);
        assert!(small.pm_write_bytes > 0, "{small:?}");
        assert_eq!(large.pm_write_bytes, 0);
        let bad = PagingCost { writeback_bw: 0.0, ..paging() };
        assert!(bad.validate().is_err());
        let bad = PagingCost { fault_random_ns: f64::NAN, ..paging() };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_fault_reads_its_neighbours_around_it() {
        // With an 8 MiB read-around, the first fault on a 1 MiB key brings in the 4 MiB after
        // it: keys 1..=3 are then hits, and only every fourth key faults.
        let t = cyclic(8, 8, 1);
        let mut m = test_model();
        m.ops_ns.clear();
        let wide = PagingCost { readaround_bytes: 8 << 20, ..paging() };
        let setup = PagingSetup { store_budget: smallest_store_budget(&t), cache_bytes: 64 << 20 };
        let p = predict_paging(&t, &m, &wide, &setup).unwrap().0;
        assert_eq!(p.misses, 2, "{p:?}");
    }

    #[test]
    fn active_list_protects_chunks_touched_twice() {
        let mut c = PageCache::new(4 << 10);
        let k = |i| (ObjectId(1), i);
        for i in 0..2 {
            c.insert(k(i), 1 << 10, false);
            assert!(c.touch(k(i), false));
        }
        // A stream of chunks used once goes through the inactive list; the two hot chunks stay
        // as long as the active list is not the larger.
        for i in 10..30 {
            c.insert(k(i), 1 << 10, false);
        }
        assert!(c.slots.contains_key(&k(0)) && c.slots.contains_key(&k(1)));
        assert_eq!((c.slots.len(), c.bytes[0] + c.bytes[1]), (4, 4 << 10));
    }
}
