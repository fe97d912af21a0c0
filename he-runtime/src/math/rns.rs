//! RNS bases: a list of NTT-friendly primes sharing one ring degree, with their NTT tables.
//!
//! Tables sit behind `Arc` so the bases the CKKS layer needs (Q, P, Q_l ∪ P, digits) share one
//! copy of the twiddles.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::math::crt::CrtReconstructor;
use crate::math::ntt::{NttBackend, NttTable};
use crate::math::poly::Representation;
use crate::math::zq::Modulus;

/// An ordered set of distinct primes q_0..q_{k-1} (all ≡ 1 mod 2N) with NTT tables.
#[derive(Clone, Debug)]
pub struct RnsBasis {
    log_n: u32,
    moduli: Vec<Modulus>,
    tables: Vec<Arc<NttTable>>,
}

impl RnsBasis {
    /// Builds tables for each prime in `moduli` at N = 2^log_n.
    pub fn new(log_n: u32, moduli: &[u64]) -> Result<Self> {
        let tables = moduli
            .iter()
            .map(|&q| Ok(Arc::new(NttTable::new(Modulus::new(q)?, log_n)?)))
            .collect::<Result<Vec<_>>>()?;
        Self::from_tables(log_n, tables)
    }

    /// A basis from existing tables (shared, not copied); they must all have degree 2^log_n and
    /// distinct primes.
    pub fn from_tables(log_n: u32, tables: Vec<Arc<NttTable>>) -> Result<Self> {
        for (i, t) in tables.iter().enumerate() {
            if t.log_n() != log_n {
                return Err(Error::DegreeMismatch { expected: 1 << log_n, found: t.n() });
            }
            let q = t.modulus().value();
            if tables[..i].iter().any(|u| u.modulus().value() == q) {
                return Err(Error::DuplicateModulus { modulus: q });
            }
        }
        let moduli = tables.iter().map(|t| *t.modulus()).collect();
        Ok(Self { log_n, moduli, tables })
    }

    /// log2 of the ring degree.
    pub fn log_n(&self) -> u32 {
        self.log_n
    }

    /// The ring degree N.
    pub fn n(&self) -> usize {
        1 << self.log_n
    }

    /// Number of primes.
    pub fn len(&self) -> usize {
        self.moduli.len()
    }

    /// Whether the basis has no primes.
    pub fn is_empty(&self) -> bool {
        self.moduli.is_empty()
    }

    /// The primes, in order.
    pub fn moduli(&self) -> &[Modulus] {
        &self.moduli
    }

    /// The NTT tables, in the order of [`moduli`](Self::moduli).
    pub fn tables(&self) -> &[Arc<NttTable>] {
        &self.tables
    }

    /// The first `len` primes as a basis (tables shared).
    pub fn prefix(&self, len: usize) -> Result<Self> {
        if len > self.len() {
            return Err(Error::LimbMismatch { expected: self.len(), found: len });
        }
        Ok(Self {
            log_n: self.log_n,
            moduli: self.moduli[..len].to_vec(),
            tables: self.tables[..len].to_vec(),
        })
    }

    /// The primes at `indices`, in that order, as a basis (tables shared).
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        let mut tables = Vec::with_capacity(indices.len());
        for &i in indices {
            let t = self
                .tables
                .get(i)
                .ok_or(Error::LimbMismatch { expected: self.len(), found: i + 1 })?;
            tables.push(Arc::clone(t));
        }
        Self::from_tables(self.log_n, tables)
    }

    /// This basis followed by `other` (e.g. Q_l ∪ P); primes must stay distinct.
    pub fn concat(&self, other: &RnsBasis) -> Result<Self> {
        let tables = self.tables.iter().chain(other.tables.iter()).cloned().collect();
        Self::from_tables(self.log_n, tables)
    }

    /// Selects the NTT backend of every table (forcing [`NttBackend::Portable`] always works).
    pub fn set_backend(&mut self, backend: NttBackend) -> Result<()> {
        for t in &mut self.tables {
            if t.backend() != backend {
                Arc::make_mut(t).set_backend(backend)?;
            }
        }
        Ok(())
    }

    /// Forward NTT of the first `data.len() / N` limbs of limb-major `data`.
    pub fn forward(&self, data: &mut [u64]) -> Result<()> {
        let limbs = self.check_data(data.len())?;
        for (chunk, t) in data.chunks_exact_mut(self.n()).zip(&self.tables[..limbs]) {
            t.forward(chunk);
        }
        Ok(())
    }

    /// Inverse NTT of the first `data.len() / N` limbs of limb-major `data`.
    pub fn inverse(&self, data: &mut [u64]) -> Result<()> {
        let limbs = self.check_data(data.len())?;
        for (chunk, t) in data.chunks_exact_mut(self.n()).zip(&self.tables[..limbs]) {
            t.inverse(chunk);
        }
        Ok(())
    }

    /// Scratch words [`rescale_last`](Self::rescale_last) needs.
    pub fn rescale_scratch_len(&self) -> usize {
        2 * self.n()
    }

    /// Divides x (limb-major `data`, `data.len() / N` limbs over the first primes of this basis)
    /// by its last prime q_l with rounding: afterwards the first l limbs hold round(x / q_l),
    /// in the same representation; the last limb is clobbered. This is CKKS rescaling.
    pub fn rescale_last(
        &self,
        data: &mut [u64],
        repr: Representation,
        scratch: &mut [u64],
    ) -> Result<()> {
        let limbs = self.check_data(data.len())?;
        if limbs < 2 {
            return Err(Error::LimbMismatch { expected: 2, found: limbs });
        }
        let n = self.n();
        let needed = self.rescale_scratch_len();
        if scratch.len() < needed {
            return Err(Error::BufferTooSmall { needed, found: scratch.len() });
        }
        let l = limbs - 1;
        let (head, last) = data.split_at_mut(l * n);
        let (last_c, tmp) = scratch.split_at_mut(n);
        let tmp = &mut tmp[..n];
        last_c.copy_from_slice(last);
        if repr == Representation::Ntt {
            self.tables[l].inverse(last_c);
        }
        let last_m = self.moduli[l];
        for (i, d) in head.chunks_exact_mut(n).enumerate() {
            let m = &self.moduli[i];
            let inv = m.inv(m.reduce(last_m.value()))?;
            // The centered lift of the last residue, so that x − lift is divisible by q_l and
            // the quotient is x / q_l rounded to nearest.
            m.lift_centered_slice(last_c, &last_m, tmp);
            if repr == Representation::Ntt {
                self.tables[i].forward(tmp);
            }
            m.sub_mul_scalar_assign_slice(d, tmp, inv);
        }
        Ok(())
    }

    /// CRT constants for the first `limbs` primes (for decoding to centered `f64`).
    pub fn crt(&self, limbs: usize) -> Result<CrtReconstructor> {
        if limbs > self.len() {
            return Err(Error::LimbMismatch { expected: self.len(), found: limbs });
        }
        CrtReconstructor::new(&self.moduli[..limbs])
    }

    /// Number of limbs in a limb-major buffer of `len` words, checked against this basis.
    pub(crate) fn check_data(&self, len: usize) -> Result<usize> {
        let n = self.n();
        if !len.is_multiple_of(n) {
            return Err(Error::BufferTooSmall { needed: len.div_ceil(n) * n, found: len });
        }
        let limbs = len / n;
        if limbs > self.len() {
            return Err(Error::LimbMismatch { expected: self.len(), found: limbs });
        }
        Ok(limbs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::primes::generate_ntt_primes;

    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// x = a·q_l + e with |e| <= (q_l − 1)/2 rescales to exactly a (round to nearest).
        #[test]
        fn rescale_rounds_to_nearest(l in 1usize..5, bits_i in 0usize..3, seed in any::<u64>(), ntt in any::<bool>(), edge in 0u8..3) {
            let bits = [40u32, 50, 61][bits_i];
            let log_n = 5;
            let mut qs = generate_ntt_primes(bits, log_n, l, &[]).unwrap();
            // A last prime of another size, as in a CKKS chain (50-bit first prime, 40-bit scales).
            qs.push(generate_ntt_primes(45, log_n, 1, &qs).unwrap()[0]);
            let b = RnsBasis::new(log_n, &qs).unwrap();
            let n = b.n();
            let ql = qs[l];
            let half = ((ql - 1) / 2) as i64;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let e: Vec<i64> = (0..n)
                .map(|_| match edge {
                    0 => rng.gen_range(-half..=half),
                    1 => half,
                    _ => -half,
                })
                .collect();
            let mut a = vec![0u64; l * n];
            let mut data = vec![0u64; (l + 1) * n];
            for i in 0..l {
                let m = b.moduli()[i];
                for c in 0..n {
                    a[i * n + c] = rng.gen_range(0..m.value());
                    data[i * n + c] = m.add(m.mul(a[i * n + c], m.reduce(ql)), m.from_i64(e[c]));
                }
            }
            let mlast = b.moduli()[l];
            for c in 0..n {
                data[l * n + c] = mlast.from_i64(e[c]);
            }
            let repr = if ntt { Representation::Ntt } else { Representation::Coefficient };
            if ntt {
                b.forward(&mut data).unwrap();
            }
            let mut scratch = vec![0u64; b.rescale_scratch_len()];
            b.rescale_last(&mut data, repr, &mut scratch).unwrap();
            if ntt {
                b.inverse(&mut data[..l * n]).unwrap();
            }
            prop_assert_eq!(&data[..l * n], &a[..]);
        }
    }

    #[test]
    fn rescale_errors() {
        let b = RnsBasis::new(4, &generate_ntt_primes(40, 4, 2, &[]).unwrap()).unwrap();
        let mut s = vec![0u64; b.rescale_scratch_len()];
        let mut one = vec![0u64; 16];
        assert!(matches!(
            b.rescale_last(&mut one, Representation::Ntt, &mut s),
            Err(Error::LimbMismatch { expected: 2, found: 1 })
        ));
        let mut two = vec![0u64; 32];
        assert!(matches!(
            b.rescale_last(&mut two, Representation::Ntt, &mut s[..5]),
            Err(Error::BufferTooSmall { .. })
        ));
        assert!(b.crt(3).is_err());
        assert_eq!(b.crt(2).unwrap().moduli(), b.moduli());
    }

    #[test]
    fn basis_construction_and_sharing() {
        let qs = generate_ntt_primes(40, 10, 4, &[]).unwrap();
        let b = RnsBasis::new(10, &qs).unwrap();
        assert_eq!((b.len(), b.n(), b.log_n()), (4, 1024, 10));
        let p = b.prefix(2).unwrap();
        assert!(Arc::ptr_eq(&p.tables()[1], &b.tables()[1]));
        let s = b.select(&[3, 0]).unwrap();
        assert_eq!(s.moduli()[0].value(), qs[3]);
        assert!(matches!(b.concat(&p), Err(Error::DuplicateModulus { .. })));
        let c = b.prefix(1).unwrap().concat(&b.select(&[2, 3]).unwrap()).unwrap();
        assert_eq!(c.len(), 3);
        assert!(matches!(b.prefix(5), Err(Error::LimbMismatch { .. })));
        assert!(matches!(b.select(&[4]), Err(Error::LimbMismatch { .. })));
        assert!(matches!(RnsBasis::new(10, &[qs[0], qs[0]]), Err(Error::DuplicateModulus { .. })));
        let other = RnsBasis::new(11, &generate_ntt_primes(40, 11, 1, &[]).unwrap()).unwrap();
        assert!(matches!(b.concat(&other), Err(Error::DegreeMismatch { .. })));
        let mut data = vec![1u64; 1024 * 5];
        assert!(matches!(b.forward(&mut data), Err(Error::LimbMismatch { expected: 4, found: 5 })));
        assert!(matches!(b.forward(&mut data[..1000]), Err(Error::BufferTooSmall { .. })));
        b.forward(&mut data[..2048]).unwrap();
        b.inverse(&mut data[..2048]).unwrap();
        assert!(data.iter().all(|&x| x == 1));
    }
}
