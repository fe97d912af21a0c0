//! Every CKKS operation against plaintext arithmetic on random vectors, with the error bound
//! asserted, at N = 2^13 and 2^14 (and 2^15 / 2^16 in the ignored long tests:
//! `cargo test --release -p hetier-he --test ckks_ops -- --ignored`).
mod common;
use common::*;
use hetier_he::ckks::*;

/// Bounds of the issue (stated for N = 2^16; the smaller rings are at least as precise).
const ENC_BOUND: f64 = 1e-6;
const MUL_BOUND: f64 = 1e-6;
const ROT_BOUND: f64 = 1e-5;

fn mul_vec(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x * y).collect()
}

fn rotated(v: &[f64], step: i64) -> Vec<f64> {
    let mut r = v.to_vec();
    let k = step.rem_euclid(v.len() as i64) as usize;
    r.rotate_left(k);
    r
}

fn encode_roundtrip(f: &mut Fixture) {
    let v = f.random_complex();
    let l = f.ctx.params().max_level();
    for level in [0, l] {
        let pt = f.enc.encode(&v, level, f.ctx.params().scale()).unwrap();
        let back = f.enc.decode(&pt).unwrap();
        assert!(max_err_c(&back, &v) < 1e-9, "level {level}");
    }
    // A scale far beyond one word (2^100) takes the multi-word path of the encoder.
    let pt = f.enc.encode(&v, l, 2f64.powi(100)).unwrap();
    if l >= 2 {
        assert!(max_err_c(&f.enc.decode(&pt).unwrap(), &v) < 1e-9);
    }
}

fn encrypt_decrypt(f: &mut Fixture) {
    let v = f.random_real();
    let ct = f.encrypt(&v);
    let e = max_err(&f.decrypt_real(&ct), &v);
    assert!(e < ENC_BOUND, "pk encryption error {e:e}");
    let pt = f.enc.encode_real(&v, 1, f.ctx.params().scale()).unwrap();
    let ct = f.encryptor.encrypt_sk(&f.sk, &pt).unwrap();
    assert_eq!(ct.level(), 1);
    let e = max_err(&f.decrypt_real(&ct), &v);
    assert!(e < ENC_BOUND, "sk encryption error {e:e}");
    // Complex slots survive encryption too.
    let z = f.random_complex();
    let pt = f.enc.encode(&z, f.ctx.params().max_level(), f.ctx.params().scale()).unwrap();
    let ct = f.encryptor.encrypt_pk(&f.pk, &pt).unwrap();
    assert!(max_err_c(&f.decrypt(&ct), &z) < ENC_BOUND);
}

fn linear_ops(f: &mut Fixture) {
    let a = f.random_real();
    let b = f.random_real();
    let (ca, cb) = (f.encrypt(&a), f.encrypt(&b));
    let sum: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let diff: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    let neg: Vec<f64> = a.iter().map(|x| -x).collect();
    assert!(max_err(&f.decrypt_real(&f.eval.add(&ca, &cb).unwrap()), &sum) < 2.0 * ENC_BOUND);
    assert!(max_err(&f.decrypt_real(&f.eval.sub(&ca, &cb).unwrap()), &diff) < 2.0 * ENC_BOUND);
    assert!(max_err(&f.decrypt_real(&f.eval.negate(&ca).unwrap()), &neg) < ENC_BOUND);
    let mut acc = ca.clone();
    f.eval.add_assign(&mut acc, &cb).unwrap();
    assert!(max_err(&f.decrypt_real(&acc), &sum) < 2.0 * ENC_BOUND);

    let top = f.ctx.params().max_level();
    let scale = f.ctx.params().scale();
    let pb = f.enc.encode_real(&b, top, scale).unwrap();
    assert!(max_err(&f.decrypt_real(&f.eval.add_plain(&ca, &pb).unwrap()), &sum) < ENC_BOUND);
    assert!(max_err(&f.decrypt_real(&f.eval.sub_plain(&ca, &pb).unwrap()), &diff) < ENC_BOUND);

    // Constants: real and complex addition, integer and real multiplication.
    let c = Complex64::new(0.25, -0.5);
    let got = f.decrypt(&f.eval.add_const(&ca, c).unwrap());
    let want: Vec<Complex64> = a.iter().map(|&x| Complex64::new(x + 0.25, -0.5)).collect();
    assert!(max_err_c(&got, &want) < ENC_BOUND);
    let got = f.decrypt_real(&f.eval.add_const(&ca, Complex64::new(-0.75, 0.0)).unwrap());
    let want: Vec<f64> = a.iter().map(|x| x - 0.75).collect();
    assert!(max_err(&got, &want) < ENC_BOUND);
    let got = f.decrypt_real(&f.eval.mul_integer(&ca, -3).unwrap());
    let want: Vec<f64> = a.iter().map(|x| -3.0 * x).collect();
    assert!(max_err(&got, &want) < 4.0 * ENC_BOUND);
    let m = f.eval.mul_const(&ca, 0.3, scale).unwrap();
    let m = f.eval.rescale(&m).unwrap();
    let want: Vec<f64> = a.iter().map(|x| 0.3 * x).collect();
    assert!(max_err(&f.decrypt_real(&m), &want) < MUL_BOUND);

    // In-place and into-buffer forms (as a runtime computing in its own blocks uses them) give
    // the allocating forms' exact words; a buffer of the wrong size is a typed error.
    let words = ca.as_words().len();
    let mut buf = vec![u64::MAX; words];
    let mut x = f.eval.copy_into(&ca, &mut buf[..]).unwrap();
    f.eval.mul_plain_assign(&mut x, &pb).unwrap();
    assert_eq!(x.as_words(), f.eval.mul_plain(&ca, &pb).unwrap().as_words());
    assert_eq!(x.scale(), ca.scale() * pb.scale());
    let mut x = f.eval.copy_into(&ca, &mut buf[..]).unwrap();
    f.eval.sub_assign(&mut x, &cb).unwrap();
    assert_eq!(x.as_words(), f.eval.sub(&ca, &cb).unwrap().as_words());
    let mut x = f.eval.copy_into(&ca, &mut buf[..]).unwrap();
    f.eval.add_plain_assign(&mut x, &pb).unwrap();
    f.eval.sub_plain_assign(&mut x, &pb).unwrap();
    f.eval.add_const_assign(&mut x, c).unwrap();
    f.eval.mul_const_assign(&mut x, 0.3, scale).unwrap();
    let y = f.eval.mul_const(&f.eval.add_const(&ca, c).unwrap(), 0.3, scale).unwrap();
    assert_eq!(x.as_words(), y.as_words());
    let low = words / (top + 1) * top;
    let r = f.eval.rescale_into(&y, &mut buf[..low]).unwrap();
    assert_eq!(r.as_words(), f.eval.rescale(&y).unwrap().as_words());
    let r = f.eval.drop_to_level_into(&ca, top - 1, &mut buf[..low]).unwrap();
    assert_eq!(r.as_words(), f.eval.drop_to_level(&ca, top - 1).unwrap().as_words());
    // acc += c·b with b one level above acc: the words of b dropped, scaled and added, and
    // the plaintext acc + c·b (a negative constant included).
    for c in [0.3, -0.7] {
        let mut acc =
            f.eval.mul_const(&f.eval.drop_to_level(&cb, top - 1).unwrap(), 0.5, scale).unwrap();
        let mut want =
            f.eval.mul_const(&f.eval.drop_to_level(&ca, top - 1).unwrap(), c, scale).unwrap();
        want.set_scale(acc.scale());
        f.eval.add_assign(&mut want, &acc).unwrap();
        f.eval.mul_const_add_assign(&mut acc, &ca, c, scale).unwrap();
        assert_eq!(acc.as_words(), want.as_words(), "c = {c}");
        assert_eq!(acc.level(), top - 1);
        let plain: Vec<f64> = a.iter().zip(&b).map(|(x, y)| 0.5 * y + c * x).collect();
        let got = f.decrypt_real(&f.eval.rescale(&acc).unwrap());
        assert!(max_err(&got, &plain) < MUL_BOUND, "c = {c}");
    }
    assert!(matches!(
        f.eval.rescale_into(&y, &mut buf[..]),
        Err(hetier_he::Error::BufferLength { .. })
    ));
    assert!(matches!(
        f.eval.copy_into(&ca, &mut buf[1..]),
        Err(hetier_he::Error::BufferLength { .. })
    ));
}

fn products(f: &mut Fixture) {
    let a = f.random_real();
    let b = f.random_real();
    let (ca, cb) = (f.encrypt(&a), f.encrypt(&b));
    let want = mul_vec(&a, &b);
    let top = f.ctx.params().max_level();
    let scale = f.ctx.params().scale();
    // ct × pt, then rescale.
    let pb = f.enc.encode_real(&b, top, scale).unwrap();
    let r = f.eval.rescale(&f.eval.mul_plain(&ca, &pb).unwrap()).unwrap();
    assert_eq!(r.level(), top - 1);
    let e = max_err(&f.decrypt_real(&r), &want);
    assert!(e < MUL_BOUND, "mul_plain error {e:e}");
    // ct × ct: the degree-2 ciphertext decrypts as is (at scale 2^80), relinearised and
    // rescaled it stays within bound.
    let t = f.eval.mul(&ca, &cb).unwrap();
    assert_eq!(t.degree(), 2);
    let e = max_err(&f.decrypt_real(&t), &want);
    assert!(e < MUL_BOUND, "degree-2 error {e:e}");
    let mut s = f.eval.scratch();
    let r = f.eval.relinearize(&t, &f.rk, &mut s).unwrap();
    let r = f.eval.rescale(&r).unwrap();
    let e = max_err(&f.decrypt_real(&r), &want);
    assert!(e < MUL_BOUND, "mul+relin+rescale error {e:e}");
    assert!((r.scale().log2() - 40.0).abs() < 0.01);
}

fn chain_to_last_level(f: &mut Fixture) {
    // x^(2^k) would underflow; multiply by fresh values close to ±1 instead, tracking the
    // product in plaintext down to level 0.
    let top = f.ctx.params().max_level();
    let a: Vec<f64> = f.random_real().into_iter().map(|x| 0.5 + 0.5 * x.abs()).collect();
    let mut want = a.clone();
    let mut ct = f.encrypt(&a);
    let mut s = f.eval.scratch();
    for _ in 0..top {
        let b: Vec<f64> = f.random_real().into_iter().map(|x| 0.5 + 0.5 * x.abs()).collect();
        let cb = f.encrypt_at(&b, ct.level());
        // Products need equal levels but not equal scales; the scale drift is tracked.
        ct = f.eval.rescale(&f.eval.mul_relin(&ct, &cb, &f.rk, &mut s).unwrap()).unwrap();
        want = mul_vec(&want, &b);
    }
    assert_eq!(ct.level(), 0);
    let e = max_err(&f.decrypt_real(&ct), &want);
    assert!(e < 4.0 * MUL_BOUND, "chain error {e:e}");
    // One more rescale has no prime left.
    assert!(matches!(f.eval.rescale(&ct), Err(hetier_he::Error::LevelExhausted { level: 0, .. })));
}

fn rotations(f: &mut Fixture) {
    let a = f.random_real();
    let ca = f.encrypt(&a);
    let mut kg = f.keygen();
    let steps = [1i64, 2, 5, -1, -7, 1000];
    let mut keys = GaloisKeySet::new();
    for &st in &steps {
        keys.insert(kg.rotation_key(&f.sk, st).unwrap());
    }
    let mut s = f.eval.scratch();
    let mut plain = Vec::new();
    for &st in &steps {
        let r = f.eval.rotate_with(&ca, st, &keys, &mut s).unwrap();
        let e = max_err(&f.decrypt_real(&r), &rotated(&a, st));
        assert!(e < ROT_BOUND, "rotate {st}: {e:e}");
        plain.push(r);
    }
    // Hoisted rotations decrypt to the same values as plain ones.
    let hoisted = f.eval.rotate_many(&ca, &steps, &keys, &mut s).unwrap();
    for ((h, p), &st) in hoisted.iter().zip(&plain).zip(&steps) {
        let e = max_err(&f.decrypt_real(h), &rotated(&a, st));
        assert!(e < ROT_BOUND, "hoisted rotate {st}: {e:e}");
        assert!(max_err(&f.decrypt_real(h), &f.decrypt_real(p)) < ROT_BOUND);
    }
    // Into a caller's buffer (a borrowed slice, as a store block would be): the same words as
    // the allocating forms, and a buffer of the wrong size is a typed error.
    let h = f.eval.hoist(&ca, &mut s).unwrap();
    let mut buf = vec![u64::MAX; plain[0].as_words().len()];
    for ((p, hc), &st) in plain.iter().zip(&hoisted).zip(&steps) {
        let key = keys.get(f.ctx.galois_element_for_step(st)).unwrap();
        let r = f.eval.rotate_into(&ca, st, key, &mut s, &mut buf[..]).unwrap();
        assert_eq!(r.as_words(), p.as_words(), "rotate_into {st}");
        let r = f.eval.rotate_hoisted_into(&h, st, key, &mut s, &mut buf[..]).unwrap();
        assert_eq!(r.as_words(), hc.as_words(), "rotate_hoisted_into {st}");
    }
    let key = keys.get(f.ctx.galois_element_for_step(steps[0])).unwrap();
    let short = &mut buf[1..];
    assert!(matches!(
        f.eval.rotate_into(&ca, steps[0], key, &mut s, short),
        Err(hetier_he::Error::BufferLength { .. })
    ));
    // Rotation at a lower level and after a product.
    let low = f.eval.drop_to_level(&ca, 1).unwrap();
    let r = f.eval.rotate_with(&low, 2, &keys, &mut s).unwrap();
    assert_eq!(r.level(), 1);
    assert!(max_err(&f.decrypt_real(&r), &rotated(&a, 2)) < ROT_BOUND);
    // Conjugation on complex slots.
    let z = f.random_complex();
    let pt = f.enc.encode(&z, f.ctx.params().max_level(), f.ctx.params().scale()).unwrap();
    let cz = f.encryptor.encrypt_pk(&f.pk, &pt).unwrap();
    let ck = kg.conjugation_key(&f.sk).unwrap();
    let r = f.eval.conjugate(&cz, &ck, &mut s).unwrap();
    let want: Vec<Complex64> = z.iter().map(|x| x.conj()).collect();
    let e = max_err_c(&f.decrypt(&r), &want);
    assert!(e < ROT_BOUND, "conjugate {e:e}");
}

fn level_and_scale_matching(f: &mut Fixture) {
    let a = f.random_real();
    let b = f.random_real();
    let top = f.ctx.params().max_level();
    let ca = f.encrypt(&a);
    let cb = f.encrypt_at(&b, 0);
    assert!(matches!(f.eval.add(&ca, &cb), Err(hetier_he::Error::LevelMismatch { .. })));
    let sum: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let r = f.eval.add_matched(&ca, &cb).unwrap();
    assert_eq!(r.level(), 0);
    assert!(max_err(&f.decrypt_real(&r), &sum) < 2.0 * ENC_BOUND);
    // Different scales: a rescaled product (scale 2^80 / q_top) plus a fresh ciphertext.
    let mut s = f.eval.scratch();
    let p = f.eval.rescale(&f.eval.mul_relin(&ca, &ca, &f.rk, &mut s).unwrap()).unwrap();
    let fresh = f.encrypt(&b);
    assert!(matches!(
        f.eval.add(&p, &f.eval.drop_to_level(&fresh, top - 1).unwrap()),
        Err(hetier_he::Error::ScaleMismatch { .. })
    ));
    let r = f.eval.add_matched(&p, &fresh).unwrap();
    let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * x + y).collect();
    let e = max_err(&f.decrypt_real(&r), &want);
    assert!(e < 2.0 * MUL_BOUND, "matched add {e:e}");
    let r = f.eval.sub_matched(&fresh, &p).unwrap();
    let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| y - x * x).collect();
    assert!(max_err(&f.decrypt_real(&r), &want) < 2.0 * MUL_BOUND);
}

fn typed_errors(f: &mut Fixture) {
    use hetier_he::Error;
    let a = f.random_real();
    let ca = f.encrypt(&a);
    let mut s = f.eval.scratch();
    // Missing and wrong rotation keys.
    let empty = GaloisKeySet::new();
    assert!(matches!(
        f.eval.rotate_with(&ca, 3, &empty, &mut s),
        Err(Error::MissingGaloisKey { step: Some(3), .. })
    ));
    let k1 = f.keygen().rotation_key(&f.sk, 1).unwrap();
    assert!(matches!(f.eval.rotate(&ca, 2, &k1, &mut s), Err(Error::MissingGaloisKey { .. })));
    assert!(matches!(
        f.eval.conjugate(&ca, &k1, &mut s),
        Err(Error::MissingGaloisKey { step: None, .. })
    ));
    // Degree errors.
    assert!(matches!(f.eval.relinearize(&ca, &f.rk, &mut s), Err(Error::InvalidDegree { .. })));
    let t = f.eval.mul(&ca, &ca).unwrap();
    assert!(matches!(f.eval.mul(&t, &ca), Err(Error::InvalidDegree { .. })));
    assert!(matches!(f.eval.rotate(&t, 1, &k1, &mut s), Err(Error::InvalidDegree { .. })));
    // Levels.
    let l0 = f.eval.drop_to_level(&ca, 0).unwrap();
    assert!(matches!(f.eval.rescale(&l0), Err(Error::LevelExhausted { .. })));
    assert!(matches!(f.eval.drop_to_level(&l0, 1), Err(Error::InvalidLevel { .. })));
    let top = f.ctx.params().max_level();
    assert!(matches!(f.enc.encode_real(&a, top + 1, 1e10), Err(Error::InvalidLevel { .. })));
    let too_many = vec![0.0; f.ctx.params().slots() + 1];
    assert!(matches!(f.enc.encode_real(&too_many, 0, 1e10), Err(Error::TooManyValues { .. })));
    assert!(matches!(f.enc.encode_real(&[f64::NAN], 0, 1e10), Err(Error::EncodingOverflow { .. })));
    // Scale mismatch on a strict add.
    let pt = f.enc.encode_real(&a, top, 2f64.powi(30)).unwrap();
    let c30 = f.encryptor.encrypt_pk(&f.pk, &pt).unwrap();
    assert!(matches!(f.eval.add(&ca, &c30), Err(Error::ScaleMismatch { .. })));
    // acc += c·b: b below acc's level, a scale that does not make b's into acc's, a b of higher
    // degree, and a constant beyond one word.
    let mut acc = f.eval.mul_const(&ca, 1.0, 2f64.powi(20)).unwrap();
    let scaled = 2f64.powi(20);
    assert!(matches!(
        f.eval.mul_const_add_assign(&mut acc, &l0, 1.0, scaled),
        Err(Error::InvalidLevel { .. })
    ));
    assert!(matches!(
        f.eval.mul_const_add_assign(&mut acc, &ca, 1.0, 2f64.powi(21)),
        Err(Error::ScaleMismatch { .. })
    ));
    assert!(matches!(
        f.eval.mul_const_add_assign(&mut acc, &t, 1.0, scaled * ca.scale() / t.scale()),
        Err(Error::InvalidDegree { .. })
    ));
    assert!(matches!(
        f.eval.mul_const_add_assign(&mut acc, &ca, 1e300, scaled),
        Err(Error::EncodingOverflow { .. })
    ));
    assert!(matches!(f.eval.add_plain(&ca, &pt), Err(Error::ScaleMismatch { .. })));
    // Objects from another parameter set.
    let other = Fixture::with_params(&{
        let mut b = ParamsBuilder::new(f.ctx.params().log_n());
        b.q_bits(45, &[38]).special_bits(48).dnum(1);
        b.build().unwrap()
    });
    let mut o = other;
    let co = o.encrypt(&a[..8]);
    assert!(matches!(f.eval.add(&ca, &co), Err(Error::ParamsMismatch { .. })));
    assert!(matches!(
        f.eval.relinearize(&f.eval.mul(&ca, &ca).unwrap(), &o.rk, &mut s),
        Err(Error::ParamsMismatch { .. })
    ));
    assert!(matches!(Decryptor::new(&f.ctx, &o.sk), Err(Error::ParamsMismatch { .. })));
    assert!(matches!(
        f.encryptor.encrypt_pk(&o.pk, &f.enc.encode_real(&a, 0, 1e10).unwrap()),
        Err(Error::ParamsMismatch { .. })
    ));
}

/// Products, relinearisation, hoisting and encryption into a caller's buffers (what a runtime
/// with every ciphertext-sized buffer in its store uses): the allocating forms' exact words,
/// key-switch scratch sized for a level (`Scratch::with_buffers`) that refuses a higher one,
/// and scratch sizes the plan-side size model agrees with.
fn caller_buffers(f: &mut Fixture) {
    let a = f.random_real();
    let ca = f.encrypt(&a);
    let p = f.ctx.params().clone();
    let top = p.max_level();
    let n = p.n();
    let mut s = f.eval.scratch();
    let want = f.eval.mul_relin(&ca, &ca, &f.rk, &mut s).unwrap();
    let sized = |level: usize, dec: bool| {
        Scratch::<Vec<u64>>::with_buffers(&f.ctx, level, dec, |w| {
            Ok::<_, std::convert::Infallible>(vec![u64::MAX; w])
        })
        .unwrap()
    };
    let (mut tensor, mut out) = (vec![u64::MAX; 3 * (top + 1) * n], vec![0; 2 * (top + 1) * n]);
    let mut top_scratch = sized(top, true);
    let got = f
        .eval
        .mul_relin_into(&ca, &ca, &f.rk, &mut top_scratch, &mut tensor[..], &mut out[..])
        .unwrap();
    assert_eq!(got.as_words(), want.as_words());
    assert_eq!(f.eval.mul_into(&ca, &ca, &mut tensor[..]).unwrap().as_words(), {
        f.eval.mul(&ca, &ca).unwrap().as_words()
    });
    // Scratch sized for a lower level serves that level and refuses the top one.
    let low = f.eval.drop_to_level(&ca, top - 1).unwrap();
    let mut low_scratch = sized(top - 1, true);
    let l_words = 2 * top * n;
    let got = f
        .eval
        .mul_relin_into(&low, &low, &f.rk, &mut low_scratch, &mut tensor[..3 * top * n], {
            &mut out[..l_words]
        })
        .unwrap();
    assert_eq!(got.as_words(), f.eval.mul_relin(&low, &low, &f.rk, &mut s).unwrap().as_words());
    assert!(matches!(
        f.eval.mul_relin_into(&ca, &ca, &f.rk, &mut low_scratch, &mut tensor[..], &mut out[..]),
        Err(hetier_he::Error::BufferLength { .. })
    ));
    // Hoisting into caller buffers, with a scratch that has no decomposition buffer.
    let mut kg = f.keygen();
    let key = kg.rotation_key(&f.sk, 3).unwrap();
    let (c0w, decw) = HoistedCiphertext::<Vec<u64>>::words_at(&f.ctx, top);
    let mut no_dec = sized(top, false);
    let h = f.eval.hoist_into(&ca, &mut no_dec, vec![0; c0w], vec![0; decw]).unwrap();
    let got = f.eval.rotate_hoisted_into(&h, 3, &key, &mut no_dec, &mut out[..]).unwrap();
    assert_eq!(got.as_words(), f.eval.rotate(&ca, 3, &key, &mut s).unwrap().as_words());
    // A plain rotation needs the decomposition buffer.
    assert!(matches!(
        f.eval.rotate_into(&ca, 3, &key, &mut no_dec, &mut out[..]),
        Err(hetier_he::Error::BufferLength { .. })
    ));
    // Encoding and encryption into buffers: the same words from the same randomness.
    let pt = f.enc.encode_real(&a, top, p.scale()).unwrap();
    let mut pbuf = vec![u64::MAX; (top + 1) * n];
    let pt2 = f.enc.encode_real_into(&a, top, p.scale(), &mut pbuf[..]).unwrap();
    assert_eq!(pt2.as_words(), pt.as_words());
    let c1 = Encryptor::with_seed(&f.ctx, [5; 32]).encrypt_sk(&f.sk, &pt).unwrap();
    let c2 = Encryptor::with_seed(&f.ctx, [5; 32]).encrypt_sk_into(&f.sk, &pt2, &mut out[..]);
    assert_eq!(c2.unwrap().as_words(), c1.as_words());
    // Decryption into a buffer and decoding where it lies give the heap path's slots exactly.
    let dec = Decryptor::new(&f.ctx, &f.sk).unwrap();
    let want = f.enc.decode(&dec.decrypt(&c1).unwrap()).unwrap();
    let mut dbuf = vec![u64::MAX; (top + 1) * n];
    let got = f.enc.decode_in_place(dec.decrypt_into(&c1, &mut dbuf[..]).unwrap()).unwrap();
    assert_eq!(got, want);
    assert!(max_err(&f.enc.decode_real(&dec.decrypt(&c1).unwrap()).unwrap(), &a) < 1e-6);
    let real = f.enc.decode_real_in_place(dec.decrypt_into(&c1, &mut dbuf[..]).unwrap()).unwrap();
    assert_eq!(real, want.iter().map(|z| z.re).collect::<Vec<_>>());
    // Keys made into caller buffers (a store block): the heap path's words and seeds from the
    // same generator state, whatever the buffer held; a buffer of another length is refused.
    let words = switch_key_expanded_words(&f.ctx);
    let (mut heap, mut into) = (f.keygen(), f.keygen());
    let g = f.ctx.galois_element_for_step(5);
    let want = [heap.galois_key(&f.sk, g).unwrap().key, heap.relin_key(&f.sk).unwrap().key];
    let mut kbuf = vec![u64::MAX; words];
    let got = into.galois_key_into(&f.sk, g, &mut kbuf[..]).unwrap();
    assert_eq!((got.as_words(), got.seed()), (want[0].as_words(), want[0].seed()));
    let got = into.relin_key_into(&f.sk, &mut kbuf[..]).unwrap();
    assert_eq!((got.as_words(), got.seed()), (want[1].as_words(), want[1].seed()));
    let short = into.galois_key_into(&f.sk, g, &mut kbuf[..words - 1]);
    assert!(matches!(short, Err(hetier_he::Error::BufferLength { .. })));
    // The plan's size model prices exactly the buffers the scratch is made of.
    let sizes = hetier_he::nn::program::SizeModel::new(&p);
    for level in [0, top] {
        for dec in [false, true] {
            let bytes = Scratch::<Vec<u64>>::bytes_at(&p, level, dec);
            assert_eq!(sizes.key_switch_scratch(level, dec), bytes, "level {level}, {dec}");
        }
    }
}

macro_rules! suite {
    ($modname:ident, $preset:expr, $($attr:meta)?) => {
        mod $modname {
            use super::*;
            $(#[$attr])? #[test] fn encode_roundtrip() { super::encode_roundtrip(&mut Fixture::new($preset)) }
            $(#[$attr])? #[test] fn encrypt_decrypt() { super::encrypt_decrypt(&mut Fixture::new($preset)) }
            $(#[$attr])? #[test] fn linear_ops() { super::linear_ops(&mut Fixture::new($preset)) }
            $(#[$attr])? #[test] fn products() { super::products(&mut Fixture::new($preset)) }
            $(#[$attr])? #[test] fn chain_to_last_level() { super::chain_to_last_level(&mut Fixture::new($preset)) }
            $(#[$attr])? #[test] fn rotations() { super::rotations(&mut Fixture::new($preset)) }
            $(#[$attr])? #[test] fn level_and_scale_matching() { super::level_and_scale_matching(&mut Fixture::new($preset)) }
            $(#[$attr])? #[test] fn caller_buffers() { super::caller_buffers(&mut Fixture::new($preset)) }
            $(#[$attr])? #[test] fn typed_errors() { super::typed_errors(&mut Fixture::new($preset)) }
        }
    };
}

suite!(n13, Preset::N13,);
suite!(n14, Preset::N14,);
suite!(n15, Preset::N15, ignore = "long: N = 2^15");
suite!(n16, Preset::N16, ignore = "long: N = 2^16");
