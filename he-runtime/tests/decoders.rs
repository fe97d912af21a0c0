//! Untrusted bytes: every decoder (ciphertext, seeded ciphertext, plaintext, public,
//! relinearisation, Galois and switching key — the form every key of a stored key set, the
//! bootstrap's included, takes in the pool —, model description, weights and test-set files) answers
//! random bytes, truncations and bit flips of valid encodings with a typed error, never a
//! panic; header fields forged under a valid checksum are checked before anything is
//! allocated; blobs made under other parameters are a typed error.

use std::sync::{Arc, OnceLock};

use hetier_he::ckks::*;
use hetier_he::model::{load_tensors, Model, ModelDesc, TestSet};
use hetier_he::Error;
use proptest::prelude::*;

/// Header length of a ckks blob (magic, version, kind, flags, params id, body length).
const HEADER: usize = 24;
/// Blob kinds decoded: ciphertext, seeded ciphertext, plaintext, public, relinearisation,
/// Galois and switching key.
const KINDS: usize = 7;

struct Blobs {
    ctx: Arc<Context>,
    ct: Vec<u8>,
    seeded: Vec<u8>,
    pt: Vec<u8>,
    pk: Vec<u8>,
    rk: Vec<u8>,
    gk: Vec<u8>,
    sk: Vec<u8>,
}

/// Small insecure parameters (log N = 12): valid encodings of every kind, made once.
fn blobs() -> &'static Blobs {
    static B: OnceLock<Blobs> = OnceLock::new();
    B.get_or_init(|| {
        let mut b = ParamsBuilder::new(12);
        b.q_bits(50, &[40, 40]).special_bits(50).dnum(1).log_scale(40.0).allow_insecure();
        let ctx = Context::new(&b.build().unwrap()).unwrap();
        let mut kg = KeyGenerator::with_seed(&ctx, [3; 32]);
        let sk = kg.secret_key();
        let p = ctx.params();
        let vals: Vec<f64> = (0..p.slots()).map(|i| (i % 5) as f64 / 5.0).collect();
        let pt = Encoder::new(&ctx).encode_real(&vals, p.max_level(), p.scale()).unwrap();
        let mut enc = Encryptor::with_seed(&ctx, [4; 32]);
        let ct = enc.encrypt_sk(&sk, &pt).unwrap();
        Blobs {
            ct: ct.to_bytes(&ctx),
            seeded: enc.encrypt_sk_seeded(&sk, &pt).unwrap().to_bytes(&ctx),
            pt: pt.to_bytes(&ctx),
            pk: kg.public_key(&sk).unwrap().to_bytes(&ctx),
            rk: kg.relin_key(&sk).unwrap().to_bytes(&ctx),
            gk: kg.rotation_key(&sk, 1).unwrap().to_bytes(&ctx),
            sk: kg.rotation_key(&sk, 2).unwrap().key.to_bytes(&ctx),
            ctx,
        }
    })
}

/// Every ckks decoder over `bytes`: whether each succeeded. Never panics (the property).
fn decode_all(bytes: &[u8]) -> [bool; KINDS] {
    let ctx = &blobs().ctx;
    [
        Ciphertext::from_bytes(ctx, bytes).is_ok(),
        SeededCiphertext::from_bytes(ctx, bytes).is_ok(),
        Plaintext::from_bytes(ctx, bytes).is_ok(),
        PublicKey::from_bytes(ctx, bytes).is_ok(),
        RelinKey::from_bytes(ctx, bytes).is_ok(),
        GaloisKey::from_bytes(ctx, bytes).is_ok(),
        KeySwitchKey::from_bytes(ctx, bytes).is_ok(),
    ]
}

/// Fixes the body length and checksum after a change, so the decoder gets past them.
fn reseal(mut b: Vec<u8>) -> Vec<u8> {
    b.truncate(b.len().saturating_sub(4).max(HEADER));
    let body = (b.len() - HEADER) as u64;
    b[16..24].copy_from_slice(&body.to_le_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn valid(i: usize) -> &'static [u8] {
    let b = blobs();
    [&b.ct, &b.seeded, &b.pt, &b.pk, &b.rk, &b.gk, &b.sk][i]
}

#[test]
fn each_valid_blob_decodes_only_as_its_own_kind() {
    for i in 0..KINDS {
        let ok = decode_all(valid(i));
        assert_eq!(ok.iter().filter(|&&x| x).count(), 1, "blob {i}: {ok:?}");
        assert!(ok[i], "blob {i} does not decode as itself");
    }
}

#[test]
fn forged_sizes_are_refused_before_allocating() {
    let ctx = &blobs().ctx;
    // A ciphertext header claiming 3 polynomials at the top level over a tiny body.
    let mut b = blobs().ct[..HEADER + 13].to_vec();
    b[HEADER] = 3;
    let b = reseal([b, vec![0; 4]].concat());
    let e = Ciphertext::from_bytes(ctx, &b).unwrap_err();
    assert!(matches!(&e, Error::Corrupt { reason } if reason.contains("nothing allocated")), "{e}");
    // A level of 2^32 - 1 (coefficients beyond any memory).
    let mut b = blobs().pt.clone();
    b[HEADER..HEADER + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = Plaintext::from_bytes(ctx, &reseal(b)).unwrap_err();
    assert!(matches!(&e, Error::Corrupt { reason } if reason.contains("level")), "{e}");
    // A switching key claiming 2^31 digits.
    let mut b = blobs().rk.clone();
    b[HEADER..HEADER + 4].copy_from_slice(&(1u32 << 31).to_le_bytes());
    let e = RelinKey::from_bytes(ctx, &reseal(b)).unwrap_err();
    assert!(matches!(&e, Error::Corrupt { reason } if reason.contains("dnum")), "{e}");
    // A stored switching key (a bootstrap key set's form) claiming 2^31 digits.
    let mut b = blobs().sk.clone();
    b[HEADER..HEADER + 4].copy_from_slice(&(1u32 << 31).to_le_bytes());
    let e = KeySwitchKey::from_bytes(ctx, &reseal(b)).unwrap_err();
    assert!(matches!(&e, Error::Corrupt { reason } if reason.contains("dnum")), "{e}");
    // A body length of 2^60 in the header.
    let mut b = blobs().gk.clone();
    b[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(matches!(GaloisKey::from_bytes(ctx, &b), Err(Error::Truncated { .. })));
}

#[test]
fn a_blob_of_other_parameters_is_a_typed_error() {
    let ctx = &blobs().ctx;
    for i in 0..KINDS {
        let mut b = valid(i).to_vec();
        b[8] ^= 1;
        let b = reseal(b);
        let e = match i {
            0 => Ciphertext::from_bytes(ctx, &b).err(),
            1 => SeededCiphertext::from_bytes(ctx, &b).err(),
            2 => Plaintext::from_bytes(ctx, &b).err(),
            3 => PublicKey::from_bytes(ctx, &b).err(),
            4 => RelinKey::from_bytes(ctx, &b).err(),
            5 => GaloisKey::from_bytes(ctx, &b).err(),
            _ => KeySwitchKey::from_bytes(ctx, &b).err(),
        };
        assert!(matches!(e, Some(Error::ParamsMismatch { .. })), "blob {i}: {e:?}");
    }
}

fn model_parts() -> &'static (String, Vec<u8>, Vec<u8>) {
    static M: OnceLock<(String, Vec<u8>, Vec<u8>)> = OnceLock::new();
    M.get_or_init(|| {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
        (
            std::fs::read_to_string(dir.join("digits.json")).unwrap(),
            std::fs::read(dir.join("digits.safetensors")).unwrap(),
            std::fs::read(dir.join("digits.test.safetensors")).unwrap(),
        )
    })
}

/// Every model-file decoder over a description text and weights / test-set bytes.
fn decode_model(desc: &str, weights: &[u8], test: &[u8]) {
    let _ = load_tensors("w", weights);
    let _ = TestSet::from_bytes("t", test);
    if let Ok(d) = ModelDesc::from_json(desc) {
        if let Ok(m) = Model::from_parts(d, weights) {
            // A model that validates must also compile or refuse with a typed error.
            let _ = m.compile(&Preset::N14.params().unwrap());
        }
    }
}

fn flip(mut b: Vec<u8>, bit: usize) -> Vec<u8> {
    let n = b.len() * 8;
    if n > 0 {
        b[(bit % n) / 8] ^= 1 << (bit % 8);
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_decode(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        prop_assert_eq!(decode_all(&bytes), [false; KINDS]);
    }

    #[test]
    fn random_bodies_under_a_valid_header_never_panic(
        kind in 0usize..KINDS,
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let b = reseal([&valid(kind)[..HEADER], &body[..], &[0; 4]].concat());
        decode_all(&b);
    }

    #[test]
    fn truncations_are_typed_errors(kind in 0usize..KINDS, cut in any::<prop::sample::Index>()) {
        let v = valid(kind);
        let b = &v[..cut.index(v.len())];
        prop_assert_eq!(decode_all(b), [false; KINDS]);
    }

    #[test]
    fn bit_flips_are_typed_errors(kind in 0usize..KINDS, bit in any::<usize>()) {
        let b = flip(valid(kind).to_vec(), bit);
        prop_assert_eq!(decode_all(&b), [false; KINDS]);
    }

    #[test]
    fn bit_flips_under_a_resealed_checksum_never_panic(
        kind in 0usize..KINDS,
        bit in 0usize..(HEADER + 48) * 8,
    ) {
        // Flips in the header and the first body fields (counts, levels, scales, digits,
        // Galois elements) reach the decoder past the checksum.
        decode_all(&reseal(flip(valid(kind).to_vec(), bit)));
    }

    #[test]
    fn model_files_refuse_random_bytes(
        text in "\\PC{0,200}",
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let (desc, weights, test) = model_parts();
        decode_model(&text, weights, test);
        decode_model(desc, &bytes, &bytes);
        prop_assert!(load_tensors("w", &bytes).is_err());
    }

    #[test]
    fn model_files_survive_truncations_and_flips(
        cut in any::<prop::sample::Index>(),
        bit in any::<usize>(),
    ) {
        let (desc, weights, test) = model_parts();
        let d = &desc[..desc.char_indices().map(|(i, _)| i).nth(cut.index(desc.chars().count())).unwrap_or(0)];
        decode_model(d, weights, test);
        decode_model(desc, &weights[..cut.index(weights.len())], &test[..cut.index(test.len())]);
        let flipped = String::from_utf8_lossy(&flip(desc.as_bytes().to_vec(), bit)).into_owned();
        decode_model(&flipped, &flip(weights.clone(), bit), &flip(test.clone(), bit));
    }
}
