//! Serialisation: round trips of every stored kind, seed compression, and typed errors for
//! truncated, corrupted, mislabelled and other-parameter blobs.
mod common;
use common::*;
use hetier_he::ckks::*;
use hetier_he::Error;

#[test]
fn round_trips_and_seed_compression() {
    let mut f = Fixture::new(Preset::N13);
    let ctx = f.ctx.clone();
    let a = f.random_real();
    let ct = f.encrypt(&a);
    let bytes = ct.to_bytes(&ctx);
    assert_eq!(blob_kind(&bytes).unwrap(), BlobKind::Ciphertext);
    let back = Ciphertext::from_bytes(&ctx, &bytes).unwrap();
    assert_eq!(back.as_words(), ct.as_words());
    assert_eq!(back.level(), ct.level());
    assert_eq!(back.scale(), ct.scale());

    // Residues are bit-packed to their prime's width: smaller than 8 bytes per word.
    assert!(bytes.len() < ct.as_words().len() * 8 * 7 / 10);

    let pt = f.enc.encode_real(&a, 1, ctx.params().scale()).unwrap();
    let pb = Plaintext::from_bytes(&ctx, &pt.to_bytes(&ctx)).unwrap();
    assert_eq!(pb.as_words(), pt.as_words());

    // Symmetric ciphertexts store c0 and the seed of c1: about half a full ciphertext.
    let top = ctx.params().max_level();
    let ptop = f.enc.encode_real(&a, top, ctx.params().scale()).unwrap();
    let seeded = f.encryptor.encrypt_sk_seeded(&f.sk, &ptop).unwrap();
    let sb = seeded.to_bytes(&ctx);
    assert!(sb.len() * 10 < bytes.len() * 6, "{} vs {}", sb.len(), bytes.len());
    let restored = SeededCiphertext::from_bytes(&ctx, &sb).unwrap().expand(&ctx).unwrap();
    assert!(max_err(&f.decrypt_real(&restored), &a) < 1e-6);
    // A full secret-key encryption is exactly the expansion of the seeded one (same RNG stream):
    // it samples `a` once instead of re-deriving it from the seed.
    let full = Encryptor::with_seed(&ctx, [7; 32]).encrypt_sk(&f.sk, &ptop).unwrap();
    let via_seed = Encryptor::with_seed(&ctx, [7; 32])
        .encrypt_sk_seeded(&f.sk, &ptop)
        .unwrap()
        .expand(&ctx)
        .unwrap();
    assert_eq!(full.as_words(), via_seed.as_words());

    // Keys regenerate their `a` parts from the seed and still work.
    let pk2 = PublicKey::from_bytes(&ctx, &f.pk.to_bytes(&ctx)).unwrap();
    let ct2 = f.encryptor.encrypt_pk(&pk2, &ptop).unwrap();
    assert!(max_err(&f.decrypt_real(&ct2), &a) < 1e-6);
    let rk2 = RelinKey::from_bytes(&ctx, &f.rk.to_bytes(&ctx)).unwrap();
    assert_eq!(rk2.key.as_words(), f.rk.key.as_words());
    let gk = f.keygen().rotation_key(&f.sk, 3).unwrap();
    let gb = gk.to_bytes(&ctx);
    let gk2 = GaloisKey::from_bytes(&ctx, &gb).unwrap();
    assert_eq!(gk2.galois_element, gk.galois_element);
    assert_eq!(gk2.key.as_words(), gk.key.as_words());
    let mut s = f.eval.scratch();
    let r = f.eval.rotate(&ct, 3, &gk2, &mut s).unwrap();
    let mut want = a.clone();
    want.rotate_left(3);
    assert!(max_err(&f.decrypt_real(&r), &want) < 1e-5);
    // A stored rotation key holds only the b halves, bit-packed: under 40% of the raw words.
    let raw = gk.key.as_words().len() * 8;
    assert!(gb.len() * 10 < raw * 4, "{} of {raw}", gb.len());
}

#[test]
fn bad_blobs_are_typed_errors() {
    let mut f = Fixture::new(Preset::N13);
    let ctx = f.ctx.clone();
    let a = f.random_real();
    let ct = f.encrypt(&a);
    let bytes = ct.to_bytes(&ctx);

    // Truncated anywhere: header or body.
    for cut in [0, 3, 20, 27, bytes.len() / 2, bytes.len() - 1] {
        let r = Ciphertext::from_bytes(&ctx, &bytes[..cut]);
        assert!(matches!(r, Err(Error::Truncated { .. })), "cut {cut}: {r:?}");
    }
    // Any flipped byte in the body or the checksum.
    for pos in [30, bytes.len() / 2, bytes.len() - 2] {
        let mut b = bytes.clone();
        b[pos] ^= 0x40;
        assert!(matches!(Ciphertext::from_bytes(&ctx, &b), Err(Error::ChecksumMismatch { .. })));
    }
    // Bad magic, future version, wrong kind.
    let mut b = bytes.clone();
    b[0] = b'X';
    assert!(matches!(Ciphertext::from_bytes(&ctx, &b), Err(Error::BadHeader { .. })));
    let mut b = bytes.clone();
    b[4] = 9;
    assert!(matches!(Ciphertext::from_bytes(&ctx, &b), Err(Error::BadHeader { .. })));
    assert!(matches!(RelinKey::from_bytes(&ctx, &bytes), Err(Error::BadHeader { .. })));
    // Trailing garbage.
    let mut b = bytes.clone();
    b.push(0);
    assert!(matches!(Ciphertext::from_bytes(&ctx, &b), Err(Error::Corrupt { .. })));

    // Made under other parameters.
    let mut pb = ParamsBuilder::new(13);
    pb.q_bits(50, &[40, 40]).special_bits(49).dnum(3);
    let other = Context::new(&pb.build().unwrap()).unwrap();
    assert!(matches!(Ciphertext::from_bytes(&other, &bytes), Err(Error::ParamsMismatch { .. })));
    let gk = f.keygen().rotation_key(&f.sk, 1).unwrap().to_bytes(&ctx);
    assert!(matches!(GaloisKey::from_bytes(&other, &gk), Err(Error::ParamsMismatch { .. })));
}

#[test]
fn borrowed_buffers_are_used_in_place() {
    // A store would hand out pinned word buffers: wrap them as views, no copy.
    let mut f = Fixture::new(Preset::N13);
    let ctx = f.ctx.clone();
    let a = f.random_real();
    let ct = f.encrypt(&a);
    let gk = f.keygen().rotation_key(&f.sk, 2).unwrap();
    let ct_words: &[u64] = ct.as_words();
    let view =
        CiphertextView::from_raw(ct_words, 2, ct.level(), ct.scale(), ctx.n(), ctx.params().id())
            .unwrap();
    let key_view = GaloisKey {
        galois_element: gk.galois_element,
        key: KeySwitchKeyView::from_raw(gk.key.as_words(), *gk.key.seed(), &ctx).unwrap(),
    };
    let mut s = f.eval.scratch();
    let r = f.eval.rotate(&view, 2, &key_view, &mut s).unwrap();
    let mut want = a.clone();
    want.rotate_left(2);
    assert!(max_err(&f.decrypt_real(&r), &want) < 1e-5);
    // Wrong lengths are typed errors.
    assert!(matches!(
        CiphertextView::from_raw(
            &ct_words[1..],
            2,
            ct.level(),
            ct.scale(),
            ctx.n(),
            ctx.params().id()
        ),
        Err(Error::BufferLength { .. })
    ));
    assert!(matches!(
        KeySwitchKeyView::from_raw(&gk.key.as_words()[8..], *gk.key.seed(), &ctx),
        Err(Error::BufferLength { .. })
    ));
}

#[test]
fn raw_buffers_with_wrong_shape_are_typed_errors() {
    let mut f = Fixture::new(Preset::N13);
    let ctx = f.ctx.clone();
    let a = f.random_real();
    let ct = f.encrypt(&a);
    let n = ctx.n();
    let id = ctx.params().id();
    // The right number of words for another ring degree: rejected before any slicing.
    let words = ct.as_words();
    let half =
        CiphertextView::from_raw(&words[..2 * 3 * n / 2], 2, 2, ct.scale(), n / 2, id).unwrap();
    assert!(matches!(f.eval.add(&half, &half), Err(Error::DegreeMismatch { .. })));
    assert!(matches!(
        Decryptor::new(&ctx, &f.sk).unwrap().decrypt(&half),
        Err(Error::DegreeMismatch { .. })
    ));
    // A level above the parameter set's maximum.
    let deep = vec![0u64; 2 * 4 * n];
    let deep = CiphertextView::from_raw(&deep[..], 2, 3, ct.scale(), n, id).unwrap();
    assert!(matches!(f.eval.negate(&deep), Err(Error::InvalidLevel { .. })));
    let pt = PlaintextView::from_raw(&words[..4 * n], 3, ct.scale(), n, id).unwrap();
    assert!(matches!(f.enc.decode(&pt), Err(Error::InvalidLevel { .. })));
}

/// The store form of every evaluation key: a seed-compressed switching key expands, into a
/// new buffer or a caller's, to exactly the generated words, and its stated length is exact;
/// a wrong-size buffer or a blob of another kind is a typed error.
#[test]
fn switching_keys_expand_into_a_caller_buffer() {
    let mut f = Fixture::new(Preset::N13);
    let ctx = f.ctx.clone();
    let gk = f.keygen().rotation_key(&f.sk, 5).unwrap();
    let bytes = gk.key.to_bytes(&ctx);
    assert_eq!(blob_kind(&bytes).unwrap(), BlobKind::SwitchKey);
    assert_eq!(bytes.len() as u64, switch_key_stored_len(&ctx));
    assert_eq!(switch_key_expanded_words(&ctx), gk.key.as_words().len());
    let back = KeySwitchKey::from_bytes(&ctx, &bytes).unwrap();
    assert_eq!(back.as_words(), gk.key.as_words());
    assert_eq!(back.seed(), gk.key.seed());
    // Into a dirty caller buffer: every word is overwritten.
    let buf = vec![u64::MAX; switch_key_expanded_words(&ctx)];
    let into = KeySwitchKey::expand_into(&ctx, &bytes, buf).unwrap();
    assert_eq!(into.as_words(), gk.key.as_words());
    // On the calling thread only (a helper expanding ahead): the same words.
    let buf = vec![u64::MAX; switch_key_expanded_words(&ctx)];
    let serial = KeySwitchKey::expand_into_serial(&ctx, &bytes, buf).unwrap();
    assert_eq!(serial.as_words(), gk.key.as_words());
    let a = f.random_real();
    let ct = f.encrypt(&a);
    let mut s = f.eval.scratch();
    let r = f
        .eval
        .rotate(&ct, 5, &GaloisKey { galois_element: gk.galois_element, key: into }, &mut s)
        .unwrap();
    let mut want = a.clone();
    want.rotate_left(5);
    assert!(max_err(&f.decrypt_real(&r), &want) < 1e-5);

    let short = vec![0u64; switch_key_expanded_words(&ctx) - 1];
    assert!(matches!(
        KeySwitchKey::expand_into(&ctx, &bytes, short),
        Err(Error::BufferLength { .. })
    ));
    let other_kind = gk.to_bytes(&ctx);
    let buf = vec![0u64; switch_key_expanded_words(&ctx)];
    assert!(matches!(
        KeySwitchKey::expand_into(&ctx, &other_kind, buf),
        Err(Error::BadHeader { .. })
    ));
    for cut in [0, 30, bytes.len() / 2] {
        assert!(KeySwitchKey::from_bytes(&ctx, &bytes[..cut]).is_err());
    }
}

/// A key serialised into a caller's buffer (a store block) is `to_bytes` byte for byte, every
/// byte overwritten; a buffer of another length, or another parameter set, is a typed error.
#[test]
fn switching_keys_serialise_into_a_caller_buffer() {
    let f = Fixture::new(Preset::N13);
    let ctx = f.ctx.clone();
    let gk = f.keygen().rotation_key(&f.sk, 5).unwrap();
    let want = gk.key.to_bytes(&ctx);
    let mut out = vec![0xa5u8; want.len()];
    gk.key.write_to(&ctx, &mut out).unwrap();
    assert_eq!(out, want);
    assert_eq!(KeySwitchKey::from_bytes(&ctx, &out).unwrap().as_words(), gk.key.as_words());
    for len in [want.len() - 1, want.len() + 1, 0] {
        let mut out = vec![0u8; len];
        assert!(matches!(
            gk.key.write_to(&ctx, &mut out),
            Err(Error::BlobBufferLength { expected, found }) if expected == want.len() && found == len
        ));
    }
    let other = Context::new(&Preset::N14.params().unwrap()).unwrap();
    let mut out = vec![0u8; switch_key_stored_len(&other) as usize];
    assert!(matches!(gk.key.write_to(&other, &mut out), Err(Error::ParamsMismatch { .. })));
}

/// `bytes` re-labelled as blob format `version`, its checksum made valid again.
fn relabel(bytes: &[u8], version: u16) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[4..6].copy_from_slice(&version.to_le_bytes());
    let end = b.len() - 4;
    let crc = crc32c::crc32c(&b[..end]);
    b[end..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Format 4 expands seeds with AES-256 in counter mode, candidates kept below a multiple of q:
/// a format-1, -2 or -3 blob holding a seed (ChaCha20, ChaCha12, AES-256 below q only) would
/// expand into another key, so it is refused with a typed error; older blobs without a seed
/// (ciphertexts, plaintexts) are the same bytes and still read.
#[test]
fn older_blobs_with_a_seed_are_refused_and_without_one_still_read() {
    assert_eq!(FORMAT_VERSION, 4);
    let mut f = Fixture::new(Preset::N13);
    let ctx = f.ctx.clone();
    let key = f.keygen().rotation_key(&f.sk, 3).unwrap();
    let bytes = key.key.to_bytes(&ctx);
    assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), FORMAT_VERSION);
    let a = f.random_real();
    let ct = f.encrypt(&a);
    for version in [1, 2, 3] {
        let old = relabel(&bytes, version);
        let retired = |r: Result<(), Error>| {
            matches!(r, Err(Error::RetiredSeedFormat { found, supported: FORMAT_VERSION })
                if found == version)
        };
        assert!(retired(KeySwitchKey::from_bytes(&ctx, &old).map(|_| ())));
        let buf = vec![0u64; switch_key_expanded_words(&ctx)];
        assert!(retired(KeySwitchKey::expand_into(&ctx, &old, buf).map(|_| ())));
        assert!(retired(blob_kind(&old).map(|_| ())));
        let gk_old = relabel(&key.to_bytes(&ctx), version);
        assert!(retired(GaloisKey::from_bytes(&ctx, &gk_old).map(|_| ())));

        let ct_old = relabel(&ct.to_bytes(&ctx), version);
        let back = Ciphertext::from_bytes(&ctx, &ct_old).unwrap();
        assert_eq!(back.as_words(), ct.as_words());
    }
    // A version after this build's is still a bad header.
    assert!(matches!(
        Ciphertext::from_bytes(&ctx, &relabel(&ct.to_bytes(&ctx), 5)),
        Err(Error::BadHeader { .. })
    ));
}

#[test]
fn a_residue_not_below_its_prime_is_a_typed_error() {
    // A blob whose checksum is right but one residue is >= its prime (all ones in its bits):
    // the first residue of the first limb, and the last of the last limb, which ends right
    // before the checksum (no slack after it).
    let mut f = Fixture::new(Preset::N13);
    let ctx = f.ctx.clone();
    let a = f.random_real();
    let bytes = f.encrypt(&a).to_bytes(&ctx);
    assert!(Ciphertext::from_bytes(&ctx, &bytes).is_ok());
    let body = 4 + 2 + 1 + 1 + 8 + 8;
    let first = body + 1 + 4 + 8;
    let end = bytes.len() - 4;
    for residue in [first..first + 8, end - 8..end] {
        let mut b = bytes[..end].to_vec();
        b[residue.clone()].fill(0xff);
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        let e = Ciphertext::from_bytes(&ctx, &b).unwrap_err();
        assert!(
            matches!(&e, Error::Corrupt { reason } if reason.contains("not below its prime")),
            "bytes {residue:?}: {e}"
        );
    }
}
