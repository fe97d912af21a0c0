//! A seed-compressed key read in place ([`PackedKeyLayout`], [`KeyLimbs::Packed`]) switches to
//! exactly the words its expanded form does, whole or by digit, at the top level and at a level
//! that reads fewer digits; every malformed set of blobs is a typed error, at parse or at the
//! switch that meets a bad residue.

use std::sync::Arc;

use super::blob::HEADER;
use super::*;
use crate::ckks::{
    Encoder, Encryptor, Evaluator, GaloisKey, KeyGenerator, KeyLimbs, KeySwitchKey, Preset,
    SwitchKeyWords,
};

/// A key's blobs held on the heap, as a store's pins would hold them.
struct Blobs {
    bytes: Vec<Vec<u8>>,
    layout: PackedKeyLayout,
}

impl SwitchKeyWords for Blobs {
    fn key_limbs(&self) -> KeyLimbs<'_> {
        KeyLimbs::Packed {
            blobs: self.bytes.iter().map(Vec::as_slice).collect(),
            layout: &self.layout,
        }
    }
}

fn packed(ctx: &Context, bytes: Vec<Vec<u8>>, level: usize) -> Result<KeySwitchKey<Blobs>> {
    let views: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
    let layout = PackedKeyLayout::parse(ctx, &views, level)?;
    KeySwitchKey::from_packed(Blobs { bytes, layout }, ctx)
}

fn setup() -> (Arc<Context>, KeyGenerator, crate::ckks::SecretKey) {
    let ctx: Arc<Context> = Context::new(&Preset::N13.params().unwrap()).unwrap();
    let mut kg = KeyGenerator::with_seed(&ctx, [23; 32]);
    let sk = kg.secret_key();
    (ctx, kg, sk)
}

#[test]
fn a_key_read_in_place_switches_to_the_expanded_keys_words() {
    let (ctx, mut kg, sk) = setup();
    let (top, dnum) = (ctx.params().max_level(), ctx.params().dnum());
    assert!(dnum >= 3, "the test needs keys of several digits");
    let eval = Evaluator::new(&ctx);
    let enc = Encoder::new(&ctx);
    let x: Vec<f64> = (0..ctx.params().slots()).map(|i| (i as f64 * 0.37).sin()).collect();
    let pt = enc.encode_real(&x, top, ctx.params().scale()).unwrap();
    let ct = Encryptor::new(&ctx).encrypt_sk(&sk, &pt).unwrap();
    let low = (0..top).rev().find(|&l| digits_read_at(&ctx, l) < dnum).unwrap();
    let ct_low = eval.drop_to_level(&ct, low).unwrap();
    let mut scratch = eval.scratch();

    let g = ctx.galois_element_for_step(3);
    let gk = kg.galois_key(&sk, g).unwrap();
    let rk = kg.relin_key(&sk).unwrap();
    let whole = || vec![gk.key.to_bytes(&ctx)];
    let digits = |k: usize| (0..k).map(|j| gk.key.digit_to_bytes(&ctx, j).unwrap()).collect();
    for (what, bytes, level, input) in [
        ("whole, top", whole(), top, &ct),
        ("by digit, top", digits(dnum), top, &ct),
        ("whole, low", whole(), low, &ct_low),
        ("digits a low level reads", digits(digits_read_at(&ctx, low)), low, &ct_low),
    ] {
        let key = GaloisKey { galois_element: g, key: packed(&ctx, bytes, level).unwrap() };
        assert_eq!(key.key.max_level(), level);
        assert_eq!(key.key.seed(), gk.key.seed());
        let got = eval.rotate(input, 3, &key, &mut scratch).unwrap();
        let want = eval.rotate(input, 3, &gk, &mut scratch).unwrap();
        assert_eq!(got.as_words(), want.as_words(), "{what}");
    }
    // A product's relinearisation (every limb of a key switch's inner product) too.
    let rk_packed =
        crate::ckks::RelinKey { key: packed(&ctx, vec![rk.key.to_bytes(&ctx)], top).unwrap() };
    let got = eval.mul_relin(&ct, &ct, &rk_packed, &mut scratch).unwrap();
    let want = eval.mul_relin(&ct, &ct, &rk, &mut scratch).unwrap();
    assert_eq!(got.as_words(), want.as_words());
}

#[test]
fn malformed_packed_keys_are_typed_errors() {
    let (ctx, mut kg, sk) = setup();
    let (top, dnum) = (ctx.params().max_level(), ctx.params().dnum());
    let key = kg.galois_key(&sk, ctx.galois_element_for_step(1)).unwrap().key;
    let other = kg.galois_key(&sk, ctx.galois_element_for_step(2)).unwrap().key;
    let digits: Vec<Vec<u8>> = (0..dnum).map(|j| key.digit_to_bytes(&ctx, j).unwrap()).collect();
    let corrupt = |r: Result<KeySwitchKey<Blobs>>| matches!(r, Err(Error::Corrupt { .. }));

    assert!(corrupt(packed(&ctx, vec![], top)), "no blob");
    let swapped = vec![digits[1].clone(), digits[0].clone(), digits[2].clone()];
    assert!(corrupt(packed(&ctx, swapped, top)), "digits out of order");
    let mut mixed = digits.clone();
    mixed[1] = other.digit_to_bytes(&ctx, 1).unwrap();
    assert!(corrupt(packed(&ctx, mixed, top)), "two keys' digits");
    assert!(corrupt(packed(&ctx, vec![key.to_bytes(&ctx); 2], top)), "a whole key twice");
    assert!(matches!(
        packed(&ctx, digits[..1].to_vec(), top),
        Err(Error::KeyLevel { level, .. }) if level == top
    ));
    assert!(matches!(packed(&ctx, digits.clone(), top + 1), Err(Error::InvalidLevel { .. })));
    let mut cut = key.to_bytes(&ctx);
    cut.truncate(cut.len() - 9);
    assert!(matches!(packed(&ctx, vec![cut], top), Err(Error::Truncated { .. })));
    let ct_blob = {
        let pt = Encoder::new(&ctx).encode_real(&[0.5], top, ctx.params().scale()).unwrap();
        Encryptor::new(&ctx).encrypt_sk(&sk, &pt).unwrap().to_bytes(&ctx)
    };
    assert!(matches!(packed(&ctx, vec![ct_blob], top), Err(Error::BadHeader { .. })));
    let words = KeySwitchKey::from_packed(key.as_words(), &ctx);
    assert!(matches!(words, Err(Error::BufferLength { .. })), "expanded words are not packed");

    // A residue not below its prime parses (residues are checked as they are read) and fails
    // the switch that reads it with a typed error, not a wrong result.
    let mut bad = key.to_bytes(&ctx);
    let first_limb = HEADER + 4 + 32;
    bad[first_limb..first_limb + 8].fill(0xff);
    let bad = GaloisKey {
        galois_element: ctx.galois_element_for_step(1),
        key: packed(&ctx, vec![bad], top).unwrap(),
    };
    let eval = Evaluator::new(&ctx);
    let pt = Encoder::new(&ctx).encode_real(&[0.5], top, ctx.params().scale()).unwrap();
    let ct = Encryptor::new(&ctx).encrypt_sk(&sk, &pt).unwrap();
    let r = eval.rotate(&ct, 1, &bad, &mut eval.scratch());
    assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
    // A key located for a low level refuses a switch above it.
    let low = (0..top).rev().find(|&l| digits_read_at(&ctx, l) < dnum).unwrap();
    let key_low = GaloisKey {
        galois_element: ctx.galois_element_for_step(1),
        key: packed(&ctx, digits[..digits_read_at(&ctx, low)].to_vec(), low).unwrap(),
    };
    let r = eval.rotate(&ct, 1, &key_low, &mut eval.scratch());
    assert!(matches!(r, Err(Error::KeyLevel { .. })), "{r:?}");
}
