//! What a run holds in DRAM, step by step: the pin order the store is hinted with, and each
//! step's working set (pins, results, scratch) checked against the budget before a run.

use hetier_tiering::ObjectId;

use super::executor::Executor;
use super::steps::{steps, Step};
use crate::ckks::Scratch;
use crate::nn::{ObjId, Op};

/// `b` bytes in whole pages, as the store charges a buffer.
fn page(b: u64) -> u64 {
    b.next_multiple_of(4096)
}

impl Executor<'_> {
    /// The steps of `op` under this executor's weight mode.
    pub(super) fn op_steps(&self, op: &Op) -> Vec<Step> {
        let mut v = steps(op);
        if self.weights_on_the_fly {
            if let Op::MulPlain { pt, .. } | Op::AddPlain { pt, .. } = op {
                v.iter_mut().for_each(|s| s.pins.retain(|p| p != pt));
            }
        }
        v
    }

    /// The store ids every step will pin, in order (what `hint` receives).
    pub fn pin_sequence(&self) -> Vec<ObjectId> {
        self.program
            .ops()
            .iter()
            .flat_map(|r| self.op_steps(&r.op))
            .flat_map(|s| s.pins)
            .map(|o| self.ids[o.index()])
            .collect()
    }

    /// For every step, the lengths of the buffers it holds in DRAM at once: its pins, the
    /// block it computes its result into and the scratch it borrows from the store's budget —
    /// key-switch buffers (at the step's level), `mul_relin`'s degree-2 product, and the
    /// hoisted decomposition with its c_0 while a hoisted rotation group runs. A key is pinned
    /// in its stored (seed-compressed) form and expanded into a block of its full size: both
    /// count (the stored form at its bound, half the words plus the header). Checked against
    /// the store's budget before a real run starts.
    pub fn working_sets(&self) -> Vec<Vec<u64>> {
        let p = self.program;
        let sizes = p.sizes();
        let stored_key = sizes.key() / 2 + 64;
        let bytes = |o: &ObjId| {
            let obj = &p.objects()[o.index()];
            obj.bytes + if obj.kind.is_key() { stored_key } else { 0 }
        };
        let mut sets = Vec::new();
        let level_of = |o: &ObjId| p.objects()[o.index()].level;
        for r in p.ops() {
            let hoisted = match &r.op {
                Op::HoistedRotate { src, .. } => {
                    let l = level_of(src);
                    Some(sizes.decomposition(l) + sizes.plaintext(l))
                }
                _ => None,
            };
            for s in self.op_steps(&r.op) {
                let pins = s.pins.iter().map(bytes);
                let writes = s.writes.iter().map(bytes);
                let scratch: Vec<u64> = match &r.op {
                    Op::Rotate { src, .. } | Op::Conjugate { src, .. } => {
                        vec![sizes.key_switch_scratch(level_of(src), true)]
                    }
                    Op::HoistedRotate { src, .. } => {
                        vec![sizes.key_switch_scratch(level_of(src), false)]
                    }
                    Op::MulRelin { a, .. } => {
                        let l = level_of(a);
                        vec![sizes.key_switch_scratch(l, true), 3 * sizes.plaintext(l)]
                    }
                    // Rescale's last limbs in coefficient form.
                    Op::Rescale { .. } => vec![2 * sizes.n * 8],
                    _ => Vec::new(),
                };
                sets.push(hoisted.into_iter().chain(scratch).chain(pins).chain(writes).collect());
            }
        }
        sets
    }

    /// The most scratch op `op` borrows from the store's budget at once (beside its pins and
    /// result), each buffer in whole pages as the store charges it: key-switch buffers,
    /// `mul_relin`'s degree-2 product, or a hoisted group's decomposition and c_0 with its
    /// rotations' key-switch buffers, or rescale's last limbs. Exactly what `compute` asks for.
    fn op_scratch(&self, op: &Op) -> u64 {
        let p = self.program;
        let sizes = p.sizes();
        // Key-switch buffers; without the decomposition its buffer is one word (one page).
        let ks = |level: usize, dec: bool| -> u64 {
            let w = Scratch::<Vec<u64>>::words_at(p.params(), level);
            let n = if dec { 6 } else { 5 };
            w[..n].iter().map(|&w| page(w as u64 * 8)).sum::<u64>() + if dec { 0 } else { 4096 }
        };
        let level = |o: &ObjId| p.objects()[o.index()].level;
        match op {
            Op::HoistedRotate { src, .. } => {
                let l = level(src);
                page(sizes.decomposition(l)) + page(sizes.plaintext(l)) + ks(l, false)
            }
            Op::Rotate { src, .. } | Op::Conjugate { src, .. } => ks(level(src), true),
            Op::MulRelin { a, .. } => ks(level(a), true) + page(3 * sizes.plaintext(level(a))),
            Op::Rescale { .. } => page(2 * sizes.n * 8),
            _ => 0,
        }
    }

    /// The most DRAM one op borrows from the store's budget beside its objects (see
    /// `op_scratch`): what a real run reserves for its scratch, and what a prediction of the
    /// run takes off the budget (the trace carries objects only).
    pub fn scratch_charge(&self) -> u64 {
        self.program.ops().iter().map(|r| self.op_scratch(&r.op)).max().unwrap_or(0)
    }

    /// The scratch a real run under `budget` reserves for its whole run: [`Self::scratch_charge`],
    /// less what the largest step's pins and result need beside it when the budget cannot hold
    /// both (the steps whose scratch then exceeds the reservation borrow the rest step by step,
    /// as before; no budget that passes [`Self::working_sets`]' check is refused).
    pub(super) fn scratch_reservation(&self, budget: u64) -> u64 {
        let p = self.program;
        let stored_key = p.sizes().key() / 2 + 64;
        let bytes = |o: &ObjId| {
            let obj = &p.objects()[o.index()];
            page(obj.bytes) + if obj.kind.is_key() { page(stored_key) } else { 0 }
        };
        let objects = p
            .ops()
            .iter()
            .flat_map(|r| self.op_steps(&r.op))
            .map(|s| s.pins.iter().chain(&s.writes).map(bytes).sum::<u64>())
            .max()
            .unwrap_or(0);
        self.scratch_charge().min(budget.saturating_sub(objects))
    }
}
