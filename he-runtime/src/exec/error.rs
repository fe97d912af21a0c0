//! The executor's error: the CKKS core's [`crate::Error`], the tiered store's error, and the
//! failures only an executor has (its key-set manifest, its mode).
//!
//! Wrapped errors are `transparent`: their message is shown once, and `source()` walks on to
//! whatever they wrap, so a report of the chain never repeats a line.

use std::sync::Arc;

/// Every failure of [`crate::exec`]: a core error, a store error, or an executor-only one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The CKKS core (math, ckks, nn, model) rejected an operand, a parameter or a model.
    #[error(transparent)]
    Core(#[from] crate::Error),
    /// The tiered store failed (budget too small for the pinned set, pool I/O, corruption).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An object of a run is damaged in the pool (its bytes fail their checksum).
    #[error(
        "{what} is damaged in the pool (object {id:#x}: checksum stored {stored:#010x}, \
         computed {computed:#010x}); {remedy}"
    )]
    Damaged {
        /// What the object is to the run, e.g. "the Galois key for rotation step 3".
        what: String,
        /// Whether it can be derived again (evaluation keys, encoded weights).
        derivable: bool,
        /// Its store object id.
        id: u64,
        /// Checksum recorded when it was written.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
        /// What to do about it.
        remedy: &'static str,
    },
    /// An evaluation key a server uses is damaged in its pool. The server holds no secret key,
    /// so it cannot make the key again: the client that owns the key set sends its evaluation
    /// keys once more (`Server::restore_keys`) and resubmits the request.
    #[error(
        "{what} (key set {keyset:#x}) is damaged in the server's pool (object {id:#x} fails \
         its checksum); the \
         server holds no secret key to make it again: the client must send its evaluation keys \
         again (Server::restore_keys), then resubmit the request"
    )]
    KeyDamaged {
        /// What the key is to the model, e.g. "the Galois key for rotation step 3".
        what: String,
        /// Its Galois element (0: the relinearisation key).
        galois_element: u64,
        /// The client key set it belongs to.
        keyset: u64,
        /// Its store object id.
        id: u64,
    },
    /// The key-set manifest in the pool cannot be used.
    #[error("key-set manifest: {reason}")]
    KeyManifest {
        /// What was wrong.
        reason: String,
    },
    /// A server's queue of requests waiting for room in the budget is full.
    #[error("server is overloaded: {waiting} requests already wait for room (limit {limit})")]
    Overloaded {
        /// Requests waiting when this one arrived.
        waiting: usize,
        /// The server's bound on waiting requests.
        limit: usize,
    },
    /// A request was cancelled while it waited for room (a running request that is cancelled
    /// stops with the store's `Cancelled` error at its next step).
    #[error("request was cancelled while waiting for room in the DRAM budget")]
    Cancelled,
    /// An executor was asked for something its mode cannot do (e.g. decrypting in plan mode).
    #[error("executor in {mode} mode cannot {what}")]
    WrongMode {
        /// The executor's mode.
        mode: &'static str,
        /// The refused request.
        what: &'static str,
    },
}

impl Error {
    /// The core error inside, if this is one.
    pub fn core(&self) -> Option<&crate::Error> {
        match self {
            Error::Core(e) => Some(e),
            _ => None,
        }
    }

    /// The store error inside, if this is one.
    pub fn store(&self) -> Option<&hetier_tiering::Error> {
        match self {
            Error::Store(e) => Some(e.inner()),
            _ => None,
        }
    }
}

/// A tiered-store error, shared behind an `Arc` so that [`Error`] stays `Clone`; two values are
/// equal when they are the same failure. Display and `source()` are the wrapped error's own.
#[derive(Debug, Clone)]
pub struct StoreError(pub Arc<hetier_tiering::Error>);

impl StoreError {
    /// The store's error.
    pub fn inner(&self) -> &hetier_tiering::Error {
        &self.0
    }
}

impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<hetier_tiering::Error> for Error {
    fn from(e: hetier_tiering::Error) -> Self {
        Error::Store(StoreError(Arc::new(e)))
    }
}

/// Result alias for [`crate::exec`].
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn wrapped_errors_show_their_message_once() {
        let core = crate::Error::InvalidLevel { level: 7, max: 3 };
        let e = Error::from(core.clone());
        assert_eq!(e.to_string(), core.to_string());
        assert!(e.source().is_none(), "transparent: the core error has no source of its own");
        assert_eq!(e.core(), Some(&core));

        let st = hetier_tiering::Error::ObjectLargerThanBudget { len: 10, budget: 4 };
        let text = st.to_string();
        let e = Error::from(st);
        assert_eq!(e.to_string(), text);
        assert!(matches!(
            e.store(),
            Some(hetier_tiering::Error::ObjectLargerThanBudget { len: 10, budget: 4 })
        ));
        assert!(e.core().is_none());
    }
}
