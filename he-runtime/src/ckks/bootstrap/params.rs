//! Parameter sets built around a bootstrapping circuit: the modulus chain is laid out bottom up
//! as q_0, the computation levels, then SlotToCoeff, EvalMod and CoeffToSlot levels.

use super::config::BootstrapConfig;
use crate::ckks::params::{Params, ParamsBuilder};
use crate::error::{Error, Result};

/// A bootstrappable parameter set: ring degree, levels left for computation after a bootstrap,
/// and the circuit.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapPreset {
    /// log2 N.
    pub log_n: u32,
    /// Levels a bootstrapped ciphertext has for computation.
    pub compute_levels: usize,
    /// Key-switching digits.
    pub dnum: usize,
    /// Bits of the CoeffToSlot and EvalMod primes. EvalMod multiplies its input error by
    /// 2πK and the double angles by 4^r, so these levels carry the bootstrap's precision:
    /// 59 bits gives ~10 bits more than 49, at the price of leaving the IFMA kernels (which
    /// need primes below 2^50) for those levels.
    pub eval_mod_bits: u32,
    /// The circuit.
    pub config: BootstrapConfig,
    insecure: bool,
}

/// Bits of q_0. The bootstrap's error grows with q_0/Δ (EvalMod's noise is scaled up by it on
/// the way back) while the sine's approximation error shrinks with it; 2^7 with the arcsine
/// correction balances the two.
const Q0_BITS: u32 = 46;
/// Bits of a computation prime (and the default scale).
const COMPUTE_BITS: u32 = 40;
/// Bits of a CoeffToSlot prime: the widest IFMA-sized prime (below 2^50). Its diagonals are
/// encoded at about this scale, and their rounding, applied to the raised ciphertext's content
/// (q_0·I, far above the message), is the larger part of the bootstrap's error: 50 bits here
/// and 46 for SlotToCoeff measured 1.8 bits more precision than 48 and 48 (log N 14).
const CTS_BITS: u32 = 50;
/// Bits of a SlotToCoeff prime: it carries only the message, so it can give the bits
/// CoeffToSlot takes (the deep N = 2^16 preset stays within the 128-bit bound); 44 bits lost
/// 0.5 bits of precision, 46 none.
const STC_BITS: u32 = 46;
/// Bits of a special prime (IFMA-sized; as many as the largest digit needs).
const SPECIAL_BITS: u32 = 50;

impl BootstrapPreset {
    /// N = 2^16 with 9 levels left after each bootstrap (a ResNet's depth between bootstraps),
    /// level budget {3, 3}, within the 128-bit bound.
    pub fn n16_deep() -> Self {
        Self {
            log_n: 16,
            compute_levels: 9,
            dnum: 4,
            eval_mod_bits: 60,
            config: BootstrapConfig::default(),
            insecure: false,
        }
    }

    /// N = 2^16 tuned for latency: 3 levels left, so every key switch of the circuit runs over
    /// fewer primes.
    pub fn n16_fast() -> Self {
        Self { compute_levels: 3, dnum: 3, ..Self::n16_deep() }
    }

    /// A small ring (log N 12..=15) for tests and examples; far below 128-bit security, which
    /// this constructor's name opts into.
    pub fn insecure_test(log_n: u32, compute_levels: usize) -> Self {
        Self {
            log_n,
            compute_levels,
            dnum: 3,
            eval_mod_bits: 59,
            config: BootstrapConfig::default(),
            insecure: true,
        }
    }

    /// The parameter builder for this set (before validation).
    pub fn builder(&self) -> Result<ParamsBuilder> {
        let (cts, eval_mod, stc) = self.config.depth()?;
        let mut scaling = vec![COMPUTE_BITS; self.compute_levels];
        // CoeffToSlot climbs from scale G·q_0 to the first EvalMod prime, so its own primes
        // only need to encode the diagonals precisely.
        scaling.extend(std::iter::repeat_n(STC_BITS, stc));
        scaling.extend(std::iter::repeat_n(self.eval_mod_bits, eval_mod));
        scaling.extend(std::iter::repeat_n(CTS_BITS, cts));
        // P must cover the largest key-switching digit (α consecutive primes) or the
        // key-switching noise grows by their ratio.
        let mut bits = vec![Q0_BITS];
        bits.extend(&scaling);
        if self.dnum == 0 || self.dnum > bits.len() {
            return Err(Error::InvalidParameter {
                name: "dnum",
                reason: format!("dnum = {} must be in 1..={}", self.dnum, bits.len()),
            });
        }
        let alpha = bits.len().div_ceil(self.dnum);
        let widest: u32 = bits.chunks(alpha).map(|d| d.iter().sum::<u32>()).max().unwrap_or(0);
        let special = (widest as usize + 1).div_ceil(SPECIAL_BITS as usize - 1);
        let mut b = ParamsBuilder::new(self.log_n);
        b.q_bits(Q0_BITS, &scaling)
            .special_count(special, SPECIAL_BITS)
            .dnum(self.dnum)
            .log_scale(f64::from(COMPUTE_BITS));
        if self.insecure {
            b.allow_insecure();
        }
        Ok(b)
    }

    /// The validated parameters.
    pub fn params(&self) -> Result<Params> {
        let p = self.builder()?.build()?;
        if p.max_level() < self.compute_levels {
            return Err(Error::CannotBootstrap {
                needed: self.compute_levels,
                available: p.max_level(),
                reason: "no levels left for computation",
            });
        }
        Ok(p)
    }
}
