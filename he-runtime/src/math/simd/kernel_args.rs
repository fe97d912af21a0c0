//! Plain constants the IFMA kernels take as arguments. A leaf of the SIMD module: the kernels
//! (`ifma*.rs`) and the safe wrappers (`mod.rs`) both import it, and it imports no kernel.

use crate::math::zq::Modulus;

/// The constants of the last inverse stage: N^{-1} and ψ^{-brv(1)}·N^{-1} with Shoup companions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InverseScale {
    pub(crate) n_inv: u64,
    pub(crate) n_inv_shoup: u64,
    pub(crate) last: u64,
    pub(crate) last_shoup: u64,
}

/// Per-target constants of the IFMA basis-extension fold: 2^52 mod p and floor(2^52/p) in
/// 52-bit Shoup form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ExtendFold {
    pub(crate) p: u64,
    pub(crate) c52: u64,
    pub(crate) c52_shoup: u64,
    pub(crate) one_shoup: u64,
}

impl ExtendFold {
    /// Constants for target prime `p` (< 2^50).
    pub(crate) fn new(p: &Modulus) -> Self {
        let c52 = p.reduce(1 << 52);
        Self { p: p.value(), c52, c52_shoup: p.shoup(c52) >> 12, one_shoup: p.shoup(1) >> 12 }
    }
}

/// The HPS correction of a centered basis extension: subtract r[c]·(Q mod p).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Correction<'a> {
    pub(crate) counts: &'a [u64],
    pub(crate) q_mod_p: u64,
    pub(crate) q_mod_p_shoup: u64,
}
