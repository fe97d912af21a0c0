//! RNS arithmetic under the CKKS layer: Z_q, primes, NTT, RNS bases, polynomials.
//!
//! Layout convention everywhere: a polynomial with `limbs` RNS limbs of degree N is one flat
//! `[u64]` of `limbs * N` words, limb i in `data[i*N..(i+1)*N]` (limb-major).

pub mod automorphism;
pub mod basis_ext;
mod bigint;
pub mod crt;
pub mod ntt;
pub mod poly;
pub mod primes;
pub mod rns;
pub(crate) mod simd;
pub mod zq;

pub use automorphism::{galois_element_for_conjugation, galois_element_for_rotation, Automorphism};
pub use basis_ext::{BasisConverter, Conversion, ModDown, ModUp};
pub use crt::CrtReconstructor;
pub use ntt::{NttBackend, NttTable};
pub use poly::{Poly, PolyMutView, PolyOwned, PolyView, Representation};
pub use primes::{generate_ntt_primes, is_prime, primitive_root_2n};
pub use rns::RnsBasis;
pub use zq::Modulus;
