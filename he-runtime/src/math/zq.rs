//! Arithmetic modulo a word-sized odd modulus q < 2^62: Barrett and Shoup multiplication and
//! slice kernels used by every higher layer.
//!
//! The 2^62 bound leaves two spare bits so lazy (Harvey) values in [0, 4q) fit in a `u64`.
//!
//! The slice helpers (`*_slice`, in `zq_slice.rs` so that this file does not import the SIMD
//! module, which imports it) take fully reduced inputs (< q) and run AVX-512 IFMA kernels when
//! the CPU has them and q < 2^50; results are canonical, hence identical on both paths.

use crate::error::{Error, Result};

/// Largest supported modulus bit size (lazy NTT values up to 4q must fit a word).
pub const MAX_MODULUS_BITS: u32 = 62;

/// An odd modulus 3 <= q < 2^62 with its Barrett constant floor((2^128 - 1) / q).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Modulus {
    value: u64,
    bits: u32,
    /// High word of floor((2^128-1)/q); equals floor(2^64/q) because q is odd.
    barrett_hi: u64,
    /// Low word of floor((2^128-1)/q).
    barrett_lo: u64,
}

impl Modulus {
    /// Validates `q` (odd, 3 <= q < 2^62) and precomputes its reduction constants.
    pub fn new(q: u64) -> Result<Self> {
        if q < 3 {
            return Err(Error::InvalidModulus { modulus: q, reason: "must be at least 3" });
        }
        if q & 1 == 0 {
            return Err(Error::InvalidModulus { modulus: q, reason: "must be odd" });
        }
        if q >> MAX_MODULUS_BITS != 0 {
            return Err(Error::InvalidModulus { modulus: q, reason: "must be below 2^62" });
        }
        let ratio = u128::MAX / q as u128;
        Ok(Self {
            value: q,
            bits: 64 - q.leading_zeros(),
            barrett_hi: (ratio >> 64) as u64,
            barrett_lo: ratio as u64,
        })
    }

    /// The modulus q.
    #[inline(always)]
    pub fn value(&self) -> u64 {
        self.value
    }

    /// Bit length of q.
    #[inline(always)]
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// (a + b) mod q for a, b < q.
    #[inline(always)]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        let s = a + b;
        if s >= self.value {
            s - self.value
        } else {
            s
        }
    }

    /// (a - b) mod q for a, b < q.
    #[inline(always)]
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        if a >= b {
            a - b
        } else {
            a + self.value - b
        }
    }

    /// (-a) mod q for a < q.
    #[inline(always)]
    pub fn neg(&self, a: u64) -> u64 {
        if a == 0 {
            0
        } else {
            self.value - a
        }
    }

    /// x mod q for any 64-bit x (Barrett with one word).
    #[inline(always)]
    pub fn reduce(&self, x: u64) -> u64 {
        let est = ((x as u128 * self.barrett_hi as u128) >> 64) as u64;
        let r = x.wrapping_sub(est.wrapping_mul(self.value));
        if r >= self.value {
            r - self.value
        } else {
            r
        }
    }

    /// x mod q for any 128-bit x (Barrett with two words).
    #[inline(always)]
    pub fn reduce_u128(&self, x: u128) -> u64 {
        // est = floor(x * m / 2^128) mod 2^64 with m = floor((2^128-1)/q) >= 2^128/q - 1, so the
        // true remainder x - est*q lies in [0, 2q) and only its low word is needed.
        let x0 = x as u64;
        let x1 = (x >> 64) as u64;
        let (m0, m1) = (self.barrett_lo, self.barrett_hi);
        let t = (x0 as u128 * m0 as u128) >> 64;
        let a = x0 as u128 * m1 as u128 + t;
        let s = a.wrapping_add(x1 as u128 * m0 as u128);
        let est = x1.wrapping_mul(m1).wrapping_add((s >> 64) as u64);
        let r = x0.wrapping_sub(est.wrapping_mul(self.value));
        if r >= self.value {
            r - self.value
        } else {
            r
        }
    }

    /// (a * b) mod q for a, b < q (or any a, b whose product is below 2^128).
    #[inline(always)]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128)
    }

    /// Shoup companion floor(w * 2^64 / q) of a constant w < q.
    #[inline(always)]
    pub fn shoup(&self, w: u64) -> u64 {
        (((w as u128) << 64) / self.value as u128) as u64
    }

    /// (x * w) mod q, result in [0, 2q), for any 64-bit x and w < q with companion `w_shoup`.
    #[inline(always)]
    pub fn mul_shoup_lazy(&self, x: u64, w: u64, w_shoup: u64) -> u64 {
        let est = ((x as u128 * w_shoup as u128) >> 64) as u64;
        x.wrapping_mul(w).wrapping_sub(est.wrapping_mul(self.value))
    }

    /// (x * w) mod q fully reduced, for any 64-bit x and w < q with companion `w_shoup`.
    #[inline(always)]
    pub fn mul_shoup(&self, x: u64, w: u64, w_shoup: u64) -> u64 {
        let r = self.mul_shoup_lazy(x, w, w_shoup);
        if r >= self.value {
            r - self.value
        } else {
            r
        }
    }

    /// base^exp mod q.
    pub fn pow(&self, base: u64, mut exp: u64) -> u64 {
        let mut b = self.reduce(base);
        let mut acc = 1 % self.value;
        while exp > 0 {
            if exp & 1 == 1 {
                acc = self.mul(acc, b);
            }
            b = self.mul(b, b);
            exp >>= 1;
        }
        acc
    }

    /// a^{-1} mod q (extended Euclid, so q need not be prime).
    pub fn inv(&self, a: u64) -> Result<u64> {
        let a_red = self.reduce(a);
        let (mut r0, mut r1) = (self.value as i128, a_red as i128);
        let (mut t0, mut t1) = (0i128, 1i128);
        while r1 != 0 {
            let quot = r0 / r1;
            (r0, r1) = (r1, r0 - quot * r1);
            (t0, t1) = (t1, t0 - quot * t1);
        }
        if r0 != 1 {
            return Err(Error::NotInvertible { value: a, modulus: self.value });
        }
        Ok(t0.rem_euclid(self.value as i128) as u64)
    }

    /// Centered representative of x < q in (-q/2, q/2].
    #[inline(always)]
    pub fn center(&self, x: u64) -> i64 {
        if x > self.value >> 1 {
            x as i64 - self.value as i64
        } else {
            x as i64
        }
    }

    /// A signed integer reduced into [0, q).
    #[inline(always)]
    pub fn from_i64(&self, x: i64) -> u64 {
        let r = self.reduce(x.unsigned_abs());
        if x < 0 {
            self.neg(r)
        } else {
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const QS: [u64; 5] = [3, 65537, 1_099_511_480_321, (1 << 50) - 27, (1u64 << 62) - 57];

    #[test]
    fn rejects_bad_moduli() {
        assert!(matches!(Modulus::new(0), Err(Error::InvalidModulus { .. })));
        assert!(matches!(Modulus::new(1), Err(Error::InvalidModulus { .. })));
        assert!(matches!(Modulus::new(1 << 20), Err(Error::InvalidModulus { .. })));
        assert!(matches!(Modulus::new((1 << 62) + 1), Err(Error::InvalidModulus { .. })));
        assert!(Modulus::new((1 << 62) - 57).is_ok());
    }

    #[test]
    fn inverse_and_pow() {
        for &q in &QS {
            let m = Modulus::new(q).unwrap();
            for a in [1u64, 2, 12345, q - 1] {
                let a = a % q;
                if a == 0 {
                    continue;
                }
                let i = m.inv(a).unwrap();
                assert_eq!(m.mul(a, i), 1);
            }
            assert_eq!(m.pow(2, 10), 1024 % q);
        }
        let m = Modulus::new(15).unwrap();
        assert_eq!(m.inv(5), Err(Error::NotInvertible { value: 5, modulus: 15 }));
    }

    /// The IFMA slice kernels against scalar formulas, all sizes up to 50 bits, with tails.
    #[test]
    fn ifma_slice_kernels_match_scalar() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for bits in [2u32, 3, 17, 30, 31, 32, 40, 47, 49, 50] {
            let q = ((1u64 << bits) - 1) | 1;
            let q = if q < 3 { 3 } else { q };
            let m = Modulus::new(q).unwrap();
            for len in [1usize, 7, 8, 9, 64, 1000] {
                let mut gen = || -> Vec<u64> {
                    let mut v: Vec<u64> = (0..len).map(|_| rng.gen_range(0..q)).collect();
                    v[0] = q - 1;
                    v
                };
                let (a, b, c) = (gen(), gen(), gen());
                let s = rng.gen_range(0..q);
                let r = |x: u128| (x % q as u128) as u64;
                let mut t = a.clone();
                m.mul_assign_slice(&mut t, &b);
                assert!((0..len).all(|i| t[i] == r(a[i] as u128 * b[i] as u128)), "mul q={q}");
                let mut t = c.clone();
                m.mul_add_assign_slice(&mut t, &a, &b);
                assert!((0..len).all(|i| t[i] == r(a[i] as u128 * b[i] as u128 + c[i] as u128)));
                let mut t = a.clone();
                m.add_assign_slice(&mut t, &b);
                assert!((0..len).all(|i| t[i] == r(a[i] as u128 + b[i] as u128)));
                let mut t = a.clone();
                m.sub_assign_slice(&mut t, &b);
                assert!((0..len).all(|i| t[i] == r(a[i] as u128 + q as u128 - b[i] as u128)));
                let mut t = a.clone();
                m.mul_scalar_assign_slice(&mut t, s);
                assert!((0..len).all(|i| t[i] == r(a[i] as u128 * s as u128)));
                let mut t = c.clone();
                m.mul_scalar_add_assign_slice(&mut t, &a, s);
                assert!((0..len).all(|i| t[i] == r(a[i] as u128 * s as u128 + c[i] as u128)));
                let mut t = a.clone();
                m.sub_mul_scalar_assign_slice(&mut t, &b, s);
                assert!((0..len)
                    .all(|i| t[i] == r((a[i] as u128 + q as u128 - b[i] as u128) * s as u128)));
                // Lift from moduli below and above q (up to 52 bits on the IFMA path, 61 beyond).
                for pbits in [bits.max(2), 40, 52, 61] {
                    let p = Modulus::new(((1u64 << pbits) - 1) | 1).unwrap();
                    let src: Vec<u64> = (0..len)
                        .map(|i| match i % 4 {
                            0 => p.value() >> 1,
                            1 => (p.value() >> 1) + 1,
                            _ => rng.gen_range(0..p.value()),
                        })
                        .collect();
                    let mut t = vec![0u64; len];
                    m.lift_centered_slice(&src, &p, &mut t);
                    for i in 0..len {
                        let v = p.center(src[i]) as i128;
                        assert_eq!(
                            t[i] as i128,
                            v.rem_euclid(q as i128),
                            "lift p={} q={q} v={}",
                            p.value(),
                            src[i]
                        );
                    }
                }
            }
        }
    }

    /// The products by a constant for primes wider than IFMA's (the AVX-512 F/DQ kernels where
    /// the CPU has them) against the u128 formula, up to the 62-bit bound, with tails, for
    /// words of `a` anywhere in 64 bits (Shoup takes any) and constants at the edges.
    #[test]
    fn wide_scalar_kernels_match_scalar() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        for bits in [51u32, 52, 55, 59, 60, 61, 62] {
            let m = Modulus::new(((1u64 << bits) - 1) | 1).unwrap();
            let q = m.value();
            for len in [1usize, 7, 8, 9, 64, 1000] {
                let a: Vec<u64> =
                    (0..len).map(|i| if i == 0 { u64::MAX } else { rng.gen() }).collect();
                let small: Vec<u64> = a.iter().map(|&x| x % q).collect();
                let acc: Vec<u64> = (0..len).map(|_| rng.gen_range(0..q)).collect();
                for s in [0, 1, q - 1, rng.gen_range(0..q)] {
                    let r = |x: u128| (x % q as u128) as u64;
                    let mut t = a.clone();
                    m.mul_scalar_assign_slice(&mut t, s);
                    assert!((0..len).all(|i| t[i] == r(a[i] as u128 * s as u128)), "mul q={q}");
                    let mut t = acc.clone();
                    m.mul_scalar_add_assign_slice(&mut t, &small, s);
                    let want = |i: usize| r(small[i] as u128 * s as u128 + acc[i] as u128);
                    assert!((0..len).all(|i| t[i] == want(i)), "mul-add q={q}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn barrett_matches_u128(qi in 0usize..5, x in any::<u128>(), y in any::<u64>()) {
            let m = Modulus::new(QS[qi]).unwrap();
            prop_assert_eq!(m.reduce_u128(x), (x % QS[qi] as u128) as u64);
            prop_assert_eq!(m.reduce(y), y % QS[qi]);
        }

        #[test]
        fn mul_and_shoup_match_u128(qi in 0usize..5, a in any::<u64>(), b in any::<u64>(), x in any::<u64>()) {
            let q = QS[qi];
            let m = Modulus::new(q).unwrap();
            let (a, b) = (a % q, b % q);
            let want = (a as u128 * b as u128 % q as u128) as u64;
            prop_assert_eq!(m.mul(a, b), want);
            let bs = m.shoup(b);
            prop_assert_eq!(m.mul_shoup(a, b, bs), want);
            let lazy = m.mul_shoup_lazy(x, b, bs);
            prop_assert!(lazy < 2 * q);
            prop_assert_eq!(lazy % q, (x as u128 * b as u128 % q as u128) as u64);
        }

        #[test]
        fn add_sub_neg_center(qi in 0usize..5, a in any::<u64>(), b in any::<u64>(), s in any::<i64>()) {
            let q = QS[qi];
            let m = Modulus::new(q).unwrap();
            let (a, b) = (a % q, b % q);
            prop_assert_eq!(m.add(a, b) as u128, (a as u128 + b as u128) % q as u128);
            prop_assert_eq!(m.sub(m.add(a, b), b), a);
            prop_assert_eq!(m.add(a, m.neg(a)), 0);
            prop_assert_eq!(m.from_i64(m.center(a)), a);
            prop_assert_eq!(m.from_i64(s) as i128, (s as i128).rem_euclid(q as i128));
        }

        #[test]
        fn slice_kernels(qi in 0usize..5, v in proptest::collection::vec((any::<u64>(), any::<u64>(), any::<u64>()), 1..40), s in any::<u64>()) {
            let q = QS[qi];
            let m = Modulus::new(q).unwrap();
            let a: Vec<u64> = v.iter().map(|t| t.0 % q).collect();
            let b: Vec<u64> = v.iter().map(|t| t.1 % q).collect();
            let c: Vec<u64> = v.iter().map(|t| t.2 % q).collect();
            let r = |x: u128| (x % q as u128) as u64;
            let mut t = a.clone(); m.add_assign_slice(&mut t, &b);
            for i in 0..a.len() { prop_assert_eq!(t[i], r(a[i] as u128 + b[i] as u128)); }
            let mut t = a.clone(); m.sub_assign_slice(&mut t, &b);
            for i in 0..a.len() { prop_assert_eq!(m.add(t[i], b[i]), a[i]); }
            let mut t = a.clone(); m.sub_from_slice(&mut t, &b);
            for i in 0..a.len() { prop_assert_eq!(m.add(t[i], a[i]), b[i]); }
            let mut t = a.clone(); m.neg_assign_slice(&mut t);
            for i in 0..a.len() { prop_assert_eq!(m.add(t[i], a[i]), 0); }
            let mut t = a.clone(); m.mul_assign_slice(&mut t, &b);
            for i in 0..a.len() { prop_assert_eq!(t[i], r(a[i] as u128 * b[i] as u128)); }
            let mut t = a.clone(); m.mul_scalar_assign_slice(&mut t, s);
            for i in 0..a.len() { prop_assert_eq!(t[i], r(a[i] as u128 * (s % q) as u128)); }
            let mut t = c.clone(); m.mul_add_assign_slice(&mut t, &a, &b);
            for i in 0..a.len() { prop_assert_eq!(t[i], r(a[i] as u128 * b[i] as u128 + c[i] as u128)); }
            let mut t = c.clone(); m.mul_scalar_add_assign_slice(&mut t, &a, s);
            for i in 0..a.len() { prop_assert_eq!(t[i], r(a[i] as u128 * (s % q) as u128 + c[i] as u128)); }
            let mut t: Vec<u64> = v.iter().map(|t| t.0).collect(); m.reduce_slice(&mut t);
            for i in 0..a.len() { prop_assert_eq!(t[i], a[i]); }
        }
    }
}
