//! `Evaluator::rotate_mul_sum` (double hoisting) against the plaintext Σ_j d_j ⊙ R^(k_j)(x)
//! and against the same sum built from plain rotations, plus its typed errors.
mod common;
use common::*;
use hetier_he::ckks::*;
use hetier_he::Error;

fn rotated(v: &[Complex64], step: i64) -> Vec<Complex64> {
    let mut r = v.to_vec();
    r.rotate_left(step.rem_euclid(v.len() as i64) as usize);
    r
}

#[test]
fn rotation_sum_matches_plaintext_and_plain_rotations() {
    let mut f = Fixture::new(Preset::N13);
    let mut kg = f.keygen();
    // Sixteen terms: the unrotated one, positive and negative steps.
    let steps: Vec<i64> = (0..13).chain([-1, -5, 300]).collect();
    let mut keys = GaloisKeySet::new();
    for &s in steps.iter().filter(|&&s| s != 0) {
        keys.insert(kg.rotation_key(&f.sk, s).unwrap());
    }
    let x = f.random_complex();
    let diags: Vec<Vec<Complex64>> = steps.iter().map(|_| f.random_complex()).collect();
    let want: Vec<Complex64> = (0..x.len())
        .map(|i| {
            steps
                .iter()
                .zip(&diags)
                .fold(Complex64::default(), |acc, (&s, d)| acc + d[i] * rotated(&x, s)[i])
        })
        .collect();
    let scale = f.ctx.params().scale();
    let top = f.ctx.params().max_level();
    let mut s = f.eval.scratch();
    for level in [top, 1] {
        let pt = f.enc.encode(&x, level, scale).unwrap();
        let ct = f.encryptor.encrypt_pk(&f.pk, &pt).unwrap();
        let ext: Vec<ExtendedPlaintext> =
            diags.iter().map(|d| f.enc.encode_extended(d, level, scale).unwrap()).collect();
        let terms: Vec<(i64, &ExtendedPlaintext)> = steps.iter().copied().zip(&ext).collect();
        let sum = f.eval.rotate_mul_sum(&ct, &terms, &keys, &mut s).unwrap();
        assert_eq!(sum.level(), level);
        let hoisted = f.decrypt(&f.eval.rescale(&sum).unwrap());
        let e = max_err_c(&hoisted, &want);
        assert!(e < 1e-5, "level {level}: double-hoisted sum error {e:e}");
        // The same sum from plain rotations and Q-only plaintexts.
        let mut acc: Option<Ciphertext> = None;
        for (&st, d) in steps.iter().zip(&diags) {
            let r = if st == 0 {
                ct.clone()
            } else {
                f.eval.rotate_with(&ct, st, &keys, &mut s).unwrap()
            };
            let t = f.eval.mul_plain(&r, &f.enc.encode(d, level, scale).unwrap()).unwrap();
            acc = Some(match acc {
                None => t,
                Some(a) => f.eval.add(&a, &t).unwrap(),
            });
        }
        let plain = f.decrypt(&f.eval.rescale(&acc.unwrap()).unwrap());
        let e = max_err_c(&hoisted, &plain);
        assert!(e < 1e-5, "level {level}: double-hoisted vs plain {e:e}");
    }
}

#[test]
fn rotation_sum_rejects_bad_terms() {
    let mut f = Fixture::new(Preset::N13);
    let mut kg = f.keygen();
    let mut keys = GaloisKeySet::new();
    keys.insert(kg.rotation_key(&f.sk, 1).unwrap());
    let x = f.random_real();
    let ct = f.encrypt(&x);
    let top = f.ctx.params().max_level();
    let scale = f.ctx.params().scale();
    let d = f.random_complex();
    let pt = f.enc.encode_extended(&d, top, scale).unwrap();
    let low = f.enc.encode_extended(&d, top - 1, scale).unwrap();
    let other = f.enc.encode_extended(&d, top, scale * 2.0).unwrap();
    let mut s = f.eval.scratch();
    let r = f.eval.rotate_mul_sum(&ct, &[], &keys, &mut s);
    assert!(matches!(r, Err(Error::InvalidParameter { .. })), "{r:?}");
    let r = f.eval.rotate_mul_sum(&ct, &[(1, &low)], &keys, &mut s);
    assert!(matches!(r, Err(Error::LevelMismatch { .. })), "{r:?}");
    let r = f.eval.rotate_mul_sum(&ct, &[(1, &pt), (0, &other)], &keys, &mut s);
    assert!(matches!(r, Err(Error::ScaleMismatch { .. })), "{r:?}");
    let r = f.eval.rotate_mul_sum(&ct, &[(1, &pt), (2, &pt)], &keys, &mut s);
    assert!(matches!(r, Err(Error::MissingGaloisKey { step: Some(2), .. })), "{r:?}");
    let prod = f.eval.mul(&ct, &ct).unwrap();
    let r = f.eval.rotate_mul_sum(&prod, &[(1, &pt)], &keys, &mut s);
    assert!(matches!(r, Err(Error::InvalidDegree { .. })), "{r:?}");
}
