//! RNS-CKKS with hybrid key switching: parameters, encoder, keys, encryption, evaluation and
//! serialisation. Every entity is generic over its storage (`AsRef<[u64]>`).

mod ciphertext;
mod context;
mod encoder;
mod encryptor;
mod evaluator;
mod fft;
mod keys;
mod keyswitch;
mod params;
mod ring;
mod rotation;
mod sampling;
mod serialize;

pub use ciphertext::{Ciphertext, Plaintext};
pub use context::Context;
pub use encoder::Encoder;
pub use encryptor::{Decryptor, Encryptor, SeededCiphertext};
pub use evaluator::Evaluator;
pub use fft::Complex64;
pub use keys::{
    GaloisKey, GaloisKeySet, KeyGenerator, KeySwitchKey, PublicKey, RelinKey, SecretKey,
};
pub use keyswitch::Scratch;
pub use params::{
    max_log_qp_128, Params, ParamsBuilder, Preset, MAX_LOG_N, MIN_LOG_N, SECURITY_128_MAX_LOG_QP,
};
pub use rotation::HoistedCiphertext;
pub use sampling::{os_seed, Seed, SIGMA};
pub use serialize::{blob_kind, BlobKind, FORMAT_VERSION};
