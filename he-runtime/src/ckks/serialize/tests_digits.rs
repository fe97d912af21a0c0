//! A key stored one digit per blob expands to exactly the words of the whole key's blob, a
//! prefix of its digits to what a switch at a lower level reads, and every malformed set of
//! digit blobs is a typed error.

use std::sync::Arc;

use super::blob::HEADER;
use super::*;
use crate::ckks::{switch_key_expanded_words, KeyGenerator, KeySwitchKey, Preset};

fn key_and_ctx() -> (Arc<Context>, KeySwitchKey) {
    let ctx: Arc<Context> = Context::new(&Preset::N13.params().unwrap()).unwrap();
    let mut kg = KeyGenerator::with_seed(&ctx, [21; 32]);
    let sk = kg.secret_key();
    let key = kg.galois_key(&sk, 5).unwrap().key;
    (ctx, key)
}

#[test]
fn a_key_stored_by_digit_expands_to_the_whole_keys_words() {
    const UNWRITTEN: u64 = u64::MAX;
    let (ctx, key) = key_and_ctx();
    let (top, dnum) = (ctx.params().max_level(), ctx.params().dnum());
    assert!(dnum >= 3, "the test needs keys of several digits");
    let words = switch_key_expanded_words(&ctx);
    let parts: Vec<Vec<u8>> = (0..dnum).map(|j| key.digit_to_bytes(&ctx, j).unwrap()).collect();
    let len = switch_key_digit_stored_len(&ctx) as usize;
    assert!(parts.iter().all(|p| p.len() == len));
    // The digits together are the whole blob's bytes, plus each further digit's header, digit
    // count, seed and checksum, and every digit's index.
    let whole_len = switch_key_stored_len(&ctx) as usize;
    assert_eq!(dnum * len - whole_len, (dnum - 1) * (HEADER + 4 + 32 + 4) + 4 * dnum);

    let all: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let got = KeySwitchKey::expand_digits_into(&ctx, &all, vec![UNWRITTEN; words]).unwrap();
    assert_eq!(got.max_level(), top);
    assert_eq!(got.seed(), key.seed());
    assert_eq!(got.as_words(), key.as_words());

    // A prefix of the digits serves the highest level that reads no further, with the same
    // words as the whole blob expanded for that level (the rest left untouched in both).
    for k in 1..dnum {
        let got =
            KeySwitchKey::expand_digits_into(&ctx, &all[..k], vec![UNWRITTEN; words]).unwrap();
        let level = got.max_level();
        assert!(digits_read_at(&ctx, level) <= k && level < top, "{k} digits: level {level}");
        assert!(level == top - 1 || digits_read_at(&ctx, level + 1) > k);
        let blob = key.to_bytes(&ctx);
        let want =
            KeySwitchKey::expand_pinned_for_level(&ctx, &blob, vec![UNWRITTEN; words], true, level)
                .unwrap();
        assert_eq!(got.as_words(), want.as_words(), "{k} digits");
    }
    // One digit at a time into one buffer, as a store pins them.
    let level = top - 1;
    let mut buf = vec![UNWRITTEN; words];
    for (j, part) in parts.iter().enumerate().take(digits_read_at(&ctx, level)) {
        let seed = expand_pinned_digit(&ctx, part, &mut buf, j, false, level).unwrap();
        assert_eq!(&seed, key.seed());
    }
    let blob = key.to_bytes(&ctx);
    let want =
        KeySwitchKey::expand_pinned_for_level(&ctx, &blob, vec![UNWRITTEN; words], false, level)
            .unwrap();
    assert_eq!(buf, want.as_words());
}

#[test]
fn malformed_digit_blobs_are_typed_errors() {
    let (ctx, key) = key_and_ctx();
    let words = switch_key_expanded_words(&ctx);
    let dnum = ctx.params().dnum();
    let parts: Vec<Vec<u8>> = (0..dnum).map(|j| key.digit_to_bytes(&ctx, j).unwrap()).collect();
    let expand = |ps: &[&[u8]]| KeySwitchKey::expand_digits_into(&ctx, ps, vec![0; words]);

    // Out of order: digit 1 where digit 0 belongs.
    assert!(matches!(expand(&[&parts[1], &parts[0]]), Err(Error::Corrupt { .. })));
    // Digits of two keys.
    let mut kg = KeyGenerator::with_seed(&ctx, [22; 32]);
    let sk = kg.secret_key();
    let other = kg.galois_key(&sk, 5).unwrap().key.digit_to_bytes(&ctx, 1).unwrap();
    assert!(matches!(expand(&[&parts[0], &other]), Err(Error::Corrupt { .. })));
    // None at all.
    assert!(matches!(expand(&[]), Err(Error::Corrupt { .. })));
    // A flipped bit, a cut blob, a whole-key blob where a digit belongs.
    let mut flipped = parts[0].clone();
    flipped[HEADER + 4 + 4 + 32 + 3] ^= 4;
    assert!(matches!(expand(&[&flipped]), Err(Error::ChecksumMismatch { .. })));
    let cut = &parts[0][..parts[0].len() - 9];
    assert!(matches!(expand(&[cut]), Err(Error::Truncated { .. })));
    let blob = key.to_bytes(&ctx);
    assert!(matches!(expand(&[&blob]), Err(Error::BadHeader { .. })));
    // A wrong buffer, a level above the chain.
    let top = ctx.params().max_level();
    assert!(matches!(
        expand_pinned_digit(&ctx, &parts[0], &mut vec![0; words - 1], 0, false, top),
        Err(Error::BufferLength { .. })
    ));
    assert!(matches!(
        expand_pinned_digit(&ctx, &parts[0], &mut vec![0; words], 0, false, top + 1),
        Err(Error::InvalidLevel { .. })
    ));
    // Writing: a digit past the last, a buffer of the wrong length, a key expanded only for a
    // lower level.
    assert!(matches!(key.digit_to_bytes(&ctx, dnum), Err(Error::Corrupt { .. })));
    let mut short = vec![0u8; switch_key_digit_stored_len(&ctx) as usize - 1];
    assert!(matches!(key.write_digit_to(&ctx, 0, &mut short), Err(Error::BlobBufferLength { .. })));
    let low =
        KeySwitchKey::expand_pinned_for_level(&ctx, &blob, vec![0; words], false, top - 1).unwrap();
    assert!(matches!(low.digit_to_bytes(&ctx, 0), Err(Error::KeyLevel { .. })));
}
