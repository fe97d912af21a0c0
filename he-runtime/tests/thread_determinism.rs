//! The CKKS operations a bootstrap and ResNet-20 use (products with relinearisation, rescale,
//! rotations, conjugation, double-hoisted rotation sums, key switching, plaintext products,
//! add/sub) give the same words on any number of threads, and the right slots. The ring is
//! log N = 14 so the coefficient-chunked loops (basis-extension counts) split into several
//! tasks.
mod common;
use common::*;
use hetier_he::ckks::*;

#[test]
fn every_operation_is_bit_identical_for_any_thread_count() {
    let mut f = Fixture::new(Preset::N14);
    let mut kg = f.keygen();
    let steps: Vec<i64> = vec![1, 2, 5, -3];
    let mut keys = GaloisKeySet::new();
    for &s in &steps {
        keys.insert(kg.rotation_key(&f.sk, s).unwrap());
    }
    let conj = kg.galois_key(&f.sk, f.ctx.galois_element_conjugate()).unwrap();
    let x = f.random_real();
    let y = f.random_real();
    let (a, b) = (f.encrypt(&x), f.encrypt(&y));
    let top = f.ctx.params().max_level();
    let scale = f.ctx.params().scale();
    let pt = f.enc.encode_real(&y, top, scale).unwrap();
    let diags: Vec<ExtendedPlaintext> = steps
        .iter()
        .map(|_| {
            let d: Vec<Complex64> =
                f.random_real().iter().map(|&v| Complex64::new(v, 0.0)).collect();
            f.enc.encode_extended(&d, top, scale).unwrap()
        })
        .collect();
    let terms: Vec<(i64, &ExtendedPlaintext)> = steps.iter().copied().zip(&diags).collect();
    let run = |threads: usize| -> Vec<Ciphertext> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let e = &f.eval;
            let mut s = e.scratch();
            let prod = e.rescale(&e.mul_relin(&a, &b, &f.rk, &mut s).unwrap()).unwrap();
            let rot = e.rotate_with(&a, 5, &keys, &mut s).unwrap();
            let cj = e.conjugate(&a, &conj, &mut s).unwrap();
            let sum = e.rotate_mul_sum(&a, &terms, &keys, &mut s).unwrap();
            let pp = e.rescale(&e.mul_plain(&a, &pt).unwrap()).unwrap();
            vec![prod, rot, cj, sum, pp, e.add(&a, &b).unwrap(), e.sub(&a, &b).unwrap()]
        })
    };
    let one = run(1);
    // The single-thread results are right (so identity below means right on every count).
    let prod: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p * q).collect();
    assert!(max_err(&f.decrypt_real(&one[0]), &prod) < 1e-5, "product");
    let mut rot = x.clone();
    rot.rotate_left(5);
    assert!(max_err(&f.decrypt_real(&one[1]), &rot) < 1e-5, "rotation");
    assert!(max_err(&f.decrypt_real(&one[2]), &x) < 1e-5, "conjugation of a real vector");
    assert!(max_err(&f.decrypt_real(&one[4]), &prod) < 1e-5, "plaintext product");
    let add: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p + q).collect();
    let sub: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p - q).collect();
    assert!(max_err(&f.decrypt_real(&one[5]), &add) < 1e-5, "add");
    assert!(max_err(&f.decrypt_real(&one[6]), &sub) < 1e-5, "sub");
    for threads in [2, 3] {
        let other = run(threads);
        for (k, (p, q)) in one.iter().zip(&other).enumerate() {
            assert_eq!(p.level(), q.level());
            assert!(p.as_words() == q.as_words(), "result {k} differs on {threads} threads");
        }
    }
}
