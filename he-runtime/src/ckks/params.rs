//! CKKS parameter sets, validated once by [`ParamsBuilder::build`].

use std::sync::Arc;

use super::ring::{primes_below, primes_near, MAX_PRIME_BITS};
use crate::error::{Error, Result};
use crate::math::is_prime;

/// Smallest supported log2 N.
pub const MIN_LOG_N: u32 = 12;
/// Largest supported log2 N.
pub const MAX_LOG_N: u32 = 17;

/// Largest log2(QP) for 128-bit classical security with a uniform ternary secret
/// (HomomorphicEncryption.org standard as tabulated by SEAL and OpenFHE), for log2 N = 12..=17.
pub const SECURITY_128_MAX_LOG_QP: [u32; 6] = [109, 218, 438, 881, 1747, 3523];

/// The 128-bit bound on log2(QP) for `log_n`, if the table covers it.
pub fn max_log_qp_128(log_n: u32) -> Option<u32> {
    log_n.checked_sub(MIN_LOG_N).and_then(|i| SECURITY_128_MAX_LOG_QP.get(i as usize)).copied()
}

/// How the ciphertext modulus chain Q is given.
#[derive(Debug, Clone)]
enum QSpec {
    Bits { first: u32, scaling: Vec<u32> },
    Primes(Vec<u64>),
}

/// How the special primes P are given.
#[derive(Debug, Clone)]
enum PSpec {
    Auto { bits: u32 },
    Count { count: usize, bits: u32 },
    Primes(Vec<u64>),
}

/// Raw, unvalidated CKKS parameters; `build()` checks them and generates the primes.
#[derive(Debug, Clone)]
pub struct ParamsBuilder {
    log_n: u32,
    q: QSpec,
    p: PSpec,
    dnum: usize,
    log_scale: f64,
    allow_insecure: bool,
}

/// The named benchmark sets of issue 4 (scale 2^40, dnum 3, depth 2/5/14/30).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// N = 2^13, depth 2.
    N13,
    /// N = 2^14, depth 5.
    N14,
    /// N = 2^15, depth 14.
    N15,
    /// N = 2^16, depth 30.
    N16,
}

impl Preset {
    /// The preset for `log_n` in 13..=16.
    pub fn for_log_n(log_n: u32) -> Option<Self> {
        match log_n {
            13 => Some(Self::N13),
            14 => Some(Self::N14),
            15 => Some(Self::N15),
            16 => Some(Self::N16),
            _ => None,
        }
    }

    /// log2 N of the preset.
    pub fn log_n(self) -> u32 {
        match self {
            Self::N13 => 13,
            Self::N14 => 14,
            Self::N15 => 15,
            Self::N16 => 16,
        }
    }

    /// Multiplicative depth (number of 40-bit scaling primes).
    pub fn depth(self) -> usize {
        match self {
            Self::N13 => 2,
            Self::N14 => 5,
            Self::N15 => 14,
            Self::N16 => 30,
        }
    }

    /// A builder for the preset: first prime 50 bits, `depth` primes near 2^40, ceil((L+1)/3)
    /// special primes (50 bits, 45 at N = 2^16 to stay under the 1747-bit bound), dnum 3.
    pub fn builder(self) -> ParamsBuilder {
        let depth = self.depth();
        let p_bits = if self == Self::N16 { 45 } else { 50 };
        let mut b = ParamsBuilder::new(self.log_n());
        b.q_bits(50, &vec![40; depth]).special_bits(p_bits).dnum(3).log_scale(40.0);
        b
    }

    /// The validated preset parameters.
    pub fn params(self) -> Result<Params> {
        self.builder().build()
    }
}

impl ParamsBuilder {
    /// Starts a parameter set for ring degree N = 2^log_n; defaults: first prime 50 bits,
    /// two 40-bit scaling primes, dnum 3, scale 2^40, special primes chosen automatically.
    pub fn new(log_n: u32) -> Self {
        Self {
            log_n,
            q: QSpec::Bits { first: 50, scaling: vec![40, 40] },
            p: PSpec::Auto { bits: 50 },
            dnum: 3,
            log_scale: 40.0,
            allow_insecure: false,
        }
    }

    /// Q chain by bit sizes: the first (decryption) prime and the scaling primes, bottom up.
    /// A scaling prime of b bits is near 2^b (either side), except at b = 61, the widest
    /// supported: those are the largest primes below 2^61.
    pub fn q_bits(&mut self, first: u32, scaling: &[u32]) -> &mut Self {
        self.q = QSpec::Bits { first, scaling: scaling.to_vec() };
        self
    }

    /// Q chain as explicit primes, bottom (q_0) first.
    pub fn q_primes(&mut self, primes: &[u64]) -> &mut Self {
        self.q = QSpec::Primes(primes.to_vec());
        self
    }

    /// Special primes of `bits` bits, as many as hybrid key switching needs (ceil((L+1)/dnum)).
    pub fn special_bits(&mut self, bits: u32) -> &mut Self {
        self.p = PSpec::Auto { bits };
        self
    }

    /// An explicit number of special primes of `bits` bits.
    pub fn special_count(&mut self, count: usize, bits: u32) -> &mut Self {
        self.p = PSpec::Count { count, bits };
        self
    }

    /// Explicit special primes.
    pub fn special_primes(&mut self, primes: &[u64]) -> &mut Self {
        self.p = PSpec::Primes(primes.to_vec());
        self
    }

    /// Number of key-switching digits (dnum), 1..=L+1.
    pub fn dnum(&mut self, dnum: usize) -> &mut Self {
        self.dnum = dnum;
        self
    }

    /// Default encoding scale as log2 (e.g. 40.0 for 2^40).
    pub fn log_scale(&mut self, log_scale: f64) -> &mut Self {
        self.log_scale = log_scale;
        self
    }

    /// Accept a set above the 128-bit bound; for tests and experiments only.
    pub fn allow_insecure(&mut self) -> &mut Self {
        self.allow_insecure = true;
        self
    }

    /// Validates the set and generates its primes.
    pub fn build(&self) -> Result<Params> {
        let log_n = self.log_n;
        if !(MIN_LOG_N..=MAX_LOG_N).contains(&log_n) {
            return Err(Error::InvalidLogN { log_n, min: MIN_LOG_N, max: MAX_LOG_N });
        }
        let two_n = 2u64 << log_n;
        let q = match &self.q {
            QSpec::Bits { first, scaling } => {
                let mut q = primes_below(*first, 1, log_n, &[])?;
                let mut by_bits: Vec<(u32, usize)> = Vec::new();
                for &b in scaling {
                    match by_bits.iter_mut().find(|(bb, _)| *bb == b) {
                        Some(e) => e.1 += 1,
                        None => by_bits.push((b, 1)),
                    }
                }
                let mut pools: Vec<(u32, Vec<u64>)> = Vec::new();
                for (b, c) in by_bits {
                    let excl: Vec<u64> =
                        q.iter().chain(pools.iter().flat_map(|p| p.1.iter())).copied().collect();
                    // Primes near 2^b lie on both sides of it; at the widest width there is
                    // no room above, so those are the largest below 2^61.
                    let pool = if b >= MAX_PRIME_BITS {
                        primes_below(b, c, log_n, &excl)?
                    } else {
                        primes_near(b, c, log_n, &excl)?
                    };
                    pools.push((b, pool));
                }
                for &b in scaling {
                    if let Some((_, pool)) = pools.iter_mut().find(|(bb, _)| *bb == b) {
                        q.push(pool.remove(0));
                    }
                }
                q
            }
            QSpec::Primes(p) => p.clone(),
        };
        if q.is_empty() {
            return Err(Error::InvalidParameter { name: "q", reason: "empty Q chain".into() });
        }
        let l1 = q.len();
        if self.dnum == 0 || self.dnum > l1 {
            return Err(Error::InvalidParameter {
                name: "dnum",
                reason: format!("dnum = {} must be in 1..={l1}", self.dnum),
            });
        }
        let alpha = l1.div_ceil(self.dnum);
        let p = match &self.p {
            PSpec::Auto { bits } => primes_below(*bits, alpha, log_n, &q)?,
            PSpec::Count { count, bits } => primes_below(*bits, *count, log_n, &q)?,
            PSpec::Primes(p) => p.clone(),
        };
        if p.is_empty() {
            return Err(Error::InvalidParameter {
                name: "special primes",
                reason: "at least one special prime is needed".into(),
            });
        }
        let all: Vec<u64> = q.iter().chain(&p).copied().collect();
        for (i, &m) in all.iter().enumerate() {
            if m >> MAX_PRIME_BITS != 0 {
                return Err(Error::InvalidModulus { modulus: m, reason: "must be below 2^61" });
            }
            if m % two_n != 1 {
                return Err(Error::InvalidModulus { modulus: m, reason: "must be 1 mod 2N" });
            }
            if !is_prime(m) {
                return Err(Error::InvalidModulus { modulus: m, reason: "must be prime" });
            }
            if all[..i].contains(&m) {
                return Err(Error::InvalidParameter {
                    name: "primes",
                    reason: format!("prime {m} appears twice"),
                });
            }
        }
        if !(self.log_scale.is_finite() && self.log_scale > 0.0 && self.log_scale < 120.0) {
            return Err(Error::InvalidParameter {
                name: "scale",
                reason: format!("log2 scale {} is not in (0, 120)", self.log_scale),
            });
        }
        let log_qp: f64 = all.iter().map(|&m| (m as f64).log2()).sum();
        let bound = max_log_qp_128(log_n).unwrap_or(0);
        if log_qp > bound as f64 && !self.allow_insecure {
            return Err(Error::InsecureParameters { log_n, log_qp, bound });
        }
        let id = params_id(log_n, &q, &p, self.dnum, self.log_scale);
        Ok(Params {
            inner: Arc::new(ParamsInner {
                log_n,
                q,
                p,
                dnum: self.dnum,
                alpha,
                log_scale: self.log_scale,
                log_qp,
                secure: log_qp <= bound as f64,
                id,
            }),
        })
    }
}

#[derive(Debug)]
struct ParamsInner {
    log_n: u32,
    q: Vec<u64>,
    p: Vec<u64>,
    dnum: usize,
    alpha: usize,
    log_scale: f64,
    log_qp: f64,
    secure: bool,
    id: u64,
}

/// A validated CKKS parameter set (cheap to clone); its existence proves the checks passed.
#[derive(Debug, Clone)]
pub struct Params {
    inner: Arc<ParamsInner>,
}

impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
            && self.inner.q == other.inner.q
            && self.inner.p == other.inner.p
            && self.inner.dnum == other.inner.dnum
    }
}

impl Params {
    /// log2 of the ring degree.
    pub fn log_n(&self) -> u32 {
        self.inner.log_n
    }
    /// Ring degree N.
    pub fn n(&self) -> usize {
        1 << self.inner.log_n
    }
    /// Number of complex slots, N/2.
    pub fn slots(&self) -> usize {
        self.n() / 2
    }
    /// The Q chain, q_0 first.
    pub fn q(&self) -> &[u64] {
        &self.inner.q
    }
    /// The special primes P.
    pub fn p(&self) -> &[u64] {
        &self.inner.p
    }
    /// Highest level L (a fresh ciphertext has L+1 limbs).
    pub fn max_level(&self) -> usize {
        self.inner.q.len() - 1
    }
    /// Number of key-switching digits.
    pub fn dnum(&self) -> usize {
        self.inner.dnum
    }
    /// Q limbs per digit, ceil((L+1)/dnum).
    pub fn alpha(&self) -> usize {
        self.inner.alpha
    }
    /// Default scale.
    pub fn scale(&self) -> f64 {
        self.inner.log_scale.exp2()
    }
    /// log2 of the default scale.
    pub fn log_scale(&self) -> f64 {
        self.inner.log_scale
    }
    /// log2(QP).
    pub fn log_qp(&self) -> f64 {
        self.inner.log_qp
    }
    /// Whether the set meets the 128-bit bound.
    pub fn is_secure(&self) -> bool {
        self.inner.secure
    }
    /// A 64-bit fingerprint of the set, stored in every serialised object.
    pub fn id(&self) -> u64 {
        self.inner.id
    }
    /// Number of digits that are non-empty at `level`.
    pub fn digits_at(&self, level: usize) -> usize {
        (level + 1).div_ceil(self.inner.alpha)
    }
}

fn params_id(log_n: u32, q: &[u64], p: &[u64], dnum: usize, log_scale: f64) -> u64 {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&log_n.to_le_bytes());
    bytes.extend_from_slice(&(q.len() as u64).to_le_bytes());
    for x in q.iter().chain(p) {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.extend_from_slice(&(dnum as u64).to_le_bytes());
    bytes.extend_from_slice(&log_scale.to_bits().to_le_bytes());
    let lo = crc32c::crc32c(&bytes) as u64;
    bytes.push(0x5a);
    let hi = crc32c::crc32c(&bytes) as u64;
    (hi << 32) | lo
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_secure_and_shaped_as_the_issue_says() {
        for preset in [Preset::N13, Preset::N14, Preset::N15, Preset::N16] {
            let p = preset.params().unwrap();
            assert!(p.is_secure(), "{preset:?} log qp {}", p.log_qp());
            assert_eq!(p.max_level(), preset.depth());
            assert_eq!(p.p().len(), (preset.depth() + 1).div_ceil(3));
            assert!(p.q()[0] < 1 << 50);
            assert!(p.p().iter().all(|&x| x < 1 << 50));
            for &q in &p.q()[1..] {
                assert!(((q as f64).log2() - 40.0).abs() < 0.01);
            }
            // P must be about as large as the largest digit for the key-switching noise to stay
            // small (at N = 2^13 both are one prime just below 2^50).
            let digit_bits: f64 = p.q()[..p.alpha()].iter().map(|&q| (q as f64).log2()).sum();
            let p_bits: f64 = p.p().iter().map(|&q| (q as f64).log2()).sum();
            assert!(p_bits + 0.01 > digit_bits, "{p_bits} vs {digit_bits}");
        }
    }

    /// 61 bits takes the largest primes below 2^61 (there is no room above 2^61), other widths
    /// stay near 2^b on both sides; 62 is refused.
    #[test]
    fn q_bits_of_61_are_the_largest_primes_below_2_61() {
        let mut b = ParamsBuilder::new(12);
        b.q_bits(50, &[60, 61, 61, 60]).special_bits(50).dnum(2).allow_insecure();
        let p = b.build().unwrap();
        let q = p.q();
        for &x in &q[2..4] {
            assert!(x > 1 << 60 && x < 1 << 61, "{x:#x}");
        }
        assert!(q[2] > q[3], "the largest first");
        assert!(q[1].abs_diff(1 << 60) < 1 << 20 && q[4].abs_diff(1 << 60) < 1 << 20);
        let mut b = ParamsBuilder::new(12);
        b.q_bits(50, &[62]).special_bits(50).dnum(1).allow_insecure();
        assert!(b.build().is_err());
    }

    #[test]
    fn insecure_set_is_a_typed_error_unless_allowed() {
        let mut b = ParamsBuilder::new(13);
        b.q_bits(50, &[40, 40, 40]).special_bits(50).dnum(1);
        match b.build() {
            Err(Error::InsecureParameters { log_n: 13, bound: 218, log_qp }) => {
                assert!(log_qp > 218.0)
            }
            other => panic!("unexpected {other:?}"),
        }
        let p = b.allow_insecure().build().unwrap();
        assert!(!p.is_secure());
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        assert!(matches!(ParamsBuilder::new(11).build(), Err(Error::InvalidLogN { .. })));
        assert!(matches!(ParamsBuilder::new(18).build(), Err(Error::InvalidLogN { .. })));
        let mut b = ParamsBuilder::new(12);
        b.q_primes(&[97]).special_bits(30).dnum(1);
        assert!(matches!(b.build(), Err(Error::InvalidModulus { modulus: 97, .. })));
        let mut b = ParamsBuilder::new(12);
        b.dnum(0);
        assert!(matches!(b.build(), Err(Error::InvalidParameter { name: "dnum", .. })));
        let mut b = ParamsBuilder::new(12);
        b.log_scale(f64::NAN);
        assert!(matches!(b.build(), Err(Error::InvalidParameter { name: "scale", .. })));
    }

    #[test]
    fn security_table_matches_the_standard() {
        assert_eq!(max_log_qp_128(12), Some(109));
        assert_eq!(max_log_qp_128(16), Some(1747));
        assert_eq!(max_log_qp_128(17), Some(3523));
        assert_eq!(max_log_qp_128(18), None);
    }
}
