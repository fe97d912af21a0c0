//! hetier-he: RNS-CKKS homomorphic encryption in Rust, and an executor that runs encrypted
//! models with every ciphertext and key in hetier's tiered DRAM/PM store.
//!
//! The CKKS core (`math`, `ckks`, `nn`, `model`) stands alone: it neither depends on the store
//! nor names it, not even in an error type. Build it without the store with
//! `default-features = false` (or `--no-default-features`); then neither `hetier-tiering` nor
//! `hetier-allocator` is in the dependency tree. Its math works on any `AsRef<[u64]>` /
//! `AsMut<[u64]>` container, so a buffer pinned in the store is used in place.
//!
//! # Layers: who owns what
//! Dependencies point one way, top to bottom; each module is usable without the ones above it.
//!
//! | module | owns | feature |
//! |---|---|---|
//! | [`math`] | Z_q arithmetic (Barrett, Shoup), NTT-friendly primes, negacyclic NTT (portable and AVX-512 IFMA, chosen at run time), RNS bases, fast basis extension, automorphisms. Its only code outside safe Rust is the `simd` submodule. | core |
//! | [`ckks`] | parameters (checked against the 128-bit bounds; insecure sets need an explicit opt-in), encoder, keys with hybrid key switching, encrypt/decrypt, the evaluator (add, multiply+relinearise, rescale, rotate, conjugate, hoisted rotations), versioned serialisation | core |
//! | [`nn`] | encrypted layers (dense, conv2d, pooling, polynomial activations, residual adds) compiled into a straight-line op [`nn::Program`], an in-memory interpreter, and the program's exact access trace | core |
//! | [`model`] | model descriptions (JSON + `safetensors`), validated before any key exists; the slot-packed compiler to an [`nn::Program`]; the f64 reference; full-size layer tables | core |
//! | [`error`] | [`Error`] / [`Result`] of the core | core |
//! | `exec` | the only module that talks to the store: runs a program (slot-packed) or a batch-major plan over a `TieredStore` or symbolically in plan mode, keeps keys durable behind a key-set manifest; its `exec::Error` wraps the core's error and the store's | `store` (default) |
//!
//! # Example
//! Keys, encrypt, multiply + relinearise, rescale, rotate, add, decrypt, and the error against
//! plain f64 — the crate's `examples/ckks_basics.rs`, shown here in full and run as a doctest.
//! It uses small **insecure** test parameters (N = 2^12, opted in with `allow_insecure()`) so
//! it finishes in well under a second; real deployments take a 128-bit preset such as
//! `Preset::N14`.
//!
//! ```
#![doc = include_str!("../examples/ckks_basics.rs")]
//! ```

pub mod ckks;
pub mod error;
#[cfg(feature = "store")]
pub mod exec;
pub mod math;
pub mod model;
pub mod nn;
pub mod train;

pub use error::{Error, Result};
