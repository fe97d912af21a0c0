//! The slice helpers of [`Modulus`]: element-wise arithmetic modulo q over `[u64]`, on the
//! AVX-512 IFMA kernels when the CPU has them and q < 2^50, the products (of two slices, and by
//! a constant) on AVX-512 F/DQ for wider q, else scalar. Every input word must be
//! fully reduced (< q); results are canonical, hence identical on both paths. A file of its own
//! because it imports the SIMD module, which imports [`crate::math::zq`].

#[cfg(target_arch = "x86_64")]
use crate::math::simd;
use crate::math::zq::Modulus;

impl Modulus {
    /// `a[i] = (a[i] + b[i]) mod q`; every input word must be below q (the IFMA path relies on it).
    ///
    /// # Panics
    /// If the slices differ in length (a programming error inside the crate).
    pub fn add_assign_slice(&self, a: &mut [u64], b: &[u64]) {
        assert_eq!(a.len(), b.len());
        #[cfg(target_arch = "x86_64")]
        if simd::slice_eligible(self) {
            return simd::slices::add_assign(self, a, b);
        }
        for (x, &y) in a.iter_mut().zip(b) {
            *x = self.add(*x, y);
        }
    }

    /// `a[i] = (a[i] - b[i]) mod q`; every input word must be below q (the IFMA path relies on it).
    ///
    /// # Panics
    /// If the slices differ in length.
    pub fn sub_assign_slice(&self, a: &mut [u64], b: &[u64]) {
        assert_eq!(a.len(), b.len());
        #[cfg(target_arch = "x86_64")]
        if simd::slice_eligible(self) {
            return simd::slices::sub_assign(self, a, b);
        }
        for (x, &y) in a.iter_mut().zip(b) {
            *x = self.sub(*x, y);
        }
    }

    /// `a[i] = (b[i] - a[i]) mod q`; saves a copy when the result must land in the subtrahend.
    ///
    /// # Panics
    /// If the slices differ in length.
    pub fn sub_from_slice(&self, a: &mut [u64], b: &[u64]) {
        assert_eq!(a.len(), b.len());
        for (x, &y) in a.iter_mut().zip(b) {
            *x = self.sub(y, *x);
        }
    }

    /// `a[i] = (-a[i]) mod q`.
    pub fn neg_assign_slice(&self, a: &mut [u64]) {
        for x in a.iter_mut() {
            *x = self.neg(*x);
        }
    }

    /// `a[i] = (a[i] * b[i]) mod q`; every input word must be below q (the IFMA path relies on it).
    ///
    /// # Panics
    /// If the slices differ in length.
    pub fn mul_assign_slice(&self, a: &mut [u64], b: &[u64]) {
        assert_eq!(a.len(), b.len());
        #[cfg(target_arch = "x86_64")]
        if simd::slice_eligible(self) {
            return simd::slices::mul_assign(self, a, b);
        }
        #[cfg(target_arch = "x86_64")]
        if simd::wide_slice_eligible(self) {
            return simd::slices::mul_assign_wide(self, a, b);
        }
        for (x, &y) in a.iter_mut().zip(b) {
            *x = self.mul(*x, y);
        }
    }

    /// `a[i] = (a[i] * s) mod q` for a scalar s < q (Shoup, one precomputation for the slice).
    pub fn mul_scalar_assign_slice(&self, a: &mut [u64], s: u64) {
        let s = self.reduce(s);
        let s_shoup = self.shoup(s);
        #[cfg(target_arch = "x86_64")]
        if simd::slice_eligible(self) {
            return simd::slices::mul_scalar_assign(self, a, s, s_shoup);
        }
        #[cfg(target_arch = "x86_64")]
        if simd::wide_slice_eligible(self) {
            return simd::slices::mul_scalar_assign_wide(self, a, s, s_shoup);
        }
        for x in a.iter_mut() {
            *x = self.mul_shoup(*x, s, s_shoup);
        }
    }

    /// `acc[i] = (acc[i] + a[i] * b[i]) mod q`; every input word must be below q (the IFMA path relies on it).
    ///
    /// # Panics
    /// If the slices differ in length.
    pub fn mul_add_assign_slice(&self, acc: &mut [u64], a: &[u64], b: &[u64]) {
        assert_eq!(acc.len(), a.len());
        assert_eq!(acc.len(), b.len());
        #[cfg(target_arch = "x86_64")]
        if simd::slice_eligible(self) {
            return simd::slices::mul_add_assign(self, acc, a, b);
        }
        #[cfg(target_arch = "x86_64")]
        if simd::wide_slice_eligible(self) {
            return simd::slices::mul_add_assign_wide(self, acc, a, b);
        }
        for ((r, &x), &y) in acc.iter_mut().zip(a).zip(b) {
            *r = self.reduce_u128(x as u128 * y as u128 + *r as u128);
        }
    }

    /// `acc[i] = (acc[i] + a[i] * s) mod q` for a scalar s; every input word must be below q
    /// (the IFMA path relies on it).
    ///
    /// # Panics
    /// If the slices differ in length.
    pub fn mul_scalar_add_assign_slice(&self, acc: &mut [u64], a: &[u64], s: u64) {
        assert_eq!(acc.len(), a.len());
        let s = self.reduce(s);
        let s_shoup = self.shoup(s);
        #[cfg(target_arch = "x86_64")]
        if simd::slice_eligible(self) {
            return simd::slices::mul_scalar_add_assign(self, acc, a, s, s_shoup);
        }
        #[cfg(target_arch = "x86_64")]
        if simd::wide_slice_eligible(self) {
            return simd::slices::mul_scalar_add_assign_wide(self, acc, a, s, s_shoup);
        }
        for (r, &x) in acc.iter_mut().zip(a) {
            *r = self.add(*r, self.mul_shoup(x, s, s_shoup));
        }
    }

    /// `a[i] = (a[i] - b[i]) * s mod q` in one pass (the combine step of rescaling and
    /// ModDown); every input word must be below q.
    ///
    /// # Panics
    /// If the slices differ in length.
    pub fn sub_mul_scalar_assign_slice(&self, a: &mut [u64], b: &[u64], s: u64) {
        assert_eq!(a.len(), b.len());
        let s = self.reduce(s);
        let s_shoup = self.shoup(s);
        #[cfg(target_arch = "x86_64")]
        if simd::slice_eligible(self) {
            return simd::slices::sub_mul_scalar_assign(self, a, b, s, s_shoup);
        }
        for (x, &y) in a.iter_mut().zip(b) {
            *x = self.mul_shoup(*x + self.value() - y, s, s_shoup);
        }
    }

    /// `dst[i]` = the centered representative of `src[i]` modulo `p` (in (−p/2, p/2]), reduced
    /// modulo q; `src` words must be below p. The lift that makes divisions by p round.
    ///
    /// # Panics
    /// If the slices differ in length.
    pub fn lift_centered_slice(&self, src: &[u64], p: &Modulus, dst: &mut [u64]) {
        assert_eq!(src.len(), dst.len());
        #[cfg(target_arch = "x86_64")]
        if simd::slice_eligible(self) && p.bits() <= 52 {
            return simd::slices::lift_centered(self, src, dst, p);
        }
        let half = p.value() >> 1;
        let p_mod = self.reduce(p.value());
        for (d, &v) in dst.iter_mut().zip(src) {
            let r = self.reduce(v);
            *d = if v > half { self.sub(r, p_mod) } else { r };
        }
    }

    /// `a[i] = a[i] mod q` for arbitrary words.
    pub fn reduce_slice(&self, a: &mut [u64]) {
        for x in a.iter_mut() {
            *x = self.reduce(*x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::zq::MAX_MODULUS_BITS;

    /// The element-wise products of two slices for primes wider than IFMA's (the AVX-512 F/DQ
    /// kernels where the CPU has them) against the u128 formula, at every width up to the
    /// 62-bit bound and on both sides of its power of two, with tails and words at q − 1. The
    /// kernels are also called directly for narrow moduli, which dispatch never sends them.
    #[test]
    fn wide_slice_products_match_u128() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(14);
        let mut moduli = Vec::new();
        for bits in 3..=MAX_MODULUS_BITS {
            moduli.push((1u64 << (bits - 1)) + 1);
            moduli.push(((1u64 << bits) - 1) | 1);
        }
        for q in moduli {
            let m = Modulus::new(q).unwrap();
            for len in [1usize, 7, 8, 9, 100] {
                let word = |rng: &mut rand_chacha::ChaCha8Rng, i: usize| {
                    if i.is_multiple_of(5) {
                        q - 1
                    } else {
                        rng.gen_range(0..q)
                    }
                };
                let a: Vec<u64> = (0..len).map(|i| word(&mut rng, i)).collect();
                let b: Vec<u64> = (0..len).map(|i| word(&mut rng, i + 1)).collect();
                let acc: Vec<u64> = (0..len).map(|i| word(&mut rng, i)).collect();
                let r = |x: u128| (x % q as u128) as u64;
                let want_mul: Vec<u64> = (0..len).map(|i| r(a[i] as u128 * b[i] as u128)).collect();
                let want_fma: Vec<u64> =
                    (0..len).map(|i| r(a[i] as u128 * b[i] as u128 + acc[i] as u128)).collect();
                let mut t = a.clone();
                m.mul_assign_slice(&mut t, &b);
                assert_eq!(t, want_mul, "mul q={q} len {len}");
                let mut t = acc.clone();
                m.mul_add_assign_slice(&mut t, &a, &b);
                assert_eq!(t, want_fma, "mul-add q={q} len {len}");
                #[cfg(target_arch = "x86_64")]
                if simd::wide_slice_eligible(&m) {
                    let mut t = a.clone();
                    simd::slices::mul_assign_wide(&m, &mut t, &b);
                    assert_eq!(t, want_mul, "wide kernel mul q={q} len {len}");
                    let mut t = acc.clone();
                    simd::slices::mul_add_assign_wide(&m, &mut t, &a, &b);
                    assert_eq!(t, want_fma, "wide kernel mul-add q={q} len {len}");
                }
            }
        }
    }

    /// The wide kernels' reduction over every product of small odd moduli (3..=255), where its
    /// estimate falls two short of the quotient for some inputs (e.g. q = 25, 23·24 + 23): what
    /// a CPU with AVX-512 DQ but no IFMA runs for every modulus.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn wide_slice_products_are_exact_for_every_small_modulus() {
        for q in (3u64..=255).step_by(2) {
            let m = Modulus::new(q).unwrap();
            if !simd::wide_slice_eligible(&m) {
                return;
            }
            let a: Vec<u64> = (0..q * q).map(|i| i / q).collect();
            let b: Vec<u64> = (0..q * q).map(|i| i % q).collect();
            for c in [0, q - 1] {
                let mut t = vec![c; a.len()];
                simd::slices::mul_add_assign_wide(&m, &mut t, &a, &b);
                assert!((0..a.len()).all(|i| t[i] == (a[i] * b[i] + c) % q), "q {q}, c {c}");
            }
        }
    }

    /// The wide kernels' reduction with extra bits of input (their sums of products) for every
    /// small odd modulus, at every room up to the widest a word allows: all values within a few
    /// q of the bound and of its halfway point, and spread values between. The estimate falls
    /// two short of the quotient for some of them, so each conditional subtraction is needed.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn wide_reduction_with_room_is_exact_up_to_its_bound() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(15);
        let mut short_by_two = 0;
        for q in (3u64..=255).step_by(2) {
            let m = Modulus::new(q).unwrap();
            if !simd::wide_slice_eligible(&m) {
                return;
            }
            let bits = m.bits();
            for room in 0..=63 - bits {
                let bound = 1u128 << (2 * bits + room);
                let near = 1..=8 * u128::from(q);
                let mut values: Vec<u128> =
                    near.clone().filter_map(|t| bound.checked_sub(t)).collect();
                values.extend(near.map(|t| bound / 2 + t - 1).filter(|&x| x < bound));
                values.extend((0..256).map(|_| rng.gen_range(0..bound)));
                let got = simd::slices::reduce_wide_with_room(&m, room, &values);
                for (&x, &r) in values.iter().zip(&got) {
                    assert_eq!(u128::from(r), x % u128::from(q), "q {q}, room {room}, x {x}");
                }
                // The estimate the reduction starts from, in exact arithmetic.
                let mu = bound / u128::from(q);
                short_by_two += values
                    .iter()
                    .filter(|&&x| {
                        let top = x >> (bits - 1);
                        let est = (top * mu) >> (bits + 1 + room);
                        x / u128::from(q) - est == 2
                    })
                    .count();
            }
        }
        assert!(short_by_two > 0, "no value needed both subtractions");
    }
}
