//! Serving many requests at once over one store: a [`Server`] per model and store that holds
//! public material only (evaluation keys and encoded weights, durable store objects put once
//! and shared), and a [`Client`] that holds the secret key (key generation, encryption,
//! decryption).
//!
//! Each request runs on the caller's thread with its own executor. Its ciphertexts live in a
//! scratch space of their own (so requests never collide on object ids) and are removed when
//! it ends, however it ends. Its pins and its plan form a request stream of the store, so the
//! `planned` policy prefetches and evicts from the merged plans of every request in flight
//! and keeps a shared key that another request is about to use. A request is admitted only
//! when its pinned set fits beside those of the running requests; otherwise it waits in a
//! bounded queue instead of failing on the budget. A damaged weight is re-encoded from the
//! model; a damaged evaluation key is sent again by its client (see `heal.rs`). See
//! `docs/serving.md`.

mod admission;
mod client;
mod heal;
mod server;

pub use admission::AdmissionStats;
pub use client::Client;
pub use server::{Response, Server, ServerOptions, ServerStats};

#[cfg(test)]
mod tests;
