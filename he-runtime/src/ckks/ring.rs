//! The per-prime view `ckks` uses of `crate::math`: each [`Prime`] wraps a `math::NttTable`
//! (portable or AVX-512 IFMA NTT, chosen at run time) with the scalar helpers the scheme's
//! hot loops inline. Also the scale-stable prime selection (primes alternating around 2^bits)
//! and the fast RNS basis extension used by hybrid key switching, which `ckks` keeps here
//! because it needs per-level, per-digit plans with a two-step (prepare / extend) split.

use crate::error::{Error, Result};
use crate::math::basis_ext::BasisConverter;
use crate::math::{is_prime, Modulus, NttTable};

/// Largest supported prime: lazy butterflies keep values below 4q, which must fit in a word.
pub(crate) const MAX_PRIME_BITS: u32 = 61;

/// One NTT-friendly prime q ≡ 1 (mod 2N) with its reduction constants and NTT tables.
#[derive(Debug, Clone)]
pub(crate) struct Prime {
    pub(crate) q: u64,
    pub(crate) modulus: Modulus,
    /// floor(2^128 / q) as (low, high) words.
    ratio: (u64, u64),
    table: NttTable,
}

#[inline(always)]
pub(crate) fn shoup(w: u64, q: u64) -> u64 {
    (((w as u128) << 64) / q as u128) as u64
}

/// a·w mod q in [0, 2q) given w' = shoup(w, q); any a < 2^64.
#[inline(always)]
pub(crate) fn mul_shoup_lazy(a: u64, w: u64, w_shoup: u64, q: u64) -> u64 {
    let hi = ((a as u128 * w_shoup as u128) >> 64) as u64;
    a.wrapping_mul(w).wrapping_sub(hi.wrapping_mul(q))
}

/// a·w mod q in [0, q) given w' = shoup(w, q).
#[inline(always)]
pub(crate) fn mul_shoup(a: u64, w: u64, w_shoup: u64, q: u64) -> u64 {
    let r = mul_shoup_lazy(a, w, w_shoup, q);
    if r >= q {
        r - q
    } else {
        r
    }
}

#[inline(always)]
pub(crate) fn add_mod(a: u64, b: u64, q: u64) -> u64 {
    let s = a + b;
    if s >= q {
        s - q
    } else {
        s
    }
}

#[inline(always)]
pub(crate) fn sub_mod(a: u64, b: u64, q: u64) -> u64 {
    if a >= b {
        a - b
    } else {
        a + q - b
    }
}

#[inline(always)]
pub(crate) fn neg_mod(a: u64, q: u64) -> u64 {
    if a == 0 {
        0
    } else {
        q - a
    }
}

impl Prime {
    /// Builds the tables for prime `q` and ring degree 2^log_n; `q` must be ≡ 1 mod 2N.
    pub(crate) fn new(q: u64, log_n: u32) -> Result<Self> {
        let two_n = 2u64 << log_n;
        if q >> MAX_PRIME_BITS != 0 {
            return Err(Error::InvalidModulus { modulus: q, reason: "must be below 2^61" });
        }
        if q % two_n != 1 {
            return Err(Error::InvalidModulus { modulus: q, reason: "must be 1 mod 2N" });
        }
        if !is_prime(q) {
            return Err(Error::InvalidModulus { modulus: q, reason: "must be prime" });
        }
        let modulus = Modulus::new(q)?;
        let table = NttTable::new(modulus, log_n)?;
        let ratio_full = u128::MAX / q as u128; // floor((2^128-1)/q) == floor(2^128/q) for odd q
        Ok(Prime { q, modulus, ratio: (ratio_full as u64, (ratio_full >> 64) as u64), table })
    }

    /// x mod q for any 128-bit x (Barrett with floor(2^128/q)).
    #[inline(always)]
    pub(crate) fn reduce_u128(&self, x: u128) -> u64 {
        let (x0, x1) = (x as u64, (x >> 64) as u64);
        let (r0, r1) = self.ratio;
        let carry = ((x0 as u128 * r0 as u128) >> 64) as u64;
        let t2 = x0 as u128 * r1 as u128;
        let (t1, o1) = (t2 as u64).overflowing_add(carry);
        let t3 = ((t2 >> 64) as u64).wrapping_add(o1 as u64);
        let t2b = x1 as u128 * r0 as u128;
        let (t1b, o2) = t1.overflowing_add(t2b as u64);
        let _ = t1b;
        let carry2 = ((t2b >> 64) as u64).wrapping_add(o2 as u64);
        let qhat = x1.wrapping_mul(r1).wrapping_add(t3).wrapping_add(carry2);
        let r = x0.wrapping_sub(qhat.wrapping_mul(self.q));
        if r >= self.q {
            r - self.q
        } else {
            r
        }
    }

    /// x mod q for a word (Barrett with floor(2^64/q), one correction); no hardware division.
    #[inline(always)]
    pub(crate) fn reduce_u64(&self, x: u64) -> u64 {
        let qhat = ((x as u128 * self.ratio.1 as u128) >> 64) as u64;
        let r = x - qhat * self.q;
        if r >= self.q {
            r - self.q
        } else {
            r
        }
    }

    /// a·b mod q.
    #[inline(always)]
    pub(crate) fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128)
    }

    /// a^e mod q.
    pub(crate) fn pow(&self, mut a: u64, mut e: u64) -> u64 {
        let mut r = 1u64;
        a %= self.q;
        while e > 0 {
            if e & 1 == 1 {
                r = self.mul(r, a);
            }
            a = self.mul(a, a);
            e >>= 1;
        }
        r
    }

    /// a^-1 mod q (q prime, a ≠ 0 mod q).
    pub(crate) fn inv(&self, a: u64) -> u64 {
        self.pow(a, self.q - 2)
    }

    /// Reduces a signed integer into [0, q).
    #[inline(always)]
    pub(crate) fn reduce_i64(&self, x: i64) -> u64 {
        let r = self.reduce_u64(x.unsigned_abs());
        if x < 0 {
            neg_mod(r, self.q)
        } else {
            r
        }
    }

    /// Forward negacyclic NTT in place (bit-reversed evaluation order, see `math::ntt`).
    #[inline]
    pub(crate) fn ntt(&self, a: &mut [u64]) {
        self.table.forward(a);
    }

    /// Inverse negacyclic NTT in place, including the N^-1 scaling.
    #[inline]
    pub(crate) fn intt(&self, a: &mut [u64]) {
        self.table.inverse(a);
    }
}

/// Reverses the low `bits` bits of `i`.
pub(crate) fn bit_rev(i: usize, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        i.reverse_bits() >> (usize::BITS - bits)
    }
}

/// `count` distinct primes ≡ 1 mod 2N, as close to 2^bits as possible (alternating above and
/// below, so that rescaling by them keeps a 2^bits scale stable), skipping `exclude`.
pub(crate) fn primes_near(
    bits: u32,
    count: usize,
    log_n: u32,
    exclude: &[u64],
) -> Result<Vec<u64>> {
    let two_n = 2u64 << log_n;
    let err = Error::NotEnoughPrimes { bits, log_n, wanted: count, found: 0 };
    if bits < log_n + 2 || bits > MAX_PRIME_BITS - 1 {
        return Err(err);
    }
    let center = 1u64 << bits;
    let mut out = Vec::with_capacity(count);
    let mut up = center + 1;
    let mut down = center + 1 - two_n;
    let upper_limit = 1u64 << MAX_PRIME_BITS;
    let mut take_up = true;
    while out.len() < count {
        let cand = if take_up {
            let c = up;
            up += two_n;
            c
        } else {
            if down < two_n {
                return Err(err);
            }
            let c = down;
            down -= two_n;
            c
        };
        if up >= upper_limit {
            return Err(err);
        }
        if is_prime(cand) && !exclude.contains(&cand) && !out.contains(&cand) {
            out.push(cand);
            take_up = !take_up;
        }
    }
    Ok(out)
}

/// `count` distinct primes ≡ 1 mod 2N of exactly `bits` bits, largest first.
pub(crate) fn primes_below(
    bits: u32,
    count: usize,
    log_n: u32,
    exclude: &[u64],
) -> Result<Vec<u64>> {
    crate::math::generate_ntt_primes(bits, log_n, count, exclude)
}

/// RNS basis extension from primes `from` to primes `to` of the *centred* representative
/// x ∈ [-B/2, B/2) of a residue vector, B = Π from (`math::BasisConverter`, IFMA when every
/// prime is below 2^50), split into the three steps key switching schedules itself:
/// [`prepare_limb`](Self::prepare_limb) per source limb, [`overflow`](Self::overflow) once,
/// [`extend_limb`](Self::extend_limb) per target limb. Centring matters: the plain fast
/// extension leaves an error v·B with v ∈ [0, |from|), whose mean is a constant polynomial;
/// after ModDown that bias times s concentrates at the slots near X = 1 and costs two decimal
/// digits of precision at N = 2^16.
#[derive(Debug, Clone)]
pub(crate) struct BasisExtender {
    conv: BasisConverter,
}

impl BasisExtender {
    pub(crate) fn new(from: &[&Prime], to: &[&Prime]) -> Result<Self> {
        let f: Vec<Modulus> = from.iter().map(|p| p.modulus).collect();
        let t: Vec<Modulus> = to.iter().map(|p| p.modulus).collect();
        Ok(Self { conv: BasisConverter::new(&f, &t)? })
    }

    /// Step one: y_i = x_i·(B/b_i)^-1 mod b_i for source limb i (coefficient form).
    #[inline]
    pub(crate) fn prepare_limb(&self, i: usize, x: &[u64], y: &mut [u64]) {
        self.conv.prepare_limb(i, x, y);
    }

    /// Step two: v = round(Σ_i y_i / b_i) per coefficient (`y` holds |from| limbs of `v.len()`
    /// words).
    #[inline]
    pub(crate) fn overflow(&self, y: &[u64], v: &mut [u64]) {
        self.conv.rounding_counts(y, v);
    }

    /// Step three: target limb t = Σ_i y_i·(B/b_i) − v·B mod c_t.
    #[inline]
    pub(crate) fn extend_limb(&self, t: usize, y: &[u64], v: &[u64], out: &mut [u64]) {
        self.conv.extend_limb_centered(t, y, v, out);
    }

    /// Extends coefficient-form limbs `src` (one per source prime) into `dst` (one per target).
    #[cfg(test)]
    pub(crate) fn extend(&self, src: &[&[u64]], dst: &mut [&mut [u64]]) {
        let n = src.first().map_or(0, |s| s.len());
        let mut y = vec![0u64; src.len() * n];
        for (i, x) in src.iter().enumerate() {
            self.prepare_limb(i, x, &mut y[i * n..(i + 1) * n]);
        }
        let mut v = vec![0u64; n];
        self.overflow(&y, &mut v);
        for (t, d) in dst.iter_mut().enumerate() {
            self.extend_limb(t, &y, &v, d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn ntt_roundtrip_and_negacyclic_product() {
        let log_n = 5;
        let n = 1usize << log_n;
        let qs = primes_below(50, 2, log_n, &[]).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for &q in &qs {
            let p = Prime::new(q, log_n).unwrap();
            let a: Vec<u64> = (0..n).map(|_| rng.gen_range(0..q)).collect();
            let b: Vec<u64> = (0..n).map(|_| rng.gen_range(0..q)).collect();
            let mut want = vec![0u64; n];
            for i in 0..n {
                for j in 0..n {
                    let prod = p.mul(a[i], b[j]);
                    if i + j < n {
                        want[i + j] = add_mod(want[i + j], prod, q);
                    } else {
                        want[i + j - n] = sub_mod(want[i + j - n], prod, q);
                    }
                }
            }
            let (mut fa, mut fb) = (a.clone(), b.clone());
            p.ntt(&mut fa);
            p.ntt(&mut fb);
            let mut c: Vec<u64> = fa.iter().zip(&fb).map(|(&x, &y)| p.mul(x, y)).collect();
            p.intt(&mut c);
            assert_eq!(c, want);
            p.intt(&mut fa);
            assert_eq!(fa, a);
        }
    }

    #[test]
    fn reduce_u128_matches_division() {
        let q = primes_below(61, 1, 4, &[]).unwrap()[0];
        let p = Prime::new(q, 4).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        for _ in 0..10000 {
            let x: u128 = rng.gen();
            assert_eq!(p.reduce_u128(x), (x % q as u128) as u64);
            let y: u64 = rng.gen();
            assert_eq!(p.reduce_u64(y), y % q);
            let z = y as i64;
            assert_eq!(p.reduce_i64(z), (z as i128).rem_euclid(q as i128) as u64);
        }
        for y in [0u64, 1, q - 1, q, q + 1, 2 * q, u64::MAX] {
            assert_eq!(p.reduce_u64(y), y % q);
        }
    }

    #[test]
    fn basis_extension_is_exact_up_to_multiple_of_source() {
        let log_n = 4;
        let from_q = primes_below(40, 3, log_n, &[]).unwrap();
        let to_q = primes_below(50, 2, log_n, &[]).unwrap();
        let from: Vec<Prime> = from_q.iter().map(|&q| Prime::new(q, log_n).unwrap()).collect();
        let to: Vec<Prime> = to_q.iter().map(|&q| Prime::new(q, log_n).unwrap()).collect();
        let fr: Vec<&Prime> = from.iter().collect();
        let tr: Vec<&Prime> = to.iter().collect();
        let ext = BasisExtender::new(&fr, &tr).unwrap();
        // Centred extension: x in [0, B/2) maps to x, x in [B/2, B) to x − B.
        let bq: u128 = from_q.iter().map(|&q| q as u128).product();
        // (Within ~B·2^-50 of ±B/2 the floating-point estimate may pick either representative.)
        let xs: Vec<u128> =
            vec![0, 1, 12345, 1 << 39, 7, bq - 5, bq / 2 - bq / 1000, bq / 2 + bq / 1000, bq - 1];
        let src: Vec<Vec<u64>> =
            from_q.iter().map(|&q| xs.iter().map(|&x| (x % q as u128) as u64).collect()).collect();
        let srcr: Vec<&[u64]> = src.iter().map(|v| v.as_slice()).collect();
        let mut dst = vec![vec![0u64; xs.len()]; 2];
        {
            let mut dr: Vec<&mut [u64]> = dst.iter_mut().map(|v| v.as_mut_slice()).collect();
            ext.extend(&srcr, &mut dr);
        }
        for (j, &x) in xs.iter().enumerate() {
            let centred: i128 = if x < bq / 2 { x as i128 } else { x as i128 - bq as i128 };
            for (t, c) in to.iter().enumerate() {
                let want = centred.rem_euclid(c.q as i128) as u64;
                assert_eq!(dst[t][j], want, "coefficient {j} prime {t}");
            }
        }
    }
}
