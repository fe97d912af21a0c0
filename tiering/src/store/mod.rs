//! The tiered store: immutable objects under a hard DRAM budget over a PM pool.
//!
//! One mutex guards all residency state; transfers run with it released and report back
//! under it, and a condition variable wakes anyone waiting for a transfer or for room. Every
//! decision about *which* object moves is delegated to the [`Policy`].

mod builder;
mod guard;
mod migrator;
mod scratch;
mod state;
mod stats;
mod stream;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::thread::JoinHandle;

use hetier_allocator::{DramBlock, DramTier, Durability, ObjectKind, Pool};
use parking_lot::{Condvar, Mutex, MutexGuard};

use builder::StoreParts;
pub use builder::{NoBudget, NoPool, StoreBuilder, WithBudget, WithPool};
pub use guard::{BlockWriter, PinGuard};
pub use scratch::{ScratchBuffer, ScratchReserve};
pub use state::Residency;
pub use stats::{StoreStats, StreamStats};
pub use stream::{Cancel, StreamScope};

use state::{
    complete_load, finish_transfer, footprint, make_room, present, schedule_prefetch,
    start_transfer, BusyClock, Entry, Inner, Job, Need, Room, State, Transfer,
};

use crate::cost::PmDescription;
use crate::error::{Error, Result};
use crate::ids::{ObjectId, StreamId};
use crate::policy::Policy;
use crate::throttle::{Direction, Throttle};
use crate::tracker::{AccessStats, AccessTracker};

impl Inner {
    fn send(&self, job: Job) -> std::result::Result<(), Job> {
        self.jobs.send(job).map_err(|e| e.into_inner())
    }

    /// Reads an object from PM into `block` (whose bytes the caller reserved).
    fn pm_read(&self, id: ObjectId, len: u64, mut block: DramBlock) -> Result<DramBlock> {
        self.pm_read_clock.lock().start();
        let _timed = OnDrop(|| self.pm_read_clock.lock().stop());
        match &self.throttle {
            Some(t) => {
                t.transfer(Direction::Read, len, || self.pool.read_into(id, block.as_bytes_mut()))?;
            }
            None => {
                self.pool.read_into(id, block.as_bytes_mut())?;
            }
        }
        Ok(block)
    }

    /// Writes an object's bytes to PM (flushed if durable).
    fn pm_write(&self, id: ObjectId, kind: ObjectKind, d: Durability, bytes: &[u8]) -> Result<()> {
        match &self.throttle {
            Some(t) => t.transfer(Direction::Write, bytes.len() as u64, || {
                self.pool.put(id, kind, d, bytes)
            })?,
            None => self.pool.put(id, kind, d, bytes)?,
        }
        Ok(())
    }

    fn unpin(&self, id: ObjectId) {
        let mut st = self.state.lock();
        if let Some(e) = st.objects.get_mut(&id) {
            e.pins = e.pins.saturating_sub(1);
            if e.pins == 0 {
                let len = e.len;
                st.pinned_bytes -= footprint(len);
                // A scratch write-back that finished while pinned left the copy in DRAM;
                // nothing else to do: the object is now simply evictable.
            }
        }
        self.cond.notify_all();
        schedule_prefetch(self, &mut st);
    }

    /// Gives a block writer's bytes back: to its scratch reservation while that lives (they
    /// stay charged to it), else to the budget.
    fn release_writer(&self, len: u64, scratch: bool, reservation: Option<u64>) {
        let mut st = self.state.lock();
        if !reservation.is_some_and(|r| st.take_back(r, footprint(len))) {
            st.used -= footprint(len);
            st.pinned_bytes -= footprint(len);
        }
        if scratch {
            st.stats.scratch_in_use -= footprint(len);
        }
        self.cond.notify_all();
        schedule_prefetch(self, &mut st);
    }
}

/// Runs a closure when dropped (on every exit path of the scope holding it).
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// A description of one stored object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Length in bytes.
    pub len: u64,
    /// What the object holds.
    pub kind: ObjectKind,
    /// Durability class.
    pub durability: Durability,
    /// Where its bytes are.
    pub residency: Residency,
    /// Live pin guards.
    pub pins: u32,
}

impl StoreBuilder<WithBudget, WithPool> {
    /// Validates the options and starts the store (and its migrator threads).
    pub fn build(self) -> Result<TieredStore> {
        let p: StoreParts = self.into_parts()?;
        TieredStore::from_parts(p.pool, p.budget, p.policy, p.threads, p.throttle, p.pm_description)
    }
}

/// A store of immutable objects with a hard DRAM budget over a persistent-memory pool.
///
/// `Send + Sync`: share it by reference (or `Arc`) and pin from many threads at once.
pub struct TieredStore {
    inner: Arc<Inner>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for TieredStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredStore")
            .field("budget", &self.inner.budget)
            .field("pm", &self.inner.pm_description)
            .finish_non_exhaustive()
    }
}

impl TieredStore {
    /// Starts a typestate builder; `dram_budget` and `pool` are required before `build`.
    pub fn builder() -> StoreBuilder<NoBudget, NoPool> {
        StoreBuilder::new()
    }

    /// The DRAM budget in bytes.
    pub fn budget(&self) -> u64 {
        self.inner.budget
    }

    /// What the PM tier is (and whether it is emulated).
    pub fn pm_description(&self) -> &PmDescription {
        &self.inner.pm_description
    }

    /// The underlying pool (for inspection; objects should be changed through the store).
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Stores `bytes` as a new immutable object. Durable objects are on PM when this returns;
    /// the DRAM copy is kept if the policy ranks the object above what it would displace.
    /// A scratch object that cannot stay in DRAM goes straight to PM.
    pub fn put(
        &self,
        id: ObjectId,
        kind: ObjectKind,
        durability: Durability,
        bytes: &[u8],
    ) -> Result<()> {
        let inner = &*self.inner;
        let len = bytes.len() as u64;
        if len == 0 {
            return Err(Error::EmptyObject { id: Some(id) });
        }
        let mut st = inner.state.lock();
        if st.objects.contains_key(&id) {
            return Err(Error::DuplicateObject { id });
        }
        st.policy.on_insert(id, len);
        st.objects.insert(
            id,
            Entry {
                len,
                kind,
                durability,
                block: None,
                in_pm: false,
                pins: 0,
                transfer: Transfer::None,
                prefetched: false,
                failed: None,
                waiters: 0,
            },
        );
        start_transfer(&mut st, id, Transfer::Writing);
        let priority = st.policy.evict_priority(id);
        // A failed write-back of some victim only means this object will not stay in DRAM.
        let (room, block) = match make_room(inner, &mut st, Some(id), len, Need::Put { priority }) {
            Ok(Room::Reserved(block)) => (true, Some(block)),
            _ => (false, None),
        };
        let to_pm = durability == Durability::Durable || !room;
        let res = MutexGuard::unlocked(&mut st, || -> Result<Option<DramBlock>> {
            if to_pm {
                inner.pm_write(id, kind, durability, bytes)?;
            }
            Ok(block.map(|mut b| {
                b.as_bytes_mut().copy_from_slice(bytes);
                b
            }))
        });
        finish_transfer(inner, &mut st, id);
        match res {
            Ok(block) => {
                if to_pm {
                    st.stats.bytes_dram_to_pm += len;
                }
                if let Some(e) = st.objects.get_mut(&id) {
                    e.in_pm = to_pm;
                    e.block = block.map(Arc::new);
                }
                schedule_prefetch(inner, &mut st);
                Ok(())
            }
            Err(err) => {
                if room {
                    st.used -= footprint(len);
                }
                st.objects.remove(&id);
                st.policy.on_remove(id);
                if to_pm {
                    // Best effort: the write may have succeeded before the DRAM copy failed.
                    let _ = MutexGuard::unlocked(&mut st, || inner.pool.remove(id));
                }
                Err(err)
            }
        }
    }

    /// Reserves a zeroed DRAM buffer of `len` bytes under the budget, to be filled in place and
    /// stored with [`put_block`](Self::put_block). Counts as pinned until then.
    pub fn alloc(&self, len: u64) -> Result<BlockWriter<'_>> {
        scratch::alloc_block(&self.inner, len, true, None)
    }

    /// Like [`Self::alloc`], but the buffer is not zeroed first: its bytes may be those of an
    /// object that left DRAM. For writers that overwrite every byte (a computed result), and
    /// for reservations that are never read.
    pub fn alloc_for_overwrite(&self, len: u64) -> Result<BlockWriter<'_>> {
        scratch::alloc_block(&self.inner, len, false, None)
    }

    /// Borrows a DRAM buffer of `len` bytes charged to the budget, for scratch that is never
    /// stored: key-switch and hoisting temporaries, a product tensor, running sums. Made room
    /// for like a pin (clean objects are evicted, scratch objects written back; fails with
    /// [`Error::PinnedSetTooLarge`] only when pins and other borrowed buffers leave no room),
    /// counted as pinned while it lives, and returned to the arena when dropped, where the next
    /// block of any size reuses its pages without faults. Its bytes are unspecified (old data
    /// or zero): a user that reads before writing asks for [`Self::scratch_zeroed`]. Check a
    /// plan's steps with their scratch lengths included ([`Self::check_working_sets`]) so a
    /// budget too small fails before any work. [`StoreStats::scratch_in_use`] and
    /// [`StoreStats::scratch_peak`] count these buffers. A computation that borrows
    /// scratch step after step takes it from a [`Self::reserve_scratch`] instead, so that its
    /// scratch never evicts an object prefetched for its next step.
    pub fn scratch(&self, len: u64) -> Result<ScratchBuffer<'_>> {
        scratch::borrow(&self.inner, len, false, None)
    }

    /// Like [`Self::scratch`], with every byte zero.
    pub fn scratch_zeroed(&self, len: u64) -> Result<ScratchBuffer<'_>> {
        scratch::borrow(&self.inner, len, true, None)
    }

    /// Reserves `bytes` of the budget for scratch, held until the returned guard drops: made
    /// room for once, like a pin (evicting clean objects, writing back scratch objects; fails
    /// with [`Error::PinnedSetTooLarge`] when pins leave no room), then lent to the buffers
    /// [`ScratchReserve::scratch`] hands out and taken back when they drop, without going
    /// through eviction again. While it lives the policy plans, and prefetches, within the
    /// budget less these bytes: a computation that reserves its largest step's scratch for its
    /// whole run never has a step's scratch evict an object prefetched for the next, and what
    /// it moves is what a prediction over the budget less the reservation says.
    /// [`StoreStats::scratch_reserved`] reports it.
    pub fn reserve_scratch(&self, bytes: u64) -> Result<ScratchReserve<'_>> {
        scratch::reserve(&self.inner, bytes)
    }

    /// Stores a filled [`BlockWriter`] as a new object without copying it. A durable object is
    /// also written to PM before this returns.
    pub fn put_block(
        &self,
        id: ObjectId,
        kind: ObjectKind,
        durability: Durability,
        writer: BlockWriter<'_>,
    ) -> Result<()> {
        let inner = &*self.inner;
        let len = writer.len();
        let mut st = inner.state.lock();
        if st.objects.contains_key(&id) {
            drop(st);
            return Err(Error::DuplicateObject { id });
        }
        let block = Arc::new(writer.take());
        st.pinned_bytes -= footprint(len);
        st.policy.on_insert(id, len);
        st.objects.insert(
            id,
            Entry {
                len,
                kind,
                durability,
                block: Some(Arc::clone(&block)),
                in_pm: false,
                pins: 0,
                transfer: Transfer::None,
                prefetched: false,
                failed: None,
                waiters: 0,
            },
        );
        if durability == Durability::Durable {
            start_transfer(&mut st, id, Transfer::Writing);
            let res = MutexGuard::unlocked(&mut st, || {
                inner.pm_write(id, kind, durability, block.as_bytes())
            });
            drop(block);
            finish_transfer(inner, &mut st, id);
            if let Err(err) = res {
                st.objects.remove(&id);
                st.policy.on_remove(id);
                st.used -= footprint(len);
                inner.cond.notify_all();
                return Err(err);
            }
            st.stats.bytes_dram_to_pm += len;
            if let Some(e) = st.objects.get_mut(&id) {
                e.in_pm = true;
            }
        }
        schedule_prefetch(inner, &mut st);
        Ok(())
    }

    /// Pins an object: returns once it is in DRAM, and keeps it there while the guard lives.
    /// Waits for an in-flight transfer of the same object rather than issuing another.
    pub fn pin(&self, id: ObjectId) -> Result<PinGuard<'_>> {
        let inner = &*self.inner;
        let scope = stream::current(inner);
        if let Some((stream, cancel)) = &scope {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled { stream: *stream });
            }
        }
        let stream = scope.map(|(s, _)| s);
        let mut st = inner.state.lock();
        let len = st.objects.get(&id).ok_or(Error::UnknownObject { id })?.len;
        st.tracker.record(id, len);
        // The plan moved on: objects evicted unused may be prefetched again (see
        // `schedule_prefetch`).
        st.evicted_unused.clear();
        match stream {
            Some(s) => st.policy.on_access_in(s, id),
            None => st.policy.on_access(id),
        }
        let mut counted = false;
        let block = loop {
            let e = st.objects.get_mut(&id).ok_or(Error::UnknownObject { id })?;
            if let Some(failure) = e.failed.take() {
                return Err(failure.into_error(id));
            }
            if let Transfer::Loading { prefetch } = e.transfer {
                if !counted {
                    counted = true;
                    st.stats.pin_waits += 1;
                    if prefetch {
                        st.stats.prefetch_hits += 1;
                    } else {
                        st.stats.hits += 1;
                    }
                    count(&mut st, stream, |c| {
                        c.pin_waits += 1;
                        if prefetch {
                            c.prefetch_hits += 1;
                        } else {
                            c.hits += 1;
                        }
                    });
                }
                // Registered as a waiter, the object cannot be evicted between landing and
                // this pin taking it (which would waste the transfer and read it again).
                if let Some(e) = st.objects.get_mut(&id) {
                    e.waiters += 1;
                }
                inner.cond.wait(&mut st);
                if let Some(e) = st.objects.get_mut(&id) {
                    e.waiters = e.waiters.saturating_sub(1);
                }
                continue;
            }
            if e.block.is_none() && e.transfer == Transfer::Writing {
                // Its `put` is still writing it to PM: wait rather than read a partial object.
                inner.cond.wait(&mut st);
                continue;
            }
            if let Some(b) = &e.block {
                let b = Arc::clone(b);
                let was_prefetched = std::mem::take(&mut e.prefetched);
                if e.pins == 0 {
                    st.pinned_bytes += footprint(len);
                }
                // Re-borrow: the pinned-bytes update needed `st` mutably.
                if let Some(e) = st.objects.get_mut(&id) {
                    e.pins += 1;
                }
                if !counted {
                    if was_prefetched {
                        st.stats.prefetch_hits += 1;
                    } else {
                        st.stats.hits += 1;
                    }
                    count(&mut st, stream, |c| {
                        if was_prefetched {
                            c.prefetch_hits += 1;
                        } else {
                            c.hits += 1;
                        }
                    });
                }
                break b;
            }
            let block = match make_room(inner, &mut st, Some(id), len, Need::Demand)? {
                Room::Reserved(block) => block,
                // Another pin brought it in while this one waited for room: take that copy.
                Room::Refused if st.objects.get(&id).is_some_and(present) => continue,
                Room::Refused => {
                    return Err(Error::PinnedSetTooLarge {
                        id: Some(id),
                        requested: len,
                        pinned: st.pinned_bytes,
                        budget: inner.budget,
                    })
                }
            };
            // Waiting for room released the lock: someone may have started loading it.
            let still_absent = st
                .objects
                .get(&id)
                .is_some_and(|e| e.block.is_none() && e.transfer == Transfer::None);
            if !still_absent {
                drop(block);
                st.used -= footprint(len);
                inner.cond.notify_all();
                continue;
            }
            start_transfer(&mut st, id, Transfer::Loading { prefetch: false });
            if !counted {
                counted = true;
                st.stats.misses += 1;
                count(&mut st, stream, |c| c.misses += 1);
            }
            let res = MutexGuard::unlocked(&mut st, || inner.pm_read(id, len, block));
            if let Some(b) = complete_load(inner, &mut st, id, len, res, false)? {
                st.pinned_bytes += footprint(len);
                if let Some(e) = st.objects.get_mut(&id) {
                    e.pins += 1;
                    e.prefetched = false;
                }
                break b;
            }
        };
        schedule_prefetch(inner, &mut st);
        Ok(PinGuard { inner, id, block: Some(block) })
    }

    /// Pins several objects; on failure the ones already pinned are released.
    pub fn pin_all(&self, ids: &[ObjectId]) -> Result<Vec<PinGuard<'_>>> {
        ids.iter().map(|&id| self.pin(id)).collect()
    }

    /// Removes an object from both tiers. Fails while it is pinned; waits for a transfer.
    pub fn remove(&self, id: ObjectId) -> Result<()> {
        let inner = &*self.inner;
        let mut st = inner.state.lock();
        let e = loop {
            let e = st.objects.get(&id).ok_or(Error::UnknownObject { id })?;
            if e.pins > 0 {
                return Err(Error::ObjectPinned { id, pins: e.pins });
            }
            if e.transfer != Transfer::None {
                inner.cond.wait(&mut st);
                continue;
            }
            match st.objects.remove(&id) {
                Some(e) => break e,
                None => return Err(Error::UnknownObject { id }),
            }
        };
        // The block goes back to the arena before its bytes are released under the lock, so
        // the allocator's count never lags behind the store's (another thread may use them).
        let mut e = e;
        if let Some(arc) = e.block.take() {
            drop(arc);
            st.used -= footprint(e.len);
        }
        drop(e);
        st.policy.on_remove(id);
        st.tracker.forget(id);
        inner.cond.notify_all();
        schedule_prefetch(inner, &mut st);
        drop(st);
        if self.inner.pool.contains(id) {
            self.inner.pool.remove(id)?;
        }
        Ok(())
    }

    /// Tells the policy the future access sequence (pin order) and starts prefetching. Inside
    /// a [`stream`](Self::stream) scope it replaces that request's plan only; outside, the
    /// default stream's.
    pub fn hint(&self, future: &[ObjectId]) {
        let inner = &*self.inner;
        let stream = stream::current(inner).map(|(s, _)| s);
        let mut st = inner.state.lock();
        let lens: HashMap<ObjectId, u64> =
            future.iter().filter_map(|id| st.objects.get(id).map(|e| (*id, e.len))).collect();
        // Standing scratch reservations are no room for objects: the plan is made without them.
        let budget = inner.budget.saturating_sub(st.scratch_reserved);
        let len_of = |id| lens.get(&id).copied();
        match stream {
            Some(s) => st.policy.on_hint_in(s, future, budget, &len_of),
            None => st.policy.on_hint(future, budget, &len_of),
        }
        schedule_prefetch(inner, &mut st);
    }

    /// Opens the scope of request `stream` on the calling thread: until the scope drops, this
    /// thread's [`hint`](Self::hint) replaces that request's plan only, its pins advance that
    /// plan and count in [`StreamScope::stats`], and once `cancel` is raised its pins fail with
    /// [`Error::Cancelled`]. The planned policy merges the plans of all open streams.
    /// `reserve` is the DRAM the request pins at once at most: while the stream is open,
    /// prefetches leave that much free, so that its steps do not evict objects prefetched for
    /// another request (0: no reservation). Fails with [`Error::StreamInUse`] for the default
    /// stream or one already open.
    pub fn stream(
        &self,
        stream: StreamId,
        cancel: Cancel,
        reserve: u64,
    ) -> Result<StreamScope<'_>> {
        let inner = &*self.inner;
        {
            let mut st = inner.state.lock();
            if stream == StreamId::DEFAULT || st.streams.contains_key(&stream) {
                return Err(Error::StreamInUse { stream });
            }
            st.streams.insert(stream, StreamStats::default());
            st.stream_reserve = st.stream_reserve.saturating_add(reserve);
        }
        StreamScope::open(inner, stream, cancel);
        Ok(StreamScope { inner, stream, reserve, _thread: std::marker::PhantomData })
    }

    /// The DRAM a plan needs: for each of its steps, the lengths of the objects it holds in
    /// DRAM at once (pins, blocks being written, reservations), in whole pages as the store
    /// places them. Returns the most any step needs and the first step that needs it.
    pub fn working_set_need<S>(sets: impl IntoIterator<Item = S>) -> (u64, usize)
    where
        S: IntoIterator<Item = u64>,
    {
        let mut worst = (0, 0);
        for (i, set) in sets.into_iter().enumerate() {
            let need = set.into_iter().map(footprint).fold(0u64, u64::saturating_add);
            if need > worst.0 {
                worst = (need, i);
            }
        }
        worst
    }

    /// Checks a plan against the budget before any of its work starts (see
    /// [`Self::working_set_need`]): a step that could never fit fails now with
    /// [`Error::BudgetTooSmall`], naming the smallest workable budget, rather than halfway
    /// through the plan. Returns that smallest budget (the largest step's footprint).
    pub fn check_working_sets<S>(&self, sets: impl IntoIterator<Item = S>) -> Result<u64>
    where
        S: IntoIterator<Item = u64>,
    {
        let (needed, step) = Self::working_set_need(sets);
        if needed > self.inner.budget {
            return Err(Error::BudgetTooSmall { budget: self.inner.budget, needed, step });
        }
        Ok(needed)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> StoreStats {
        let st = self.inner.state.lock();
        let mut s = st.stats.clone();
        s.budget = self.inner.budget;
        s.scratch_reserved = st.scratch_reserved;
        s.dram_in_use = st.used;
        s.objects = st.objects.len() as u64;
        s.open_streams = st.streams.len() as u64;
        let d = self.inner.dram.stats();
        s.dram_free_largest = d.largest_free;
        s.dram_fragmentation = d.fragmentation();
        s.dram_resident = d.resident;
        s.block_reuses = d.reused_allocations;
        s.dram_faulted = d.faulted;
        s.dram_released = d.released;
        s.pm_read_ns = self.inner.pm_read_clock.lock().total_ns();
        s.policy = Some(st.policy.report());
        s
    }

    /// Bytes the DRAM allocator itself has handed out at most (a check on the store's own
    /// accounting; both must stay within the budget).
    pub fn allocator_peak(&self) -> u64 {
        self.inner.dram.peak() as u64
    }

    /// Where an object's bytes are, or `None` if it does not exist.
    pub fn residency(&self, id: ObjectId) -> Option<Residency> {
        self.inner.state.lock().objects.get(&id).map(|e| e.residency())
    }

    /// Everything the store knows about one object, or `None` if it does not exist.
    pub fn info(&self, id: ObjectId) -> Option<ObjectInfo> {
        self.inner.state.lock().objects.get(&id).map(|e| ObjectInfo {
            len: e.len,
            kind: e.kind,
            durability: e.durability,
            residency: e.residency(),
            pins: e.pins,
        })
    }

    /// Length of an object, or `None` if it does not exist.
    pub fn len_of(&self, id: ObjectId) -> Option<u64> {
        self.inner.state.lock().objects.get(&id).map(|e| e.len)
    }

    /// Whether an object exists.
    pub fn contains(&self, id: ObjectId) -> bool {
        self.inner.state.lock().objects.contains_key(&id)
    }

    /// Access statistics of one object (count, bytes, last use, reuse distance).
    pub fn access_stats(&self, id: ObjectId) -> Option<AccessStats> {
        self.inner.state.lock().tracker.get(id).cloned()
    }

    /// A copy of the whole access tracker (for building an α profile from a run).
    pub fn tracker(&self) -> AccessTracker {
        self.inner.state.lock().tracker.clone()
    }

    /// Faults in now every page of DRAM the budget has free (one block of it, a byte written
    /// per page, returned to the arena), so that no later block pays for fresh pages: the arena
    /// reuses resident pages without faults or zeroing, while a block on fresh pages costs a
    /// fault and a zeroed page per 4 KiB, which the cost model does not price. For setup, before
    /// timed work; the allocator's peak then reads as the budget. Returns the bytes faulted.
    pub fn prefault_dram(&self) -> Result<u64> {
        // Under the state lock no prefetch or put allocates meanwhile.
        let _st = self.inner.state.lock();
        let before = self.inner.dram.stats().faulted;
        let n = self.inner.dram.available();
        if n > 0 {
            let mut block = self.inner.dram.alloc_for_overwrite(n)?;
            for page in block.as_bytes_mut().chunks_mut(4096) {
                page[0] = 0;
            }
        }
        Ok(self.inner.dram.stats().faulted - before)
    }

    /// Waits until no transfer is in flight (prefetches and write-backs have landed).
    pub fn quiesce(&self) {
        let mut st = self.inner.state.lock();
        while st.in_flight > 0 {
            self.inner.cond.wait(&mut st);
        }
    }

    fn from_parts(
        pool: Pool,
        budget: u64,
        policy: Box<dyn Policy>,
        threads: usize,
        throttle: Option<Throttle>,
        pm_description: PmDescription,
    ) -> Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut objects = HashMap::new();
        let mut policy = policy;
        for m in pool.list() {
            policy.on_insert(m.id, m.len);
            objects.insert(
                m.id,
                Entry {
                    len: m.len,
                    kind: m.kind,
                    durability: m.durability,
                    block: None,
                    in_pm: true,
                    pins: 0,
                    transfer: Transfer::None,
                    prefetched: false,
                    failed: None,
                    waiters: 0,
                },
            );
        }
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                objects,
                used: 0,
                pinned_bytes: 0,
                policy,
                tracker: AccessTracker::new(),
                stats: StoreStats::default(),
                in_flight: 0,
                migrator_down: false,
                streams: HashMap::new(),
                stream_reserve: 0,
                scratch_reserved: 0,
                reservations: HashMap::new(),
                next_reservation: 0,
                evicted_unused: HashSet::new(),
            }),
            cond: Condvar::new(),
            pool,
            dram: DramTier::new(usize::try_from(budget).unwrap_or(usize::MAX))?,
            budget,
            throttle,
            jobs: tx,
            migrator_threads: threads,
            pm_description,
            pm_read_clock: Mutex::new(BusyClock::default()),
        });
        let workers = (0..threads)
            .filter_map(|i| migrator::spawn(Arc::clone(&inner), rx.clone(), i))
            .collect();
        Ok(Self { inner, workers })
    }
}

/// Adds to the counters of `stream`, if the pin belongs to one.
fn count(st: &mut State, stream: Option<StreamId>, f: impl FnOnce(&mut StreamStats)) {
    if let Some(c) = stream.and_then(|s| st.streams.get_mut(&s)) {
        f(c);
    }
}

impl Drop for TieredStore {
    fn drop(&mut self) {
        for _ in &self.workers {
            let _ = self.inner.send(Job::Stop);
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
