//! What a run holds in DRAM, step by step: the pin order the store is hinted with, and each
//! step's working set (pins, results, scratch) checked against the budget before a run.

use hetier_tiering::ObjectId;

use super::executor::Executor;
use super::steps::{steps, Step};
use crate::nn::{ObjId, Op};

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
                    _ => Vec::new(),
                };
                sets.push(hoisted.into_iter().chain(scratch).chain(pins).chain(writes).collect());
            }
        }
        sets
    }
}
