//! The store's shared state and the residency decisions made under its lock: reserving DRAM
//! by evicting or writing back, and scheduling prefetches.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crossbeam_channel::Sender;
use hetier_allocator::Pool;
use hetier_allocator::{DramBlock, DramTier, Durability, ObjectKind};
use parking_lot::{Condvar, Mutex, MutexGuard};

use super::stats::{StoreStats, StreamStats};
use crate::choice::{demand_victim, prefetch_fits, prefetch_scan, Occupant};
use crate::cost::PmDescription;
use crate::error::{Error, Result};
use crate::ids::{ObjectId, StreamId};
use crate::policy::Policy;
use crate::throttle::Throttle;
use crate::tracker::AccessTracker;

/// Work for the migrator threads.
#[derive(Debug)]
pub(crate) enum Job {
    /// Load an object into the given block (its bytes are reserved).
    Fetch(ObjectId, DramBlock),
    WriteBack(ObjectId),
    Stop,
}

/// What the store's handle, its guards and its migrator threads share.
pub(crate) struct Inner {
    pub(super) state: Mutex<State>,
    pub(super) cond: Condvar,
    pub(super) pool: Pool,
    pub(super) dram: DramTier,
    pub(super) budget: u64,
    pub(super) throttle: Option<Throttle>,
    pub(super) jobs: Sender<Job>,
    pub(super) migrator_threads: usize,
    pub(super) pm_description: PmDescription,
    /// Wall time during which at least one PM read (demand or prefetch) was in progress.
    pub(super) pm_read_clock: Mutex<BusyClock>,
}

/// Wall time during which at least one of some overlapping activities was in progress.
#[derive(Debug, Default)]
pub(crate) struct BusyClock {
    active: u32,
    since: Option<std::time::Instant>,
    total_ns: u64,
}

impl BusyClock {
    /// One activity starts.
    pub(super) fn start(&mut self) {
        if self.active == 0 {
            self.since = Some(std::time::Instant::now());
        }
        self.active += 1;
    }

    /// One activity ends.
    pub(super) fn stop(&mut self) {
        self.active = self.active.saturating_sub(1);
        if self.active == 0 {
            if let Some(t) = self.since.take() {
                let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.total_ns = self.total_ns.saturating_add(ns);
            }
        }
    }

    /// Busy time so far (ns), counting a period still in progress up to now.
    pub(super) fn total_ns(&self) -> u64 {
        let open = self.since.map_or(0, |t| t.elapsed().as_nanos());
        self.total_ns.saturating_add(u64::try_from(open).unwrap_or(u64::MAX))
    }
}

/// Where an object's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Residency {
    /// Only in DRAM: a scratch object never written to PM.
    DramOnly,
    /// In DRAM with a clean copy in PM: leaving DRAM costs nothing.
    Both,
    /// Only in PM.
    PmOnly,
}

/// A transfer in progress for one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Transfer {
    None,
    /// PM → DRAM; the bytes are already reserved.
    Loading {
        prefetch: bool,
    },
    /// DRAM → PM (write-back of scratch, or a put being written); the DRAM copy stays valid.
    Writing,
}

/// Why a PM→DRAM load failed, kept for the pin that needs the object.
#[derive(Debug, Clone)]
pub(super) enum LoadFailure {
    /// The pool's copy fails its checksum.
    Damaged {
        /// Checksum recorded when written.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// Anything else, rendered.
    Other(String),
}

impl LoadFailure {
    fn of(err: &Error) -> Self {
        match err {
            Error::Allocator(hetier_allocator::Error::DataChecksum {
                stored, computed, ..
            })
            | Error::Damaged { stored, computed, .. } => {
                LoadFailure::Damaged { stored: *stored, computed: *computed }
            }
            e => LoadFailure::Other(e.to_string()),
        }
    }

    /// The error a pin of `id` reports for this failure.
    pub fn into_error(self, id: ObjectId) -> Error {
        match self {
            LoadFailure::Damaged { stored, computed } => Error::Damaged { id, stored, computed },
            LoadFailure::Other(reason) => {
                Error::TransferFailed { id, direction: "pm->dram", reason }
            }
        }
    }
}

#[derive(Debug)]
pub(super) struct Entry {
    pub len: u64,
    pub kind: ObjectKind,
    pub durability: Durability,
    pub block: Option<Arc<DramBlock>>,
    pub in_pm: bool,
    pub pins: u32,
    pub transfer: Transfer,
    /// Arrived by prefetch and not pinned since.
    pub prefetched: bool,
    /// A transfer failure not yet reported to a pin.
    pub failed: Option<LoadFailure>,
    /// Pins waiting for this object's load: once it lands it must stay for them.
    pub waiters: u32,
}

impl Entry {
    pub fn residency(&self) -> Residency {
        match (self.block.is_some(), self.in_pm) {
            (true, false) => Residency::DramOnly,
            (true, true) => Residency::Both,
            (false, _) => Residency::PmOnly,
        }
    }

    /// Prefetched (or being prefetched) and not pinned since: evicting it would waste the read.
    fn awaits_use(&self) -> bool {
        self.prefetched || self.transfer == Transfer::Loading { prefetch: true }
    }

    fn evictable(&self) -> bool {
        self.block.is_some()
            && self.pins == 0
            && self.waiters == 0
            && self.transfer == Transfer::None
    }
}

pub(super) struct State {
    pub objects: HashMap<ObjectId, Entry>,
    /// DRAM bytes reserved (footprints): resident blocks, in-flight loads and open writers.
    pub used: u64,
    /// Footprints of pinned objects plus open writers: what eviction can never free.
    pub pinned_bytes: u64,
    pub policy: Box<dyn Policy>,
    pub tracker: AccessTracker,
    pub stats: StoreStats,
    pub in_flight: u64,
    pub migrator_down: bool,
    /// Pin counters of each open request stream.
    pub streams: HashMap<StreamId, StreamStats>,
    /// DRAM the open request streams keep free of prefetches (their pinned sets).
    pub stream_reserve: u64,
    /// Footprints of the live scratch reservations ([`super::ScratchReserve`]): charged to
    /// `used` and `pinned_bytes` (lent or not), and no room for objects, so the policy plans
    /// and prefetches within the budget less this.
    pub scratch_reserved: u64,
    /// Bytes of each live scratch reservation not lent to a buffer right now.
    pub reservations: HashMap<u64, u64>,
    pub next_reservation: u64,
    /// Objects prefetched and evicted before any pin used them since the last pin: not
    /// prefetched again until the plan moves on, so every pin is followed by a bounded amount
    /// of prefetching, whatever takes the room (the guard against prefetch-evict-prefetch).
    pub evicted_unused: HashSet<ObjectId>,
}

/// Outcome of [`make_room`].
#[derive(Debug)]
pub(super) enum Room {
    /// A non-demand request gave up, or a demand for an object that another pin loaded, or
    /// started loading, while this one waited for room (the caller pins that copy instead);
    /// nothing was reserved.
    Refused,
    /// `len` bytes are reserved and carved from the DRAM arena: this block, whose bytes are
    /// unspecified (the caller overwrites or zeroes them outside the lock).
    Reserved(DramBlock),
}

/// Who needs the room, which decides how hard `make_room` may try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Need {
    /// A pin or a block writer: may write back inline and wait for in-flight transfers;
    /// fails only when the pinned set itself is too large.
    Demand,
    /// A put keeping its DRAM copy: may evict (and write back inline) only objects the policy
    /// ranks as leaving before this one; never waits.
    Put { priority: u64 },
    /// A prefetch: evicts only what the policy's [`Policy::prefetch_rank`] allows, queues
    /// write-backs to the migrator instead of doing them here, never waits.
    Prefetch,
}

/// DRAM an object of `len` bytes takes: its length in whole pages, as the arena charges it.
/// `used` and `pinned_bytes` count footprints, so what they say fits is what the arena places.
pub(super) fn footprint(len: u64) -> u64 {
    DramTier::footprint(usize::try_from(len).unwrap_or(usize::MAX)) as u64
}

impl State {
    /// Lends `fp` bytes of reservation `r` back to the budget for a buffer about to be placed
    /// (they are taken again at once under the same lock). False when `r` has not that much.
    pub fn lend(&mut self, r: u64, fp: u64) -> bool {
        let Some(unlent) = self.reservations.get_mut(&r).filter(|u| **u >= fp) else {
            return false;
        };
        *unlent -= fp;
        self.used -= fp;
        self.pinned_bytes -= fp;
        true
    }

    /// Returns `fp` bytes lent from reservation `r` (its buffer was dropped, or not placed):
    /// they stay charged, to the reservation. False when `r` is gone (the bytes are then the
    /// caller's to release).
    pub fn take_back(&mut self, r: u64, fp: u64) -> bool {
        let Some(unlent) = self.reservations.get_mut(&r) else { return false };
        *unlent += fp;
        true
    }

    pub fn reserve_raw(&mut self, len: u64) {
        self.used += len;
        self.stats.peak_dram = self.stats.peak_dram.max(self.used);
    }

    /// Every object occupying DRAM (resident or loading), as the shared choice rules see it.
    /// With `shield`, objects prefetched and not yet used (or being prefetched) are held: no
    /// choice takes them.
    fn occupants(&self, shield: bool) -> impl Iterator<Item = Occupant> + '_ {
        self.objects.iter().filter_map(move |(id, e)| {
            let loading = matches!(e.transfer, Transfer::Loading { .. });
            let shielded = shield && e.awaits_use();
            (e.block.is_some() || loading).then_some(Occupant {
                id: *id,
                len: e.len,
                clean: e.in_pm,
                evictable: e.evictable() && !shielded,
                held: e.pins > 0 || e.waiters > 0 || shielded,
            })
        })
    }

    /// Whether objects prefetched and not yet used are kept until their use. With request
    /// streams open, plans advance at their own pace (a step of one request can take a hundred
    /// times another's), so the merged times are estimates: a request that runs ahead makes
    /// its own next objects look sooner than those prefetched for a request in a long step,
    /// and MIN on those times would evict the latter unused. A lone plan's order is exact and
    /// keeps MIN's choice (the simulators model that case).
    fn shield_prefetched(&self) -> bool {
        !self.streams.is_empty()
    }

    /// Bytes of shielded occupants (see [`Self::occupants`]) that a prefetch of `c` does not
    /// already count as needed before it.
    fn shielded_bytes(&self, c: ObjectId) -> u64 {
        self.objects
            .iter()
            .filter(|(id, e)| **id != c && e.awaits_use())
            .filter(|(id, _)| !self.policy.prefetch_rank(**id, c).1)
            .map(|(_, e)| e.len)
            .sum()
    }

    /// The next object to leave DRAM for a demand or a put (see [`demand_victim`]). With
    /// streams open, objects prefetched and not yet used leave only for a demand that finds
    /// nothing else to evict.
    fn victim(&self, below: Option<u64>) -> Option<ObjectId> {
        let shield = self.shield_prefetched();
        let first = demand_victim(&*self.policy, below, self.occupants(shield));
        if first.is_some() || !shield || below.is_some() {
            return first;
        }
        demand_victim(&*self.policy, below, self.occupants(false))
    }

    /// Drops a clean object's DRAM copy: its span goes back to the arena, where the next
    /// block of any size reuses the already faulted-in pages.
    fn drop_clean(&mut self, id: ObjectId) {
        let Some(e) = self.objects.get_mut(&id) else { return };
        let Some(arc) = e.block.take() else { return };
        let len = e.len;
        if std::mem::take(&mut e.prefetched) {
            self.stats.prefetch_evicted_unused += 1;
            self.evicted_unused.insert(id);
        }
        self.stats.evictions += 1;
        // Freed (when ours is the last reference) before the bytes are released, so the
        // arena's count never lags behind `used`.
        drop(arc);
        self.used -= footprint(len);
    }
}

/// Whether an object is in DRAM or on its way there.
pub(super) fn present(e: &Entry) -> bool {
    e.block.is_some() || matches!(e.transfer, Transfer::Loading { .. })
}

/// Reserves `len` bytes of DRAM for `id`, evicting as `need` allows; a non-demand request
/// that cannot be met is refused, a demand request fails only with a typed error (or is
/// refused when another pin brought its object in meanwhile).
pub(super) fn make_room(
    inner: &Inner,
    st: &mut MutexGuard<'_, State>,
    id: Option<ObjectId>,
    len: u64,
    need: Need,
) -> Result<Room> {
    let budget = inner.budget;
    if len > budget {
        return match need {
            Need::Demand => Err(Error::ObjectLargerThanBudget { len, budget }),
            _ => Ok(Room::Refused),
        };
    }
    if need == Need::Prefetch {
        let Some(c) = id else { return Ok(Room::Refused) };
        // Results written before the candidate's use need room too.
        // Open request streams keep room for their own pinned sets: a prefetch that took it
        // would be evicted unused by the next step of another request.
        let headroom = st.policy.prefetch_headroom(c).saturating_add(st.stream_reserve);
        let shield = st.shield_prefetched();
        let scan = prefetch_scan(&*st.policy, c, st.occupants(shield));
        // Objects prefetched earlier stay until their use (see `State::shield_prefetched`).
        let kept = if shield { st.shielded_bytes(c) } else { 0 };
        // Standing scratch reservations are no room for objects.
        let room = budget.saturating_sub(st.scratch_reserved);
        if !prefetch_fits(scan.protected.saturating_add(kept), len, headroom, room) {
            return Ok(Room::Refused);
        }
    }
    // Set when the budget had room but the arena could not place the block.
    let mut fragmented = None;
    let fp = footprint(len);
    loop {
        // Waiting below releases the lock: two pins of one absent object may both be here, and
        // the one that gets room first loads and pins it. The other must not fail for want of
        // room it no longer needs.
        if need == Need::Demand && id.is_some_and(|i| st.objects.get(&i).is_some_and(present)) {
            return Ok(Room::Refused);
        }
        if st.used + fp <= budget {
            // Carving is a few tree operations: done under the lock, so that what `used` says
            // fits and what the arena holds never disagree for long.
            match inner.dram.alloc_for_overwrite(len as usize) {
                Ok(block) => {
                    st.reserve_raw(fp);
                    return Ok(Room::Reserved(block));
                }
                // Room by bytes but not placeable (whole pages, or scattered address space),
                // or a block still referenced by a finishing transfer: evict as if there were
                // no room.
                Err(e @ hetier_allocator::Error::Fragmented { .. }) => fragmented = Some(e),
                Err(hetier_allocator::Error::BudgetExceeded { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if need == Need::Demand && st.pinned_bytes + fp > budget {
            return Err(Error::PinnedSetTooLarge {
                id,
                requested: fp,
                pinned: st.pinned_bytes,
                budget,
            });
        }
        let found = match need {
            Need::Demand => st.victim(None),
            Need::Put { priority } => st.victim(Some(priority)),
            Need::Prefetch => id.and_then(|c| {
                prefetch_scan(&*st.policy, c, st.occupants(st.shield_prefetched())).victim
            }),
        };
        let Some(victim) = found else {
            if need != Need::Demand {
                return Ok(Room::Refused);
            }
            if st.in_flight > 0 {
                // Bytes are tied up by transfers that finish without any lock we hold.
                inner.cond.wait(st);
                continue;
            }
            if let Some(e) = fragmented {
                return Err(e.into());
            }
            return Err(Error::PinnedSetTooLarge {
                id,
                requested: fp,
                pinned: st.pinned_bytes,
                budget,
            });
        };
        let e = &st.objects[&victim];
        if e.in_pm {
            st.drop_clean(victim);
            continue;
        }
        // A scratch object must be written back before it can leave DRAM.
        if need == Need::Prefetch {
            start_transfer(st, victim, Transfer::Writing);
            if inner.send(Job::WriteBack(victim)).is_err() {
                finish_transfer(inner, st, victim);
                st.migrator_down = true;
            }
            return Ok(Room::Refused);
        }
        write_back_inline(inner, st, victim)?;
    }
}

pub(super) fn start_transfer(st: &mut State, id: ObjectId, t: Transfer) {
    if let Some(e) = st.objects.get_mut(&id) {
        e.transfer = t;
        st.in_flight += 1;
    }
}

pub(super) fn finish_transfer(inner: &Inner, st: &mut State, id: ObjectId) {
    if let Some(e) = st.objects.get_mut(&id) {
        e.transfer = Transfer::None;
    }
    st.in_flight = st.in_flight.saturating_sub(1);
    inner.cond.notify_all();
}

/// Writes a DRAM-only object to PM with the lock released, then drops its DRAM copy.
fn write_back_inline(inner: &Inner, st: &mut MutexGuard<'_, State>, id: ObjectId) -> Result<()> {
    let (block, kind, len) = {
        let e = &st.objects[&id];
        (e.block.clone(), e.kind, e.len)
    };
    let Some(block) = block else { return Ok(()) };
    start_transfer(st, id, Transfer::Writing);
    let res = MutexGuard::unlocked(st, || inner.pm_write(id, kind, Durability::Scratch, &block));
    drop(block);
    complete_write_back(inner, st, id, len, res)
}

/// Records the outcome of a write-back: on success the object is clean and leaves DRAM; on
/// failure it stays in DRAM (readable) and the error is returned to whoever needed the room.
pub(super) fn complete_write_back(
    inner: &Inner,
    st: &mut State,
    id: ObjectId,
    len: u64,
    res: Result<()>,
) -> Result<()> {
    finish_transfer(inner, st, id);
    match res {
        Ok(()) => {
            st.stats.bytes_dram_to_pm += len;
            st.stats.writebacks += 1;
            if let Some(e) = st.objects.get_mut(&id) {
                e.in_pm = true;
                if e.pins == 0 {
                    st.drop_clean(id);
                }
            }
            Ok(())
        }
        Err(err) => {
            st.stats.transfer_failures += 1;
            Err(Error::TransferFailed { id, direction: "dram->pm", reason: err.to_string() })
        }
    }
}

/// Issues prefetches for the policy's candidates, in order, while room can be made for them
/// without evicting anything needed sooner.
pub(super) fn schedule_prefetch(inner: &Inner, st: &mut MutexGuard<'_, State>) {
    if st.migrator_down || inner.migrator_threads == 0 {
        return;
    }
    for id in st.policy.prefetch_candidates() {
        let Some(e) = st.objects.get(&id) else { continue };
        if e.block.is_some() || e.transfer != Transfer::None || e.failed.is_some() {
            continue;
        }
        if st.evicted_unused.contains(&id) {
            // Prefetched and evicted unused since the last pin: fetching it again now could
            // repeat forever (prefetch-evict-prefetch) if what evicted it takes the room again.
            // The next pin lifts this; until then nothing later in the plan is fetched either.
            st.stats.prefetches_held_back += 1;
            break;
        }
        let len = e.len;
        let block = match make_room(inner, st, Some(id), len, Need::Prefetch) {
            Ok(Room::Reserved(block)) => block,
            _ => break,
        };
        start_transfer(st, id, Transfer::Loading { prefetch: true });
        st.stats.prefetches += 1;
        for s in st.policy.wanted_by(id) {
            if let Some(c) = st.streams.get_mut(&s) {
                c.prefetches += 1;
            }
        }
        if let Err(job) = inner.send(Job::Fetch(id, block)) {
            drop(job);
            st.used -= footprint(len);
            finish_transfer(inner, st, id);
            st.migrator_down = true;
            return;
        }
    }
}

/// Records the outcome of a PM → DRAM load. On success the block is installed (and pinned
/// once if `pin`); on failure the reservation is returned and the object stays PM-only.
pub(super) fn complete_load(
    inner: &Inner,
    st: &mut State,
    id: ObjectId,
    len: u64,
    res: Result<DramBlock>,
    prefetch: bool,
) -> Result<Option<Arc<DramBlock>>> {
    finish_transfer(inner, st, id);
    match res {
        Ok(block) => {
            st.stats.bytes_pm_to_dram += len;
            st.stats.pm_reads += 1;
            let block = Arc::new(block);
            let Some(e) = st.objects.get_mut(&id) else {
                st.used -= footprint(len);
                return Ok(None);
            };
            e.block = Some(Arc::clone(&block));
            e.prefetched = prefetch;
            Ok(Some(block))
        }
        Err(err) => {
            st.used -= footprint(len);
            st.stats.transfer_failures += 1;
            let failure = LoadFailure::of(&err);
            // A demand load reports to its own pin; a failed prefetch is kept for the pin
            // that will need the object.
            if prefetch {
                if let Some(e) = st.objects.get_mut(&id) {
                    e.failed = Some(failure.clone());
                }
            }
            Err(failure.into_error(id))
        }
    }
}
