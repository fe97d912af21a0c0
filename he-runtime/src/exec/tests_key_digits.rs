//! Keys stored one object per digit ([`KeyForm::Digits`]): put digit by digit, reused by a later
//! process through the manifest, made again after a crash between two digits' puts, pinned
//! whole or only as far as a switch's level reads, and bootstrapped with bit for bit as keys
//! stored whole.

use std::collections::HashSet;

use hetier_tiering::{ObjectId, TieredStore};

use super::bootstrap::{bootstrap_working_set, Expansion, StoredBootstrapKeys};
use super::ids::{key_digit_id, key_id};
use super::keys::{GeneratedKeys, KeyForm, KeySet};
use super::test_store::{encrypted, fixture, planned_store, Fixture};
use super::{Error, KeySetId};
use crate::ckks::{
    digits_read_at, switch_key_digit_stored_len, switch_key_expanded_words, switch_key_stored_len,
    Ciphertext, Complex64, Context, Evaluator, KeyGenerator, KeySwitchKey, Preset, Scratch,
};

const SEED: [u8; 32] = [5; 32];

#[test]
fn keys_stored_by_digit_survive_a_crash_and_a_low_switch_reads_only_its_digits() {
    let ctx = Context::new(&Preset::N13.params().unwrap()).unwrap();
    let g = ctx.galois_element_for_step(1);
    let (ks, pid) = (KeySetId::from_seed(&SEED), ctx.params().id());
    let (top, dnum) = (ctx.params().max_level(), ctx.params().dnum());
    let dir = tempfile::tempdir().unwrap();
    let open = |create| planned_store(dir.path(), 64 << 20, create, 32 << 20);
    let ensure = |st: &TieredStore| {
        let mut kg = KeyGenerator::with_seed(&ctx, SEED);
        let sk = kg.secret_key();
        let maker = GeneratedKeys { kg: &mut kg, sk: &sk };
        KeySet::ensure_in_form(st, &ctx, ks, &[g], KeyForm::Digits, maker, |_, _| {}).unwrap()
    };
    let mut kg = KeyGenerator::with_seed(&ctx, SEED);
    let sk = kg.secret_key();
    let want = kg.galois_key(&sk, g).unwrap().key;

    let st = open(true);
    let (set, r) = ensure(&st);
    assert_eq!((r.generated, r.reused), (1, 0));
    let key = *set.get(g).unwrap();
    let part = switch_key_digit_stored_len(&ctx);
    assert_eq!((key.form, key.len), (KeyForm::Digits, part * dnum as u64));
    // A digit is its share of the whole key's bytes, plus a header, index, seed and checksum.
    assert!(part <= switch_key_stored_len(&ctx) / dnum as u64 + 72);
    assert_eq!(st.len_of(key_id(ks, pid, g)), None, "no whole-key object");
    let digits: Vec<ObjectId> = (0..dnum).map(|j| key_digit_id(key.id, j)).collect();
    assert_eq!(key.objects(&ctx), digits);
    assert!(digits.iter().all(|&d| st.len_of(d) == Some(part)));
    // Pinned whole, it is the key the secret key makes; one digit's pin cannot view it.
    assert_eq!(set.pin(&st, &ctx, g).unwrap().unwrap().as_words(), want.as_words());
    let guard = st.pin(digits[0]).unwrap();
    assert!(matches!(key.view(&st, &ctx, &guard), Err(Error::KeyManifest { .. })));
    drop(guard);

    // A later process reuses it, and a switch that reads fewer digits reads only those.
    drop(st);
    let st = open(false);
    let (set, r) = ensure(&st);
    assert_eq!((r.generated, r.reused), (0, 1));
    let level = (0..top).rev().find(|&l| digits_read_at(&ctx, l) < dnum).unwrap();
    let reads = digits_read_at(&ctx, level);
    assert_eq!(key.objects_at(&ctx, level), digits[..reads]);
    let before = st.stats().bytes_pm_to_dram;
    let block = st.alloc_for_overwrite(switch_key_expanded_words(&ctx) as u64 * 8).unwrap();
    let (block, _) = key.expand_for_level(&st, &ctx, block, false, level).unwrap();
    assert_eq!(st.stats().bytes_pm_to_dram - before, reads as u64 * part);
    let low = KeySwitchKey::from_raw_for_level(block, key.seed, &ctx, level).unwrap();
    let (n, qp, q_len) = (ctx.n(), ctx.q_len() + ctx.p_len(), ctx.q_len());
    for j in 0..reads {
        for p in 0..2 {
            for i in (0..qp).filter(|&i| i <= level || i >= q_len) {
                assert_eq!(low.limb(j, p, i, n, qp), want.limb(j, p, i, n, qp), "{j} {p} {i}");
            }
        }
    }
    drop(low);

    // A crash between two digits' puts of a key the manifest lists: it is made again whole.
    drop(set);
    st.remove(digits[dnum - 1]).unwrap();
    drop(st);
    let st = open(false);
    let (set, r) = ensure(&st);
    assert_eq!((r.generated, r.reused), (1, 0));
    assert!(digits.iter().all(|&d| st.len_of(d) == Some(part)));
    assert_eq!(set.pin(&st, &ctx, g).unwrap().unwrap().as_words(), want.as_words());
}

/// The same keys stored whole and by digit bootstrap to the same words, per pin and with keys
/// expanded ahead; the hint names for each run of a key's uses only the digits its level reads
/// (fewer than all below the top digit boundary), and an expansion holds one digit's object
/// pinned instead of the whole key's.
#[test]
fn keys_stored_by_digit_bootstrap_bit_for_bit_and_are_read_only_as_far_as_needed() {
    let run = |form: KeyForm| {
        let signal = |i: usize| Complex64::new((i as f64).sin(), 0.25);
        per_pin_bootstrap(form, signal, |fx, st, keys, ct, scratch| {
            let plan = keys.access_plan(&fx.bs, 1).unwrap();
            let per_pin = fx.bs.bootstrap(ct, &keys, scratch).unwrap();
            let keys = keys.with_expand_ahead_keys(2).unwrap();
            keys.hint(&fx.bs, 1).unwrap();
            let ahead = keys.ahead(|| fx.bs.bootstrap(ct, &keys, scratch)).unwrap();
            assert_eq!(ahead.as_words(), per_pin.as_words());
            let lens: Vec<u64> = plan.iter().map(|&id| st.len_of(id).unwrap()).collect();
            (per_pin.as_words().to_vec(), lens)
        })
    };
    let (whole, whole_plan) = run(KeyForm::Seeded);
    let (by_digit, digit_plan) = run(KeyForm::Digits);
    assert_eq!(by_digit, whole);
    let Fixture { ctx, bs, .. } = fixture(31);

    let (stored, part) = (switch_key_stored_len(&ctx), switch_key_digit_stored_len(&ctx));
    let dnum = ctx.params().dnum() as u64;
    let key_bytes = |lens: &[u64], len: u64| lens.iter().filter(|&&l| l == len).sum::<u64>();
    let (whole_keys, digit_keys) = (key_bytes(&whole_plan, stored), key_bytes(&digit_plan, part));
    // Each whole key named becomes at most all of its digits, and the low runs fewer.
    let runs = whole_keys / stored;
    assert!(digit_keys <= runs * dnum * part);
    assert!(digit_keys < runs * dnum * part, "some runs read fewer digits");
    assert!(digit_keys < whole_keys, "{digit_keys} of {whole_keys} bytes");
    // The rest of the plan (the diagonals) is the same.
    let rest = |lens: &[u64], len: u64| lens.iter().filter(|&&l| l != len).count();
    assert_eq!(rest(&whole_plan, stored), rest(&digit_plan, part));

    let set = |form| bootstrap_working_set(&bs, form, 3, false);
    let total = |v: Vec<u64>| v.iter().sum::<u64>();
    assert_eq!(total(set(KeyForm::Seeded)) - total(set(KeyForm::Digits)), 2 * (stored - part));
    let unique: HashSet<u64> = digit_plan.iter().copied().collect();
    assert!(unique.contains(&part) && !unique.contains(&stored));
}

/// A store-backed bootstrap's setup: keys of `form` made into a fresh store, expanded per pin,
/// with stored diagonals; `f` gets the fixture, the store, the keys, a ciphertext of `slot`'s
/// values to bootstrap and a scratch.
pub(super) fn per_pin_bootstrap<R>(
    form: KeyForm,
    slot: impl Fn(usize) -> Complex64,
    f: impl FnOnce(&Fixture, &TieredStore, StoredBootstrapKeys<'_>, &Ciphertext, &mut Scratch) -> R,
) -> R {
    let mut fx = fixture(31);
    let st = planned_store(fx.dir.path(), 512 << 20, true, 64 << 20);
    let (_, _, ct) = encrypted(&fx.ctx, &fx.sk, slot);
    let mut scratch = Evaluator::new(&fx.ctx).scratch();
    let (keys, _) = StoredBootstrapKeys::ensure_in_form(
        &st, &fx.ctx, &mut fx.kg, &fx.sk, fx.keyset, &fx.bs, form,
    )
    .unwrap();
    let keys = keys.with_expansion(Expansion::PerPin).unwrap();
    let keys = keys.with_stored_diagonals(&fx.bs).unwrap();
    f(&fx, &st, keys, &ct, &mut scratch)
}
