//! CRT reconstruction of RNS coefficients to big integers and to centered `f64` (for decoding).

use crate::error::{Error, Result};
use crate::math::bigint;
use crate::math::zq::Modulus;

/// Most primes a reconstructor accepts (keeps the big integers on the stack).
pub const MAX_CRT_MODULI: usize = 64;
/// Words of the largest product of [`MAX_CRT_MODULI`] primes, plus one spare.
const MAX_WORDS: usize = MAX_CRT_MODULI + 1;

/// Precomputed constants to map residues modulo q_0..q_{k-1} back to an integer modulo Q.
///
/// x = Σ_i [x_i · (Q/q_i)^{-1}]_{q_i} · (Q/q_i) − r·Q, where r is the rounded sum of the
/// fractions [x_i · (Q/q_i)^{-1}]_{q_i} / q_i, so the result is already centered.
#[derive(Clone, Debug)]
pub struct CrtReconstructor {
    moduli: Vec<Modulus>,
    q_hat_inv: Vec<(u64, u64)>,
    /// Q/q_i, `words` little-endian words each, limb-major.
    q_hat: Vec<u64>,
    q: Vec<u64>,
    inv_q: Vec<f64>,
    words: usize,
}

impl CrtReconstructor {
    /// Constants for the pairwise coprime `moduli` (at most [`MAX_CRT_MODULI`]).
    pub fn new(moduli: &[Modulus]) -> Result<Self> {
        if moduli.is_empty() || moduli.len() > MAX_CRT_MODULI {
            return Err(Error::LimbMismatch { expected: MAX_CRT_MODULI, found: moduli.len() });
        }
        let k = moduli.len();
        let words = k + 1;
        let product = |skip: Option<usize>| {
            let mut acc = vec![0u64; words];
            acc[0] = 1;
            for (j, m) in moduli.iter().enumerate() {
                if Some(j) != skip {
                    let prev = acc.clone();
                    acc.fill(0);
                    bigint::mul_small_add(&mut acc, &prev[..words - 1], m.value());
                }
            }
            acc
        };
        let q = product(None);
        let mut q_hat = Vec::with_capacity(k * words);
        let mut q_hat_inv = Vec::with_capacity(k);
        for (i, m) in moduli.iter().enumerate() {
            let h = product(Some(i));
            let inv = m.inv(bigint::rem(&h, m))?;
            q_hat_inv.push((inv, m.shoup(inv)));
            q_hat.extend_from_slice(&h);
        }
        let inv_q = moduli.iter().map(|m| 1.0 / m.value() as f64).collect();
        Ok(Self { moduli: moduli.to_vec(), q_hat_inv, q_hat, q, inv_q, words })
    }

    /// The moduli, in order.
    pub fn moduli(&self) -> &[Modulus] {
        &self.moduli
    }

    /// Little-endian words of Q = Π q_i (with one spare top word, zero).
    pub fn modulus_product(&self) -> &[u64] {
        &self.q
    }

    /// Words [`reconstruct`](Self::reconstruct) writes.
    pub fn words(&self) -> usize {
        self.words
    }

    /// Σ t_i·(Q/q_i) into `acc` (words long) and the rounded Σ t_i/q_i.
    fn accumulate(&self, residues: &[u64], acc: &mut [u64]) -> u64 {
        acc.fill(0);
        let mut v = 0.0f64;
        for (i, (&x, m)) in residues.iter().zip(&self.moduli).enumerate() {
            let (w, ws) = self.q_hat_inv[i];
            let t = m.mul_shoup(m.reduce(x), w, ws);
            bigint::mul_small_add(acc, &self.q_hat[i * self.words..(i + 1) * self.words - 1], t);
            v += t as f64 * self.inv_q[i];
        }
        v.round() as u64
    }

    fn check(&self, residues: &[u64]) -> Result<()> {
        if residues.len() != self.moduli.len() {
            return Err(Error::LimbMismatch { expected: self.moduli.len(), found: residues.len() });
        }
        Ok(())
    }

    /// The unique x in [0, Q) with `x ≡ residues[i] (mod q_i)`, as [`words`](Self::words)
    /// little-endian words in `out`.
    pub fn reconstruct(&self, residues: &[u64], out: &mut [u64]) -> Result<()> {
        self.check(residues)?;
        if out.len() != self.words {
            return Err(Error::BufferTooSmall { needed: self.words, found: out.len() });
        }
        let r = self.accumulate(residues, out);
        bigint::mul_small_sub(out, &self.q, r);
        // Rounding may leave x in [-Q/2, 0) or, in rare rounding cases, one Q too low/high.
        if out[self.words - 1] >> 63 == 1 {
            bigint::add_assign(out, &self.q);
        }
        if bigint::ge(out, &self.q) {
            bigint::mul_small_sub(out, &self.q, 1);
        }
        Ok(())
    }

    /// The representative of the residues in (−Q/2, Q/2] as the nearest `f64` (relative error
    /// below 2^-52; ±∞ when it exceeds the f64 range).
    pub fn centered_f64(&self, residues: &[u64]) -> Result<f64> {
        self.check(residues)?;
        let mut buf = [0u64; MAX_WORDS];
        let acc = &mut buf[..self.words];
        let r = self.accumulate(residues, acc);
        bigint::mul_small_sub(acc, &self.q, r);
        if acc[self.words - 1] >> 63 == 1 {
            bigint::negate(acc);
            Ok(-bigint::to_f64(acc))
        } else {
            Ok(bigint::to_f64(acc))
        }
    }

    /// Centered `f64` values of all N coefficients of a limb-major buffer with one limb per
    /// modulus (`data.len() == k · out.len()`).
    pub fn centered_f64_poly(&self, data: &[u64], out: &mut [f64]) -> Result<()> {
        let k = self.moduli.len();
        let n = out.len();
        if data.len() != k * n {
            return Err(Error::BufferTooSmall { needed: k * n, found: data.len() });
        }
        let mut res = [0u64; MAX_CRT_MODULI];
        for (c, o) in out.iter_mut().enumerate() {
            for (i, r) in res[..k].iter_mut().enumerate() {
                *r = data[i * n + c];
            }
            *o = self.centered_f64(&res[..k])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::primes::generate_ntt_primes;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    fn moduli(bits: u32, k: usize) -> Vec<Modulus> {
        generate_ntt_primes(bits, 12, k, &[])
            .unwrap()
            .into_iter()
            .map(|q| Modulus::new(q).unwrap())
            .collect()
    }

    proptest! {
        #[test]
        fn small_basis_matches_u128(x in any::<u128>(), signed in any::<i64>(), k in 1usize..=3) {
            let ms = moduli(40, k);
            let q: u128 = ms.iter().map(|m| m.value() as u128).product();
            let x = x % q;
            let crt = CrtReconstructor::new(&ms).unwrap();
            let res: Vec<u64> = ms.iter().map(|m| (x % m.value() as u128) as u64).collect();
            let mut out = vec![0u64; crt.words()];
            crt.reconstruct(&res, &mut out).unwrap();
            prop_assert_eq!(out[0] as u128 | (out[1] as u128) << 64, x);
            prop_assert!(out[2..].iter().all(|&w| w == 0));
            let centered = if x > q / 2 { -((q - x) as f64) } else { x as f64 };
            let got = crt.centered_f64(&res).unwrap();
            prop_assert!((got - centered).abs() <= centered.abs() * 1e-15);
            // Small signed values come back exactly.
            let res: Vec<u64> = ms.iter().map(|m| m.from_i64(signed)).collect();
            if (signed.unsigned_abs() as u128) < q / 2 {
                prop_assert_eq!(crt.centered_f64(&res).unwrap(), signed as f64);
            }
        }

        /// 31 × 40-bit plus one 50-bit prime (≈1290-bit Q): reconstruction is the CRT inverse.
        #[test]
        fn large_basis_round_trips(seed in any::<u64>(), top in 0usize..21) {
            let mut ms = moduli(40, 31);
            ms.insert(0, Modulus::new(generate_ntt_primes(50, 12, 1, &[]).unwrap()[0]).unwrap());
            let crt = CrtReconstructor::new(&ms).unwrap();
            let w = crt.words();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            // A random integer of `top + 1` words, below Q/2 (Q has 21 words).
            let mut x = vec![0u64; w];
            for word in x.iter_mut().take(top + 1) {
                *word = rng.gen();
            }
            if top == 20 {
                x[20] &= (1 << 9) - 1;
            }
            let res: Vec<u64> = ms.iter().map(|m| bigint::rem(&x, m)).collect();
            let mut out = vec![0u64; w];
            crt.reconstruct(&res, &mut out).unwrap();
            prop_assert_eq!(&out, &x);
            let f = crt.centered_f64(&res).unwrap();
            let want = bigint::to_f64(&x);
            let neg: Vec<u64> = ms.iter().zip(&res).map(|(m, &r)| m.neg(r)).collect();
            let f_neg = crt.centered_f64(&neg).unwrap();
            if top < 15 {
                // Below 2^960 the value is finite; the negation centers to −x.
                prop_assert!((f - want).abs() <= want * 1e-15, "{} vs {}", f, want);
                prop_assert!((f_neg + want).abs() <= want * 1e-15);
            } else if top > 15 {
                prop_assert!(f.is_infinite() && f > 0.0 && f_neg.is_infinite() && f_neg < 0.0);
            }
            // The negation reconstructs to Q − x.
            crt.reconstruct(&neg, &mut out).unwrap();
            bigint::add_assign(&mut out, &x);
            prop_assert_eq!(&out, crt.modulus_product());
        }
    }

    #[test]
    fn poly_decoding_and_errors() {
        let ms = moduli(40, 3);
        let crt = CrtReconstructor::new(&ms).unwrap();
        let vals = [0i64, 1, -1, 123_456_789, -(1 << 60)];
        let n = vals.len();
        let mut data = vec![0u64; 3 * n];
        for (i, m) in ms.iter().enumerate() {
            for (c, &v) in vals.iter().enumerate() {
                data[i * n + c] = m.from_i64(v);
            }
        }
        let mut out = vec![0f64; n];
        crt.centered_f64_poly(&data, &mut out).unwrap();
        assert_eq!(out, vals.map(|v| v as f64));
        assert!(matches!(
            crt.centered_f64(&[1, 2]),
            Err(Error::LimbMismatch { expected: 3, found: 2 })
        ));
        assert!(matches!(
            crt.centered_f64_poly(&data[1..], &mut out),
            Err(Error::BufferTooSmall { .. })
        ));
        assert!(matches!(
            crt.reconstruct(&[1, 2, 3], &mut [0; 2]),
            Err(Error::BufferTooSmall { .. })
        ));
        assert!(CrtReconstructor::new(&[]).is_err());
        let dup = [ms[0], ms[0]];
        assert!(matches!(CrtReconstructor::new(&dup), Err(Error::NotInvertible { .. })));
    }
}
