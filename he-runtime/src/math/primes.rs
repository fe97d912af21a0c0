//! NTT-friendly prime generation (q ≡ 1 mod 2N) and primitive 2N-th roots of unity.

use crate::error::{Error, Result};
use crate::math::zq::{Modulus, MAX_MODULUS_BITS};

/// Smallest supported log2 of the ring degree (the SIMD NTT kernels need N >= 16). Defined here,
/// under the NTT that imports this file, and re-exported as `math::ntt::MIN_LOG_N`.
pub const MIN_LOG_N: u32 = 4;
/// Largest supported log2 of the ring degree (re-exported as `math::ntt::MAX_LOG_N`).
pub const MAX_LOG_N: u32 = 17;

fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
    (a as u128 * b as u128 % m as u128) as u64
}

fn pow_mod(mut b: u64, mut e: u64, m: u64) -> u64 {
    let mut acc = 1 % m;
    b %= m;
    while e > 0 {
        if e & 1 == 1 {
            acc = mul_mod(acc, b, m);
        }
        b = mul_mod(b, b, m);
        e >>= 1;
    }
    acc
}

/// Deterministic Miller–Rabin primality test for every 64-bit integer.
pub fn is_prime(n: u64) -> bool {
    // These twelve bases are a proven witness set for all n < 3.3 * 10^24.
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    if n < 2 {
        return false;
    }
    for &p in &BASES {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    'witness: for &a in &BASES {
        let mut x = pow_mod(a, d, n);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul_mod(x, x, n);
            if x == n - 1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// Smallest prime size accepted for a ring of degree 2^log_n: q must exceed 2N to be 1 mod 2N.
pub fn min_prime_bits(log_n: u32) -> u32 {
    log_n + 2
}

/// `count` distinct primes of exactly `bits` bits with q ≡ 1 (mod 2^(log_n+1)), largest first,
/// skipping every value in `exclude` (e.g. primes already used elsewhere in the chain).
pub fn generate_ntt_primes(
    bits: u32,
    log_n: u32,
    count: usize,
    exclude: &[u64],
) -> Result<Vec<u64>> {
    if !(1..=MAX_LOG_N).contains(&log_n) {
        return Err(Error::InvalidLogN { log_n, min: 1, max: MAX_LOG_N });
    }
    let min = min_prime_bits(log_n);
    if bits < min || bits > MAX_MODULUS_BITS {
        return Err(Error::InvalidPrimeBits { bits, min, max: MAX_MODULUS_BITS });
    }
    let two_n = 1u64 << (log_n + 1);
    let low = 1u64 << (bits - 1);
    let mut out = Vec::with_capacity(count);
    // 2^bits is a multiple of 2N, so 2^bits - 2N + 1 is the largest candidate of this size.
    let mut c = (1u64 << bits) - two_n + 1;
    while out.len() < count && c > low {
        if !exclude.contains(&c) && is_prime(c) {
            out.push(c);
        }
        c -= two_n;
    }
    if out.len() < count {
        return Err(Error::NotEnoughPrimes { bits, log_n, wanted: count, found: out.len() });
    }
    Ok(out)
}

/// A primitive 2N-th root of unity modulo the prime q (N = 2^log_n), the smallest of the form
/// x^((q-1)/2N) over x = 2, 3, ... so the choice is reproducible.
pub fn primitive_root_2n(q: u64, log_n: u32) -> Result<u64> {
    let m = Modulus::new(q)?;
    if !is_prime(q) {
        return Err(Error::InvalidModulus { modulus: q, reason: "must be prime" });
    }
    let order = 1u64 << (log_n + 1);
    if !(q - 1).is_multiple_of(order) {
        return Err(Error::InvalidModulus { modulus: q, reason: "must be 1 mod 2N" });
    }
    let cofactor = (q - 1) / order;
    for x in 2..q {
        let g = m.pow(x, cofactor);
        // g has order dividing 2N; it is exactly 2N iff g^N = -1.
        if m.pow(g, order / 2) == q - 1 {
            return Ok(g);
        }
    }
    // Unreachable for a prime q ≡ 1 mod 2N: half of all x yield a primitive root.
    Err(Error::InvalidModulus { modulus: q, reason: "no primitive 2N-th root found" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miller_rabin_agrees_with_trial_division() {
        let trial =
            |n: u64| n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| !n.is_multiple_of(d));
        for n in 0..20_000u64 {
            assert_eq!(is_prime(n), trial(n), "{n}");
        }
        // Strong pseudoprimes to several small bases and known large primes.
        for n in [3_215_031_751u64, 2_152_302_898_747, 3_474_749_660_383, 341_550_071_728_321] {
            assert!(!is_prime(n), "{n}");
        }
        assert!(is_prime((1 << 61) - 1));
        assert!(is_prime(18_446_744_073_709_551_557));
        assert!(!is_prime(u64::MAX));
    }

    #[test]
    fn generated_primes_have_the_requested_shape() {
        for (bits, log_n) in [(40u32, 16u32), (50, 16), (60, 17), (61, 12), (30, 10), (20, 4)] {
            let ps = generate_ntt_primes(bits, log_n, 4, &[]).unwrap();
            assert_eq!(ps.len(), 4);
            for w in ps.windows(2) {
                assert!(w[0] > w[1]);
            }
            for &p in &ps {
                assert!(is_prime(p));
                assert_eq!(64 - p.leading_zeros(), bits);
                assert_eq!(p % (1 << (log_n + 1)), 1);
            }
            let skipped = generate_ntt_primes(bits, log_n, 2, &ps[..1]).unwrap();
            assert_eq!(skipped, ps[1..3]);
        }
    }

    #[test]
    fn prime_generation_errors() {
        assert!(matches!(
            generate_ntt_primes(17, 16, 1, &[]),
            Err(Error::InvalidPrimeBits { bits: 17, min: 18, .. })
        ));
        assert!(matches!(generate_ntt_primes(63, 16, 1, &[]), Err(Error::InvalidPrimeBits { .. })));
        assert!(matches!(generate_ntt_primes(40, 30, 1, &[]), Err(Error::InvalidLogN { .. })));
        match generate_ntt_primes(20, 16, 1000, &[]) {
            Err(Error::NotEnoughPrimes { bits: 20, log_n: 16, wanted: 1000, found }) => {
                assert!(found < 1000)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn roots_are_primitive() {
        for (bits, log_n) in [(50u32, 16u32), (40, 13), (61, 17)] {
            let q = generate_ntt_primes(bits, log_n, 1, &[]).unwrap()[0];
            let g = primitive_root_2n(q, log_n).unwrap();
            let m = Modulus::new(q).unwrap();
            assert_eq!(m.pow(g, 1 << (log_n + 1)), 1);
            assert_eq!(m.pow(g, 1 << log_n), q - 1);
        }
        assert!(primitive_root_2n(65537 * 3, 4).is_err());
        assert!(primitive_root_2n(65537, 16).is_err());
    }
}
