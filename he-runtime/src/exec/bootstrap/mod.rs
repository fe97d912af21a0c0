//! Bootstrapping with its keys in the tiered store: every key a durable seed-compressed object
//! (reused by later processes through the key-set manifest), pinned only for the step that uses
//! it and either read in place by its key switch ([`Expansion::InPlace`]) or expanded for that
//! step into a DRAM block charged to the budget, and the bootstrap's
//! whole key order handed to the store as a hint so `planned` prefetches it. Optionally the
//! transforms' diagonals too, encoded once per process into transient objects
//! ([`StoredBootstrapKeys::with_stored_diagonals`]) or once per parameter set into durable ones
//! ([`StoredBootstrapKeys::with_durable_diagonals`]), pinned per term and hinted between the
//! keys.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hetier_tiering::{Durability, ObjectId, ObjectKind, ScratchBuffer, TieredStore};

use self::phase_waits::{total_wait_ns, PhaseWaits};
use super::diagonals::StoredDiagonals;
use super::error::{Error, Result};
use super::ids::KeySetId;
use super::key_in_place::KeyInUse;
use super::key_words::{ExpansionBlocks, KeyPinTimes, KeyWords};
use super::keys::{GeneratedKeys, KeyForm, KeyMaker, KeyReport, KeySet, StoredKey};
use crate::ckks::bootstrap::{Bootstrapper, DiagonalUse, KeySource, KeyUse, Phase, PhaseTimes};
use crate::ckks::{
    switch_key_digit_stored_len, switch_key_expanded_words, switch_key_stored_len, Context,
    GaloisKey, KeyGenerator, KeySwitchKey, RelinKey, Scratch, ScratchWords, SecretKey, Seed,
};
use crate::Error as CoreError;

use crate::nn::{key_use_tag as tag, FROM_SPARSE_TAG, TO_SPARSE_TAG};

/// When a seed-compressed key is expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expansion {
    /// At every pin, into a block charged to the budget and reused by the next pin: no
    /// expanded copy anywhere, the expansion's CPU time paid at every use.
    PerPin,
    /// At its first pin in this process, into a scratch store object pinned from then on:
    /// the store moves the expanded copy between DRAM and the pool like any other object (it
    /// is dropped when the pool is reopened; the durable key stays seed-compressed).
    Cached,
    /// Never, but for the relinearisation key (cached, as [`Expansion::Cached`]): each key
    /// switch reads the key's pinned stored objects in place, making each piece of a limb in
    /// cache as it multiplies by it ([`crate::ckks::KeyLimbs::Packed`]). No expansion block in
    /// the budget, and no expanded words written or read back.
    InPlace,
    /// Never, not even the relinearisation key: as [`Expansion::InPlace`] without the cached
    /// copy (140 MiB at `n16_deep`), its pieces made again at each of EvalMod's two dozen uses.
    /// The smallest working set of any mode, for budgets that do not hold that copy.
    InPlaceAll,
}

impl Expansion {
    /// Whether key switches read the keys' stored objects in place.
    pub fn reads_in_place(self) -> bool {
        matches!(self, Expansion::InPlace | Expansion::InPlaceAll)
    }
}

/// A bootstrap's evaluation keys as store objects.
#[derive(Debug)]
pub struct StoredBootstrapKeys<'s> {
    store: &'s TieredStore,
    ctx: Arc<Context>,
    keys: KeySet,
    /// Per pin: one expanded key's block, charged to the budget for the bootstrapper's
    /// lifetime and reused by every step (a step holding two keys at once borrows a second).
    spares: ExpansionBlocks<'s>,
    expansion: Expansion,
    /// How many keys of the hinted order [`Self::ahead`]'s helper thread keeps expanded ahead
    /// of the one in use (per pin; 0: no helper).
    ahead_keys: usize,
    /// The expanded copies made so far (removed on drop).
    cached: Mutex<Vec<ObjectId>>,
    /// The bootstrapper's diagonals encoded as store objects ([`Self::with_stored_diagonals`]);
    /// without them every transform encodes its own.
    pub(super) diagonals: Option<StoredDiagonals<'s>>,
    /// The share of the encoded diagonals encoded at every use instead of pinned
    /// ([`Self::with_encode_share`]).
    encode_share: f64,
    /// The coefficients that share is encoded from, kept beside the encoded diagonals.
    pub(super) coefficients: Option<StoredDiagonals<'s>>,
    /// The waits for the store so far, by the phase they fell in.
    phase_waits: PhaseWaits,
}

/// Byte lengths one store-backed bootstrap of `bs` holds in the budget at once at its peak,
/// with keys stored in `form`: the key-switch scratch buffers at the top level and the spare
/// buffers of its ciphertext temporaries and linear transforms
/// ([`StoredBootstrapKeys::scratch`]), a second set of key-switch buffers and one EvalMod
/// half's spares when its EvalMod halves run `side_by_side` on two threads, the key pinned
/// for a step (one at a time) and, for a seed-compressed key, `expanded_blocks` blocks it is
/// expanded into (per pin: two when the next key is expanded ahead, whose stored object is then
/// pinned too; the cached copy being made; none when read in place, [`Expansion::InPlace`],
/// whose step holds every object of its key pinned).
/// Their footprint is the smallest budget a bootstrap can run in
/// (`TieredStore::check_working_sets`).
pub fn bootstrap_working_set(
    bs: &Bootstrapper,
    form: KeyForm,
    expanded_blocks: usize,
    side_by_side: bool,
) -> Vec<u64> {
    let ctx = &**bs.context();
    let top = ctx.params().max_level();
    let words = Scratch::<Vec<u64>>::words_at(ctx.params(), top);
    let second = if side_by_side { partner_words(bs) } else { Vec::new() };
    let mut set: Vec<u64> =
        words.iter().chain(&second).chain(&bs.spare_words()).map(|&w| w as u64 * 8).collect();
    let expanded = switch_key_expanded_words(ctx) as u64 * 8;
    // Expanding ahead pins the next key's stored object while a step may hold its own.
    let stored = if expanded_blocks > 1 { 2 } else { 1 };
    let pinned = match form {
        KeyForm::Expanded => {
            set.push(expanded);
            return set;
        }
        KeyForm::Seeded => switch_key_stored_len(ctx),
        KeyForm::Digits if expanded_blocks == 0 => {
            set.extend(std::iter::repeat_n(switch_key_digit_stored_len(ctx), ctx.params().dnum()));
            return set;
        }
        // An expansion holds one digit's object pinned at a time.
        KeyForm::Digits => switch_key_digit_stored_len(ctx),
    };
    if expanded_blocks == 0 {
        set.push(pinned);
        return set;
    }
    set.extend(std::iter::repeat_n(pinned, stored));
    set.extend(std::iter::repeat_n(expanded, expanded_blocks));
    set
}

/// Word lengths of a partner scratch's buffers for `bs`'s EvalMod halves side by side
/// ([`Scratch::set_partner`]): the key-switch buffers at the top level, then
/// [`Bootstrapper::partner_spare_words`].
pub(crate) fn partner_words(bs: &Bootstrapper) -> Vec<usize> {
    let params = bs.context().params();
    let mut words = Scratch::<Vec<u64>>::words_at(params, params.max_level()).to_vec();
    words.extend(bs.partner_spare_words());
    words
}

/// Gives `scratch` a partner for `bs`'s EvalMod halves side by side, its buffers
/// ([`partner_words`]) borrowed from `store`'s budget and released outside EvalMod
/// ([`Scratch::release_partner_while_idle`]): their bytes prefetch CoeffToSlot's and
/// SlotToCoeff's objects meanwhile.
pub(crate) fn add_store_partner<'s>(
    store: &'s TieredStore,
    bs: &Bootstrapper,
    scratch: &mut Scratch<ScratchBuffer<'s>>,
) -> Result<()> {
    let ctx = bs.context();
    let top = ctx.params().max_level();
    let alloc = |w: usize| store.scratch(w as u64 * 8);
    let mut partner = Scratch::with_buffers(ctx, top, true, alloc)?;
    let spares = bs.partner_spare_words().into_iter().map(alloc);
    partner.add_spares(spares.collect::<std::result::Result<Vec<_>, _>>()?);
    scratch.release_partner_while_idle();
    scratch.set_partner(partner);
    Ok(())
}

/// A store scratch buffer is a fixed one: a bootstrap takes the spares handed in up front.
impl ScratchWords for ScratchBuffer<'_> {
    fn room(&self) -> usize {
        self.as_u64s().len()
    }

    fn grow(&mut self, _len: usize) {}

    fn fresh() -> Option<Self> {
        None
    }

    fn release(&mut self) {
        ScratchBuffer::release(self);
    }

    fn reacquire(&mut self) -> bool {
        ScratchBuffer::reacquire(self).is_ok()
    }
}

/// The scratch object holding the expanded copy of the key stored as `id`.
fn cache_id(id: ObjectId) -> ObjectId {
    ObjectId(id.0.rotate_left(17) ^ 0x6b65_795f_6578_7061)
}

impl<'s> StoredBootstrapKeys<'s> {
    /// Makes sure every key `bs` needs is in the store under `keyset`, generating only the
    /// missing ones, seed-compressed. The two encapsulation keys share one ephemeral sparse
    /// secret, so when only one of them survives (a crash between their puts) both are made
    /// again.
    pub fn ensure(
        store: &'s TieredStore,
        ctx: &Arc<Context>,
        kg: &mut KeyGenerator,
        sk: &SecretKey,
        keyset: KeySetId,
        bs: &Bootstrapper,
    ) -> Result<(Self, KeyReport)> {
        Self::ensure_in_form(store, ctx, kg, sk, keyset, bs, KeyForm::Seeded)
    }

    /// As [`StoredBootstrapKeys::ensure`], putting the missing keys in `form`.
    pub fn ensure_in_form(
        store: &'s TieredStore,
        ctx: &Arc<Context>,
        kg: &mut KeyGenerator,
        sk: &SecretKey,
        keyset: KeySetId,
        bs: &Bootstrapper,
        form: KeyForm,
    ) -> Result<(Self, KeyReport)> {
        let mut needed: Vec<u64> = vec![0];
        needed.extend(bs.galois_elements());
        let sparse_h = bs.config().sparse_secret;
        if sparse_h.is_some() {
            let (current, _) =
                KeySet::ensure_with(store, ctx, keyset, &[], |_| unreachable_key(), |_, _| {})?;
            let pair = [TO_SPARSE_TAG, FROM_SPARSE_TAG].map(|t| current.get(t).copied());
            if let [Some(k), None] | [None, Some(k)] = pair {
                k.remove(store, ctx)?;
            }
            needed.extend([TO_SPARSE_TAG, FROM_SPARSE_TAG]);
        }
        // The encapsulation pair shares one sparse secret, sampled with the first of the two
        // and kept (zeroized on drop) until the second: each key is made straight into the
        // block it is put from, never on the heap (140 MiB at N = 2^16).
        let mut sparse: Option<SecretKey> = None;
        let make = |t: u64, out: &mut [u64]| -> Result<Seed> {
            let key = match (t, sparse_h) {
                (TO_SPARSE_TAG | FROM_SPARSE_TAG, Some(h)) => {
                    if sparse.is_none() {
                        sparse = Some(kg.sparse_secret_key(h)?);
                    }
                    let sparse = sparse
                        .as_ref()
                        .ok_or(CoreError::MissingKey { what: "encapsulation sparse secret" })?;
                    if t == TO_SPARSE_TAG {
                        kg.switching_key_into(sk, sparse, out)?
                    } else {
                        kg.switching_key_into(sparse, sk, out)?
                    }
                }
                // The relinearisation and Galois keys, as every key set makes them.
                (g, _) => return GeneratedKeys { kg: &mut *kg, sk }.make_into(g, out),
            };
            Ok(*key.seed())
        };
        let (keys, report) =
            KeySet::ensure_in_form(store, ctx, keyset, &needed, form, make, |_, _| {})?;
        Ok((Self::from_key_set(store, ctx, keys)?, report))
    }

    /// The keys of an already loaded key set (one that holds every key the bootstrap needs,
    /// e.g. after [`Self::ensure`] or a server's `KeySet::ensure_with`).
    /// Seed-compressed keys are expanded per pin, as after [`Self::ensure`].
    pub fn from_key_set(store: &'s TieredStore, ctx: &Arc<Context>, keys: KeySet) -> Result<Self> {
        let seeded = keys.iter().any(|(_, k)| k.form.is_seeded());
        let spares = ExpansionBlocks::new(store, ctx, usize::from(seeded))?;
        let cached = Mutex::new(Vec::new());
        let expansion = Expansion::PerPin;
        let ctx = Arc::clone(ctx);
        Ok(Self {
            store,
            ctx,
            keys,
            spares,
            expansion,
            ahead_keys: 0,
            cached,
            diagonals: None,
            encode_share: 0.0,
            coefficients: None,
            phase_waits: PhaseWaits::default(),
        })
    }

    /// Fails with `BudgetTooSmall`, naming the smallest workable budget, when the store's budget
    /// cannot hold what one bootstrap holds at once ([`bootstrap_working_set`] for the forms the
    /// keys are stored in): before any bootstrap work starts instead of halfway through it.
    pub fn check_budget(&self, bs: &Bootstrapper) -> Result<()> {
        self.store.check_working_sets([self.working_set(bs)])?;
        Ok(())
    }

    /// [`bootstrap_working_set`] for these keys' form, expansion mode and the calling thread
    /// pool.
    fn working_set(&self, bs: &Bootstrapper) -> Vec<u64> {
        self.footprint(bs, self.expansion, self.ahead_keys).0
    }

    /// The working set for `expansion` (and, per pin, `ahead` keys expanded ahead), and whether
    /// it includes a second key-switch scratch for EvalMod's halves side by side: on a pool of
    /// two threads or more, when no seed-compressed key is expanded per pin (which would make
    /// a second copy for the second half) and the budget holds it beside the rest.
    fn footprint(&self, bs: &Bootstrapper, expansion: Expansion, ahead: usize) -> (Vec<u64>, bool) {
        let base = self.working_set_for(bs, expansion, ahead, false);
        // Read in place, the halves side by side take ~400 MiB of `n16_deep`'s quarter budget
        // from prefetching (key wait 1.0–1.2 s in two bootstraps against 0.6–0.8 s one half at
        // a time), and still win: EvalMod 1.7–2.4 s against 2.3–3.0 s (2026-12-07).
        if rayon::current_num_threads() < 2 || self.expands_per_pin(expansion) {
            return (base, false);
        }
        let wide = self.working_set_for(bs, expansion, ahead, true);
        if TieredStore::working_set_need([wide.iter().copied()]).0 <= self.store.budget() {
            (wide, true)
        } else {
            (base, false)
        }
    }

    /// The working set for `expansion`, with EvalMod's halves `side_by_side` or not. With stored
    /// diagonals, the one pinned at a time (at most (L+1+K)·N words) is part of it.
    fn working_set_for(
        &self,
        bs: &Bootstrapper,
        expansion: Expansion,
        ahead: usize,
        side_by_side: bool,
    ) -> Vec<u64> {
        let per_pin = self.expands_per_pin(expansion);
        let blocks = match expansion {
            _ if per_pin => 1 + ahead,
            Expansion::InPlace | Expansion::InPlaceAll => 0,
            _ => 1,
        };
        let mut set = bootstrap_working_set(bs, self.form(), blocks, side_by_side);
        if expansion == Expansion::InPlace && self.form().is_seeded() {
            // The relinearisation key's cached expanded copy, pinned through EvalMod.
            set.push(switch_key_expanded_words(&self.ctx) as u64 * 8);
        }
        if let Some(d) = &self.diagonals {
            set.push(d.pinned_bytes(bs));
        }
        if let Some(c) = &self.coefficients {
            set.push(c.pinned_bytes(bs));
        }
        set
    }

    /// The smallest budget one bootstrap of `bs` runs in with these keys expanded by
    /// `expansion` (and, per pin, `ahead` keys expanded ahead of the one in use), EvalMod's
    /// halves one at a time: for choosing a mode, or a budget for one, before switching to it.
    pub fn working_set_bytes_in(
        &self,
        bs: &Bootstrapper,
        expansion: Expansion,
        ahead: usize,
    ) -> u64 {
        TieredStore::working_set_need([self.working_set_for(bs, expansion, ahead, false)]).0
    }

    /// What one bootstrap of `bs` holds at its peak with these keys, the budget it is checked
    /// against: the footprint of [`bootstrap_working_set`] (in whole pages), with EvalMod's
    /// partner scratch when the budget holds one ([`Self::partner_bytes`] of it; a budget
    /// without that room runs the halves in turn).
    pub fn working_set_bytes(&self, bs: &Bootstrapper) -> u64 {
        TieredStore::working_set_need([self.working_set(bs)]).0
    }

    /// The part of [`Self::working_set_bytes`] that is EvalMod's partner scratch (0 when the
    /// halves run in turn).
    pub fn partner_bytes(&self, bs: &Bootstrapper) -> u64 {
        let (set, side_by_side) = self.footprint(bs, self.expansion, self.ahead_keys);
        if !side_by_side {
            return 0;
        }
        let alone = self.working_set_for(bs, self.expansion, self.ahead_keys, false);
        TieredStore::working_set_need([set]).0 - TieredStore::working_set_need([alone]).0
    }

    /// The form whose pins hold the most: seeded if any key is stored seed-compressed in one
    /// object (its pins need an expansion block and the whole object), else by digit if any
    /// is (one digit's object at a time), else expanded.
    fn form(&self) -> KeyForm {
        let has = |f: KeyForm| self.keys.iter().any(|(_, k)| k.form == f);
        [KeyForm::Seeded, KeyForm::Digits]
            .into_iter()
            .find(|&f| has(f))
            .unwrap_or(KeyForm::Expanded)
    }

    /// Buffers for bootstrapping with `bs`, borrowed from the store's budget (charged while the
    /// scratch lives): the key-switch buffers sized for the top level and every spare buffer
    /// of its ciphertext temporaries and linear transforms ([`Bootstrapper::spare_words`];
    /// with EvalMod's halves side by side, a partner scratch with
    /// [`Bootstrapper::partner_spare_words`]), which stay for the next bootstrap. The partner's
    /// buffers are released outside EvalMod ([`Scratch::release_partner_while_idle`]).
    pub fn scratch(&self, bs: &Bootstrapper) -> Result<Scratch<ScratchBuffer<'s>>> {
        let top = self.ctx.params().max_level();
        let alloc = |w: usize| self.store.scratch(w as u64 * 8);
        let mut scratch = Scratch::with_buffers(&self.ctx, top, true, alloc)?;
        let spares: Vec<ScratchBuffer<'s>> =
            bs.spare_words().into_iter().map(alloc).collect::<std::result::Result<_, _>>()?;
        scratch.add_spares(spares);
        if self.footprint(bs, self.expansion, self.ahead_keys).1 {
            add_store_partner(self.store, bs, &mut scratch)?;
        }
        Ok(scratch)
    }

    /// Byte lengths of the expansion blocks these keys hold in the budget for as long as they
    /// live (one per pin for seed-compressed keys, two when expanding ahead; none expanded).
    pub fn held_block_lengths(&self) -> Vec<u64> {
        let len = switch_key_expanded_words(&self.ctx) as u64 * 8;
        vec![len; self.spares.spare_count()]
    }

    /// The loaded key set.
    pub fn key_set(&self) -> &KeySet {
        &self.keys
    }

    /// Chooses when seed-compressed keys are expanded ([`Expansion::PerPin`] by default).
    /// Per pin, one expanded block is reserved from the budget for as long as this lives.
    pub fn with_expansion(mut self, expansion: Expansion) -> Result<Self> {
        self.expansion = expansion;
        self.reserve()?;
        Ok(self)
    }

    /// With [`Expansion::PerPin`], whether [`Self::ahead`] runs a helper thread that expands
    /// the next key of the hinted order into a second reserved block while the current key is
    /// in use (off by default). Two expanded blocks are then charged to the budget for as long
    /// as this lives, instead of one.
    pub fn with_expand_ahead(self, on: bool) -> Result<Self> {
        self.with_expand_ahead_keys(usize::from(on))
    }

    /// As [`Self::with_expand_ahead`], keeping up to `keys` keys of the hinted order expanded
    /// ahead of the one in use (0: no helper): CoeffToSlot's baby steps need keys faster than
    /// one thread expands them, and more keys ahead absorb those bursts. Each costs one more
    /// expanded block of the budget (140 MiB at log N = 16) for as long as this lives.
    pub fn with_expand_ahead_keys(mut self, keys: usize) -> Result<Self> {
        self.ahead_keys = keys;
        self.reserve()?;
        Ok(self)
    }

    fn per_pin_seeded(&self) -> bool {
        self.expands_per_pin(self.expansion)
    }

    /// Whether `expansion` expands seed-compressed keys at every pin (a block per pin, and a
    /// second copy for a second thread).
    fn expands_per_pin(&self, expansion: Expansion) -> bool {
        expansion == Expansion::PerPin && self.form().is_seeded()
    }

    /// Re-reserves the spare blocks the mode needs: one per pin, two when expanding ahead.
    fn reserve(&mut self) -> Result<()> {
        let reserve = if self.per_pin_seeded() { 1 + self.ahead_keys } else { 0 };
        // The old blocks go back to the budget before the new ones are taken.
        self.spares = ExpansionBlocks::new(self.store, &self.ctx, 0)?;
        self.spares = ExpansionBlocks::new(self.store, &self.ctx, reserve)?;
        Ok(())
    }

    /// Runs `f` (a bootstrap with these keys, after [`Self::hint`]) with, when
    /// [`Self::with_expand_ahead`] is on, a helper thread expanding each next seed-compressed
    /// key of the hinted order while the current one is in use. The helper works on its own
    /// thread only (no rayon job), into the reserved blocks only; it stops when `f` returns.
    pub fn ahead<R>(&self, f: impl FnOnce() -> R) -> R {
        if !self.expands_ahead() {
            return f();
        }
        let keys: Vec<StoredKey> =
            self.keys.iter().filter(|(_, k)| k.form.is_seeded()).map(|(_, k)| *k).collect();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| self.spares.expand_ahead(self.store, &self.ctx, &keys, &stop));
            let r = f();
            stop.store(true, Ordering::Release);
            self.spares.wake();
            r
        })
    }

    /// How many keys [`Self::ahead`]'s helper keeps expanded ahead of the one in use (0: none).
    pub fn expand_ahead_keys(&self) -> usize {
        if self.expands_ahead() {
            self.ahead_keys
        } else {
            0
        }
    }

    /// Whether a helper thread expands keys ahead in [`Self::ahead`].
    pub fn expands_ahead(&self) -> bool {
        self.ahead_keys > 0 && self.per_pin_seeded()
    }

    /// Bytes of every key of the set in the store.
    pub fn bytes(&self) -> u64 {
        self.keys.iter().map(|(_, k)| k.len).sum()
    }

    /// Bytes of every key of the set expanded (what an in-memory key set holds).
    pub fn expanded_bytes(&self) -> u64 {
        self.count() as u64 * switch_key_expanded_words(&self.ctx) as u64 * 8
    }

    /// When seed-compressed keys are expanded.
    pub fn expansion(&self) -> Expansion {
        self.expansion
    }

    /// Where the time of pinning keys went so far (waiting for the store, expanding).
    pub fn pin_times(&self) -> &KeyPinTimes {
        self.spares.times()
    }

    /// Seconds the bootstraps so far waited for the store in each phase: their pins of keys,
    /// diagonals and coefficients, summed over threads as [`KeyPinTimes::wait_ns`] is.
    pub fn phase_wait_seconds(&self) -> PhaseTimes {
        self.phase_waits.seconds(self.total_wait_ns())
    }

    fn total_wait_ns(&self) -> u64 {
        total_wait_ns(self.spares.times(), [self.diagonals.as_ref(), self.coefficients.as_ref()])
    }

    /// Number of keys.
    pub fn count(&self) -> usize {
        self.keys.iter().count()
    }

    /// Number of store objects holding the keys ([`StoredKey::objects`]).
    pub fn stored_object_count(&self) -> usize {
        self.keys.iter().map(|(_, k)| k.objects(&self.ctx).len()).sum()
    }

    fn stored(&self, u: KeyUse) -> Result<&StoredKey> {
        let missing = match u {
            KeyUse::Galois(g) => CoreError::MissingGaloisKey { galois_element: g, step: None },
            KeyUse::Relin => CoreError::MissingKey { what: "relinearisation key" },
            KeyUse::ToSparse => CoreError::MissingKey { what: "dense-to-sparse switching key" },
            KeyUse::FromSparse => CoreError::MissingKey { what: "sparse-to-dense switching key" },
        };
        self.keys.get(tag(u)).ok_or(Error::Core(missing))
    }

    /// `u`'s key for a switch at `level`: expanded per pin for that level only, or the
    /// whole key (stored expanded, or its cached expanded copy).
    fn pin(&self, u: KeyUse, level: usize) -> Result<KeySwitchKey<KeyInUse<'_, 's>>> {
        let k = self.stored(u)?;
        if self.reads_in_place(u, k) {
            return k.pin_in_place(self.store, &self.ctx, self.spares.times(), level);
        }
        Ok(self.pin_words(u, k, level)?.map_words(KeyInUse::Words))
    }

    /// Whether `u`'s key `k` is read in place: with [`Expansion::InPlace`], every
    /// seed-compressed key but the relinearisation key, which EvalMod uses at every product
    /// (two dozen uses a bootstrap at `n16_deep`): making its pieces at each costs more than
    /// the budget its cached expanded copy takes, where the budget has it. With
    /// [`Expansion::InPlaceAll`], every seed-compressed key.
    fn reads_in_place(&self, u: KeyUse, k: &StoredKey) -> bool {
        k.form.is_seeded()
            && match self.expansion {
                Expansion::InPlaceAll => true,
                Expansion::InPlace => u != KeyUse::Relin,
                Expansion::PerPin | Expansion::Cached => false,
            }
    }

    /// `u`'s key `k` for a switch at `level` as expanded words: expanded per pin, stored
    /// expanded, or its cached expanded copy.
    fn pin_words(
        &self,
        u: KeyUse,
        k: &StoredKey,
        level: usize,
    ) -> Result<KeySwitchKey<KeyWords<'_, 's>>> {
        if self.expansion == Expansion::PerPin || k.form == KeyForm::Expanded {
            return k.pin_recycled(self.store, &self.ctx, &self.spares, level);
        }
        let t = self.spares.times();
        let cid = cache_id(k.id);
        // Held while the copy is made: the two EvalMods of a bootstrap on several threads may
        // ask for the relinearisation key at once, and only one of them may expand it.
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if !self.store.contains(cid) {
            let clock = Instant::now();
            let block =
                self.store.alloc_for_overwrite(switch_key_expanded_words(&self.ctx) as u64 * 8)?;
            let top = self.ctx.params().max_level();
            let (block, wait) = k.expand_for_level(self.store, &self.ctx, block, true, top)?;
            t.add_expansion(clock, wait);
            let kind = ObjectKind::EvalKey { galois_element: tag(u), level: top as u32, digit: 1 };
            self.store.put_block(cid, kind, Durability::Scratch, block)?;
            cached.push(cid);
        }
        drop(cached);
        let clock = Instant::now();
        let guard = self.store.pin(cid)?;
        t.wait_ns.fetch_add(clock.elapsed().as_nanos() as u64, Ordering::Relaxed);
        t.pins.fetch_add(1, Ordering::Relaxed);
        Ok(KeySwitchKey::from_raw(KeyWords::Pinned(guard), k.seed, &self.ctx)?)
    }
}

impl Drop for StoredBootstrapKeys<'_> {
    fn drop(&mut self) {
        // The expanded copies are this process's cache: best effort, they are scratch objects
        // the pool drops on reopen anyway.
        for id in self.cached.get_mut().map(std::mem::take).unwrap_or_default() {
            let _ = self.store.remove(id);
        }
    }
}

/// `ensure_with` is called with nothing needed to read the manifest: it makes no key.
fn unreachable_key() -> Result<KeySwitchKey> {
    Err(CoreError::MissingKey { what: "no key is generated while reading the manifest" }.into())
}

impl<'s> KeySource for StoredBootstrapKeys<'s> {
    type Error = Error;
    type Words<'a>
        = KeyWords<'a, 's>
    where
        Self: 'a;
    type KeyWords<'a>
        = KeyInUse<'a, 's>
    where
        Self: 'a;

    fn galois(&self, g: u64, level: usize) -> Result<GaloisKey<KeyInUse<'_, 's>>> {
        Ok(GaloisKey { galois_element: g, key: self.pin(KeyUse::Galois(g), level)? })
    }

    fn relin(&self, level: usize) -> Result<RelinKey<KeyInUse<'_, 's>>> {
        Ok(RelinKey { key: self.pin(KeyUse::Relin, level)? })
    }

    fn switching(&self, which: KeyUse, level: usize) -> Result<KeySwitchKey<KeyInUse<'_, 's>>> {
        self.pin(which, level)
    }

    /// Expanding per pin makes a second copy for a second thread (a block a tight budget
    /// takes from a prefetched key); pins of a stored or cached expanded key share one block,
    /// and so do keys read in place.
    fn shared_borrows(&self) -> bool {
        !self.per_pin_seeded()
    }

    /// A stored diagonal pinned for its term.
    fn diagonal(&self, want: &DiagonalUse) -> Result<Option<KeyWords<'_, 's>>> {
        let Some(d) = &self.diagonals else { return Ok(None) };
        if self.encodes_on_use(want.id) {
            d.count_encoded();
            return Ok(None);
        }
        Ok(d.pin(want)?.map(KeyWords::Pinned))
    }

    fn diagonal_coefficients(&self, id: usize) -> Result<Option<KeyWords<'_, 's>>> {
        let Some(d) = self.coefficients.as_ref().or(self.diagonals.as_ref()) else {
            return Ok(None);
        };
        Ok(d.pin_coefficients(id)?.map(KeyWords::Pinned))
    }

    fn phase_started(&self, phase: Phase) {
        self.phase_waits.enter(phase, self.total_wait_ns());
    }
}

mod diagonal_keys;
mod phase_waits;
mod plan;
#[cfg(test)]
mod tests;
