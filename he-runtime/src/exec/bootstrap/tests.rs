//! Tests of the store-backed bootstrap keys, diagonals and buffers.

use std::time::Duration;

use hetier_tiering::{PolicyConfig, Pool, PoolOptions};

use super::*;
use crate::ckks::bootstrap::BootstrapKeys;
use crate::ckks::{Complex64, Decryptor, Encoder, Encryptor, Evaluator};
use crate::exec::key_words::ExpandedKey;
use crate::exec::test_store::{encrypted, fixture, planned_store, Fixture};

fn store(dir: &std::path::Path, create: bool, budget: u64) -> TieredStore {
    planned_store(dir, budget, create, 64 << 20)
}

fn max_err(a: &[Complex64], z: &[Complex64]) -> f64 {
    a.iter().zip(z).map(|(x, w)| (*x - *w).abs()).fold(0.0, f64::max)
}

/// The stored bootstrap at a DRAM budget of a quarter of its stored (seed-compressed) key
/// set: the keys stream through DRAM, each expanded only for its step, and the result
/// matches the in-memory bootstrap; a later process reuses every key through the manifest.
#[test]
fn bootstrap_with_keys_in_the_store_matches_in_memory_and_reuses_them() {
    let Fixture { ctx, bs, mut kg, sk, keyset, dir } = fixture(5);
    let (z, enc, ct) = encrypted(&ctx, &sk, |i| Complex64::new((i as f64).sin(), 0.0));
    let mut scratch = Evaluator::new(&ctx).scratch();

    let count = bs.galois_elements().len() as u64 + 3;
    let stored_one = crate::ckks::switch_key_stored_len(&ctx);
    let expanded_one = switch_key_expanded_words(&ctx) as u64 * 8;
    assert!(2 * stored_one < expanded_one + 1024, "a stored key is about half the words");
    let budget = count * stored_one / 4;
    let st = store(dir.path(), true, budget);
    let (keys, report) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    assert_eq!(report.reused, 0);
    assert_eq!(keys.count() as u64, count);
    assert_eq!(keys.bytes(), count * stored_one);
    assert_eq!(keys.expanded_bytes(), count * expanded_one);
    keys.hint(&bs, 1).unwrap();
    let stored = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    let stats = st.stats();
    assert!(stats.peak_dram <= budget);
    assert!(stats.bytes_pm_to_dram >= 3 * keys.bytes() / 4, "keys came back from PM");
    assert!(stats.prefetches > 0 && stats.prefetch_evicted_unused == 0, "{stats:?}");

    // The same ciphertext with the same keys in memory: the same result.
    let mut kg2 = KeyGenerator::with_seed(&ctx, [5; 32]);
    let _ = kg2.secret_key();
    let local = BootstrapKeys::generate(&mut kg2, &sk, &bs).unwrap();
    let in_memory = bs.bootstrap(&ct, &local, &mut scratch).unwrap();
    let dec = Decryptor::new(&ctx, &sk).unwrap();
    let a = enc.decode(&dec.decrypt(&stored).unwrap()).unwrap();
    let b = enc.decode(&dec.decrypt(&in_memory).unwrap()).unwrap();
    assert!(max_err(&a, &z) < 1e-5 && max_err(&b, &z) < 1e-5);
    drop(keys);
    drop(st);

    // A later process finds every key through the manifest, at the same quarter budget.
    let st = store(dir.path(), false, budget);
    let mut kg3 = KeyGenerator::with_seed(&ctx, [9; 32]);
    let (keys, report) =
        StoredBootstrapKeys::ensure(&st, &ctx, &mut kg3, &sk, keyset, &bs).unwrap();
    assert_eq!((report.generated, report.reused), (0, count as usize));
    keys.hint(&bs, 1).unwrap();
    let again = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    let c = enc.decode(&dec.decrypt(&again).unwrap()).unwrap();
    assert!(max_err(&c, &z) < 1e-5);
    assert!(st.stats().peak_dram <= budget);
}

/// The bootstrap's key-switch scratch and every buffer of its linear transforms borrowed
/// from the store: the result is the heap scratch's bit for bit, the store's scratch peak
/// covers the buffers, the handed-in spares stay for a second bootstrap, too few spares are
/// a typed error rather than a heap allocation, and a budget below the working set fails
/// before any work with the smallest workable budget.
#[test]
fn bootstrap_buffers_from_the_store_match_the_heap_scratch() {
    let Fixture { ctx, bs, mut kg, sk, keyset, dir } = fixture(11);
    let st = store(dir.path(), true, 256 << 20);
    let (keys, _) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    let (z, enc, ct) = encrypted(&ctx, &sk, |i| Complex64::new((i as f64).cos(), 0.0));
    let want = bs.bootstrap(&ct, &keys, &mut Evaluator::new(&ctx).scratch()).unwrap();

    assert_eq!(st.stats().scratch_in_use, 0);
    let mut scratch = keys.scratch(&bs).unwrap();
    let spares = scratch.spares();
    assert_eq!(spares, bs.spare_words().len());
    let a = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    assert_eq!(scratch.spares(), spares, "the handed-in spares are kept");
    let b = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    assert_eq!(a.as_words(), want.as_words());
    assert_eq!(b.as_words(), want.as_words());
    let set = keys.working_set(&bs);
    let buffers: u64 = set[..set.len() - 2].iter().sum();
    let stats = st.stats();
    assert!(stats.scratch_in_use >= buffers, "{} < {buffers}", stats.scratch_in_use);
    assert!(stats.scratch_peak >= buffers && stats.peak_dram <= stats.budget);
    drop(scratch);
    assert_eq!(st.stats().scratch_in_use, 0, "every buffer went back to the budget");

    // One extended ciphertext short: a typed error, not a heap buffer.
    let top = ctx.params().max_level();
    let mut short = Scratch::with_buffers(&ctx, top, true, |w| st.scratch(w as u64 * 8)).unwrap();
    let words = bs.spare_words();
    short.add_spares(words[1..].iter().map(|&w| st.scratch(w as u64 * 8).unwrap()));
    let r = bs.bootstrap(&ct, &keys, &mut short);
    assert!(
        matches!(r, Err(Error::Core(CoreError::BufferLength { .. }))),
        "{:?}",
        r.map(|c| c.level())
    );
    drop(short);

    // A budget one page below the working set: refused before any bootstrap work.
    let need = keys.working_set_bytes(&bs);
    drop(keys);
    drop(st);
    let st = store(dir.path(), false, need - 4096);
    let (keys, _) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    match keys.check_budget(&bs) {
        Err(Error::Store(e)) => match e.inner() {
            hetier_tiering::Error::BudgetTooSmall { needed, .. } => assert_eq!(*needed, need),
            other => panic!("{other}"),
        },
        other => panic!("{other:?}"),
    }
    drop(keys);
    drop(st);
    let st = store(dir.path(), false, need);
    let (keys, _) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    keys.check_budget(&bs).unwrap();
    let mut scratch = keys.scratch(&bs).unwrap();
    let c = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    assert_eq!(c.as_words(), want.as_words(), "it runs at the smallest workable budget");
    let dec = Decryptor::new(&ctx, &sk).unwrap();
    assert!(max_err(&enc.decode(&dec.decrypt(&c).unwrap()).unwrap(), &z) < 1e-5);
}

/// Keys put expanded (as before seed compression) are still reused as they are, next to
/// seed-compressed ones, and a stored key whose seed disagrees with its manifest is a
/// typed error rather than a wrong key.
#[test]
fn expanded_keys_are_reused_and_a_foreign_seed_is_refused() {
    let Fixture { ctx, bs, mut kg, sk, keyset, dir } = fixture(3);
    let expanded_one = switch_key_expanded_words(&ctx) as u64 * 8;
    let st = store(dir.path(), true, 64 << 20);
    let (keys, _) = StoredBootstrapKeys::ensure_in_form(
        &st,
        &ctx,
        &mut kg,
        &sk,
        keyset,
        &bs,
        KeyForm::Expanded,
    )
    .unwrap();
    assert_eq!(keys.bytes(), keys.expanded_bytes());
    let count = keys.count();
    drop(keys);
    drop(st);
    let st = store(dir.path(), false, 64 << 20);
    let (keys, report) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    assert_eq!((report.generated, report.reused), (0, count));
    assert!(keys.keys.iter().all(|(_, k)| k.form == KeyForm::Expanded && k.len == expanded_one));
    let z: Vec<Complex64> =
        (0..ctx.params().slots()).map(|i| Complex64::new(0.5 * (i as f64).cos(), 0.0)).collect();
    let enc = Encoder::new(&ctx);
    let ct = Encryptor::with_seed(&ctx, [6; 32])
        .encrypt_sk(&sk, &enc.encode(&z, 0, ctx.params().scale()).unwrap())
        .unwrap();
    let mut scratch = Evaluator::new(&ctx).scratch();
    let out = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    let dec = Decryptor::new(&ctx, &sk).unwrap();
    assert!(max_err(&enc.decode(&dec.decrypt(&out).unwrap()).unwrap(), &z) < 1e-5);

    // A seed-compressed key under a manifest entry naming another seed.
    let mut other = KeyGenerator::with_seed(&ctx, [4; 32]);
    let foreign = other.relin_key(&sk).unwrap().key;
    let id = hetier_tiering::ObjectId(0xfeed);
    st.put(
        id,
        hetier_tiering::ObjectKind::Blob,
        hetier_tiering::Durability::Scratch,
        &foreign.to_bytes(&ctx),
    )
    .unwrap();
    let k = StoredKey { id, seed: [0; 32], len: 0, form: KeyForm::Seeded };
    assert!(matches!(k.pin(&st, &ctx), Err(Error::KeyManifest { .. })));
    let k = StoredKey { seed: *foreign.seed(), ..k };
    assert_eq!(k.pin(&st, &ctx).unwrap().as_words(), foreign.as_words());
}

/// Expanding ahead at a quarter budget: the bootstrap is the per-pin one bit for bit (a
/// wrong key would change it), the helper expanded keys and most pins found their key
/// ready, and the store never held more than its budget with the two reserved blocks.
#[test]
fn expanding_ahead_gives_the_per_pin_bootstrap_within_the_budget() {
    let Fixture { ctx, bs, mut kg, sk, keyset, dir } = fixture(12);
    let count = bs.galois_elements().len() as u64 + 3;
    let budget = count * crate::ckks::switch_key_stored_len(&ctx) / 4;
    let st = store(dir.path(), true, budget);
    let (z, enc, ct) = encrypted(&ctx, &sk, |i| Complex64::new((i as f64).cos(), 0.0));
    let mut scratch = Evaluator::new(&ctx).scratch();
    let (keys, _) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    keys.hint(&bs, 1).unwrap();
    let per_pin = keys.ahead(|| bs.bootstrap(&ct, &keys, &mut scratch)).unwrap();
    assert!(!keys.expands_ahead());
    let t = keys.pin_times();
    let pins = t.pins.load(Ordering::Relaxed);
    // A key pinned again in a row (the relinearisation key in EvalMod) is not re-expanded.
    assert!(t.reused.load(Ordering::Relaxed) > 0);
    assert_eq!(t.ahead.load(Ordering::Relaxed), 0);

    let keys = keys.with_expand_ahead(true).unwrap();
    assert!(keys.expands_ahead());
    keys.hint(&bs, 1).unwrap();
    let ahead = keys.ahead(|| bs.bootstrap(&ct, &keys, &mut scratch)).unwrap();
    assert_eq!(ahead.as_words(), per_pin.as_words());
    let t = keys.pin_times();
    assert_eq!(t.pins.load(Ordering::Relaxed), pins);
    let (done_ahead, reused) = (t.ahead.load(Ordering::Relaxed), t.reused.load(Ordering::Relaxed));
    assert!(done_ahead > 0 && reused >= done_ahead / 2, "ahead {done_ahead}, reused {reused}");
    let stats = st.stats();
    assert!(stats.peak_dram <= budget, "{stats:?}");
    let dec = Decryptor::new(&ctx, &sk).unwrap();
    assert!(max_err(&enc.decode(&dec.decrypt(&ahead).unwrap()).unwrap(), &z) < 1e-5);
}

/// With two keys expanded ahead, the hint names each stored key object where the helper pins
/// it, two key uses before its own, so that `planned` reads it before the helper waits for
/// it; the diagonals and the order of the keys are unchanged.
#[test]
fn the_hint_names_each_key_where_the_helper_pins_it() {
    let Fixture { ctx, bs, mut kg, sk, keyset, dir } = fixture(13);
    let st = store(dir.path(), true, 512 << 20);
    let (keys, _) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    let keys = keys.with_expansion(Expansion::PerPin).unwrap();
    let keys = keys.with_stored_diagonals(&bs).unwrap();
    let own = keys.access_plan(&bs, 2).unwrap();
    let keys = keys.with_expand_ahead_keys(2).unwrap();
    assert_eq!(keys.expand_ahead_keys(), 2);
    let led = keys.access_plan(&bs, 2).unwrap();
    let ids: std::collections::HashSet<ObjectId> =
        keys.key_set().iter().map(|(_, k)| k.id).collect();
    // Each key object of a plan with the number of other entries before it, and the others.
    let split = |plan: &[ObjectId]| {
        let (mut keyed, mut rest) = (Vec::new(), Vec::new());
        for &id in plan {
            if ids.contains(&id) {
                keyed.push((id, rest.len()));
            } else {
                rest.push(id);
            }
        }
        (keyed, rest)
    };
    let ((own_keys, own_rest), (led_keys, led_rest)) = (split(&own), split(&led));
    assert!(!own_rest.is_empty() && own_keys.len() > 2);
    assert_eq!(own_rest, led_rest, "the diagonals stay where they are");
    let order = |k: &[(ObjectId, usize)]| k.iter().map(|x| x.0).collect::<Vec<_>>();
    assert_eq!(order(&own_keys), order(&led_keys));
    assert!(led_keys[..2].iter().all(|k| k.1 == 0), "the first two lead the plan");
    for i in 2..led_keys.len() {
        assert_eq!(led_keys[i].1, own_keys[i - 2].1, "key use {i}");
    }
}

/// Cached expansion: each key is expanded at its first pin only (the second bootstrap
/// expands nothing), the copies are scratch objects gone with the keys, and the result is
/// the per-pin one.
#[test]
fn cached_expansion_expands_each_key_once() {
    let Fixture { ctx, bs, mut kg, sk, keyset, dir } = fixture(8);
    let st = store(dir.path(), true, 512 << 20);
    let (z, enc, ct) = encrypted(&ctx, &sk, |i| Complex64::new(0.0, (i as f64).sin()));
    let mut scratch = Evaluator::new(&ctx).scratch();
    let (keys, _) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    let per_pin = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    let keys = keys.with_expansion(Expansion::Cached).unwrap();
    keys.hint(&bs, 1).unwrap();
    let a = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    let after_first = keys.pin_times().expand_ns.load(Ordering::Relaxed);
    assert!(after_first > 0);
    let copies: Vec<ObjectId> = keys.keys.iter().map(|(_, k)| cache_id(k.id)).collect();
    assert!(copies.iter().all(|&c| st.contains(c)));
    keys.hint(&bs, 1).unwrap();
    let b = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    assert_eq!(keys.pin_times().expand_ns.load(Ordering::Relaxed), after_first);
    assert_eq!(a.as_words(), per_pin.as_words());
    assert_eq!(b.as_words(), per_pin.as_words());
    drop(keys);
    assert!(copies.iter().all(|&c| !st.contains(c)));
    let dec = Decryptor::new(&ctx, &sk).unwrap();
    assert!(max_err(&enc.decode(&dec.decrypt(&b).unwrap()).unwrap(), &z) < 1e-5);
}

fn top(ctx: &Context) -> usize {
    ctx.params().max_level()
}

/// `key`'s plan entry for a switch at the top level: the whole key.
fn at_top(ctx: &Context, key: StoredKey) -> ExpandedKey {
    ExpandedKey { id: key.id, level: top(ctx) }
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let clock = Instant::now();
    while !f() {
        assert!(clock.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Three rotation keys stored seed-compressed (as blobs) in an lru store over a fresh pool
/// whose budget holds `blocks` expanded keys: the keys made, their stored handles, the store
/// (its pool under the returned directory) and the budget.
struct ThreeStoredKeys {
    ctx: Arc<Context>,
    made: Vec<KeySwitchKey>,
    stored: Vec<StoredKey>,
    st: TieredStore,
    budget: u64,
    _dir: tempfile::TempDir,
}

fn three_stored_keys(seed: u8, blocks: u64) -> ThreeStoredKeys {
    let ctx = Context::new(&crate::ckks::Preset::N13.params().unwrap()).unwrap();
    let mut kg = KeyGenerator::with_seed(&ctx, [seed; 32]);
    let sk = kg.secret_key();
    let made: Vec<KeySwitchKey> = (1..=3).map(|s| kg.rotation_key(&sk, s).unwrap().key).collect();
    let budget = blocks * switch_key_expanded_words(&ctx) as u64 * 8;
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::create(dir.path(), PoolOptions::default().segment_size(32 << 20)).unwrap();
    let st = TieredStore::builder()
        .dram_budget(budget)
        .pool(pool)
        .policy(PolicyConfig::Lru)
        .build()
        .unwrap();
    let stored: Vec<StoredKey> = made
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let bytes = k.to_bytes(&ctx);
            let id = ObjectId(500 + i as u64);
            st.put(id, ObjectKind::Blob, Durability::Scratch, &bytes).unwrap();
            StoredKey { id, seed: *k.seed(), len: bytes.len() as u64, form: KeyForm::Seeded }
        })
        .collect();
    ThreeStoredKeys { ctx, made, stored, st, budget, _dir: dir }
}

/// Runs `body` while a helper thread expands `stored`'s keys ahead into `spares`, then stops
/// the helper, also when `body` panics (else the scope would wait for it forever).
fn with_expander<'s>(
    st: &'s TieredStore,
    ctx: &Context,
    stored: &[StoredKey],
    spares: &ExpansionBlocks<'s>,
    body: impl FnOnce(&'s TieredStore, &Context, &ExpansionBlocks<'s>),
) {
    struct Stop<'a, 's>(&'a AtomicBool, &'a ExpansionBlocks<'s>);
    impl Drop for Stop<'_, '_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
            self.1.wake();
        }
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let stop = &stop;
        s.spawn(move || spares.expand_ahead(st, ctx, stored, stop));
        let _stop = Stop(stop, spares);
        body(st, ctx, spares);
    });
}

/// The helper expands each next key of the plan into a reserved block, and the pin of that
/// key gets exactly the generated key from it without expanding; a key pinned again in a
/// row reuses its block; a pin off the plan expands its own key on the pinning thread; the
/// store's DRAM never exceeds its budget.
#[test]
fn keys_expanded_ahead_are_the_keys_pinned_and_stay_in_the_budget() {
    let ThreeStoredKeys { ctx, made, stored, st, budget, _dir } = three_stored_keys(21, 3);
    let (a, b, c) = (stored[0], stored[1], stored[2]);
    let spares = ExpansionBlocks::new(&st, &ctx, 2).unwrap();
    spares.set_plan(&[a, a, b, a].map(|k| at_top(&ctx, k)));
    let t = spares.times();
    with_expander(&st, &ctx, &stored, &spares, |st, ctx, spares| {
        wait_until("the first key", || t.ahead.load(Ordering::Relaxed) >= 1);
        let k = a.pin_recycled(st, ctx, spares, top(ctx)).unwrap();
        assert_eq!(k.as_words(), made[0].as_words());
        // While A is in use the helper expands B into the other block.
        wait_until("the second key", || t.ahead.load(Ordering::Relaxed) >= 2);
        drop(k);
        // A again right after itself: its block, untouched by the helper.
        let k = a.pin_recycled(st, ctx, spares, top(ctx)).unwrap();
        assert_eq!(k.as_words(), made[0].as_words());
        drop(k);
        let k = b.pin_recycled(st, ctx, spares, top(ctx)).unwrap();
        assert_eq!(k.as_words(), made[1].as_words());
        assert_eq!(t.reused.load(Ordering::Relaxed), 3, "no expansion on this thread yet");
        drop(k);
        // Off the plan: C is expanded here, and is C.
        let k = c.pin_recycled(st, ctx, spares, top(ctx)).unwrap();
        assert_eq!(k.as_words(), made[2].as_words());
        assert_eq!(t.reused.load(Ordering::Relaxed), 3);
        drop(k);
    });
    assert_eq!(t.pins.load(Ordering::Relaxed), 4);
    assert_eq!(spares.spare_count(), 2, "the helper gave back every block");
    assert!(st.stats().peak_dram <= budget, "{:?}", st.stats());
}

/// With three reserved blocks the helper keeps two keys ahead: before any pin it expands the
/// first two of the plan, and while the first is in use the third; every pin then finds its
/// key ready, and the store never holds more than its budget.
#[test]
fn two_keys_expanded_ahead_are_ready_before_their_pins() {
    let ThreeStoredKeys { ctx, made, stored, st, budget, _dir } = three_stored_keys(22, 4);
    let spares = ExpansionBlocks::new(&st, &ctx, 3).unwrap();
    spares.set_plan(&stored.iter().map(|&k| at_top(&ctx, k)).collect::<Vec<_>>());
    let t = spares.times();
    with_expander(&st, &ctx, &stored, &spares, |st, ctx, spares| {
        wait_until("the first two keys", || t.ahead.load(Ordering::Relaxed) >= 2);
        let k = stored[0].pin_recycled(st, ctx, spares, top(ctx)).unwrap();
        assert_eq!(k.as_words(), made[0].as_words());
        // While the first is in use, the third (two past it) is expanded too.
        wait_until("the third key", || t.ahead.load(Ordering::Relaxed) >= 3);
        drop(k);
        for (key, words) in stored[1..].iter().zip(&made[1..]) {
            let k = key.pin_recycled(st, ctx, spares, top(ctx)).unwrap();
            assert_eq!(k.as_words(), words.as_words());
        }
    });
    assert_eq!(t.ahead.load(Ordering::Relaxed), 3);
    assert_eq!(t.reused.load(Ordering::Relaxed), 3, "every pin found its key ready");
    assert_eq!(spares.spare_count(), 3, "the helper gave back every block");
    assert!(st.stats().peak_dram <= budget, "{:?}", st.stats());
}

/// A key pinned for a switch below the top is expanded for that level only; its block then
/// serves pins at that level or below without expanding, but not one above (which expands the
/// whole key again, whose block then serves every level). The helper expands a run of one
/// key's pins once, for the highest level of the run.
#[test]
fn a_key_is_expanded_for_the_level_of_its_switch() {
    let ThreeStoredKeys { ctx, made, stored, st, budget, _dir } = three_stored_keys(23, 3);
    let (a, b) = (stored[0], stored[1]);
    let (top, low) = (top(&ctx), top(&ctx) - 1);
    {
        let spares = ExpansionBlocks::new(&st, &ctx, 1).unwrap();
        let t = spares.times();
        let reused = || t.reused.load(Ordering::Relaxed);
        let k = a.pin_recycled(&st, &ctx, &spares, low).unwrap();
        assert_eq!(k.max_level(), low);
        assert_ne!(k.as_words(), made[0].as_words(), "only part of the key is expanded");
        drop(k);
        let k = a.pin_recycled(&st, &ctx, &spares, low - 1).unwrap();
        assert_eq!((reused(), k.max_level()), (1, low), "a lower pin reuses the block");
        drop(k);
        let k = a.pin_recycled(&st, &ctx, &spares, top).unwrap();
        assert_eq!(reused(), 1, "a higher pin expands again");
        assert_eq!(k.as_words(), made[0].as_words());
        drop(k);
        let k = a.pin_recycled(&st, &ctx, &spares, low).unwrap();
        assert_eq!((reused(), k.max_level()), (2, top), "the whole key serves a lower pin");
        drop(k);
    }

    // The helper: A at a low level then at the top, in a row, is one expansion at the top.
    let spares = ExpansionBlocks::new(&st, &ctx, 2).unwrap();
    let t = spares.times();
    let plan = [ExpandedKey { id: a.id, level: low }, at_top(&ctx, a), at_top(&ctx, b)];
    spares.set_plan(&plan);
    with_expander(&st, &ctx, &stored, &spares, |st, ctx, spares| {
        wait_until("the first key", || t.ahead.load(Ordering::Relaxed) >= 1);
        let k = a.pin_recycled(st, ctx, spares, low).unwrap();
        assert_eq!(k.max_level(), top);
        drop(k);
        let k = a.pin_recycled(st, ctx, spares, top).unwrap();
        assert_eq!(k.as_words(), made[0].as_words());
        wait_until("the second key", || t.ahead.load(Ordering::Relaxed) >= 2);
        drop(k);
        let k = b.pin_recycled(st, ctx, spares, top).unwrap();
        assert_eq!(k.as_words(), made[1].as_words());
    });
    assert_eq!(t.reused.load(Ordering::Relaxed), 3, "every pin found its key ready");
    assert_eq!(t.ahead.load(Ordering::Relaxed), 2);
    assert!(st.stats().peak_dram <= budget, "{:?}", st.stats());
}
