//! A store-backed bootstrap's access plan: the objects its keys and diagonals are read from,
//! in the order one bootstrap uses them, handed to the store as a hint so that `planned`
//! prefetches them.

use hetier_tiering::ObjectId;

use super::{cache_id, Expansion, StoredBootstrapKeys};
use crate::ckks::bootstrap::{BootstrapUse, Bootstrapper};
use crate::exec::error::Result;
use crate::exec::key_words::ExpandedKey;
use crate::exec::keys::KeyForm;

impl StoredBootstrapKeys<'_> {
    /// The store objects of `bs`'s key order, repeated `times` (one per planned bootstrap). With
    /// [`Expansion::Cached`] a key is pinned through its expanded copy: a key without one yet
    /// is read once (its stored object) and then used through the copy made from it, which
    /// the plan names too, so `planned` keeps room for it instead of evicting it as unplanned.
    /// With stored diagonals, each is named where its transform multiplies by it.
    ///
    /// With keys expanded ahead, each stored key object is named where the helper pins it:
    /// [`Self::expand_ahead_keys`] key uses before its own, so that `planned` has read it by
    /// then. (Named at its own use, it was read only once the helper already waited for it:
    /// 8.9 s of the helper's 15.4 s in two `n16_deep` bootstraps at a quarter budget.)
    pub fn access_plan(&self, bs: &Bootstrapper, times: usize) -> Result<Vec<ObjectId>> {
        let plan = self.plan(bs, times)?;
        // Keys read in place are named at their use: led by two uses like keys expanded
        // ahead, they made `planned` read twice the bytes at a quarter budget (2026-12-07).
        let plan = lead_keys(plan, self.expand_ahead_keys());
        Ok(plan
            .into_iter()
            .flat_map(|item| match item {
                PlanItem::StoredKey(ids) => ids,
                PlanItem::Object(id) => vec![id],
            })
            .collect())
    }

    /// [`Self::access_plan`] before the keys' lead: per seed-compressed key expanded per pin,
    /// the objects its expansion pins (for the highest level of its run of uses: only the
    /// digits that level reads when stored by digit).
    fn plan(&self, bs: &Bootstrapper, times: usize) -> Result<Vec<PlanItem>> {
        let seq = bs.access_sequence();
        // Read in place, each use pins what its own level reads; else an expansion serves its
        // whole run of uses.
        let levels = if self.expansion.reads_in_place() {
            bs.key_uses().iter().map(|&(_, l)| l).collect()
        } else {
            self.run_levels(bs)?
        };
        let top = self.ctx.params().max_level();
        let mut plan = Vec::with_capacity(seq.len() * times + 64);
        let mut made = std::collections::HashSet::new();
        let mut last_key = None;
        for _ in 0..times {
            let mut levels = levels.iter();
            for &u in &seq {
                let u = match (u, &self.diagonals) {
                    (BootstrapUse::Key(u), _) => u,
                    (BootstrapUse::Diagonal(i), Some(d)) => {
                        plan.push(PlanItem::Object(match &self.coefficients {
                            Some(c) if self.encodes_on_use(i) => c.object(i)?,
                            _ => d.object(i)?,
                        }));
                        continue;
                    }
                    (BootstrapUse::Diagonal(_), _) => continue,
                };
                let k = self.stored(u)?;
                // Every digit if the two sequences ever disagree: more read, never too little.
                let level = levels.next().copied().unwrap_or(top);
                if k.form == KeyForm::Expanded {
                    plan.push(PlanItem::Object(k.id));
                    continue;
                }
                if self.reads_in_place(u, k) {
                    plan.push(PlanItem::StoredKey(k.objects_at(&self.ctx, level)));
                    continue;
                }
                if self.expansion == Expansion::PerPin {
                    // A key pinned again right after itself is used from the block it was
                    // expanded into (diagonals between do not take that block): its stored
                    // objects are read once per run of uses.
                    if last_key != Some(k.id) {
                        plan.push(PlanItem::StoredKey(k.objects_at(&self.ctx, level)));
                    }
                    last_key = Some(k.id);
                    continue;
                }
                let c = cache_id(k.id);
                if !self.store.contains(c) && made.insert(c) {
                    plan.push(PlanItem::StoredKey(k.objects(&self.ctx)));
                }
                plan.push(PlanItem::Object(c));
            }
        }
        Ok(plan)
    }

    /// For each key use of one bootstrap of `bs` in order, the highest level over its run of
    /// uses of the same key: the level its expansion serves.
    fn run_levels(&self, bs: &Bootstrapper) -> Result<Vec<usize>> {
        let uses = bs.key_uses();
        let ids: Vec<ObjectId> =
            uses.iter().map(|&(u, _)| self.stored(u).map(|k| k.id)).collect::<Result<_>>()?;
        let mut levels: Vec<usize> = uses.iter().map(|&(_, l)| l).collect();
        let mut start = 0;
        while start < ids.len() {
            let end = (start..ids.len()).find(|&i| ids[i] != ids[start]).unwrap_or(ids.len());
            let top = levels[start..end].iter().copied().max().unwrap_or(0);
            levels[start..end].fill(top);
            start = end;
        }
        Ok(levels)
    }

    /// Tells the store the keys `times` bootstraps will pin, in order.
    pub fn hint(&self, bs: &Bootstrapper, times: usize) -> Result<()> {
        let plan = self.access_plan(bs, times)?;
        self.store.hint(&plan);
        if self.per_pin_seeded() {
            // The helper expanding ahead follows the keys alone.
            self.spares.set_plan(&self.expansion_plan(bs, times)?);
        }
        Ok(())
    }

    /// The seed-compressed keys `times` bootstraps of `bs` pin, in order, each with the level
    /// it is expanded for: what the helper of [`Self::ahead`] follows.
    fn expansion_plan(&self, bs: &Bootstrapper, times: usize) -> Result<Vec<ExpandedKey>> {
        let uses = bs.key_uses();
        let mut plan = Vec::with_capacity(uses.len() * times);
        for _ in 0..times {
            for &(u, level) in &uses {
                let k = self.stored(u)?;
                if k.form.is_seeded() {
                    plan.push(ExpandedKey { id: k.id, level });
                }
            }
        }
        Ok(plan)
    }
}

/// One entry of a bootstrap's access plan before it is flattened for the store.
enum PlanItem {
    /// The stored objects one expansion of a seed-compressed key pins, in order.
    StoredKey(Vec<ObjectId>),
    /// Any other object: a diagonal, an expanded key, a cached expanded copy.
    Object(ObjectId),
}

/// `plan` with each stored seed-compressed key moved `lead` keys earlier (the first `lead` at
/// the start); every other object stays where it is.
fn lead_keys(plan: Vec<PlanItem>, lead: usize) -> Vec<PlanItem> {
    if lead == 0 {
        return plan;
    }
    let mut keys = Vec::new();
    let mut rest = Vec::with_capacity(plan.len());
    for item in plan {
        match item {
            PlanItem::StoredKey(ids) => {
                keys.push(ids);
                rest.push(None);
            }
            other => rest.push(Some(other)),
        }
    }
    let mut keys = keys.into_iter().map(PlanItem::StoredKey);
    let mut out: Vec<PlanItem> = keys.by_ref().take(lead).collect();
    for item in rest {
        match item {
            Some(other) => out.push(other),
            None => out.extend(keys.next()),
        }
    }
    out
}
