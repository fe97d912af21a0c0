//! Sums of products over RNS limbs — the inner product of hybrid key switching:
//! `out_k[c] = Σ_j a_j[src(c)] · b_{k,j}[c] mod q`, where the a_j are the ModUp'd digits of
//! one limb and src is the identity or an NTT-form automorphism (hoisted rotations read the
//! digits through the permutation instead of materialising the rotated copy).
//!
//! Runs for one or two outputs on AVX-512 IFMA (52-bit lo/hi accumulators folded every 15
//! terms) for q < 2^50, on AVX-512 F/DQ (128-bit sums reduced every 2^(63 − bits) − 1 terms)
//! for wider q, else on u128 accumulators; all give the same words.

use crate::error::{Error, Result};
use crate::math::automorphism::Automorphism;
use crate::math::simd;
use crate::math::zq::Modulus;

/// `out[k][c] = Σ_j a[j][src(c)] · b[k·J + j][c] mod q` with J = `a.len()`; all inputs fully
/// reduced modulo q, every slice of the same length N; `auto` (if given) must have degree N.
pub fn dot_product(
    m: &Modulus,
    a: &[&[u64]],
    b: &[&[u64]],
    auto: Option<&Automorphism>,
    out: &mut [&mut [u64]],
) -> Result<()> {
    let Some(n) = out.first().map(|o| o.len()) else { return Ok(()) };
    for s in a.iter().chain(b.iter()).map(|s| s.len()).chain(out.iter().map(|o| o.len())) {
        if s != n {
            return Err(Error::DegreeMismatch { expected: n, found: s });
        }
    }
    if b.len() != out.len() * a.len() {
        return Err(Error::LimbMismatch { expected: out.len() * a.len(), found: b.len() });
    }
    let perm = match auto {
        Some(au) if au.n() != n => {
            return Err(Error::DegreeMismatch { expected: n, found: au.n() })
        }
        Some(au) => Some(au.ntt_source()),
        None => None,
    };
    match perm {
        None => {
            if simd::dot(m, a, b, out) {
                return Ok(());
            }
        }
        Some(p) => {
            if dot_permuted_simd(m, a, b, p, out) {
                return Ok(());
            }
        }
    }
    dot_portable(m, a, b, perm, out);
    Ok(())
}

/// The permuted case on the SIMD kernel: each block of coefficients of every digit is first
/// gathered through the permutation into a stack buffer by scalar loads (much cheaper than
/// AVX-512 gathers), then multiplied contiguously. `false` if the SIMD path does not apply.
fn dot_permuted_simd(
    m: &Modulus,
    a: &[&[u64]],
    b: &[&[u64]],
    perm: &[u32],
    out: &mut [&mut [u64]],
) -> bool {
    const BUF: usize = 4096;
    const MAX_DIGITS: usize = 64;
    let digits = a.len();
    let n = perm.len();
    let outs = out.len();
    if digits == 0 || digits > MAX_DIGITS || !simd::dot_supported(m, n, outs) {
        return false;
    }
    let block = (BUF / digits) & !7;
    let mut buf = [0u64; BUF];
    let mut start = 0;
    while start < n {
        let len = block.min(n - start);
        let idx = &perm[start..start + len];
        for (j, aj) in a.iter().enumerate() {
            for (d, &i) in buf[j * len..(j + 1) * len].iter_mut().zip(idx) {
                *d = aj[i as usize];
            }
        }
        let mut a_blk: [&[u64]; MAX_DIGITS] = [&[]; MAX_DIGITS];
        for (j, s) in a_blk.iter_mut().take(digits).enumerate() {
            *s = &buf[j * len..(j + 1) * len];
        }
        let mut b_blk: [&[u64]; 2 * MAX_DIGITS] = [&[]; 2 * MAX_DIGITS];
        for (s, bj) in b_blk.iter_mut().zip(b) {
            *s = &bj[start..start + len];
        }
        let done = match out {
            [o] => {
                simd::dot(m, &a_blk[..digits], &b_blk[..digits], &mut [&mut o[start..start + len]])
            }
            [o0, o1] => simd::dot(
                m,
                &a_blk[..digits],
                &b_blk[..2 * digits],
                &mut [&mut o0[start..start + len], &mut o1[start..start + len]],
            ),
            _ => false,
        };
        if !done {
            // Unreachable after `dot_supported`; the portable kernel would redo every block.
            return false;
        }
        start += len;
    }
    true
}

/// The portable kernel (shapes already validated).
fn dot_portable(
    m: &Modulus,
    a: &[&[u64]],
    b: &[&[u64]],
    perm: Option<&[u32]>,
    out: &mut [&mut [u64]],
) {
    const CHUNK: usize = 64;
    let digits = a.len();
    let n = out[0].len();
    // Products of two values below 2^62 are below 2^124: 15 fit a u128 beside a reduced value.
    let lazy = 15;
    let mut acc = [0u128; CHUNK];
    for (k, o) in out.iter_mut().enumerate() {
        for start in (0..n).step_by(CHUNK) {
            let len = CHUNK.min(n - start);
            acc[..len].fill(0);
            for j in 0..digits {
                let bj = &b[k * digits + j][start..start + len];
                match perm {
                    None => {
                        for ((s, &x), &y) in
                            acc[..len].iter_mut().zip(&a[j][start..start + len]).zip(bj)
                        {
                            *s += x as u128 * y as u128;
                        }
                    }
                    Some(p) => {
                        for ((s, &i), &y) in
                            acc[..len].iter_mut().zip(&p[start..start + len]).zip(bj)
                        {
                            *s += a[j][i as usize] as u128 * y as u128;
                        }
                    }
                }
                if (j + 1) % lazy == 0 {
                    acc[..len].iter_mut().for_each(|s| *s = m.reduce_u128(*s) as u128);
                }
            }
            for (d, &s) in o[start..start + len].iter_mut().zip(&acc[..len]) {
                *d = m.reduce_u128(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::automorphism::galois_element_for_rotation;
    use crate::math::primes::generate_ntt_primes;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    fn reference(
        m: &Modulus,
        a: &[Vec<u64>],
        b: &[Vec<u64>],
        perm: Option<&[u32]>,
        outs: usize,
    ) -> Vec<Vec<u64>> {
        let n = a[0].len();
        (0..outs)
            .map(|k| {
                (0..n)
                    .map(|c| {
                        let src = perm.map_or(c, |p| p[c] as usize);
                        a.iter().enumerate().fold(0u64, |s, (j, aj)| {
                            m.add(s, m.mul(aj[src], b[k * a.len() + j][c]))
                        })
                    })
                    .collect()
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// The SIMD kernels (when present) and portable all equal the scalar reference, with
        /// and without a Galois permutation, for 1..40 digits (crossing the IFMA kernel's
        /// 15-term fold and the wide kernel's 1-, 3- and 7-term folds) and 1–3 outputs.
        #[test]
        fn matches_reference(bits_i in 0usize..7, digits in 1usize..40, outs in 1usize..4, rot in any::<bool>(), seed in any::<u64>()) {
            let bits = [30u32, 45, 50, 51, 60, 61, 62][bits_i];
            let log_n = 5;
            let n = 1usize << log_n;
            let m = Modulus::new(generate_ntt_primes(bits, log_n, 1, &[]).unwrap()[0]).unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut gen = || -> Vec<u64> { (0..n).map(|_| if rng.gen_bool(0.1) { m.value() - 1 } else { rng.gen_range(0..m.value()) }).collect() };
            let a: Vec<Vec<u64>> = (0..digits).map(|_| gen()).collect();
            let b: Vec<Vec<u64>> = (0..digits * outs).map(|_| gen()).collect();
            let auto = Automorphism::new(log_n, galois_element_for_rotation(3, log_n).unwrap()).unwrap();
            let au = rot.then_some(&auto);
            let want = reference(&m, &a, &b, au.map(|x| x.ntt_source()), outs);
            let ar: Vec<&[u64]> = a.iter().map(|v| v.as_slice()).collect();
            let br: Vec<&[u64]> = b.iter().map(|v| v.as_slice()).collect();
            let mut got = vec![vec![0u64; n]; outs];
            let mut gr: Vec<&mut [u64]> = got.iter_mut().map(|v| v.as_mut_slice()).collect();
            dot_product(&m, &ar, &br, au, &mut gr).unwrap();
            prop_assert_eq!(&got, &want);
            let mut port = vec![vec![0u64; n]; outs];
            let mut pr: Vec<&mut [u64]> = port.iter_mut().map(|v| v.as_mut_slice()).collect();
            dot_portable(&m, &ar, &br, au.map(|x| x.ntt_source()), &mut pr);
            prop_assert_eq!(&port, &want);
        }
    }

    /// The wide kernel's sums at their largest: every word q − 1, so each sum before a fold
    /// is within a few q² of the bound its reduction takes, at every width it serves and for
    /// digit counts on both sides of each fold.
    #[test]
    fn wide_sums_at_their_bound_reduce_exactly() {
        let log_n = 4;
        let n = 1usize << log_n;
        for bits in 51..=62u32 {
            let q = generate_ntt_primes(bits, log_n, 1, &[]).unwrap()[0];
            let m = Modulus::new(q).unwrap();
            for digits in 1..=17 {
                for outs in 1..=2 {
                    let a = vec![vec![q - 1; n]; digits];
                    let b = vec![vec![q - 1; n]; digits * outs];
                    let want = reference(&m, &a, &b, None, outs);
                    let ar: Vec<&[u64]> = a.iter().map(|v| v.as_slice()).collect();
                    let br: Vec<&[u64]> = b.iter().map(|v| v.as_slice()).collect();
                    let mut got = vec![vec![0u64; n]; outs];
                    let mut gr: Vec<&mut [u64]> =
                        got.iter_mut().map(|v| v.as_mut_slice()).collect();
                    dot_product(&m, &ar, &br, None, &mut gr).unwrap();
                    assert_eq!(got, want, "{bits} bits, {digits} digits, {outs} outputs");
                    // Every word q − 1 sums to the digit count times one.
                    assert!(got.iter().flatten().all(|&x| x == digits as u64 % q));
                }
            }
        }
    }

    /// Several permuted blocks (N = 1024, 9 digits → 448-coefficient blocks, a partial last).
    #[test]
    fn permuted_blocks_match_portable() {
        let log_n = 10;
        let n = 1 << log_n;
        let m = Modulus::new(generate_ntt_primes(50, log_n, 1, &[]).unwrap()[0]).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let a: Vec<Vec<u64>> =
            (0..9).map(|_| (0..n).map(|_| rng.gen_range(0..m.value())).collect()).collect();
        let b: Vec<Vec<u64>> =
            (0..18).map(|_| (0..n).map(|_| rng.gen_range(0..m.value())).collect()).collect();
        let auto =
            Automorphism::new(log_n, galois_element_for_rotation(-7, log_n).unwrap()).unwrap();
        let want = reference(&m, &a, &b, Some(auto.ntt_source()), 2);
        let ar: Vec<&[u64]> = a.iter().map(|v| v.as_slice()).collect();
        let br: Vec<&[u64]> = b.iter().map(|v| v.as_slice()).collect();
        let (mut o0, mut o1) = (vec![0u64; n], vec![0u64; n]);
        dot_product(&m, &ar, &br, Some(&auto), &mut [&mut o0, &mut o1]).unwrap();
        assert_eq!(vec![o0, o1], want);
    }

    #[test]
    fn shape_errors() {
        let m = Modulus::new(generate_ntt_primes(40, 5, 1, &[]).unwrap()[0]).unwrap();
        let v = vec![1u64; 32];
        let short = vec![1u64; 16];
        let mut o = vec![0u64; 32];
        let mut outs: Vec<&mut [u64]> = vec![o.as_mut_slice()];
        assert!(matches!(
            dot_product(&m, &[&v], &[&v, &v], None, &mut outs),
            Err(Error::LimbMismatch { .. })
        ));
        assert!(matches!(
            dot_product(&m, &[&short], &[&v], None, &mut outs),
            Err(Error::DegreeMismatch { .. })
        ));
        let wrong = Automorphism::new(6, 5).unwrap();
        assert!(matches!(
            dot_product(&m, &[&v], &[&v], Some(&wrong), &mut outs),
            Err(Error::DegreeMismatch { .. })
        ));
        dot_product(&m, &[&v], &[&v], None, &mut outs).unwrap();
        assert!(o.iter().all(|&x| x == 1));
    }
}
