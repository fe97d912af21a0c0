//! Quick smoke tests of each CKKS operation at N = 2^13.
mod common;
use common::*;
use hetier_he::ckks::*;

#[test]
fn smoke_n13() {
    let mut f = Fixture::new(Preset::N13);
    let a = f.random_real();
    let b = f.random_real();
    let ca = f.encrypt(&a);
    let cb = f.encrypt(&b);
    let e = max_err(&f.decrypt_real(&ca), &a);
    println!("encdec {e:e}");
    let sum = f.eval.add(&ca, &cb).unwrap();
    let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    println!("add {:e}", max_err(&f.decrypt_real(&sum), &want));
    let mut s = f.eval.scratch();
    let prod = f.eval.mul_relin(&ca, &cb, &f.rk, &mut s).unwrap();
    let prod = f.eval.rescale(&prod).unwrap();
    let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    println!("mul {:e}", max_err(&f.decrypt_real(&prod), &want));
    let mut kg = f.keygen();
    let gk = kg.rotation_key(&f.sk, 1).unwrap();
    let r = f.eval.rotate(&ca, 1, &gk, &mut s).unwrap();
    let mut want = a.clone();
    want.rotate_left(1);
    println!("rot {:e}", max_err(&f.decrypt_real(&r), &want));
}
