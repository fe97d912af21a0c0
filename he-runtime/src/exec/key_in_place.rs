//! Seed-compressed keys read in place: a key's stored objects pinned for one step and read by
//! its key switch as they are ([`crate::ckks::KeyLimbs::Packed`]), never expanded.
//!
//! Expanding a key per pin writes its 140 MiB of words (log N = 16) into a budgeted block,
//! which the key switch then reads back from DRAM; read in place, the switch reads the stored
//! bytes (55 MiB, less when it needs fewer digits) and makes each piece of a limb in cache.
//! The budget holds no expansion block at all.

use std::sync::atomic::Ordering;
use std::time::Instant;

use hetier_tiering::{PinGuard, TieredStore};

use super::key_words::{KeyPinTimes, KeyWords};
use super::stored_key::{KeyForm, StoredKey};
use crate::ckks::{Context, KeyLimbs, KeySwitchKey, PackedKeyLayout, SwitchKeyWords};
use crate::exec::error::Result;

/// A seed-compressed key's stored objects, pinned while a step reads them in place.
pub struct PinnedPackedKey<'s> {
    pins: Vec<PinGuard<'s>>,
    layout: PackedKeyLayout,
}

impl SwitchKeyWords for PinnedPackedKey<'_> {
    fn key_limbs(&self) -> KeyLimbs<'_> {
        KeyLimbs::Packed {
            blobs: self.pins.iter().map(|p| p.as_bytes()).collect(),
            layout: &self.layout,
        }
    }
}

/// The words of a bootstrap key in use: expanded words ([`KeyWords`]) or a seed-compressed
/// key's pinned objects read in place.
pub enum KeyInUse<'g, 's> {
    /// Expanded words: stored expanded, a cached copy, or a block expanded for this pin.
    Words(KeyWords<'g, 's>),
    /// Read in place from its pinned stored objects.
    InPlace(PinnedPackedKey<'s>),
}

impl SwitchKeyWords for KeyInUse<'_, '_> {
    fn key_limbs(&self) -> KeyLimbs<'_> {
        match self {
            KeyInUse::Words(w) => KeyLimbs::Expanded(w.as_ref()),
            KeyInUse::InPlace(k) => k.key_limbs(),
        }
    }
}

impl StoredKey {
    /// This seed-compressed key for a key switch at `level`, read in place: the objects such a
    /// switch reads ([`StoredKey::objects_at`]: every digit's of a key stored by digit, its one
    /// object otherwise) stay pinned while the result lives. Counts the pin and its wait in
    /// `times`. A key stored expanded is `KeyManifest`: pin it as words instead.
    pub fn pin_in_place<'g, 's>(
        &self,
        store: &'s TieredStore,
        ctx: &Context,
        times: &KeyPinTimes,
        level: usize,
    ) -> Result<KeySwitchKey<KeyInUse<'g, 's>>> {
        if self.form == KeyForm::Expanded {
            return Err(crate::exec::Error::KeyManifest {
                reason: format!(
                    "key {:#x} is stored expanded: nothing to read in place",
                    self.id.0
                ),
            });
        }
        times.pins.fetch_add(1, Ordering::Relaxed);
        let clock = Instant::now();
        let pins = self
            .objects_at(ctx, level)
            .into_iter()
            .map(|id| store.pin(id))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        times.wait_ns.fetch_add(clock.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let blobs: Vec<&[u8]> = pins.iter().map(|p| p.as_bytes()).collect();
        let layout = PackedKeyLayout::parse(ctx, &blobs, level)?;
        self.check_seed(layout.seed())?;
        let key = PinnedPackedKey { pins, layout };
        Ok(KeySwitchKey::from_packed(KeyInUse::InPlace(key), ctx)?)
    }
}
