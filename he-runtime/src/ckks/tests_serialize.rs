//! What the crate-private read paths of `serialize` promise.

use std::sync::Arc;

use super::*;
use crate::ckks::{KeyGenerator, Preset};

/// A pinned store object's key expands to the same words without its CRC computed again (the
/// pool checked its own as it read the bytes), while everything else is still checked: a
/// header from another kind, and a residue not below its prime, are still typed errors.
#[test]
fn pinned_keys_expand_without_a_second_checksum_and_with_every_other_check() {
    let ctx: Arc<Context> = Context::new(&Preset::N13.params().unwrap()).unwrap();
    let mut kg = KeyGenerator::with_seed(&ctx, [9; 32]);
    let sk = kg.secret_key();
    let key = kg.galois_key(&sk, 5).unwrap().key;
    let bytes = key.to_bytes(&ctx);
    let words = switch_key_expanded_words(&ctx);
    for parallel in [false, true] {
        let got = KeySwitchKey::expand_pinned_into(&ctx, &bytes, vec![7; words], parallel);
        assert_eq!(got.unwrap().as_words(), key.as_words());
    }

    // The stored checksum is not what this path trusts: a wrong one still expands...
    let mut bad_crc = bytes.clone();
    *bad_crc.last_mut().unwrap() ^= 1;
    let got = KeySwitchKey::expand_pinned_into(&ctx, &bad_crc, vec![0; words], false);
    assert_eq!(got.unwrap().as_words(), key.as_words());
    // ...where bytes from outside are refused.
    assert!(matches!(
        KeySwitchKey::expand_into(&ctx, &bad_crc, vec![0; words]),
        Err(Error::ChecksumMismatch { .. })
    ));

    let mut other_kind = bytes.clone();
    other_kind[6] = BlobKind::Ciphertext as u8;
    assert!(matches!(
        KeySwitchKey::expand_pinned_into(&ctx, &other_kind, vec![0; words], false),
        Err(Error::BadHeader { .. })
    ));
    // The first b residue (after the digit count and the seed) set to all ones: not below q.
    let mut residue = bytes.clone();
    let first = HEADER + 4 + 32;
    residue[first..first + 8].fill(0xff);
    assert!(matches!(
        KeySwitchKey::expand_pinned_into(&ctx, &residue, vec![0; words], false),
        Err(Error::Corrupt { .. })
    ));
}
