//! The bootstrap's diagonals as store objects (`exec/diagonals.rs`) through
//! [`super::StoredBootstrapKeys`]: kept apart from both so neither imports the other's tests.

use hetier_tiering::{Durability, ObjectId, ObjectKind, TieredStore};

use crate::ckks::bootstrap::{BootstrapPreset, Bootstrapper, DiagonalUse};
use crate::ckks::{switch_key_stored_len, Complex64, Context, Decryptor, Evaluator};
use crate::exec::test_store::{encrypted, fixture, planned_store, Fixture};
use crate::exec::{DiagonalStorage, Expansion, StoredBootstrapKeys};

fn store(dir: &std::path::Path, budget: u64) -> TieredStore {
    planned_store(dir, budget, true, 64 << 20)
}

/// Diagonals stored at a budget of the key set plus a third of the diagonals: they stream
/// through the pool in the hinted order, the bootstrap encodes none itself and its result
/// is the on-the-fly one bit for bit, the store stays in its budget, the working set grows
/// by one pinned diagonal, and the objects go with the keys. Each object keeps one word per
/// run of equal ones (a diagonal in X^k: k times fewer bytes), most of them far fewer.
#[test]
fn stored_diagonals_stream_through_the_budget_and_give_the_encoded_bootstrap() {
    let Fixture { ctx, bs, mut kg, sk, keyset, dir } = fixture(41);
    let (z, enc, ct) = encrypted(&ctx, &sk, |i| Complex64::new((i as f64).sin(), 0.1));
    let keys_bytes = (bs.galois_elements().len() as u64 + 3) * switch_key_stored_len(&ctx);
    let runs = |d: &DiagonalUse| bs.diagonal_words(d) / bs.diagonal_repeat(d.id).unwrap();
    let stored: u64 = bs.diagonals().iter().map(|d| runs(d) as u64 * 8).sum();
    assert!(stored * 2 < bs.diagonal_bytes(), "{stored} of {} bytes", bs.diagonal_bytes());
    let budget = keys_bytes + stored / 3;
    let st = store(dir.path(), budget);
    let (keys, _) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    let mut scratch = Evaluator::new(&ctx).scratch();
    let want = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    let plain_set = keys.working_set_bytes(&bs);
    let plain_plan = keys.access_plan(&bs, 1).unwrap().len();

    let keys = keys.with_stored_diagonals(&bs).unwrap();
    let count = bs.diagonals().len();
    assert_eq!(keys.diagonal_bytes(), stored);
    assert_eq!(keys.access_plan(&bs, 1).unwrap().len(), plain_plan + count);
    let pinned = bs.max_diagonal_words() as u64 * 8;
    assert!(keys.working_set_bytes(&bs) >= plain_set + pinned - 4096);
    keys.check_budget(&bs).unwrap();
    let before = st.stats();
    for _ in 0..2 {
        keys.hint(&bs, 1).unwrap();
        let got = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
        assert_eq!(got.as_words(), want.as_words());
    }
    let report = keys.diagonal_report().unwrap();
    assert_eq!(
        (report.count, report.pins, report.encoded_on_the_fly),
        (count, 2 * count as u64, 0)
    );
    let stats = st.stats();
    assert!(stats.peak_dram <= budget, "{stats:?}");
    let moved = stats.bytes_pm_to_dram - before.bytes_pm_to_dram;
    assert!(moved >= stored / 2, "diagonals came back from the pool: {moved}");
    assert!(stats.prefetches > before.prefetches, "{stats:?}");
    let dec = Decryptor::new(&ctx, &sk).unwrap();
    let got = enc.decode(&dec.decrypt(&want).unwrap()).unwrap();
    let err = got.iter().zip(&z).map(|(a, b)| (*a - *b).abs()).fold(0.0, f64::max);
    assert!(err < 1e-5, "{err:e}");

    let ids: Vec<ObjectId> = keys.diagonals.as_ref().unwrap().ids.clone();
    assert_eq!(ids.len(), count);
    assert!(ids.iter().all(|&id| st.contains(id)));
    drop(keys);
    assert!(ids.iter().all(|&id| !st.contains(id)), "removed with the keys");
}

/// Durable diagonals: the first process encodes them into durable pool objects named by what
/// they are encoded from; they outlive its keys, and a later process over the reopened pool
/// reuses every one without encoding (one lost before a crash is encoded again, one of another
/// length at a diagonal's id is replaced), and its bootstrap is the on-the-fly one bit for bit.
#[test]
fn durable_diagonals_are_reused_by_a_later_process_and_give_the_encoded_bootstrap() {
    let Fixture { ctx, bs, mut kg, sk, keyset, dir } = fixture(43);
    let (_, _, ct) = encrypted(&ctx, &sk, |i| Complex64::new(0.2, (i as f64).cos()));
    let keys_bytes = (bs.galois_elements().len() as u64 + 3) * switch_key_stored_len(&ctx);
    let runs = |d: &DiagonalUse| bs.diagonal_words(d) / bs.diagonal_repeat(d.id).unwrap();
    let stored: u64 = bs.diagonals().iter().map(|d| runs(d) as u64 * 8).sum();
    assert!(stored * 2 < bs.diagonal_bytes(), "{stored} of {} bytes", bs.diagonal_bytes());
    let budget = keys_bytes + stored / 3;
    let mut scratch = Evaluator::new(&ctx).scratch();
    let count = bs.diagonals().len();

    let st = store(dir.path(), budget);
    let (keys, _) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    let want = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    let keys = keys.with_durable_diagonals(&bs).unwrap();
    let report = keys.diagonal_report().unwrap();
    assert_eq!((report.storage, report.count, report.reused), (DiagonalStorage::Durable, count, 0));
    keys.hint(&bs, 1).unwrap();
    let got = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    assert_eq!(got.as_words(), want.as_words());
    assert_eq!(keys.diagonal_report().unwrap().encoded_on_the_fly, 0);
    let ids: Vec<ObjectId> = keys.diagonals.as_ref().unwrap().ids.clone();
    let lens: Vec<u64> = ids.iter().map(|&id| st.len_of(id).unwrap()).collect();
    drop(keys);
    assert!(ids.iter().all(|&id| st.contains(id)), "durable diagonals outlive the keys");
    // What a crash would leave: one diagonal never written, one id holding other bytes.
    st.remove(ids[0]).unwrap();
    st.remove(ids[1]).unwrap();
    st.put(ids[1], ObjectKind::Plaintext, Durability::Durable, &[7u8; 64]).unwrap();
    drop(st);

    let st = planned_store(dir.path(), budget, false, 64 << 20);
    let (keys, made) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    assert_eq!(made.generated, 0);
    let keys = keys.with_durable_diagonals(&bs).unwrap();
    let report = keys.diagonal_report().unwrap();
    assert_eq!((report.count, report.reused), (count, count - 2));
    assert_eq!(keys.diagonals.as_ref().unwrap().ids, ids, "same ids in every process");
    assert_eq!(ids.iter().map(|&id| st.len_of(id).unwrap()).collect::<Vec<_>>(), lens);
    keys.hint(&bs, 1).unwrap();
    let got = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    assert_eq!(got.as_words(), want.as_words());
    let report = keys.diagonal_report().unwrap();
    assert_eq!((report.pins, report.encoded_on_the_fly), (count as u64, 0));
    assert!(st.stats().peak_dram <= budget);

    // Other parameters name other objects: nothing of this set is taken for theirs.
    let other = BootstrapPreset::insecure_test(12, 2);
    let other_ctx = Context::new(&other.params().unwrap()).unwrap();
    let other_bs = Bootstrapper::new(&other_ctx, &other.config).unwrap();
    let d = &other_bs.diagonals()[0];
    assert!(
        !ids.contains(&crate::exec::ids::diagonal_id(other_bs.diagonal_fingerprint(d).unwrap()))
    );
}

/// Durable diagonals with per-pin expansion and the next key expanded ahead, at a budget of
/// the working set and an eighth of the diagonals: the helper thread's pins run ahead of the
/// bootstrap's without moving the plan past the diagonals between, so `planned` evicts none of
/// what it prefetched before its use, and the result is the on-the-fly bootstrap's.
#[test]
fn keys_expanded_ahead_leave_the_prefetched_diagonals_in_place() {
    let Fixture { ctx, bs, mut kg, sk, keyset, dir } = fixture(44);
    let (_, _, ct) = encrypted(&ctx, &sk, |i| Complex64::new((i as f64).sin(), -0.3));
    let mut scratch = Evaluator::new(&ctx).scratch();
    let (want, need) = {
        let st = store(dir.path(), 1 << 30);
        let (keys, _) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
        let want = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
        let keys = keys.with_durable_diagonals(&bs).unwrap();
        (want, keys.working_set_bytes_in(&bs, Expansion::PerPin, 1))
    };
    let budget = need + bs.diagonal_bytes() / 8;
    let st = planned_store(dir.path(), budget, false, 64 << 20);
    let (keys, _) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    let keys = keys
        .with_expansion(Expansion::PerPin)
        .unwrap()
        .with_expand_ahead(true)
        .unwrap()
        .with_durable_diagonals(&bs)
        .unwrap();
    assert!(keys.expands_ahead());
    keys.hint(&bs, 1).unwrap();
    let got = keys.ahead(|| bs.bootstrap(&ct, &keys, &mut scratch)).unwrap();
    assert_eq!(got.as_words(), want.as_words());
    let stats = st.stats();
    assert!(stats.prefetches > 0, "{stats:?}");
    assert_eq!(stats.prefetch_evicted_unused, 0, "{stats:?}");
    assert!(stats.peak_dram <= budget, "{stats:?}");
    assert!(keys.pin_times().ahead.load(std::sync::atomic::Ordering::Relaxed) > 0);
}

/// Coefficients in the store: the bootstrapper releases its own, and a bootstrap at a budget
/// of the key set plus a third of the coefficients encodes every diagonal from a pinned
/// coefficient object, word for word the heap bootstrapper's result. The working set counts
/// one pinned coefficient block, the objects leave with the keys, and without them the
/// released bootstrapper fails with a typed error.
#[test]
fn stored_coefficients_replace_the_bootstrappers_own_bit_for_bit() {
    let Fixture { ctx, mut bs, mut kg, sk, keyset, dir } = fixture(47);
    let (_, _, ct) = encrypted(&ctx, &sk, |i| Complex64::new(0.3, (i as f64).sin()));
    let count = bs.diagonals().len();
    let coefficient_bytes = count as u64 * ctx.n() as u64 * 8;
    let keys_bytes = (bs.galois_elements().len() as u64 + 3) * switch_key_stored_len(&ctx);
    let st = store(dir.path(), keys_bytes + coefficient_bytes / 3);
    let (keys, _) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    let mut scratch = Evaluator::new(&ctx).scratch();
    let want = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    let plain_set = keys.working_set_bytes(&bs);

    let keys = keys.with_stored_coefficients(&bs).unwrap();
    bs.release_diagonal_coefficients();
    let report = keys.diagonal_report().unwrap();
    assert_eq!((report.storage, report.count), (DiagonalStorage::Coefficients, count));
    assert_eq!(keys.diagonal_bytes(), coefficient_bytes);
    let set = keys.working_set_bytes(&bs);
    assert!(set >= plain_set + ctx.n() as u64 * 8 - 4096, "{set} vs {plain_set}");
    assert!(set < plain_set + bs.max_diagonal_words() as u64 * 8, "a coefficient block only");
    for _ in 0..2 {
        keys.hint(&bs, 1).unwrap();
        let got = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
        assert_eq!(got.as_words(), want.as_words());
    }
    let report = keys.diagonal_report().unwrap();
    assert_eq!((report.pins, report.encoded_on_the_fly), (2 * count as u64, 2 * count as u64));
    assert!(st.stats().peak_dram <= st.budget());

    let ids: Vec<ObjectId> = keys.diagonals.as_ref().unwrap().ids.clone();
    drop(keys);
    let (plain, _) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    assert!(ids.iter().all(|&id| !st.contains(id)), "removed with the keys");
    let r = bs.bootstrap(&ct, &plain, &mut scratch);
    assert!(
        matches!(
            r,
            Err(crate::exec::Error::Core(crate::Error::DiagonalCoefficientsReleased { .. }))
        ),
        "{r:?}"
    );
}

/// Coefficients put before the keys (the bootstrapper then releases its own): durable
/// diagonals made from them are named exactly as ones made from the bootstrapper's own
/// coefficients (so later processes reuse either), one lost is encoded again from the stored
/// coefficients, and the bootstrap over them is the heap bootstrapper's bit for bit.
#[test]
fn diagonals_from_stored_coefficients_match_the_bootstrappers_own() {
    let Fixture { ctx, mut bs, mut kg, sk, keyset, dir } = fixture(53);
    let (_, _, ct) = encrypted(&ctx, &sk, |i| Complex64::new((i as f64).cos(), 0.2));
    let st = store(dir.path(), 1 << 30);
    let (keys, _) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    let mut scratch = Evaluator::new(&ctx).scratch();
    let want = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    let keys = keys.with_durable_diagonals(&bs).unwrap();
    let own: Vec<ObjectId> = keys.diagonals.as_ref().unwrap().ids.clone();
    drop(keys);
    st.remove(own[5]).unwrap();

    let coefficients = crate::exec::StoredCoefficients::put(&st, &bs).unwrap();
    assert_eq!(coefficients.bytes(), bs.diagonals().len() as u64 * ctx.n() as u64 * 8);
    bs.release_diagonal_coefficients();
    let (keys, _) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    let keys = keys.with_coefficients(coefficients).with_durable_diagonals(&bs).unwrap();
    assert_eq!(keys.diagonals.as_ref().unwrap().ids, own);
    let report = keys.diagonal_report().unwrap();
    assert_eq!((report.storage, report.reused), (DiagonalStorage::Durable, own.len() - 1));
    let got = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    assert_eq!(got.as_words(), want.as_words());
    assert_eq!(keys.diagonal_report().unwrap().encoded_on_the_fly, 0);
}

/// Half the durable diagonals encoded at every use from the stored coefficients: the hint
/// names the coefficients where those are used and the encodings elsewhere, each use pins
/// exactly one of the two, the bootstrap is the heap bootstrapper's bit for bit, the working
/// set grows by one coefficient block, and the store stays within its budget. A share
/// outside 0..=1, or one with no coefficients left anywhere, is a typed error.
#[test]
fn a_share_of_the_diagonals_is_encoded_at_every_use_bit_for_bit() {
    let Fixture { ctx, mut bs, mut kg, sk, keyset, dir } = fixture(59);
    let (_, _, ct) = encrypted(&ctx, &sk, |i| Complex64::new((i as f64).sin(), -0.4));
    let keys_bytes = (bs.galois_elements().len() as u64 + 3) * switch_key_stored_len(&ctx);
    let st = store(dir.path(), keys_bytes + bs.diagonal_bytes() / 3);
    let (keys, _) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    let mut scratch = Evaluator::new(&ctx).scratch();
    let want = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
    let durable = keys.with_durable_diagonals(&bs).unwrap();
    let durable_set = durable.working_set_bytes(&bs);
    let coefficients = crate::exec::StoredCoefficients::put(&st, &bs).unwrap();
    bs.release_diagonal_coefficients();
    // Encoded diagonals, and no coefficients held or left in the bootstrapper.
    let none = durable.with_encode_share(&bs, 0.5);
    assert!(
        matches!(
            none,
            Err(crate::exec::Error::Core(crate::Error::DiagonalCoefficientsReleased { .. }))
        ),
        "{none:?}"
    );
    let (keys, _) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    let keys = keys.with_coefficients(coefficients).with_encode_share(&bs, 0.5).unwrap();
    let keys = keys.with_durable_diagonals(&bs).unwrap();
    let count = bs.diagonals().len();
    let encoded_ids: Vec<ObjectId> = keys.coefficients.as_ref().unwrap().ids.clone();
    let stored_ids: Vec<ObjectId> = keys.diagonals.as_ref().unwrap().ids.clone();
    // Every other diagonal, by id.
    let plan = keys.access_plan(&bs, 1).unwrap();
    for i in 0..count {
        let (named, not) = if i % 2 == 1 {
            (encoded_ids[i], stored_ids[i])
        } else {
            (stored_ids[i], encoded_ids[i])
        };
        assert!(plan.contains(&named) && !plan.contains(&not), "diagonal {i}");
    }
    let set = keys.working_set_bytes(&bs);
    assert!(set >= durable_set + ctx.n() as u64 * 8 - 4096, "{set} vs {durable_set}");
    for _ in 0..2 {
        keys.hint(&bs, 1).unwrap();
        let got = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
        assert_eq!(got.as_words(), want.as_words());
    }
    let r = keys.diagonal_report().unwrap();
    let half = (count / 2) as u64;
    assert_eq!(r.encode_share, 0.5);
    // Only the uses count: not the pins that named the durable diagonals from them.
    assert_eq!((r.encoded_on_the_fly, r.coefficient_pins), (2 * half, 2 * half));
    assert_eq!(r.pins, 2 * (count as u64 - half));
    assert!(st.stats().peak_dram <= st.budget());

    let bad = keys.with_encode_share(&bs, 1.5).unwrap_err();
    assert!(
        matches!(
            bad,
            crate::exec::Error::Core(crate::Error::InvalidParameter { name: "encode_share", .. })
        ),
        "{bad:?}"
    );
}
