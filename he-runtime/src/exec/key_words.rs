//! The words of a key in use, and the budgeted blocks seed-compressed keys are expanded into.
//!
//! A block keeps the key it was last expanded into ([`ExpansionBlocks`] tags it with the key's
//! object and the level it was expanded for), so a key pinned again before its block is reused
//! for another — the relinearisation key at every multiply of EvalMod — is not expanded again
//! ([`super::keys::StoredKey::pin_recycled`]). A key is expanded only where a switch at its
//! level reads ([`crate::ckks::KeySwitchKey::max_level`]): a block serves a later pin at that level or
//! below. A helper thread
//! ([`ExpansionBlocks::expand_ahead`]) follows the plan of keys to come and expands the next
//! one into a spare block while the current one is in use: the expansion leaves the critical
//! path, and only ever into blocks already charged to the budget.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use hetier_tiering::{BlockWriter, Cancel, ObjectId, PinGuard, StreamId, TieredStore};

use super::stored_key::StoredKey;
use crate::ckks::{switch_key_expanded_words, Context};
use crate::exec::error::Result;

/// First stream id of the key-expanding helper threads, apart from request streams (their
/// scratch space numbers) and the maintenance stream (`u64::MAX`).
const HELPER_STREAM_BASE: u64 = 1 << 62;

/// The words of a key in use: its pinned object itself (expanded form), or a DRAM block
/// charged to the store's budget that a seed-compressed key was expanded into and that goes
/// back to the budget when this is dropped.
pub enum KeyWords<'g, 's> {
    /// An expanded key used in place in its pin.
    Pinned(PinGuard<'s>),
    /// An expanded key used in place in a pin the caller holds.
    Borrowed(&'g [u64]),
    /// A seed-compressed key expanded for this use.
    Expanded(BlockWriter<'s>),
    /// A seed-compressed key expanded into a block of `spares`, which gets it back on drop
    /// (still holding the key, for its next pin).
    Recycled {
        /// The block (taken only by drop).
        block: Option<BlockWriter<'s>>,
        /// The key it holds expanded, and for which level.
        key: ExpandedKey,
        /// Where it returns.
        spares: &'g ExpansionBlocks<'s>,
    },
}

impl Drop for KeyWords<'_, '_> {
    fn drop(&mut self) {
        if let KeyWords::Recycled { block, key, spares } = self {
            if let Some(b) = block.take() {
                let mut st = spares.lock();
                st.blocks.push(Spare { block: b, key: Some(*key) });
                drop(st);
                spares.changed.notify_all();
            }
        }
    }
}

/// A stored key object expanded for key switches up to `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpandedKey {
    /// The seed-compressed key's object.
    pub id: ObjectId,
    /// The highest level whose switches the expanded words serve.
    pub level: usize,
}

impl ExpandedKey {
    /// Whether these words serve a pin of `want`: the same key, expanded for its level or
    /// above.
    fn serves(&self, want: &ExpandedKey) -> bool {
        self.id == want.id && self.level >= want.level
    }
}

/// One spare block and the key expanded in it (if its words are a key's).
struct Spare<'s> {
    block: BlockWriter<'s>,
    key: Option<ExpandedKey>,
}

impl Spare<'_> {
    fn serves(&self, want: &ExpandedKey) -> bool {
        self.key.is_some_and(|k| k.serves(want))
    }

    fn holds(&self, id: ObjectId) -> bool {
        self.key.is_some_and(|k| k.id == id)
    }
}

struct SpareState<'s> {
    blocks: Vec<Spare<'s>>,
    /// The key a helper thread is expanding right now (its block is out of `blocks`).
    in_flight: Option<ExpandedKey>,
    /// The keys to come, in pin order with repeats collapsed to the highest level of their
    /// run (set by the owner's hint).
    plan: Vec<ExpandedKey>,
    /// Position in `plan` of the last key pinned.
    pos: Option<usize>,
}

/// Expanded-key blocks kept charged to the store's budget between uses and handed out again:
/// the budget always shows the room a key's expansion needs, so the `planned` policy never
/// fills it with prefetches that the next expansion would evict unused.
pub struct ExpansionBlocks<'s> {
    state: Mutex<SpareState<'s>>,
    changed: Condvar,
    times: KeyPinTimes,
    /// How many keys past the one in use [`Self::expand_ahead`] keeps expanded: every reserved
    /// block but the current key's.
    window: usize,
}

/// Where the time of pinning keys went, summed over every pin through one
/// [`ExpansionBlocks`].
#[derive(Debug, Default)]
pub struct KeyPinTimes {
    /// Nanoseconds waiting for the stored objects to be in DRAM.
    pub wait_ns: AtomicU64,
    /// Nanoseconds the pinning thread spent expanding seed-compressed keys, or waiting for
    /// the helper to finish the key it needs.
    pub expand_ns: AtomicU64,
    /// Keys pinned.
    pub pins: AtomicU64,
    /// Pins that found their key already expanded in a spare block (by the helper, or left
    /// there by the key's previous pin): no expansion on the pinning thread.
    pub reused: AtomicU64,
    /// Keys the helper thread expanded ahead of their pin.
    pub ahead: AtomicU64,
    /// Nanoseconds the helper thread spent expanding (off the critical path).
    pub ahead_ns: AtomicU64,
    /// Of which waiting for the stored objects to be in DRAM.
    pub ahead_wait_ns: AtomicU64,
}

impl KeyPinTimes {
    /// Counts one expansion on the pinning thread that started at `since` and spent `wait_ns`
    /// of that waiting for its stored objects: the wait as such, the rest as expanding.
    pub(crate) fn add_expansion(&self, since: Instant, wait_ns: u64) {
        let expanding = (since.elapsed().as_nanos() as u64).saturating_sub(wait_ns);
        self.wait_ns.fetch_add(wait_ns, Ordering::Relaxed);
        self.expand_ns.fetch_add(expanding, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for ExpansionBlocks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.state.lock().map_or(0, |s| s.blocks.len());
        f.debug_struct("ExpansionBlocks").field("spare", &n).finish()
    }
}

/// How far past the last pinned position a pin looks for its key in the plan before giving
/// up on following it.
const RESYNC: usize = 16;

impl<'s> ExpansionBlocks<'s> {
    /// `reserved` blocks of one expanded key, charged to `store`'s budget until dropped.
    pub fn new(store: &'s TieredStore, ctx: &Context, reserved: usize) -> Result<Self> {
        let len = switch_key_expanded_words(ctx) as u64 * 8;
        let mut blocks = Vec::with_capacity(reserved);
        for _ in 0..reserved {
            blocks.push(Spare { block: store.alloc_for_overwrite(len)?, key: None });
        }
        let state = SpareState { blocks, in_flight: None, plan: Vec::new(), pos: None };
        Ok(Self {
            state: Mutex::new(state),
            changed: Condvar::new(),
            times: KeyPinTimes::default(),
            window: reserved.saturating_sub(1).max(1),
        })
    }

    /// The time spent pinning keys through these blocks so far.
    pub fn times(&self) -> &KeyPinTimes {
        &self.times
    }

    /// The seed-compressed keys to come, in pin order, each with the level of its switch, for
    /// [`Self::expand_ahead`]. Repeats of a key in a row collapse to one expansion at the
    /// highest of their levels: its block is reused.
    pub fn set_plan(&self, plan: &[ExpandedKey]) {
        let mut st = self.lock();
        st.plan.clear();
        for &k in plan {
            match st.plan.last_mut() {
                Some(last) if last.id == k.id => last.level = last.level.max(k.level),
                _ => st.plan.push(k),
            }
        }
        st.pos = None;
        drop(st);
        self.changed.notify_all();
    }

    /// Spare blocks held (charged to the budget) right now, in flight included.
    pub fn spare_count(&self) -> usize {
        let st = self.lock();
        st.blocks.len() + usize::from(st.in_flight.is_some())
    }

    fn lock(&self) -> MutexGuard<'_, SpareState<'s>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `id` is pinned now: the plan position moves to its next occurrence.
    fn follow(st: &mut SpareState<'_>, id: ObjectId) {
        let from = st.pos.map_or(0, |p| p);
        let end = (from + RESYNC).min(st.plan.len());
        if let Some(k) = st.plan[from.min(end)..end].iter().position(|x| x.id == id) {
            st.pos = Some(from + k);
        }
    }

    /// A block holding `want`'s key expanded for its level or above (waiting for the helper
    /// if it is expanding it so), else a block to expand it into: one holding no key, else
    /// one whose key is not among the next to come, else any; `None` when every spare is in
    /// use. With the block comes, when its words already serve `want`, what they hold.
    pub(super) fn take_for(
        &self,
        want: ExpandedKey,
    ) -> (Option<BlockWriter<'s>>, Option<ExpandedKey>) {
        let id = want.id;
        let mut st = self.lock();
        let clock = Instant::now();
        loop {
            if let Some(i) = st.blocks.iter().position(|s| s.serves(&want)) {
                Self::follow(&mut st, id);
                let s = st.blocks.remove(i);
                drop(st);
                self.changed.notify_all();
                self.times
                    .expand_ns
                    .fetch_add(clock.elapsed().as_nanos() as u64, Ordering::Relaxed);
                return (Some(s.block), s.key);
            }
            if !st.in_flight.is_some_and(|k| k.serves(&want)) {
                break;
            }
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        Self::follow(&mut st, id);
        // A block holding no key, else one whose key is not among the next to come (the
        // helper expanded those ahead), else any.
        let soon = Self::upcoming(&st, self.window);
        let i = st
            .blocks
            .iter()
            .position(|s| s.key.is_none())
            .or_else(|| {
                st.blocks
                    .iter()
                    .position(|s| !s.key.is_some_and(|k| soon.iter().any(|x| x.id == k.id)))
            })
            .or(if st.blocks.is_empty() { None } else { Some(0) });
        let block = i.map(|i| st.blocks.remove(i).block);
        drop(st);
        self.changed.notify_all();
        (block, None)
    }

    /// Runs on a helper thread until `stop`: after each pin, expands the next key of the plan
    /// (one of the seed-compressed `keys`, named by [`StoredKey::id`]) into a
    /// spare block (on this thread only, no rayon job), never the block of the key
    /// just pinned and never more than the spares already charged to the budget. A key it
    /// fails on is left to its pin, which reports the error.
    pub fn expand_ahead(
        &self,
        store: &'s TieredStore,
        ctx: &Context,
        keys: &[StoredKey],
        stop: &AtomicBool,
    ) {
        let len = switch_key_expanded_words(ctx) as u64 * 8;
        // This thread pins each key before the bootstrap reaches it. Outside a stream of its
        // own those pins would move the hinted plan's cursor past the diagonals the bootstrap
        // has still to pin, which would then look unneeded and be evicted before their use; in
        // a stream without a plan they move nothing. (If the id is taken, pins go unscoped.)
        static HELPER_STREAMS: AtomicU64 = AtomicU64::new(0);
        let stream = StreamId(HELPER_STREAM_BASE + HELPER_STREAMS.fetch_add(1, Ordering::Relaxed));
        let _scope = store.stream(stream, Cancel::new(), 0).ok();
        let mut st = self.lock();
        loop {
            if stop.load(Ordering::Acquire) {
                return;
            }
            let current = st.pos.map(|p| st.plan[p].id);
            let soon = Self::upcoming(&st, self.window);
            // The soonest key of the window not expanded yet (for its level), into a block
            // holding no key, else one holding neither the current key nor one needed before it.
            let job =
                soon.iter().position(|t| !st.blocks.iter().any(|s| s.serves(t))).and_then(|k| {
                    let (t, before) = (soon[k], &soon[..k]);
                    let i = st.blocks.iter().position(|s| s.key.is_none()).or_else(|| {
                        st.blocks.iter().position(|s| {
                            !current.is_some_and(|c| s.holds(c))
                                && !before.iter().any(|x| s.holds(x.id))
                                && s.block.len() == len
                        })
                    })?;
                    let key = keys.iter().find(|x| x.id == t.id)?;
                    Some((i, t, key))
                });
            let Some((i, want, key)) = job else {
                st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            let spare = st.blocks.remove(i);
            st.in_flight = Some(want);
            drop(st);
            let clock = Instant::now();
            let done = key.expand_for_level(store, ctx, spare.block, false, want.level).ok().map(
                |(block, wait_ns)| {
                    self.times.ahead_wait_ns.fetch_add(wait_ns, Ordering::Relaxed);
                    block
                },
            );
            st = self.lock();
            st.in_flight = None;
            match done {
                Some(block) => {
                    self.times.ahead.fetch_add(1, Ordering::Relaxed);
                    let ns = clock.elapsed().as_nanos() as u64;
                    self.times.ahead_ns.fetch_add(ns, Ordering::Relaxed);
                    st.blocks.push(Spare { block, key: Some(want) });
                }
                None => {
                    // The block went with the failed expansion: the pin allocates its own.
                    st.plan.clear();
                    st.pos = None;
                }
            }
            self.changed.notify_all();
        }
    }

    /// The next `window` keys of the plan after the last one pinned (from its start before
    /// any pin), soonest first.
    fn upcoming(st: &SpareState<'_>, window: usize) -> Vec<ExpandedKey> {
        let next = st.pos.map_or(0, |p| p + 1).min(st.plan.len());
        st.plan[next..(next + window).min(st.plan.len())].to_vec()
    }

    /// Wakes a helper waiting in [`Self::expand_ahead`] (after its stop flag was set).
    pub fn wake(&self) {
        let _st = self.lock();
        self.changed.notify_all();
    }
}

impl std::fmt::Debug for KeyWords<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self {
            KeyWords::Pinned(_) => "pinned",
            KeyWords::Borrowed(_) => "borrowed",
            KeyWords::Expanded(_) => "expanded",
            KeyWords::Recycled { .. } => "recycled",
        };
        f.debug_struct("KeyWords")
            .field("form", &what)
            .field("words", &self.as_ref().len())
            .finish()
    }
}

impl AsRef<[u64]> for KeyWords<'_, '_> {
    fn as_ref(&self) -> &[u64] {
        match self {
            KeyWords::Pinned(g) => g.as_u64s(),
            KeyWords::Borrowed(w) => w,
            KeyWords::Expanded(b) => b.as_ref(),
            KeyWords::Recycled { block: Some(b), .. } => b.as_ref(),
            KeyWords::Recycled { block: None, .. } => &[],
        }
    }
}
