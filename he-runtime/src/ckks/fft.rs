//! The special FFT of the canonical embedding: N/2 complex slots indexed by the orbit 5^j mod 2N.
//!
//! Slot j of a real polynomial m is m(ζ^(5^j)) with ζ = exp(iπ/N); the conjugate slots
//! m(ζ^(-5^j)) are implied. The transform works on the N/2 slot values directly, so encoding
//! costs one N/2-point complex FFT.

use std::ops::{Add, Mul, Sub};

/// A complex number in double precision, the slot type of the CKKS encoder.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Complex64 {
    /// Real part.
    pub re: f64,
    /// Imaginary part.
    pub im: f64,
}

impl Complex64 {
    /// Builds `re + i·im`.
    pub const fn new(re: f64, im: f64) -> Self {
        Self { re, im }
    }

    /// The complex conjugate.
    pub fn conj(self) -> Self {
        Self { re: self.re, im: -self.im }
    }

    /// The modulus |z|.
    pub fn abs(self) -> f64 {
        self.re.hypot(self.im)
    }
}

impl Add for Complex64 {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self { re: self.re + o.re, im: self.im + o.im }
    }
}

impl Sub for Complex64 {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self { re: self.re - o.re, im: self.im - o.im }
    }
}

impl Mul for Complex64 {
    type Output = Self;
    fn mul(self, o: Self) -> Self {
        Self { re: self.re * o.re - self.im * o.im, im: self.re * o.im + self.im * o.re }
    }
}

/// Precomputed tables for the special FFT on `slots = N/2` points.
#[derive(Debug, Clone)]
pub(crate) struct SpecialFft {
    m: usize,
    /// 5^j mod 2N for j < slots.
    rot_group: Vec<usize>,
    /// exp(2πi k / 2N) for k <= 2N.
    roots: Vec<Complex64>,
}

impl SpecialFft {
    /// Tables for ring degree `n` (a power of two, at least 4).
    pub(crate) fn new(n: usize) -> Self {
        let m = 2 * n;
        let slots = n / 2;
        let mut rot_group = Vec::with_capacity(slots);
        let mut g = 1usize;
        for _ in 0..slots {
            rot_group.push(g);
            g = g * 5 % m;
        }
        let roots = (0..=m)
            .map(|k| {
                let a = 2.0 * std::f64::consts::PI * k as f64 / m as f64;
                Complex64::new(a.cos(), a.sin())
            })
            .collect();
        Self { m, rot_group, roots }
    }

    /// The butterfly twiddle of stage `len` (a power of two, 2..=slots) at offset `j < len/2`:
    /// the root [`Self::forward`] multiplies the upper half by; [`Self::inverse`] uses its
    /// conjugate. Homomorphic DFTs (bootstrapping) build their factors from these.
    pub(crate) fn twiddle(&self, len: usize, j: usize) -> Complex64 {
        let lenq = len << 2;
        let gap = self.m / lenq;
        self.roots[(self.rot_group[j] % lenq) * gap]
    }

    /// Slot values → the complex vector whose real/imaginary parts are the coefficient halves.
    pub(crate) fn inverse(&self, vals: &mut [Complex64]) {
        let size = vals.len();
        let mut len = size;
        while len >= 2 {
            let lenh = len >> 1;
            let lenq = len << 2;
            let gap = self.m / lenq;
            for chunk in vals.chunks_exact_mut(len) {
                let (lo, hi) = chunk.split_at_mut(lenh);
                for j in 0..lenh {
                    let idx = (lenq - (self.rot_group[j] % lenq)) % lenq;
                    let u = lo[j] + hi[j];
                    let v = (lo[j] - hi[j]) * self.roots[idx * gap];
                    lo[j] = u;
                    hi[j] = v;
                }
            }
            len >>= 1;
        }
        bit_reverse(vals);
        let inv = 1.0 / size as f64;
        for v in vals.iter_mut() {
            v.re *= inv;
            v.im *= inv;
        }
    }

    /// The coefficient-half vector → slot values (the evaluation at the 5^j orbit).
    pub(crate) fn forward(&self, vals: &mut [Complex64]) {
        let size = vals.len();
        bit_reverse(vals);
        let mut len = 2;
        while len <= size {
            let lenh = len >> 1;
            let lenq = len << 2;
            let gap = self.m / lenq;
            for chunk in vals.chunks_exact_mut(len) {
                let (lo, hi) = chunk.split_at_mut(lenh);
                for j in 0..lenh {
                    let idx = (self.rot_group[j] % lenq) * gap;
                    let u = lo[j];
                    let v = hi[j] * self.roots[idx];
                    lo[j] = u + v;
                    hi[j] = u - v;
                }
            }
            len <<= 1;
        }
    }
}

fn bit_reverse<T>(v: &mut [T]) {
    let n = v.len();
    let mut j = 0usize;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Evaluates the real polynomial with the given coefficients at ζ^(5^j) directly.
    fn naive_slots(coeffs: &[f64]) -> Vec<Complex64> {
        let n = coeffs.len();
        let m = 2 * n;
        let mut out = Vec::new();
        let mut g = 1usize;
        for _ in 0..n / 2 {
            let mut acc = Complex64::default();
            for (k, &c) in coeffs.iter().enumerate() {
                let e = (g * k) % m;
                let a = std::f64::consts::PI * e as f64 / n as f64;
                acc = acc + Complex64::new(c * a.cos(), c * a.sin());
            }
            out.push(acc);
            g = g * 5 % m;
        }
        out
    }

    #[test]
    fn forward_matches_naive_evaluation() {
        let n = 64;
        let fft = SpecialFft::new(n);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let coeffs: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut v: Vec<Complex64> =
            (0..n / 2).map(|i| Complex64::new(coeffs[i], coeffs[i + n / 2])).collect();
        fft.forward(&mut v);
        let want = naive_slots(&coeffs);
        for (a, b) in v.iter().zip(&want) {
            assert!((*a - *b).abs() < 1e-9, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn inverse_undoes_forward() {
        let n = 256;
        let fft = SpecialFft::new(n);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let orig: Vec<Complex64> = (0..n / 2)
            .map(|_| Complex64::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
            .collect();
        let mut v = orig.clone();
        fft.inverse(&mut v);
        fft.forward(&mut v);
        for (a, b) in v.iter().zip(&orig) {
            assert!((*a - *b).abs() < 1e-12);
        }
    }
}
