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
    /// Bits of the EvalMod primes (at most 61: the largest primes below 2^61). EvalMod
    /// multiplies its input error by 2πK and the double angles by 4^r, so these levels carry
    /// the bootstrap's precision: 59 bits gives ~10 bits more than 49, at the price of leaving
    /// the IFMA kernels (which need primes below 2^50) for those levels. Its noise, scaled up
    /// by q_0/Δ on the way back, is most of what is left of the error once Δ is 2^42 or
    /// more: at N = 2^16, 61 bits measured 0.7 bits more (mean error) than 60 at Δ = 2^42,
    /// 1.0 at 2^44 (57 lost 2.5 at 2^40), on the same 64-bit kernels.
    pub eval_mod_bits: u32,
    /// Bits of a computation prime and of the default scale Δ, at which a bootstrapped
    /// ciphertext comes back. Its last rescale (and the switch back from the sparse secret)
    /// adds the rounding noise of the dense secret, fixed in size, so its relative size falls
    /// with Δ: at N = 2^16 one rescale to 2^40 alone leaves 23.4–23.7 bits (max error over
    /// 2^15 slots), to 2^42 25.1–25.5, to 2^44 27.4–27.7.
    pub compute_bits: u32,
    /// Bits of q_0, `compute_bits` + 6 in the presets (a bootstrap refuses a scale above
    /// q_0/32): the bootstrap's error grows with q_0/Δ
    /// (EvalMod's noise is scaled up by it on the way back) while the sine's approximation
    /// error shrinks with it; 2^6 with the arcsine correction balances the two (a constant
    /// vector, the sine's worst case, still gets 17.9 bits).
    pub q0_bits: u32,
    /// Bits of a SlotToCoeff prime: it carries only the message, so it can give the bits
    /// CoeffToSlot takes (the deep N = 2^16 preset stays within the 128-bit bound); 44 bits
    /// lost 0.5 bits of precision, 46 none.
    pub stc_bits: u32,
    /// Bits of a CoeffToSlot prime. Its diagonals are encoded at about this scale times the
    /// step from G·q_0 up to EvalMod's prime (a larger q_0 makes the step smaller), and their
    /// rounding is applied to the raised ciphertext's content (q_0·I, far above the message):
    /// 50 bits here and 46 for SlotToCoeff measured 1.8 bits more precision than 48 and 48
    /// (log N 14); at N = 2^16 with q_0 = 2^46, 60 bits gained nothing over 50, with
    /// q_0 = 2^50 0.5 bits.
    pub cts_bits: u32,
    /// The circuit.
    pub config: BootstrapConfig,
    insecure: bool,
}

/// Bits of q_0 of the 2^40-scale presets.
const Q0_BITS: u32 = 46;
/// Bits of a computation prime (and the default scale) of the 2^40-scale presets.
const COMPUTE_BITS: u32 = 40;
/// Bits of a CoeffToSlot prime: the IFMA width (primes below 2^50), though `q_bits` finds
/// two of the three just above 2^50, where the 64-bit kernels take them.
const CTS_BITS: u32 = 50;
/// Bits of a SlotToCoeff prime.
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
            compute_bits: COMPUTE_BITS,
            q0_bits: Q0_BITS,
            stc_bits: STC_BITS,
            cts_bits: CTS_BITS,
            config: BootstrapConfig::default(),
            insecure: false,
        }
    }

    /// N = 2^16 tuned for latency: 3 levels left, so every key switch of the circuit runs over
    /// fewer primes. Its shorter chain leaves room under the 128-bit bound for precision:
    /// Δ = 2^42 (q_0 = 2^48) and 61-bit EvalMod primes, the same limbs and kernels as at
    /// 2^40 and 60 bits, take the max error over 2^15 complex slots from 23.1–23.3 bits to
    /// 24.4–24.6 (mean 25.5 to 26.4; docs/bootstrapping.md, "Precision at N = 2^16").
    pub fn n16_fast() -> Self {
        Self {
            compute_levels: 3,
            dnum: 3,
            compute_bits: 42,
            q0_bits: 48,
            eval_mod_bits: 61,
            ..Self::n16_deep()
        }
    }

    /// N = 2^16 with `n16_deep`'s 9 levels left and `n16_fast`'s precision: Δ = 2^42
    /// (q_0 = 2^48) and 61-bit EvalMod primes. At dnum 4 those widths would take log2 QP to
    /// 1774, above the 128-bit bound (1747); with dnum 5 the widest digit is six EvalMod
    /// primes, so eight special primes cover it instead of nine, and the chain fits (1724).
    /// The price is a fifth digit in every key and key switch: keys ~21% larger in words than
    /// `n16_deep`'s (docs/bootstrapping.md, "Precision at N = 2^16").
    pub fn n16_precise() -> Self {
        Self { dnum: 5, compute_bits: 42, q0_bits: 48, eval_mod_bits: 61, ..Self::n16_deep() }
    }

    /// A small ring (log N 12..=15) for tests and examples; far below 128-bit security, which
    /// this constructor's name opts into.
    pub fn insecure_test(log_n: u32, compute_levels: usize) -> Self {
        Self {
            log_n,
            compute_levels,
            dnum: 3,
            eval_mod_bits: 59,
            compute_bits: COMPUTE_BITS,
            q0_bits: Q0_BITS,
            stc_bits: STC_BITS,
            cts_bits: CTS_BITS,
            config: BootstrapConfig::default(),
            insecure: true,
        }
    }

    /// The parameter builder for this set (before validation).
    pub fn builder(&self) -> Result<ParamsBuilder> {
        let (cts, eval_mod, stc) = self.config.depth()?;
        let mut scaling = vec![self.compute_bits; self.compute_levels];
        // CoeffToSlot climbs from scale G·q_0 to the first EvalMod prime, so its own primes
        // only need to encode the diagonals precisely.
        scaling.extend(std::iter::repeat_n(self.stc_bits, stc));
        scaling.extend(std::iter::repeat_n(self.eval_mod_bits, eval_mod));
        scaling.extend(std::iter::repeat_n(self.cts_bits, cts));
        // P must cover the largest key-switching digit (α consecutive primes) or the
        // key-switching noise grows by their ratio.
        let mut bits = vec![self.q0_bits];
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
        b.q_bits(self.q0_bits, &scaling)
            .special_count(special, SPECIAL_BITS)
            .dnum(self.dnum)
            .log_scale(f64::from(self.compute_bits));
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
