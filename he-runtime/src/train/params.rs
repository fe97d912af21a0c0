//! Parameters for training: as many 40-bit levels as the 128-bit bound allows, since an
//! iteration spends 2–4 levels and there is no bootstrapping yet. (30-bit levels would give a
//! third more of them, but with a dense ternary secret each rescale then adds about N/4·2^−30
//! of noise — 1.5e-5 at N = 2^16 — and the gradient's small constants turn that into weight
//! errors above 1e-3 within ten iterations.)

use crate::ckks::{Params, ParamsBuilder, MAX_LOG_N, MIN_LOG_N};
use crate::error::{Error, Result};

/// Bits of the first (decryption) prime.
const FIRST_BITS: u32 = 50;
/// Bits of each scaling prime, and log2 of the scale.
const SCALE_BITS: u32 = 40;
/// Key-switching digits.
const DNUM: usize = 3;

fn builder(log_n: u32, levels: usize) -> ParamsBuilder {
    let alpha = (levels + 1).div_ceil(DNUM);
    // P must cover the largest digit (the first: q_0 and alpha − 1 scaling primes) for the
    // key-switching noise to stay below the rounding noise.
    let digit_bits = FIRST_BITS as usize + (alpha - 1) * SCALE_BITS as usize;
    let p_bits = digit_bits.div_ceil(alpha) as u32;
    let mut b = ParamsBuilder::new(log_n);
    b.q_bits(FIRST_BITS, &vec![SCALE_BITS; levels])
        .special_count(alpha, p_bits.clamp(SCALE_BITS + 1, 60))
        .dnum(DNUM)
        .log_scale(f64::from(SCALE_BITS));
    b
}

/// A chain of `levels` 40-bit primes at ring degree 2^log_n — or, with `levels = None`, the
/// deepest such chain within the 128-bit bound (L = 31 at log N = 16). A chain above the
/// bound needs `allow_insecure` (small-N tests).
pub fn deep_params(log_n: u32, levels: Option<usize>, allow_insecure: bool) -> Result<Params> {
    if !(MIN_LOG_N..=MAX_LOG_N).contains(&log_n) {
        return Err(Error::InvalidLogN { log_n, min: MIN_LOG_N, max: MAX_LOG_N });
    }
    if let Some(l) = levels {
        if l == 0 {
            return Err(Error::InvalidParameter {
                name: "levels",
                reason: "at least one level is needed".into(),
            });
        }
        let mut b = builder(log_n, l);
        if allow_insecure {
            b.allow_insecure();
        }
        return b.build();
    }
    // log QP grows by about 53 bits a level (40 in Q, 13 in P): start from an upper estimate and walk down.
    let bound = crate::ckks::max_log_qp_128(log_n).unwrap_or(0) as usize;
    let mut l = bound / 50 + 1;
    while l > 0 {
        match builder(log_n, l).build() {
            Ok(p) => return Ok(p),
            Err(Error::InsecureParameters { .. }) => l -= 1,
            Err(e) => return Err(e),
        }
    }
    Err(Error::InvalidParameter {
        name: "log N",
        reason: format!("no secure 40-bit chain exists at log N = {log_n}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deepest_secure_chain_at_16() {
        let p = deep_params(16, None, false).unwrap();
        assert!(p.is_secure(), "{}", p.log_qp());
        assert!(p.max_level() >= 31, "L = {}", p.max_level());
        // One more level would break the bound.
        let deeper = deep_params(16, Some(p.max_level() + 1), false);
        assert!(matches!(deeper, Err(Error::InsecureParameters { .. })), "{deeper:?}");
        let digit: f64 = p.q()[..p.alpha()].iter().map(|&q| (q as f64).log2()).sum();
        let special: f64 = p.p().iter().map(|&q| (q as f64).log2()).sum();
        assert!(special > digit, "{special} vs {digit}");
    }

    #[test]
    fn insecure_small_chain_needs_the_opt_in() {
        assert!(matches!(deep_params(12, Some(20), false), Err(Error::InsecureParameters { .. })));
        assert_eq!(deep_params(12, Some(20), true).unwrap().max_level(), 20);
    }
}
