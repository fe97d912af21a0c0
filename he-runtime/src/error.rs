//! The crate's single error type.

use crate::math::poly::Representation;

/// Every failure `hetier-he` reports; bad input is always one of these, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A modulus is unusable (even, too small, too large, or not prime where a prime is needed).
    #[error("invalid modulus {modulus}: {reason}")]
    InvalidModulus {
        /// The rejected value.
        modulus: u64,
        /// Which requirement it failed.
        reason: &'static str,
    },
    /// Fewer NTT-friendly primes of the requested size exist than were asked for.
    #[error("only {found} of {wanted} NTT-friendly {bits}-bit primes exist for log N = {log_n}")]
    NotEnoughPrimes {
        /// Requested bit size.
        bits: u32,
        /// log2 of the ring degree (primes are 1 mod 2N).
        log_n: u32,
        /// How many were requested.
        wanted: usize,
        /// How many were found.
        found: usize,
    },
    /// A prime size outside what the arithmetic supports for this ring degree.
    #[error("prime size {bits} bits outside {min}..={max}")]
    InvalidPrimeBits {
        /// Requested bit size.
        bits: u32,
        /// Smallest supported size.
        min: u32,
        /// Largest supported size.
        max: u32,
    },
    /// A ring degree outside the supported range.
    #[error("log N = {log_n} outside {min}..={max}")]
    InvalidLogN {
        /// Requested log2 of the ring degree.
        log_n: u32,
        /// Smallest supported value.
        min: u32,
        /// Largest supported value.
        max: u32,
    },
    /// Two operands (or an operand and a basis) disagree on the number of RNS limbs.
    #[error("limb count mismatch: expected {expected}, found {found}")]
    LimbMismatch {
        /// What the operation needed.
        expected: usize,
        /// What it got.
        found: usize,
    },
    /// Two operands (or an operand and a basis) disagree on the ring degree.
    #[error("ring degree mismatch: expected {expected}, found {found}")]
    DegreeMismatch {
        /// What the operation needed.
        expected: usize,
        /// What it got.
        found: usize,
    },
    /// An operand is in coefficient form where NTT form is needed, or the other way round.
    #[error("representation mismatch: expected {expected:?}, found {found:?}")]
    RepresentationMismatch {
        /// What the operation needed.
        expected: Representation,
        /// What it got.
        found: Representation,
    },
    /// A buffer (data or scratch) is shorter than the operation needs.
    #[error("buffer too small: need {needed} words, got {found}")]
    BufferTooSmall {
        /// Words needed.
        needed: usize,
        /// Words provided.
        found: usize,
    },
    /// A value has no inverse modulo the given modulus.
    #[error("{value} is not invertible modulo {modulus}")]
    NotInvertible {
        /// The value.
        value: u64,
        /// The modulus.
        modulus: u64,
    },
    /// An RNS basis contains the same modulus twice (CRT needs pairwise coprime moduli).
    #[error("modulus {modulus} appears more than once in an RNS basis")]
    DuplicateModulus {
        /// The repeated modulus.
        modulus: u64,
    },
    /// A Galois element that is even or not below 2N.
    #[error("invalid Galois element {galois}: must be odd and below 2N = {two_n}")]
    InvalidGaloisElement {
        /// The rejected element.
        galois: u64,
        /// 2N for the ring in question.
        two_n: u64,
    },
    /// A requested SIMD backend is not available on this CPU or for this modulus.
    #[error("NTT backend unavailable: {reason}")]
    BackendUnavailable {
        /// Why it cannot be used.
        reason: &'static str,
    },
}

/// Result alias for `hetier-he`.
pub type Result<T> = std::result::Result<T, Error>;
