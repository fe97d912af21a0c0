//! Randomness: ternary secrets, discrete Gaussian errors (σ = 3.2) and uniform polynomials
//! expanded from a seed with ChaCha20, so that `a` parts can be stored as their 32-byte seed.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

use super::context::Context;

/// Standard deviation of the error distribution.
pub const SIGMA: f64 = 3.2;
/// Errors are cut at 6σ.
const BOUND: f64 = 6.0 * SIGMA;

/// A 32-byte PRNG seed.
pub type Seed = [u8; 32];

/// A fresh seed from the operating system's entropy source.
pub fn os_seed() -> Seed {
    let mut s = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

/// Uniform ternary coefficients in {-1, 0, 1}.
pub(crate) fn ternary<R: RngCore>(rng: &mut R, n: usize) -> Vec<i8> {
    (0..n)
        .map(|_| {
            // Rejection from 2 bits keeps the three values exactly equiprobable.
            loop {
                let v = (rng.next_u32() & 3) as i8;
                if v < 3 {
                    return v - 1;
                }
            }
        })
        .collect()
}

/// Rounded Gaussian coefficients with σ = 3.2, cut at 6σ (Box–Muller).
pub(crate) fn gaussian<R: RngCore>(rng: &mut R, n: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let u1: f64 = 1.0 - rng.gen::<f64>();
        let u2: f64 = rng.gen::<f64>();
        let r = (-2.0 * u1.ln()).sqrt() * SIGMA;
        let t = 2.0 * std::f64::consts::PI * u2;
        for z in [r * t.cos(), r * t.sin()] {
            if z.abs() <= BOUND && out.len() < n {
                out.push(z.round() as i64);
            }
        }
    }
    out
}

/// Reduces small signed coefficients into every prime of `primes` and applies the NTT:
/// `out` receives |primes| limbs.
pub(crate) fn small_to_ntt(ctx: &Context, coeffs: &[i64], primes: &[usize], out: &mut [u64]) {
    let n = ctx.n();
    out.par_chunks_mut(n).zip(primes.par_iter()).for_each(|(limb, &pi)| {
        let p = ctx.prime(pi);
        for (o, &c) in limb.iter_mut().zip(coeffs) {
            *o = p.reduce_i64(c);
        }
        p.ntt(limb);
    });
}

/// Fills |primes| limbs with polynomials uniform mod each prime, expanded from `seed`; each
/// (stream, prime index) pair has its own ChaCha20 stream so limbs are generated in parallel and
/// a key can regenerate any limb alone.
pub(crate) fn uniform_from_seed(
    ctx: &Context,
    seed: &Seed,
    stream: u64,
    primes: &[usize],
    out: &mut [u64],
) {
    let n = ctx.n();
    out.par_chunks_mut(n).zip(primes.par_iter()).for_each(|(limb, &pi)| {
        let q = ctx.prime(pi).q;
        let mut rng = ChaCha20Rng::from_seed(*seed);
        rng.set_stream((stream << 8) | pi as u64);
        let mask = u64::MAX >> q.leading_zeros();
        for o in limb.iter_mut() {
            *o = loop {
                let x = rng.next_u64() & mask;
                if x < q {
                    break x;
                }
            };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_has_the_right_spread() {
        let mut rng = ChaCha20Rng::from_seed([7; 32]);
        let e = gaussian(&mut rng, 200_000);
        let mean = e.iter().sum::<i64>() as f64 / e.len() as f64;
        let var = e.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / e.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        // Rounding adds 1/12 to the variance.
        assert!(
            (var.sqrt() - (SIGMA * SIGMA + 1.0 / 12.0).sqrt()).abs() < 0.05,
            "sd {}",
            var.sqrt()
        );
        assert!(e.iter().all(|&x| x.abs() <= 19));
    }

    #[test]
    fn ternary_is_balanced() {
        let mut rng = ChaCha20Rng::from_seed([8; 32]);
        let s = ternary(&mut rng, 300_000);
        for v in -1..=1 {
            let c = s.iter().filter(|&&x| x == v).count() as f64 / s.len() as f64;
            assert!((c - 1.0 / 3.0).abs() < 0.01);
        }
    }
}
