//! RNS-CKKS with hybrid key switching: parameters, encoder, keys, encryption, evaluation and
//! serialisation. Every entity is generic over its storage (`AsRef<[u64]>`), so a buffer pinned
//! in the tiered store is used in place.
//!
//! ```
//! use hetier_he::ckks::*;
//! # fn main() -> hetier_he::Result<()> {
//! let params = Preset::N13.params()?;            // N = 2^13, depth 2, scale 2^40, dnum 3
//! let ctx = Context::new(&params)?;
//! let mut kg = KeyGenerator::new(&ctx);
//! let sk = kg.secret_key();
//! let pk = kg.public_key(&sk)?;
//! let rk = kg.relin_key(&sk)?;
//! let rot1 = kg.rotation_key(&sk, 1)?;
//! let (enc, eval) = (Encoder::new(&ctx), Evaluator::new(&ctx));
//! let x: Vec<f64> = (0..params.slots()).map(|i| (i % 7) as f64 / 7.0).collect();
//! let ct = Encryptor::new(&ctx).encrypt_pk(&pk, &enc.encode_real(&x, params.max_level(), params.scale())?)?;
//! let mut scratch = eval.scratch();
//! let sq = eval.rescale(&eval.mul_relin(&ct, &ct, &rk, &mut scratch)?)?;
//! let r = eval.rotate(&sq, 1, &rot1, &mut scratch)?;
//! let out = enc.decode_real(&Decryptor::new(&ctx, &sk)?.decrypt(&r)?)?;
//! assert!((out[0] - x[1] * x[1]).abs() < 1e-6);
//! # Ok(())
//! # }
//! ```

pub mod bootstrap;
mod ciphertext;
mod context;
mod encoder;
mod encryptor;
mod evaluator;
mod fft;
mod hoisting;
mod in_place;
mod key_limbs;
mod keys;
mod keystream;
mod keyswitch;
mod limb_scratch;
mod params;
mod ring;
mod rotation;
mod sampling;
mod serialize;

pub use ciphertext::{Ciphertext, CiphertextMutView, CiphertextView, Plaintext, PlaintextView};
pub use context::Context;
pub use encoder::Encoder;
pub use encryptor::{Decryptor, Encryptor, SeededCiphertext};
pub use evaluator::Evaluator;
pub use fft::Complex64;
pub use hoisting::ExtendedPlaintext;
pub use key_limbs::{KeyLimbs, SwitchKeyWords};
pub use keys::{
    switch_key_expanded_words, GaloisKey, GaloisKeySet, KeyGenerator, KeySwitchKey,
    KeySwitchKeyView, PublicKey, RelinKey, SecretKey,
};
pub use keyswitch::{Scratch, ScratchWords};
pub use params::{
    max_log_qp_128, Params, ParamsBuilder, Preset, MAX_LOG_N, MIN_LOG_N, SECURITY_128_MAX_LOG_QP,
};
pub use rotation::HoistedCiphertext;
pub use sampling::{os_seed, Seed, SIGMA};
pub use serialize::{
    blob_kind, digits_read_at, expand_pinned_digit, switch_key_digit_stored_len,
    switch_key_stored_len, BlobKind, PackedKeyLayout, FORMAT_VERSION,
};
