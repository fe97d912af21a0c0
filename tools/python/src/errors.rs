//! Rust errors as Python exceptions: every `hetier_he::Error` becomes an instance of a class
//! of `hetier.errors` (all subclasses of `hetier.Error` and of ValueError or OSError), carrying
//! the Rust message.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyType;

use hetier_he::Error;

/// A Python exception of class `kind` from `hetier.errors` with `msg`.
pub fn raise(kind: &str, msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    Python::with_gil(|py| {
        match py
            .import("hetier.errors")
            .and_then(|m| m.getattr(kind))
            .and_then(|c| c.downcast_into::<PyType>().map_err(PyErr::from))
        {
            Ok(cls) => PyErr::from_type(cls, msg),
            Err(_) => PyRuntimeError::new_err(msg),
        }
    })
}

/// The `hetier.errors` class for a Rust error.
fn class_of(e: &Error) -> &'static str {
    match e {
        Error::OnnxUnsupported { .. } => "UnsupportedOperatorError",
        Error::OnnxFormat { .. }
        | Error::ModelFormat { .. }
        | Error::ModelLayer { .. }
        | Error::UnknownLayerKind { .. }
        | Error::MissingTensor { .. }
        | Error::TensorShape { .. }
        | Error::ModelTooDeep { .. }
        | Error::WeightsFormat { .. } => "ModelError",
        Error::ModelInput { .. } => "InputShapeError",
        Error::ModelIo { .. } => "FileError",
        Error::ParamsMismatch { .. } => "KeySetError",
        Error::Corrupt { .. }
        | Error::Truncated { .. }
        | Error::BadHeader { .. }
        | Error::ChecksumMismatch { .. } => "CorruptDataError",
        Error::InsecureParameters { .. } | Error::InvalidParameter { .. } => "ConfigError",
        // Keys from an older build must be made again by the client: a key-set problem,
        // not a bad operand.
        Error::MissingGaloisKey { .. } | Error::RetiredSeedFormat { .. } => "KeySetError",
        _ => "CryptoError",
    }
}

/// Converts a Rust error into its Python exception.
pub fn he(e: Error) -> PyErr {
    raise(class_of(&e), e.to_string())
}

/// Converts an executor error (a core error, the store's, or the key-set manifest's).
pub fn exec(e: hetier_he::exec::Error) -> PyErr {
    use hetier_he::exec::Error as E;
    match e {
        E::Core(c) => he(c),
        E::Store(s) => raise("StoreError", s.to_string()),
        E::KeyManifest { .. } => raise("KeySetError", e.to_string()),
        // A damaged pool object is the pool's failure (an OSError), whatever it holds.
        E::KeyDamaged { .. } => raise("KeyDamagedError", e.to_string()),
        E::Damaged { .. } => raise("StoreError", e.to_string()),
        other => raise("CryptoError", other.to_string()),
    }
}

/// Converts a store error (pool open, budget) into `hetier.StoreError`.
pub fn store(e: impl std::fmt::Display) -> PyErr {
    raise("StoreError", e.to_string())
}

/// Result alias for the bindings.
pub type PyRes<T> = Result<T, PyErr>;
