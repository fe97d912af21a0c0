//! The slice helpers of [`Modulus`]: element-wise arithmetic modulo q over `[u64]`, on the
//! AVX-512 IFMA kernels when the CPU has them and q < 2^50, else scalar. Every input word must be
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
