//! Plaintexts and ciphertexts, generic over their storage so a pinned store buffer can be used
//! in place. Polynomials are in NTT form, limb i of polynomial p at words
//! `(p·(level+1) + i)·N ..`.

use crate::error::{Error, Result};

/// An encoded message: one polynomial in NTT form over q_0..q_level, with its scale.
#[derive(Debug, Clone)]
pub struct Plaintext<C = Vec<u64>> {
    pub(crate) data: C,
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) n: usize,
    pub(crate) params_id: u64,
    /// The period of the encoded slot vector (see [`Plaintext::slots`]), when known.
    pub(crate) slots: Option<usize>,
}

/// A CKKS ciphertext (c_0, c_1[, c_2]) in NTT form over q_0..q_level.
#[derive(Debug, Clone)]
pub struct Ciphertext<C = Vec<u64>> {
    pub(crate) data: C,
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) n: usize,
    /// Number of polynomials (2 after relinearisation, 3 straight after a product).
    pub(crate) parts: usize,
    pub(crate) params_id: u64,
    /// The period of the encrypted slot vector (see [`Ciphertext::slots`]), when known.
    pub(crate) slots: Option<usize>,
}

/// The slot period of a result computed from operands of periods `a` and `b`: the larger
/// (both are powers of two), unknown if either is.
pub(crate) fn merge_slots(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    Some(a?.max(b?))
}

fn check_len(found: usize, expected: usize) -> Result<()> {
    if found == expected {
        Ok(())
    } else {
        Err(Error::BufferLength { expected, found })
    }
}

impl<C: AsRef<[u64]>> Plaintext<C> {
    /// Wraps a buffer of `(level+1)·N` words (NTT form) as a plaintext.
    pub fn from_raw(data: C, level: usize, scale: f64, n: usize, params_id: u64) -> Result<Self> {
        check_len(data.as_ref().len(), (level + 1) * n)?;
        Ok(Self { data, level, scale, n, params_id, slots: None })
    }
    /// The smallest power-of-two period of the encoded slot vector, as the encoder saw it (n
    /// for a sparsely packed message of n slots, N/2 for a full one); `None` for a plaintext
    /// wrapped from raw words or read from bytes.
    pub fn slots(&self) -> Option<usize> {
        self.slots
    }
    /// Level (number of limbs − 1).
    pub fn level(&self) -> usize {
        self.level
    }
    /// Scale Δ of the encoding.
    pub fn scale(&self) -> f64 {
        self.scale
    }
    /// The raw words.
    pub fn as_words(&self) -> &[u64] {
        self.data.as_ref()
    }
    /// Fingerprint of the parameters it was made under.
    pub fn params_id(&self) -> u64 {
        self.params_id
    }
}

impl<C: AsRef<[u64]>> Ciphertext<C> {
    /// Wraps a buffer of `parts·(level+1)·N` words (NTT form) as a ciphertext.
    pub fn from_raw(
        data: C,
        parts: usize,
        level: usize,
        scale: f64,
        n: usize,
        params_id: u64,
    ) -> Result<Self> {
        if !(2..=3).contains(&parts) {
            return Err(Error::InvalidDegree { degree: parts.saturating_sub(1), expected: 1 });
        }
        check_len(data.as_ref().len(), parts * (level + 1) * n)?;
        Ok(Self { data, level, scale, n, parts, params_id, slots: None })
    }
    /// The period of the encrypted slot vector: the encoder's [`Plaintext::slots`], kept by
    /// every operation (the larger of two operands'); `None` when unknown (a ciphertext
    /// wrapped from raw words, read from bytes, or computed from such a one). A sparse
    /// bootstrapper refuses a ciphertext whose period exceeds its slots.
    pub fn slots(&self) -> Option<usize> {
        self.slots
    }
    /// Records the slot period (e.g. of a ciphertext wrapped from a store buffer whose
    /// encoding the caller knows).
    pub fn set_slots(&mut self, slots: Option<usize>) {
        self.slots = slots;
    }
    /// Level (number of limbs − 1).
    pub fn level(&self) -> usize {
        self.level
    }
    /// Scale Δ of the encrypted message.
    pub fn scale(&self) -> f64 {
        self.scale
    }
    /// Degree (number of polynomials − 1): 1 normally, 2 before relinearisation.
    pub fn degree(&self) -> usize {
        self.parts - 1
    }
    /// The raw words.
    pub fn as_words(&self) -> &[u64] {
        self.data.as_ref()
    }
    /// Fingerprint of the parameters it was made under.
    pub fn params_id(&self) -> u64 {
        self.params_id
    }
    /// Words of polynomial `p` (all limbs).
    pub(crate) fn part(&self, p: usize) -> &[u64] {
        let len = (self.level + 1) * self.n;
        &self.data.as_ref()[p * len..(p + 1) * len]
    }
    /// The container holding the words (e.g. a store block the ciphertext was computed into).
    pub fn into_data(self) -> C {
        self.data
    }

    /// A copy with owned storage.
    pub fn to_owned_ct(&self) -> Ciphertext {
        Ciphertext {
            data: self.data.as_ref().to_vec(),
            level: self.level,
            scale: self.scale,
            n: self.n,
            parts: self.parts,
            params_id: self.params_id,
            slots: self.slots,
        }
    }
}

impl<C: AsRef<[u64]> + AsMut<[u64]>> Ciphertext<C> {
    /// Mutable words of polynomial `p`.
    pub(crate) fn part_mut(&mut self, p: usize) -> &mut [u64] {
        let len = (self.level + 1) * self.n;
        &mut self.data.as_mut()[p * len..(p + 1) * len]
    }
    /// Overrides the recorded scale (e.g. after an exact multiplication by a known integer).
    pub fn set_scale(&mut self, scale: f64) {
        self.scale = scale;
    }
}

impl Ciphertext {
    /// A zero ciphertext of `parts` polynomials.
    pub(crate) fn zeros(parts: usize, level: usize, scale: f64, n: usize, params_id: u64) -> Self {
        Self {
            data: vec![0; parts * (level + 1) * n],
            level,
            scale,
            n,
            parts,
            params_id,
            slots: None,
        }
    }
    /// Consumes the ciphertext, returning its words.
    pub fn into_words(self) -> Vec<u64> {
        self.data
    }
}

/// A ciphertext borrowing its words (e.g. a buffer pinned in the tiered store).
pub type CiphertextView<'a> = Ciphertext<&'a [u64]>;
/// A ciphertext mutably borrowing its words.
pub type CiphertextMutView<'a> = Ciphertext<&'a mut [u64]>;
/// A plaintext borrowing its words.
pub type PlaintextView<'a> = Plaintext<&'a [u64]>;
