//! Ring automorphisms X → X^g of `Z_q[X]/(X^N + 1)` for odd g (Galois elements), in coefficient
//! form (an index map with signs) and in NTT form (a pure permutation of the evaluations).
//!
//! Slot rotations use g = 5^k mod 2N and conjugation g = 2N − 1, the convention of SEAL and
//! OpenFHE: with slots ordered by the powers 5^i, X → X^(5^k) rotates slots left by k.

use crate::error::{Error, Result};
use crate::math::ntt::{bit_reverse, MAX_LOG_N, MIN_LOG_N};
use crate::math::poly::{Poly, Representation};
use crate::math::rns::RnsBasis;
use crate::math::zq::Modulus;

/// The generator of the rotation subgroup of (Z/2NZ)^*.
pub const ROTATION_GENERATOR: u64 = 5;

/// Galois element 5^k mod 2N for a rotation by `steps` (negative = right); 5 has order N/2.
pub fn galois_element_for_rotation(steps: i64, log_n: u32) -> Result<u64> {
    check_log_n(log_n)?;
    let two_n = 1u64 << (log_n + 1);
    let slots = 1i64 << (log_n - 1);
    let k = steps.rem_euclid(slots) as u64;
    let mut g = 1u64;
    let mut base = ROTATION_GENERATOR;
    let mut e = k;
    while e > 0 {
        if e & 1 == 1 {
            g = g * base % two_n;
        }
        base = base * base % two_n;
        e >>= 1;
    }
    Ok(g)
}

/// Galois element 2N − 1 (X → X^{-1}), which conjugates every slot.
pub fn galois_element_for_conjugation(log_n: u32) -> Result<u64> {
    check_log_n(log_n)?;
    Ok((1u64 << (log_n + 1)) - 1)
}

fn check_log_n(log_n: u32) -> Result<()> {
    if !(MIN_LOG_N..=MAX_LOG_N).contains(&log_n) {
        return Err(Error::InvalidLogN { log_n, min: MIN_LOG_N, max: MAX_LOG_N });
    }
    Ok(())
}

/// Precomputed index maps for one Galois element and one ring degree (shared by all primes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Automorphism {
    log_n: u32,
    galois: u64,
    /// Coefficient i goes to `coeff_dst[i] & !NEG`, negated if the `NEG` bit is set.
    coeff_dst: Vec<u32>,
    /// NTT form: out[j] = in[ntt_src[j]].
    ntt_src: Vec<u32>,
}

const NEG: u32 = 1 << 31;

impl Automorphism {
    /// Tables for X → X^galois at N = 2^log_n; `galois` must be odd and below 2N.
    pub fn new(log_n: u32, galois: u64) -> Result<Self> {
        check_log_n(log_n)?;
        let n = 1usize << log_n;
        let two_n = 2 * n as u64;
        if galois & 1 == 0 || galois >= two_n {
            return Err(Error::InvalidGaloisElement { galois, two_n });
        }
        let coeff_dst = (0..n as u64)
            .map(|i| {
                let e = i * galois % two_n;
                if e < n as u64 {
                    e as u32
                } else {
                    (e - n as u64) as u32 | NEG
                }
            })
            .collect();
        // â[j] = a(ψ^(2·brv(j)+1)), so b = a(X^g) has b̂[j] = a(ψ^(g·(2·brv(j)+1))) = â[k] with
        // 2·brv(k) + 1 = g·(2·brv(j)+1) mod 2N.
        let ntt_src = (0..n)
            .map(|j| {
                let e = galois * (2 * bit_reverse(j, log_n) as u64 + 1) % two_n;
                bit_reverse(((e - 1) / 2) as usize, log_n) as u32
            })
            .collect();
        Ok(Self { log_n, galois, coeff_dst, ntt_src })
    }

    /// The Galois element g.
    pub fn galois_element(&self) -> u64 {
        self.galois
    }

    /// The ring degree N.
    pub fn n(&self) -> usize {
        1 << self.log_n
    }

    /// The NTT-form permutation: `out[j] = in[ntt_source()[j]]`, every entry below N.
    pub fn ntt_source(&self) -> &[u32] {
        &self.ntt_src
    }

    /// One limb in coefficient form: `output = input(X^g)` modulo `modulus`.
    ///
    /// # Panics
    /// If either slice is not N long.
    pub fn apply_coeff(&self, input: &[u64], output: &mut [u64], modulus: &Modulus) {
        assert!(input.len() == self.n() && output.len() == self.n(), "automorphism length");
        for (&x, &d) in input.iter().zip(&self.coeff_dst) {
            let dst = (d & !NEG) as usize;
            output[dst] = if d & NEG != 0 { modulus.neg(x) } else { x };
        }
    }

    /// One limb in NTT form (any prime): a permutation of the evaluations.
    ///
    /// # Panics
    /// If either slice is not N long.
    pub fn apply_ntt(&self, input: &[u64], output: &mut [u64]) {
        assert!(input.len() == self.n() && output.len() == self.n(), "automorphism length");
        for (o, &s) in output.iter_mut().zip(&self.ntt_src) {
            *o = input[s as usize];
        }
    }

    /// Applies the automorphism to every limb of `input` into `output` (same shape), in
    /// whichever representation `input` is; `output` takes that representation.
    pub fn apply<C, D>(&self, input: &Poly<C>, output: &mut Poly<D>, basis: &RnsBasis) -> Result<()>
    where
        C: AsRef<[u64]>,
        D: AsRef<[u64]> + AsMut<[u64]>,
    {
        input.check_basis(basis)?;
        if input.n() != self.n() {
            return Err(Error::DegreeMismatch { expected: self.n(), found: input.n() });
        }
        if output.n() != input.n() {
            return Err(Error::DegreeMismatch { expected: input.n(), found: output.n() });
        }
        if output.limbs() != input.limbs() {
            return Err(Error::LimbMismatch { expected: input.limbs(), found: output.limbs() });
        }
        let n = self.n();
        let repr = input.repr();
        output.set_repr(repr);
        let outs = output.as_mut_slice().chunks_exact_mut(n);
        for ((i, o), m) in input.as_slice().chunks_exact(n).zip(outs).zip(basis.moduli()) {
            match repr {
                Representation::Coefficient => self.apply_coeff(i, o, m),
                Representation::Ntt => self.apply_ntt(i, o),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::poly::PolyOwned;
    use crate::math::primes::generate_ntt_primes;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn galois_elements() {
        let log_n = 10;
        assert_eq!(galois_element_for_rotation(0, log_n).unwrap(), 1);
        assert_eq!(galois_element_for_rotation(1, log_n).unwrap(), 5);
        assert_eq!(galois_element_for_rotation(2, log_n).unwrap(), 25);
        let two_n = 2048u64;
        for k in [1i64, 3, 100, 511] {
            let g = galois_element_for_rotation(k, log_n).unwrap();
            let h = galois_element_for_rotation(-k, log_n).unwrap();
            assert_eq!(g * h % two_n, 1, "rotations by {k} and -{k} compose to the identity");
        }
        assert_eq!(galois_element_for_rotation(512, log_n).unwrap(), 1);
        assert_eq!(galois_element_for_conjugation(log_n).unwrap(), 2047);
        assert!(matches!(galois_element_for_rotation(1, 20), Err(Error::InvalidLogN { .. })));
        assert_eq!(
            Automorphism::new(log_n, 4),
            Err(Error::InvalidGaloisElement { galois: 4, two_n })
        );
        assert!(matches!(Automorphism::new(log_n, 2049), Err(Error::InvalidGaloisElement { .. })));
    }

    #[test]
    fn coefficient_form_matches_definition() {
        // X^i → X^(i·g) with X^N = -1, checked on monomials.
        let q = generate_ntt_primes(30, 5, 1, &[]).unwrap()[0];
        let m = Modulus::new(q).unwrap();
        let a = Automorphism::new(5, 7).unwrap();
        for i in 0..32usize {
            let mut x = vec![0u64; 32];
            x[i] = 3;
            let mut y = vec![0u64; 32];
            a.apply_coeff(&x, &mut y, &m);
            let e = i * 7 % 64;
            let mut want = vec![0u64; 32];
            want[e % 32] = if e >= 32 { q - 3 } else { 3 };
            assert_eq!(y, want, "monomial {i}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn ntt_form_equals_coefficient_form(log_n in MIN_LOG_N..=13u32, k in -5000i64..5000, conj in any::<bool>(), seed in any::<u64>()) {
            let basis = RnsBasis::new(log_n, &generate_ntt_primes(50, log_n, 2, &[]).unwrap()).unwrap();
            let g = if conj {
                galois_element_for_conjugation(log_n).unwrap()
            } else {
                galois_element_for_rotation(k, log_n).unwrap()
            };
            let auto = Automorphism::new(log_n, g).unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let n = basis.n();
            let mut a = PolyOwned::zero(n, 2, Representation::Coefficient);
            for i in 0..2 {
                let q = basis.moduli()[i].value();
                a.limb_mut(i).iter_mut().for_each(|x| *x = rng.gen_range(0..q));
            }
            let mut via_coeff = PolyOwned::zero(n, 2, Representation::Coefficient);
            auto.apply(&a, &mut via_coeff, &basis).unwrap();
            via_coeff.to_ntt(&basis).unwrap();
            let mut a_ntt = a.clone();
            a_ntt.to_ntt(&basis).unwrap();
            let mut via_ntt = PolyOwned::zero(n, 2, Representation::Coefficient);
            auto.apply(&a_ntt, &mut via_ntt, &basis).unwrap();
            prop_assert_eq!(via_ntt.repr(), Representation::Ntt);
            prop_assert_eq!(via_ntt, via_coeff);
        }
    }

    #[test]
    fn apply_checks_shapes() {
        let basis = RnsBasis::new(5, &generate_ntt_primes(40, 5, 2, &[]).unwrap()).unwrap();
        let auto = Automorphism::new(5, 5).unwrap();
        let a = PolyOwned::zero(32, 2, Representation::Ntt);
        let mut out = PolyOwned::zero(32, 1, Representation::Ntt);
        assert!(matches!(auto.apply(&a, &mut out, &basis), Err(Error::LimbMismatch { .. })));
        let wrong = Automorphism::new(6, 5).unwrap();
        let mut out = PolyOwned::zero(32, 2, Representation::Ntt);
        assert!(matches!(wrong.apply(&a, &mut out, &basis), Err(Error::DegreeMismatch { .. })));
    }
}
