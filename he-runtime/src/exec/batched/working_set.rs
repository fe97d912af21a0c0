//! What each step of a batch-major run holds in the store's budget at once, computed from the
//! plan alone, so that a budget too small fails before any key is made or input put
//! (`TieredStore::check_working_sets`, [`crate::exec::Error::Store`] with `BudgetTooSmall`
//! naming the smallest workable budget) and not halfway through a model.
//!
//! The sets follow `executor::exec_step`'s allocations: the step's pinned ciphertexts and the
//! relinearisation key's pin, the sums of every linear block begun and not yet finished, and
//! the step's own buffers. Where a buffer is freed partway through a step the set keeps it, so
//! a set can only overstate the step, by at most one sum or template value.

use std::collections::BTreeMap;

use hetier_tiering::TieredStore;

use super::plan::{BatchPlan, BatchStep, Template};
use crate::ckks::{Params, Scratch};
use crate::error::Result;
use crate::model::Model;
use crate::nn::program::{ObjId, Op};

impl BatchPlan {
    /// The smallest budget, from `from` up, that the plan of `model` compiled within it
    /// ([`BatchPlan::compile_within`]) fits, `key_pin` as in [`Self::working_sets`]. A plan
    /// sizes its pins and sums to its budget, so one plan's own need is not by itself a budget
    /// that works once the plan is compiled for it: this follows need → plan → need up to the
    /// fixed point (a few rounds: a plan's need grows by at most about half its budget's).
    /// Returns that budget and the step of its plan that holds the most.
    pub fn smallest_budget_within(
        model: &Model,
        params: &Params,
        from: u64,
        key_pin: &[u64],
    ) -> Result<(u64, usize)> {
        let mut budget = from;
        let mut step = 0;
        for _ in 0..64 {
            let plan = Self::compile_within(model, params, budget)?;
            let (need, worst) = TieredStore::working_set_need(plan.working_sets(key_pin));
            step = worst;
            if need <= budget {
                break;
            }
            budget = need;
        }
        Ok((budget, step))
    }

    /// One set of block sizes (bytes) per step: what the step holds at once at its peak.
    /// `key_pin` is what one pin of the relinearisation key holds (its object, and for a
    /// seed-compressed key the block it is expanded into).
    pub fn working_sets(&self, key_pin: &[u64]) -> Vec<Vec<u64>> {
        let sizes = Sizes { params: self.params() };
        // A template runs at many steps (one per element): its peak is the same at each.
        let template_peaks: Vec<Vec<u64>> =
            self.templates().iter().map(|t| sizes.template_peak(t)).collect();
        let mut open: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        let mut sets = Vec::with_capacity(self.steps().len());
        for (i, step) in self.steps().iter().enumerate() {
            let mut set: Vec<u64> =
                self.pins(i).iter().map(|&o| self.objects()[o as usize].bytes).collect();
            if self.pins_relin_key(i) {
                set.extend_from_slice(key_pin);
            }
            match step {
                BatchStep::Accumulate { block, .. } => {
                    let b = &self.blocks()[*block];
                    open.entry(*block)
                        .or_insert_with(|| vec![sizes.ct(b.in_parts, b.in_level); b.outputs.len()]);
                }
                BatchStep::Finish { block } => {
                    let b = &self.blocks()[*block];
                    let below = b.in_level.saturating_sub(1);
                    if b.in_parts == 3 {
                        // Relinearised into r, rescaled into r1, rescaled into the output.
                        set.extend(sizes.key_switch(b.in_level));
                        set.extend([sizes.ct(2, b.in_level), sizes.ct(2, below)]);
                    } else {
                        set.push(sizes.ct(2, below));
                    }
                }
                BatchStep::Square { input, .. } => {
                    set.push(sizes.ct(3, self.objects()[*input as usize].level));
                }
                BatchStep::Map { template, .. } => {
                    set.extend_from_slice(&template_peaks[*template]);
                }
            }
            set.extend(open.values().flatten());
            if let BatchStep::Finish { block } = step {
                open.remove(block);
            }
            sets.push(set);
        }
        sets
    }
}

struct Sizes<'p> {
    params: &'p Params,
}

impl Sizes<'_> {
    fn ct(&self, parts: usize, level: usize) -> u64 {
        (parts * (level + 1) * self.params.n()) as u64 * 8
    }

    /// The buffers of a key-switch scratch at `level` (`Scratch::with_buffers`).
    fn key_switch(&self, level: usize) -> impl Iterator<Item = u64> {
        Scratch::<Vec<u64>>::words_at(self.params, level).into_iter().map(|w| w as u64 * 8)
    }

    /// The largest set of buffers a template run holds at once: its live values (each a
    /// two-part ciphertext at its level, freed after its last reader) plus one op's output and
    /// temporaries (a multiplication's tensor and key-switch scratch).
    fn template_peak(&self, t: &Template) -> Vec<u64> {
        let prog = &t.program;
        let level = |o: ObjId| prog.object(o).map_or(0, |x| x.level);
        let mut live: BTreeMap<ObjId, u64> = BTreeMap::new();
        let mut peak: Vec<u64> = Vec::new();
        let mut peak_bytes = 0u64;
        for (i, rec) in prog.ops().iter().enumerate() {
            let (dst, temps): (ObjId, Vec<u64>) = match &rec.op {
                Op::MulConst { dst, .. }
                | Op::MulInt { dst, .. }
                | Op::AddConst { dst, .. }
                | Op::Add { dst, .. }
                | Op::Sub { dst, .. }
                | Op::Rescale { dst, .. }
                | Op::Relabel { dst, .. }
                | Op::LevelDrop { dst, .. } => (*dst, Vec::new()),
                Op::MulRelin { dst, a, .. } => {
                    let l = level(*a);
                    let mut t: Vec<u64> = self.key_switch(l).collect();
                    t.push(self.ct(3, l));
                    (*dst, t)
                }
                // No batch-major form: the run refuses the template at this op.
                _ => continue,
            };
            let out = self.ct(2, level(dst));
            let now: Vec<u64> =
                live.values().copied().chain(temps).chain(std::iter::once(out)).collect();
            let bytes = now.iter().sum();
            if bytes > peak_bytes {
                (peak, peak_bytes) = (now, bytes);
            }
            live.insert(dst, out);
            for d in prog.frees_after(i) {
                live.remove(d);
            }
        }
        // The result is copied into its store block while it is still held.
        let last = prog.outputs().first().map_or(0, |(_, y)| self.ct(2, level(*y)));
        if 2 * last > peak_bytes {
            peak = vec![last, last];
        }
        peak
    }
}
