//! What a [`Server`] does about damaged pool objects. It holds no secret key, so what it can
//! derive again is what it derives from the model: an encoded weight is re-encoded, replaced
//! durably, counted and reported on one line of stderr, and the request runs again. An
//! evaluation key derives from the client's secret: the request fails with
//! [`Error::KeyDamaged`] naming the key, and the client sends its keys again
//! ([`Server::restore_keys`]), which replaces every damaged or missing key of the set. Keeping
//! a copy of the public keys beside the pool would only move the problem to the copy.
//!
//! Healing takes the server's key set exclusively: requests running at the time finish first,
//! and none pins an object while it is removed and put again.

use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use hetier_tiering::{Cancel, ObjectId, StreamId};

use super::server::Server;
use crate::error::Error as CoreError;
use crate::exec::error::{Error, Result};
use crate::exec::{EvalKeyBundle, Executor, KeySet};

/// The stream a key restore pins under, so that its checks advance no request's plan.
const MAINTENANCE_STREAM: StreamId = StreamId(u64::MAX);

/// Whether `id`'s copy in the pool fails its checksum (pinning it reads and checks it).
fn damaged(store: &hetier_tiering::TieredStore, id: ObjectId) -> Result<bool> {
    match store.pin(id) {
        Ok(_) => Ok(false),
        Err(hetier_tiering::Error::Damaged { .. }) => Ok(true),
        Err(hetier_tiering::Error::UnknownObject { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl Server {
    /// Deals with the damaged object `id` (`what` it is to the model) that a request met: a
    /// weight is re-encoded and replaced; a key is [`Error::KeyDamaged`].
    pub(super) fn heal(&self, id: ObjectId, what: String) -> Result<()> {
        let keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if let Some((g, _)) = keys.iter().find(|(_, k)| k.id == id) {
            self.keys_damaged.fetch_add(1, Ordering::Relaxed);
            return Err(Error::KeyDamaged {
                what,
                galois_element: g,
                keyset: self.keyset.0,
                id: id.0,
            });
        }
        // Another request may have replaced it while this one waited for the key set.
        if !damaged(&self.store, id)? {
            return Ok(());
        }
        let program = &self.compiled.program;
        let mut ex =
            Executor::real(program, self.weights_tag, self.keyset, &self.store, &self.ctx)?;
        let line = ex.heal(id, None, None, self.keyset)?;
        self.healed.fetch_add(1, Ordering::Relaxed);
        eprintln!("{line}");
        Ok(())
    }

    /// Replaces every evaluation key of the server's set that is damaged or missing in the
    /// pool with the one in `keys` (sent again by the client that owns the set, after a request
    /// failed with [`Error::KeyDamaged`]). Waits for running requests to finish; returns how
    /// many keys it replaced, each reported on one line of stderr. Keys that are intact stay.
    pub fn restore_keys(&self, mut keys: EvalKeyBundle) -> Result<usize> {
        if keys.keyset != self.keyset {
            return Err(CoreError::InvalidParameter {
                name: "keys",
                reason: format!(
                    "the bundle is for key set {:#x}, the server for {:#x}",
                    keys.keyset.0, self.keyset.0
                ),
            }
            .into());
        }
        let mut set = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let mut replaced = Vec::new();
        {
            let _scope = self.store.stream(MAINTENANCE_STREAM, Cancel::new(), 0)?;
            for (g, k) in set.iter() {
                if damaged(&self.store, k.id)? {
                    self.store.remove(k.id)?;
                    replaced.push(g);
                }
            }
        }
        let needed: Vec<u64> = self.key_roles.keys().copied().collect();
        let (fresh, report) = KeySet::ensure_with(
            &self.store,
            &self.ctx,
            self.keyset,
            &needed,
            |g| keys.take(g),
            |_, _| {},
        )?;
        *set = fresh;
        self.keys_restored.fetch_add(report.generated as u64, Ordering::Relaxed);
        for g in &replaced {
            let what = self.key_roles.get(g).map_or("an evaluation key", String::as_str);
            eprintln!(
                "healed: {what} was damaged in the pool; replaced from the keys the client sent"
            );
        }
        Ok(report.generated)
    }
}
