//! Negacyclic number-theoretic transform over `Z_q[X]/(X^N + 1)` with Harvey lazy butterflies.
//!
//! **Order.** [`NttTable::forward`] maps coefficients a_0..a_{N-1} (natural order) to
//! `â[j] = a(ψ^(2·brv(j) + 1))`, where ψ = [`NttTable::psi`] is the table's primitive 2N-th root
//! of unity and `brv` reverses the low log N bits of j: the evaluations come out in bit-reversed
//! order and are *not* reordered (no bit-reversal pass). [`NttTable::inverse`] takes that order
//! back to natural-order coefficients and includes the N^{-1} scaling. Pointwise products in this
//! domain are negacyclic products of the polynomials; automorphisms in this domain are the
//! permutations built by [`crate::math::automorphism::Automorphism`].
//!
//! Both directions take fully reduced input (< q; values < 2q are tolerated) and return fully
//! reduced output, so results are canonical and the portable and SIMD paths agree bit for bit.

use crate::error::{Error, Result};
use crate::math::primes::primitive_root_2n;
pub use crate::math::primes::{MAX_LOG_N, MIN_LOG_N};
use crate::math::simd;
use crate::math::zq::Modulus;

/// Which implementation runs the transforms of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NttBackend {
    /// Scalar Harvey butterflies, available everywhere and for every q < 2^62.
    Portable,
    /// AVX-512 IFMA (52-bit multiply-add) kernels, for q < 2^50 on CPUs with `avx512ifma`.
    Ifma,
    /// AVX-512 F/DQ 64-bit Shoup butterflies for the stages with distance >= 8, the rest
    /// portable: for primes too wide for IFMA (q < 2^62) on CPUs with `avx512dq`.
    Avx512Wide,
}

/// `x` with its low `bits` bits reversed.
#[inline]
pub fn bit_reverse(x: usize, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        x.reverse_bits() >> (usize::BITS - bits)
    }
}

/// Precomputed twiddles (powers of ψ in bit-reversed order with Shoup companions) for one prime
/// and one ring degree.
#[derive(Clone, Debug)]
pub struct NttTable {
    modulus: Modulus,
    log_n: u32,
    n: usize,
    psi: u64,
    /// roots[k] = ψ^brv(k); stage m, group i of the forward transform uses roots[m + i].
    roots: Vec<u64>,
    roots_shoup: Vec<u64>,
    /// inv_roots[k] = ψ^-brv(k), used by the inverse at the same index as the forward.
    inv_roots: Vec<u64>,
    inv_roots_shoup: Vec<u64>,
    n_inv: u64,
    n_inv_shoup: u64,
    /// ψ^-brv(1) · N^{-1}: the last inverse stage folds in the scaling.
    last_inv: u64,
    last_inv_shoup: u64,
    backend: NttBackend,
    /// Whether the IFMA kernels can serve this table (CPU support and q < 2^50).
    ifma_ok: bool,
}

impl NttTable {
    /// Tables for the prime `modulus` (which must be ≡ 1 mod 2N) and N = 2^log_n; the fastest
    /// backend available on this CPU for this prime is selected.
    pub fn new(modulus: Modulus, log_n: u32) -> Result<Self> {
        if !(MIN_LOG_N..=MAX_LOG_N).contains(&log_n) {
            return Err(Error::InvalidLogN { log_n, min: MIN_LOG_N, max: MAX_LOG_N });
        }
        let q = modulus.value();
        let n = 1usize << log_n;
        let psi = primitive_root_2n(q, log_n)?;
        let psi_inv = modulus.inv(psi)?;
        let mut roots = vec![0u64; n];
        let mut inv_roots = vec![0u64; n];
        let (mut p, mut pi) = (1u64, 1u64);
        for k in 0..n {
            let r = bit_reverse(k, log_n);
            roots[r] = p;
            inv_roots[r] = pi;
            p = modulus.mul(p, psi);
            pi = modulus.mul(pi, psi_inv);
        }
        let roots_shoup = roots.iter().map(|&w| modulus.shoup(w)).collect();
        let inv_roots_shoup = inv_roots.iter().map(|&w| modulus.shoup(w)).collect();
        let n_inv = modulus.inv(n as u64)?;
        let last_inv = modulus.mul(inv_roots[1], n_inv);
        let ifma_ok = simd::ifma_eligible(q, log_n);
        let backend = if ifma_ok {
            NttBackend::Ifma
        } else if simd::wide_eligible(q, log_n) {
            NttBackend::Avx512Wide
        } else {
            NttBackend::Portable
        };
        Ok(Self {
            modulus,
            log_n,
            n,
            psi,
            roots,
            roots_shoup,
            inv_roots,
            inv_roots_shoup,
            n_inv,
            n_inv_shoup: modulus.shoup(n_inv),
            last_inv,
            last_inv_shoup: modulus.shoup(last_inv),
            backend,
            ifma_ok,
        })
    }

    /// The prime of this table.
    pub fn modulus(&self) -> &Modulus {
        &self.modulus
    }

    /// log2 of the ring degree.
    pub fn log_n(&self) -> u32 {
        self.log_n
    }

    /// The ring degree N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The primitive 2N-th root of unity ψ that defines the evaluation points.
    pub fn psi(&self) -> u64 {
        self.psi
    }

    /// N^{-1} mod q.
    pub fn n_inv(&self) -> u64 {
        self.n_inv
    }

    /// The backend [`forward`](Self::forward) and [`inverse`](Self::inverse) use.
    pub fn backend(&self) -> NttBackend {
        self.backend
    }

    /// Whether the IFMA backend can serve this table (CPU feature present and q < 2^50).
    pub fn ifma_supported(&self) -> bool {
        self.ifma_ok
    }

    /// Chooses the backend, e.g. to force the portable path in tests and benchmarks.
    pub fn set_backend(&mut self, backend: NttBackend) -> Result<()> {
        if backend == NttBackend::Ifma && !self.ifma_ok {
            return Err(Error::BackendUnavailable {
                reason: "needs avx512ifma on this CPU and a prime below 2^50",
            });
        }
        if backend == NttBackend::Avx512Wide
            && !simd::wide_eligible(self.modulus.value(), self.log_n)
        {
            return Err(Error::BackendUnavailable { reason: "needs avx512dq on this CPU" });
        }
        self.backend = backend;
        Ok(())
    }

    /// In-place forward negacyclic NTT (natural-order coefficients to bit-reversed evaluations).
    ///
    /// # Panics
    /// If `a.len() != N` (an internal invariant; polynomial-level callers check shapes first).
    #[inline]
    pub fn forward(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n, "NTT input length");
        match self.backend {
            NttBackend::Ifma => {
                simd::ntt_forward(self.modulus.value(), &self.roots, &self.roots_shoup, a)
            }
            NttBackend::Avx512Wide => {
                simd::ntt_forward_wide(self.modulus.value(), &self.roots, &self.roots_shoup, a)
            }
            NttBackend::Portable => self.forward_portable(a),
        }
    }

    /// In-place inverse negacyclic NTT including the N^{-1} scaling.
    ///
    /// # Panics
    /// If `a.len() != N`.
    #[inline]
    pub fn inverse(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n, "NTT input length");
        match self.backend {
            NttBackend::Ifma => {
                let scale = simd::InverseScale {
                    n_inv: self.n_inv,
                    n_inv_shoup: self.n_inv_shoup,
                    last: self.last_inv,
                    last_shoup: self.last_inv_shoup,
                };
                simd::ntt_inverse(
                    self.modulus.value(),
                    &self.inv_roots,
                    &self.inv_roots_shoup,
                    scale,
                    a,
                )
            }
            NttBackend::Avx512Wide => simd::ntt_inverse_wide(
                self.modulus.value(),
                &self.inv_roots,
                &self.inv_roots_shoup,
                (self.n_inv, self.n_inv_shoup),
                (self.last_inv, self.last_inv_shoup),
                a,
            ),
            NttBackend::Portable => self.inverse_portable(a),
        }
    }

    /// The forward transform on the portable path regardless of the selected backend.
    ///
    /// # Panics
    /// If `a.len() != N`.
    pub fn forward_portable(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n, "NTT input length");
        let (mut m, mut t) = (1, self.n);
        let m_ = &self.modulus;
        let q = m_.value();
        let two_q = 2 * q;
        while m < self.n / 2 {
            t >>= 1;
            let roots = &self.roots[m..2 * m];
            let shoup = &self.roots_shoup[m..2 * m];
            for ((chunk, &w), &ws) in a.chunks_exact_mut(2 * t).zip(roots).zip(shoup) {
                let (lo, hi) = chunk.split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    // Invariant: x, y in [0, 4q); u in [0, 2q), v in [0, 2q).
                    // min(u, u - 2q) is a branch-free conditional subtraction.
                    let u = (*x).min((*x).wrapping_sub(two_q));
                    let v = m_.mul_shoup_lazy(*y, w, ws);
                    *x = u + v;
                    *y = u + two_q - v;
                }
            }
            m <<= 1;
        }
        // Last stage (t = 1) without an inner loop, fused with the final reduction to [0, q).
        let half = self.n / 2;
        let roots = &self.roots[half..];
        let shoup = &self.roots_shoup[half..];
        let reduce = |v: u64| {
            let v = v.min(v.wrapping_sub(two_q));
            v.min(v.wrapping_sub(q))
        };
        for ((pair, &w), &ws) in a.chunks_exact_mut(2).zip(roots).zip(shoup) {
            let u = pair[0].min(pair[0].wrapping_sub(two_q));
            let v = m_.mul_shoup_lazy(pair[1], w, ws);
            pair[0] = reduce(u + v);
            pair[1] = reduce(u + two_q - v);
        }
    }

    /// The inverse transform on the portable path regardless of the selected backend.
    ///
    /// # Panics
    /// If `a.len() != N`.
    pub fn inverse_portable(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n, "NTT input length");
        let m_ = &self.modulus;
        let two_q = 2 * m_.value();
        let (mut m, mut t) = (self.n >> 1, 1);
        while m > 1 {
            let roots = &self.inv_roots[m..2 * m];
            let shoup = &self.inv_roots_shoup[m..2 * m];
            for ((chunk, &w), &ws) in a.chunks_exact_mut(2 * t).zip(roots).zip(shoup) {
                let (lo, hi) = chunk.split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    // Invariant: x, y in [0, 2q).
                    let (u, v) = (*x, *y);
                    let s = u + v;
                    *x = s.min(s.wrapping_sub(two_q));
                    *y = m_.mul_shoup_lazy(u + two_q - v, w, ws);
                }
            }
            t <<= 1;
            m >>= 1;
        }
        let (lo, hi) = a.split_at_mut(self.n >> 1);
        let (ni, nis, li, lis) = (self.n_inv, self.n_inv_shoup, self.last_inv, self.last_inv_shoup);
        for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
            let (u, v) = (*x, *y);
            *x = m_.mul_shoup(u + v, ni, nis);
            *y = m_.mul_shoup(u + two_q - v, li, lis);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::primes::generate_ntt_primes;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    fn table(bits: u32, log_n: u32) -> NttTable {
        let q = generate_ntt_primes(bits, log_n, 1, &[]).unwrap()[0];
        let mut t = NttTable::new(Modulus::new(q).unwrap(), log_n).unwrap();
        t.set_backend(NttBackend::Portable).unwrap();
        t
    }

    fn schoolbook(m: &Modulus, a: &[u64], b: &[u64]) -> Vec<u64> {
        let n = a.len();
        let mut c = vec![0u64; n];
        for (i, &ai) in a.iter().enumerate() {
            for (j, &bj) in b.iter().enumerate() {
                let p = m.mul(ai, bj);
                let k = i + j;
                if k < n {
                    c[k] = m.add(c[k], p);
                } else {
                    c[k - n] = m.sub(c[k - n], p);
                }
            }
        }
        c
    }

    #[test]
    fn output_order_is_bit_reversed_odd_powers() {
        let t = table(30, 5);
        let m = *t.modulus();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let a: Vec<u64> = (0..32).map(|_| rng.gen_range(0..m.value())).collect();
        let mut f = a.clone();
        t.forward(&mut f);
        for (j, &fj) in f.iter().enumerate() {
            let x = m.pow(t.psi(), 2 * bit_reverse(j, 5) as u64 + 1);
            let eval = a.iter().rev().fold(0, |acc, &c| m.add(m.mul(acc, x), c));
            assert_eq!(fj, eval, "index {j}");
        }
    }

    #[test]
    fn rejects_bad_tables() {
        let q = generate_ntt_primes(40, 12, 1, &[]).unwrap()[0];
        let m = Modulus::new(q).unwrap();
        assert!(matches!(NttTable::new(m, 3), Err(Error::InvalidLogN { .. })));
        assert!(matches!(NttTable::new(m, 18), Err(Error::InvalidLogN { .. })));
        // q is 1 mod 2^13; a degree whose 2N does not divide q - 1 is rejected.
        if !(q - 1).is_multiple_of(1 << 18) {
            assert!(matches!(NttTable::new(m, 17), Err(Error::InvalidModulus { .. })));
        }
        assert!(NttTable::new(m, 12).is_ok());
        assert!(matches!(
            NttTable::new(Modulus::new(3 * 5 * 7 * 8193).unwrap(), 12),
            Err(Error::InvalidModulus { .. })
        ));
    }

    #[test]
    fn accepts_61_bit_primes_and_lazy_inputs() {
        for log_n in [MIN_LOG_N, 10, 13] {
            let t = table(61, log_n);
            let q = t.modulus().value();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(log_n as u64);
            let a: Vec<u64> = (0..t.n()).map(|_| rng.gen_range(0..q)).collect();
            let mut f = a.clone();
            t.forward(&mut f);
            assert!(f.iter().all(|&x| x < q));
            // Inverse tolerates inputs in [0, 2q).
            let mut g: Vec<u64> =
                f.iter().enumerate().map(|(i, &x)| if i % 2 == 0 { x + q } else { x }).collect();
            t.inverse(&mut g);
            assert_eq!(g, a);
        }
    }

    /// Every supported N and prime sizes up to the IFMA limit: both paths give identical words.
    #[test]
    fn ifma_matches_portable_bit_for_bit() {
        if !simd::ifma_available() {
            eprintln!("skipped: no avx512ifma on this CPU");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
        let mut sizes_tested = 0;
        for log_n in MIN_LOG_N..=MAX_LOG_N {
            // Every prime size the IFMA path accepts at this degree: log N + 2 ..= 50 bits.
            for bits in log_n + 2..=simd::IFMA_MAX_MODULUS_BITS {
                let count = if bits == simd::IFMA_MAX_MODULUS_BITS { 3 } else { 1 };
                // The smallest sizes may hold no prime ≡ 1 mod 2N at all.
                let Ok(qs) = generate_ntt_primes(bits, log_n, count, &[]) else {
                    continue;
                };
                sizes_tested += 1;
                for q in qs {
                    let mut t = NttTable::new(Modulus::new(q).unwrap(), log_n).unwrap();
                    assert_eq!(t.backend(), NttBackend::Ifma);
                    let a: Vec<u64> = (0..t.n()).map(|_| rng.gen_range(0..q)).collect();
                    // Include the extremes of the accepted input ranges.
                    let mut a_fwd = a.clone();
                    a_fwd[0] = q - 1;
                    let mut inv_in: Vec<u64> =
                        (0..t.n()).map(|_| rng.gen_range(0..2 * q)).collect();
                    inv_in[1] = 2 * q - 1;
                    let (mut f1, mut i1) = (a_fwd.clone(), inv_in.clone());
                    t.forward(&mut f1);
                    t.inverse(&mut i1);
                    t.set_backend(NttBackend::Portable).unwrap();
                    let (mut f2, mut i2) = (a_fwd.clone(), inv_in.clone());
                    t.forward(&mut f2);
                    t.inverse(&mut i2);
                    assert_eq!(f1, f2, "forward log_n={log_n} q={q}");
                    assert_eq!(i1, i2, "inverse log_n={log_n} q={q}");
                }
            }
        }
        // 539 (log N, size) pairs exist; only a handful of the smallest have no prime.
        assert!(sizes_tested > 500, "{sizes_tested}");
    }

    /// Every supported N and prime sizes from 20 to 61 bits (the wide stages serve any prime,
    /// not only those above the IFMA limit): the AVX-512 wide path gives the portable words.
    #[test]
    fn avx512_wide_matches_portable_bit_for_bit() {
        if !simd::dq_available() {
            eprintln!("skipped: no avx512dq on this CPU");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(61);
        let mut tested = 0;
        for log_n in MIN_LOG_N..=MAX_LOG_N {
            for bits in (20..=61).step_by(3).chain([50, 51, 59, 60, 61]) {
                let Ok(qs) = generate_ntt_primes(bits, log_n, 2, &[]) else {
                    continue;
                };
                for q in qs {
                    let mut t = NttTable::new(Modulus::new(q).unwrap(), log_n).unwrap();
                    t.set_backend(NttBackend::Avx512Wide).unwrap();
                    // The extremes of the accepted lazy ranges: [0, 4q) in, [0, 2q) inverse.
                    let mut fwd: Vec<u64> = (0..t.n()).map(|_| rng.gen_range(0..4 * q)).collect();
                    fwd[0] = 4 * q - 1;
                    let mut inv: Vec<u64> = (0..t.n()).map(|_| rng.gen_range(0..2 * q)).collect();
                    inv[t.n() - 1] = 2 * q - 1;
                    let (mut f1, mut i1) = (fwd.clone(), inv.clone());
                    t.forward(&mut f1);
                    t.inverse(&mut i1);
                    let (mut f2, mut i2) = (fwd, inv);
                    t.forward_portable(&mut f2);
                    t.inverse_portable(&mut i2);
                    assert_eq!(f1, f2, "forward log_n={log_n} q={q}");
                    assert_eq!(i1, i2, "inverse log_n={log_n} q={q}");
                    tested += 1;
                }
            }
        }
        assert!(tested > 300, "{tested}");
    }

    #[test]
    fn wide_primes_pick_the_avx512_wide_backend() {
        let q = generate_ntt_primes(60, 12, 1, &[]).unwrap()[0];
        let t = NttTable::new(Modulus::new(q).unwrap(), 12).unwrap();
        let want = if simd::dq_available() { NttBackend::Avx512Wide } else { NttBackend::Portable };
        assert_eq!(t.backend(), want);
    }

    #[test]
    fn ifma_is_refused_for_large_primes() {
        let mut t = table(55, 12);
        assert!(!t.ifma_supported());
        assert!(matches!(t.set_backend(NttBackend::Ifma), Err(Error::BackendUnavailable { .. })));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn round_trip(log_n in MIN_LOG_N..=14u32, bits_i in 0usize..4, seed in any::<u64>()) {
            let bits = [30u32, 40, 50, 61][bits_i];
            let t = table(bits.max(log_n + 2), log_n);
            let q = t.modulus().value();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let a: Vec<u64> = (0..t.n()).map(|_| rng.gen_range(0..q)).collect();
            let mut f = a.clone();
            t.forward(&mut f);
            prop_assert!(f.iter().all(|&x| x < q));
            t.inverse(&mut f);
            prop_assert_eq!(f, a);
        }

        #[test]
        fn product_is_negacyclic_convolution(log_n in MIN_LOG_N..=8u32, bits_i in 0usize..3, seed in any::<u64>()) {
            let bits = [40u32, 50, 61][bits_i];
            let t = table(bits, log_n);
            let m = *t.modulus();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let a: Vec<u64> = (0..t.n()).map(|_| rng.gen_range(0..m.value())).collect();
            let b: Vec<u64> = (0..t.n()).map(|_| rng.gen_range(0..m.value())).collect();
            let want = schoolbook(&m, &a, &b);
            let (mut fa, mut fb) = (a, b);
            t.forward(&mut fa);
            t.forward(&mut fb);
            m.mul_assign_slice(&mut fa, &fb);
            t.inverse(&mut fa);
            prop_assert_eq!(fa, want);
        }
    }
}
