//! One key of a key set as the store holds it: its object (or one object per digit), its form
//! and the seed of its `a` parts, and how it is expanded from what the store holds.

use std::time::Instant;

use hetier_tiering::{BlockWriter, TieredStore};
use serde::{Deserialize, Serialize};

use super::ids::key_digit_id;
use crate::ckks::{
    digits_read_at, expand_pinned_digit, switch_key_digit_stored_len, Context, KeySwitchKey, Seed,
};
use crate::exec::error::{Error, Result};

/// How a key's words are kept in the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyForm {
    /// Seed-compressed ([`KeySwitchKey::to_bytes`]): expanded into a budgeted DRAM block each
    /// time it is pinned for use.
    #[default]
    Seeded,
    /// Every word expanded: used in place where it is pinned, at about twice the bytes to
    /// store, move and prefetch.
    Expanded,
    /// Seed-compressed like [`KeyForm::Seeded`], one store object per digit
    /// ([`KeySwitchKey::write_digit_to`]): a switch at a level that reads only the first
    /// digits pins and reads only those (SlotToCoeff's, two of `n16_deep`'s four), and an
    /// expansion holds one digit's object pinned at a time.
    Digits,
}

impl KeyForm {
    /// Whether the key is expanded from a seed when pinned (every form but `Expanded`).
    pub fn is_seeded(self) -> bool {
        self != KeyForm::Expanded
    }
}

/// One key of the set: where it is, in which form, and the seed of its `a` parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredKey {
    /// Store object id; for [`KeyForm::Digits`] the key's name, its digits' objects derived
    /// from it ([`StoredKey::objects`]).
    pub id: hetier_tiering::ObjectId,
    /// Seed the key's `a` parts were expanded from.
    pub seed: Seed,
    /// Length of the stored object in bytes (of all its digits' objects together for
    /// [`KeyForm::Digits`]).
    pub len: u64,
    /// How the object holds the key.
    pub form: KeyForm,
}

impl StoredKey {
    /// The store objects holding the key: its digits' objects in digit order for
    /// [`KeyForm::Digits`], else its one object.
    pub fn objects(&self, ctx: &Context) -> Vec<hetier_tiering::ObjectId> {
        self.objects_at(ctx, ctx.params().max_level())
    }

    /// The store objects a pin for a key switch at `level` reads: the first
    /// digits such a switch uses for [`KeyForm::Digits`], else the key's one object.
    pub fn objects_at(&self, ctx: &Context, level: usize) -> Vec<hetier_tiering::ObjectId> {
        match self.form {
            KeyForm::Digits => {
                (0..digits_read_at(ctx, level)).map(|j| key_digit_id(self.id, j)).collect()
            }
            _ => vec![self.id],
        }
    }

    /// Whether every object of the key is in `store` at the length the manifest records.
    pub(super) fn is_present(&self, store: &TieredStore, ctx: &Context) -> bool {
        match self.form {
            KeyForm::Digits => {
                let part = switch_key_digit_stored_len(ctx);
                let all = self.objects(ctx);
                self.len == part * all.len() as u64
                    && all.iter().all(|&id| store.len_of(id) == Some(part))
            }
            _ => store.len_of(self.id) == Some(self.len),
        }
    }

    /// Removes whichever of the key's objects (in any form) are in `store`: a key to make again.
    pub fn remove(&self, store: &TieredStore, ctx: &Context) -> Result<()> {
        let digits = (0..ctx.params().dnum()).map(|j| key_digit_id(self.id, j));
        for id in std::iter::once(self.id).chain(digits) {
            if store.contains(id) {
                store.remove(id)?;
            }
        }
        Ok(())
    }

    /// Expands this seed-compressed key into `block` ([`switch_key_expanded_words`] words)
    /// where a switch at `level` reads, pinning its stored objects (one digit's at a time for
    /// [`KeyForm::Digits`]) on rayon's pool when `parallel`, else on the calling thread. Returns
    /// the block and the nanoseconds spent waiting for the pins.
    pub(crate) fn expand_for_level<'s>(
        &self,
        store: &'s TieredStore,
        ctx: &Context,
        mut block: BlockWriter<'s>,
        parallel: bool,
        level: usize,
    ) -> Result<(BlockWriter<'s>, u64)> {
        let mut wait_ns = 0;
        let mut pin = |id| {
            let clock = Instant::now();
            let guard = store.pin(id);
            wait_ns += clock.elapsed().as_nanos() as u64;
            guard
        };
        if self.form == KeyForm::Digits {
            for (j, id) in self.objects_at(ctx, level).into_iter().enumerate() {
                let guard = pin(id)?;
                let words = block.as_u64s_mut();
                let seed = expand_pinned_digit(ctx, guard.as_bytes(), words, j, parallel, level)?;
                self.check_seed(&seed)?;
            }
            return Ok((block, wait_ns));
        }
        let guard = pin(self.id)?;
        let key =
            KeySwitchKey::expand_pinned_for_level(ctx, guard.as_bytes(), block, parallel, level)?;
        self.check_seed(key.seed())?;
        Ok((key.into_words(), wait_ns))
    }

    /// Fails with [`Error::KeyManifest`] when `found`, the seed an object holds, is not the one
    /// the manifest records for it.
    pub(crate) fn check_seed(&self, found: &Seed) -> Result<()> {
        if found != &self.seed {
            return Err(Error::KeyManifest {
                reason: format!("key object {:#x} has another seed than its manifest", self.id.0),
            });
        }
        Ok(())
    }
}
