//! RNS arithmetic under the CKKS layer: Z_q, primes, NTT, RNS bases, polynomials.
//!
//! Layout convention everywhere: a polynomial with `limbs` RNS limbs of degree N is one flat
//! `[u64]` of `limbs * N` words, limb i in `data[i*N..(i+1)*N]` (limb-major).
//!
//! ```
//! use hetier_he::math::{generate_ntt_primes, PolyOwned, Representation, RnsBasis};
//!
//! // Two 50-bit NTT-friendly primes for N = 2^12, and X · X^(N-1) = X^N = -1.
//! let basis = RnsBasis::new(12, &generate_ntt_primes(50, 12, 2, &[])?)?;
//! let n = basis.n();
//! let mut a = PolyOwned::zero(n, 2, Representation::Coefficient);
//! let mut b = a.clone();
//! for i in 0..2 {
//!     a.limb_mut(i)[1] = 1;
//!     b.limb_mut(i)[n - 1] = 1;
//! }
//! a.to_ntt(&basis)?;
//! b.to_ntt(&basis)?;
//! a.mul_assign(&b, &basis)?;
//! a.to_coeff(&basis)?;
//! let q0 = basis.moduli()[0].value();
//! assert_eq!(a.limb(0)[0], q0 - 1);
//! assert!(a.limb(0)[1..].iter().all(|&c| c == 0));
//! # Ok::<(), hetier_he::Error>(())
//! ```

pub mod automorphism;
pub mod basis_ext;
mod bigint;
pub mod bit_fields;
pub mod crt;
pub mod dot;
pub mod lincomb;
pub mod ntt;
pub mod poly;
pub mod primes;
pub(crate) mod representation;
pub mod rns;
pub(crate) mod simd;
pub mod zq;
mod zq_slice;

pub use automorphism::{galois_element_for_conjugation, galois_element_for_rotation, Automorphism};
pub use basis_ext::{BasisConverter, Conversion, ModDown, ModUp};
pub use crt::CrtReconstructor;
pub use dot::dot_product;
pub use ntt::{NttBackend, NttTable};
pub use poly::{Poly, PolyMutView, PolyOwned, PolyView, Representation};
pub use primes::{generate_ntt_primes, is_prime, primitive_root_2n};
pub use rns::RnsBasis;
pub use zq::Modulus;
