//! Keys read in place ([`Expansion::InPlace`]): bit for bit the per-pin bootstrap, stored whole
//! or by digit, with no expansion block, each use pinning (and the hint naming) the objects its
//! level reads.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;

use hetier_tiering::ObjectId;

use super::bootstrap::{bootstrap_working_set, Expansion};
use super::keys::KeyForm;
use super::tests_key_digits::per_pin_bootstrap;
use crate::ckks::bootstrap::KeyUse;
use crate::ckks::{switch_key_digit_stored_len, switch_key_expanded_words, Complex64};

/// Keys read in place ([`Expansion::InPlace`]) bootstrap to the same words as keys expanded per
/// pin, stored whole or by digit: no expansion block is held, every key use but the
/// relinearisation key's pins the objects its own level reads (and the hint names exactly
/// those), and the working set holds the key's stored objects instead of an expanded block.
#[test]
fn keys_read_in_place_bootstrap_bit_for_bit_without_an_expansion_block() {
    for form in [KeyForm::Seeded, KeyForm::Digits] {
        let signal = |i: usize| Complex64::new(0.5, (i as f64).cos() / 2.0);
        per_pin_bootstrap(form, signal, |fx, _, keys, ct, scratch| {
            let (ctx, bs) = (&fx.ctx, &fx.bs);
            let want = bs.bootstrap(ct, &keys, scratch).unwrap();

            let keys = keys.with_expansion(Expansion::InPlace).unwrap();
            assert!(keys.held_block_lengths().is_empty(), "{form:?}: no expansion block");
            keys.hint(bs, 1).unwrap();
            let pins = || keys.pin_times().pins.load(Relaxed);
            let before = pins();
            let got = bs.bootstrap(ct, &keys, scratch).unwrap();
            assert_eq!(got.as_words(), want.as_words(), "{form:?}");
            assert_eq!(pins() - before, bs.key_uses().len() as u64, "{form:?}: one pin per use");

            // The hint names each use's own objects, in order, between the diagonals (the
            // relinearisation key is used through its cached expanded copy instead).
            let uses = bs.key_uses();
            let want_keys: Vec<ObjectId> = uses
                .iter()
                .filter(|&&(u, _)| u != KeyUse::Relin)
                .flat_map(|&(u, level)| {
                    let k = keys.key_set().get(crate::nn::key_use_tag(u)).unwrap();
                    k.objects_at(ctx, level)
                })
                .collect();
            let key_objects: HashSet<ObjectId> = want_keys.iter().copied().collect();
            let plan = keys.access_plan(bs, 1).unwrap();
            let named: Vec<ObjectId> =
                plan.iter().copied().filter(|id| key_objects.contains(id)).collect();
            assert_eq!(named, want_keys, "{form:?}");

            let set = |blocks| bootstrap_working_set(bs, form, blocks, false).iter().sum::<u64>();
            let expanded = switch_key_expanded_words(ctx) as u64 * 8;
            let (dnum, part) = (ctx.params().dnum() as u64, switch_key_digit_stored_len(ctx));
            let held_in_place = match form {
                KeyForm::Digits => dnum * part - part,
                _ => 0,
            };
            assert_eq!(set(1) - set(0), expanded - held_in_place, "{form:?}");
        });
    }
}

/// With [`Expansion::InPlaceAll`] the relinearisation key is read in place too: the same words
/// again, no cached copy made, every one of its uses naming its own objects in the hint, and a
/// working set smaller than [`Expansion::InPlace`]'s by that copy.
#[test]
fn the_relinearisation_key_read_in_place_too_bootstraps_bit_for_bit_in_a_smaller_set() {
    for form in [KeyForm::Seeded, KeyForm::Digits] {
        let signal = |i: usize| Complex64::new((i as f64).sin() / 2.0, 0.25);
        per_pin_bootstrap(form, signal, |fx, st, keys, ct, scratch| {
            let (ctx, bs) = (&fx.ctx, &fx.bs);
            let want = bs.bootstrap(ct, &keys, scratch).unwrap();
            let copy = (switch_key_expanded_words(ctx) as u64 * 8).next_multiple_of(4096);
            let some = keys.working_set_bytes_in(bs, Expansion::InPlace, 0);
            let all = keys.working_set_bytes_in(bs, Expansion::InPlaceAll, 0);
            assert_eq!(some - all, copy, "{form:?}: the relinearisation key's copy");

            let keys = keys.with_expansion(Expansion::InPlaceAll).unwrap();
            assert!(keys.held_block_lengths().is_empty(), "{form:?}: no expansion block");
            keys.hint(bs, 1).unwrap();
            let objects = st.stats().objects;
            let got = bs.bootstrap(ct, &keys, scratch).unwrap();
            assert_eq!(got.as_words(), want.as_words(), "{form:?}");
            assert_eq!(st.stats().objects, objects, "{form:?}: no cached copy was made");

            let relin = keys.key_set().get(crate::nn::key_use_tag(KeyUse::Relin)).unwrap();
            let uses: Vec<ObjectId> = bs
                .key_uses()
                .iter()
                .filter(|&&(u, _)| u == KeyUse::Relin)
                .flat_map(|&(_, level)| relin.objects_at(ctx, level))
                .collect();
            assert!(!uses.is_empty());
            let own: HashSet<ObjectId> = uses.iter().copied().collect();
            let plan = keys.access_plan(bs, 1).unwrap();
            let named: Vec<ObjectId> = plan.into_iter().filter(|id| own.contains(id)).collect();
            assert_eq!(named, uses, "{form:?}: the hint names each use's own objects");
        });
    }
}
