//! The form a polynomial is held in. A leaf: it imports nothing from the crate, so the crate's
//! error type can name it without an import circle.

/// Whether a polynomial holds coefficients or NTT evaluations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Representation {
    /// Coefficients a_0..a_{N-1} in natural order.
    Coefficient,
    /// Evaluations in the bit-reversed order documented in [`crate::math::ntt`].
    Ntt,
}
