//! SIMD kernels (AVX-512 IFMA), the only `unsafe` code in the crate.

use crate::math::zq::Modulus;

/// Twiddles in the form the IFMA kernels want; only built when the CPU and prime allow it.
#[derive(Clone, Debug)]
pub(crate) struct IfmaTwiddles {}

impl IfmaTwiddles {
    pub(crate) fn new(
        _m: &Modulus,
        _roots: &[u64],
        _inv_roots: &[u64],
        _n_inv: u64,
        _last_inv: u64,
    ) -> Option<Self> {
        None
    }

    pub(crate) fn forward(&self, _a: &mut [u64]) {}

    pub(crate) fn inverse(&self, _a: &mut [u64]) {}
}
