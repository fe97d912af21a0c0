//! Constant linear combinations of RNS limbs — the inner loop of batch-major dense and
//! convolution layers, where each weight is one integer per limb (a constant product needs no
//! NTT): `acc_k[c] = acc_k[c] + Σ_j w_{k,j}·x_j[c] mod q` for K outputs sharing J inputs.
//!
//! Runs on AVX-512 IFMA for q < 2^50 (unreduced 52-bit lo/hi sums, one fold per chunk of
//! terms) and on u128 sums otherwise; both give the same words.

use crate::error::{Error, Result};
use crate::math::simd;
use crate::math::zq::Modulus;

/// `acc[k][c] = (acc[k][c] + Σ_j w[k·J + j]·x[j][c]) mod q` with J = `x.len()`; every word and
/// weight fully reduced modulo q, every slice of the same length.
pub fn lin_comb_acc(m: &Modulus, x: &[&[u64]], w: &[u64], acc: &mut [&mut [u64]]) -> Result<()> {
    let Some(n) = acc.first().map(|o| o.len()) else { return Ok(()) };
    for s in x.iter().map(|s| s.len()).chain(acc.iter().map(|o| o.len())) {
        if s != n {
            return Err(Error::DegreeMismatch { expected: n, found: s });
        }
    }
    if w.len() != x.len() * acc.len() {
        return Err(Error::LimbMismatch { expected: x.len() * acc.len(), found: w.len() });
    }
    if let Some(&bad) = w.iter().find(|&&v| v >= m.value()) {
        return Err(Error::InvalidParameter {
            name: "weight",
            reason: format!("{bad} is not reduced modulo {}", m.value()),
        });
    }
    if simd::lincomb(m, x, w, acc) {
        return Ok(());
    }
    lin_comb_portable(m, x, w, acc);
    Ok(())
}

/// The u128 reference of [`lin_comb_acc`] (same contract, no checks).
pub(crate) fn lin_comb_portable(m: &Modulus, x: &[&[u64]], w: &[u64], acc: &mut [&mut [u64]]) {
    let terms = x.len();
    // Σ of up to 2^(128 − 2·bits) products fits a u128; fold more often than that.
    let chunk = 1usize << (128 - 2 * m.bits()).clamp(0, 20);
    for (k, a) in acc.iter_mut().enumerate() {
        let row = &w[k * terms..(k + 1) * terms];
        for (c, out) in a.iter_mut().enumerate() {
            let mut total = *out;
            for (xs, ws) in x.chunks(chunk).zip(row.chunks(chunk)) {
                let s: u128 = xs.iter().zip(ws).map(|(xj, &wj)| xj[c] as u128 * wj as u128).sum();
                total = m.add(total, m.reduce_u128(s));
            }
            *out = total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(q: u64, n: usize, terms: usize, outs: usize, seed: u64) {
        let m = Modulus::new(q).unwrap();
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) % q
        };
        let x: Vec<Vec<u64>> = (0..terms).map(|_| (0..n).map(|_| next()).collect()).collect();
        let w: Vec<u64> = (0..terms * outs).map(|_| next()).collect();
        let start: Vec<Vec<u64>> = (0..outs).map(|_| (0..n).map(|_| next()).collect()).collect();
        let xr: Vec<&[u64]> = x.iter().map(|v| v.as_slice()).collect();
        let mut got = start.clone();
        let mut want = start.clone();
        {
            let mut g: Vec<&mut [u64]> = got.iter_mut().map(|v| v.as_mut_slice()).collect();
            lin_comb_acc(&m, &xr, &w, &mut g).unwrap();
            let mut r: Vec<&mut [u64]> = want.iter_mut().map(|v| v.as_mut_slice()).collect();
            lin_comb_portable(&m, &xr, &w, &mut r);
        }
        // The naive definition, one term at a time.
        for k in 0..outs {
            for c in 0..n {
                let mut v = start[k][c];
                for j in 0..terms {
                    v = m.add(v, m.mul(x[j][c], w[k * terms + j]));
                }
                assert_eq!(want[k][c], v, "portable, output {k} word {c}");
            }
        }
        assert_eq!(got, want, "q = {q}, {terms} terms, {outs} outputs");
    }

    #[test]
    fn simd_and_portable_agree_with_the_definition() {
        // 30-, 40-, 49- and 60-bit primes (the last always portable); chunk boundaries at 15.
        for &q in &[1_073_479_681u64, 1_099_511_480_321, 562_949_953_216_513, (1 << 60) - 93] {
            for &(terms, outs) in &[(1, 1), (15, 4), (16, 5), (33, 9), (100, 3)] {
                check(q, 64, terms, outs, q ^ terms as u64);
            }
        }
    }

    #[test]
    fn typed_errors_for_bad_shapes() {
        let m = Modulus::new(1_099_511_480_321).unwrap();
        let x = [vec![0u64; 8]];
        let xr: Vec<&[u64]> = x.iter().map(|v| v.as_slice()).collect();
        let mut a = vec![0u64; 16];
        let mut acc = [a.as_mut_slice()];
        assert!(matches!(
            lin_comb_acc(&m, &xr, &[1], &mut acc),
            Err(Error::DegreeMismatch { expected: 16, found: 8 })
        ));
        let mut a = vec![0u64; 8];
        let mut acc = [a.as_mut_slice()];
        assert!(matches!(
            lin_comb_acc(&m, &xr, &[1, 2], &mut acc),
            Err(Error::LimbMismatch { expected: 1, found: 2 })
        ));
        assert!(lin_comb_acc(&m, &xr, &[m.value()], &mut acc).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn linear_in_the_weights(seed in any::<u64>(), terms in 1usize..40, outs in 1usize..7) {
            check(1_099_511_480_321, 16, terms, outs, seed);
        }
    }
}
