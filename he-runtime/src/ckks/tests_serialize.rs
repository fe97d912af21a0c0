//! What the crate-private read paths of `serialize` promise.

use std::sync::Arc;

use super::blob::HEADER;
use super::*;
use crate::ckks::{switch_key_expanded_words, KeyGenerator, KeySwitchKey, Preset};

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

/// A key expanded for a level writes exactly the words a switch at that level reads (the
/// first digits over Q_level·P; every other word keeps what the buffer held), switches there
/// to the same words as the whole key, and refuses a switch above it, being written out, and a
/// level above the chain, each with a typed error.
#[test]
fn a_key_expanded_for_a_level_holds_what_that_level_reads_and_refuses_more() {
    use crate::ckks::{Complex64, Encoder, Encryptor, Evaluator, GaloisKey};

    const UNWRITTEN: u64 = u64::MAX;
    let ctx: Arc<Context> = Context::new(&Preset::N13.params().unwrap()).unwrap();
    let mut kg = KeyGenerator::with_seed(&ctx, [11; 32]);
    let sk = kg.secret_key();
    let whole = kg.rotation_key(&sk, 1).unwrap();
    let bytes = whole.key.to_bytes(&ctx);
    let (n, q_len, qp) = (ctx.n(), ctx.q_len(), ctx.q_len() + ctx.p_len());
    let (top, dnum) = (ctx.params().max_level(), ctx.params().dnum());
    let words = switch_key_expanded_words(&ctx);
    let level = top - 1;
    let digits = ctx.params().digits_at(level);
    assert!(digits < dnum, "the test needs a digit the level does not read");

    let part =
        KeySwitchKey::expand_pinned_for_level(&ctx, &bytes, vec![UNWRITTEN; words], true, level)
            .unwrap();
    assert_eq!(part.max_level(), level);
    let mut skipped = 0;
    for j in 0..dnum {
        for p in 0..2 {
            for i in 0..qp {
                let (got, want) = (part.limb(j, p, i, n, qp), whole.key.limb(j, p, i, n, qp));
                if j < digits && (i <= level || i >= q_len) {
                    assert_eq!(got, want, "digit {j} part {p} prime {i}");
                } else {
                    assert!(got.iter().all(|&w| w == UNWRITTEN), "digit {j} part {p} prime {i}");
                    skipped += 1;
                }
            }
        }
    }
    assert!(skipped >= 2 * qp, "a whole digit and the top prime are left out: {skipped} limbs");

    let enc = Encoder::new(&ctx);
    let eval = Evaluator::new(&ctx);
    let mut scratch = eval.scratch();
    let z: Vec<Complex64> =
        (0..ctx.params().slots()).map(|i| Complex64::new(i as f64 / 1e4, 0.5)).collect();
    let mut encryptor = Encryptor::with_seed(&ctx, [3; 32]);
    let part = GaloisKey { galois_element: whole.galois_element, key: part };
    let mut at = |l: usize| encryptor.encrypt_sk(&sk, &enc.encode(&z, l, 2f64.powi(30)).unwrap());
    let (below, above) = (at(level).unwrap(), at(level + 1).unwrap());
    let want = eval.rotate(&below, 1, &whole, &mut scratch).unwrap();
    let got = eval.rotate(&below, 1, &part, &mut scratch).unwrap();
    assert_eq!(got.as_words(), want.as_words());
    assert!(matches!(
        eval.rotate(&above, 1, &part, &mut scratch),
        Err(Error::KeyLevel { key_level, level: l }) if key_level == level && l == level + 1
    ));

    let mut out = vec![0u8; switch_key_stored_len(&ctx) as usize];
    assert!(matches!(part.key.write_to(&ctx, &mut out), Err(Error::KeyLevel { .. })));
    assert!(whole.key.write_to(&ctx, &mut out).is_ok());
    assert!(matches!(
        KeySwitchKey::expand_pinned_for_level(&ctx, &bytes, vec![0; words], false, top + 1),
        Err(Error::InvalidLevel { .. })
    ));
}
