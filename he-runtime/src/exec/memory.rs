//! What a run holds in DRAM, step by step: the pin order the store is hinted with, and each
//! step's working set (pins, results, scratch) checked against the budget before a run.

use hetier_tiering::ObjectId;

use super::executor::{Backend, Executor};
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
    /// key-switch buffers (at the step's level; none in a run that bootstraps, whose bootstrap
    /// buffers serve every key switch), `mul_relin`'s degree-2 product, and the
    /// hoisted decomposition with its c_0 while a hoisted rotation group runs. A key is pinned
    /// in its stored (seed-compressed) form and expanded into a block of its full size: both
    /// count (the stored form at its bound, half the words plus the header). A program that
    /// bootstraps also holds, at every step, the buffers its bootstraps share for the whole run
    /// ([`Self::run_buffers`]), and a bootstrap keeps its input pinned through its key steps
    /// and one diagonal's coefficients pinned at a time.
    /// Checked against the store's budget before a real run starts.
    pub fn working_sets(&self) -> Vec<Vec<u64>> {
        let p = self.program;
        let sizes = p.sizes();
        let stored_key = sizes.key() / 2 + 64;
        let bytes = |o: &ObjId| {
            let obj = &p.objects()[o.index()];
            obj.bytes + if obj.kind.is_key() { stored_key } else { 0 }
        };
        let held = self.run_buffers();
        // A run that bootstraps lends its bootstrap's key-switch buffers to every other op.
        let shared = self.holds_bootstrap_buffers();
        let key_switch = |level: usize, decomposition: bool| -> Vec<u64> {
            if shared {
                Vec::new()
            } else {
                vec![sizes.key_switch_scratch(level, decomposition)]
            }
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
            // The bootstrap's input, pinned for the whole op (its first step names it).
            let boot_input = match &r.op {
                Op::Bootstrap { src, .. } => Some(bytes(src)),
                _ => None,
            };
            for (i, s) in self.op_steps(&r.op).into_iter().enumerate() {
                let pins = s.pins.iter().map(bytes);
                let writes = s.writes.iter().map(bytes);
                let scratch: Vec<u64> = match &r.op {
                    Op::Rotate { src, .. } | Op::Conjugate { src, .. } => {
                        key_switch(level_of(src), true)
                    }
                    Op::HoistedRotate { src, .. } => key_switch(level_of(src), false),
                    Op::MulRelin { a, .. } => {
                        let l = level_of(a);
                        let mut v = key_switch(l, true);
                        v.push(3 * sizes.plaintext(l));
                        v
                    }
                    // Rescale's last limbs in coefficient form.
                    Op::Rescale { .. } => vec![2 * sizes.n * 8],
                    // A diagonal's coefficients, pinned while a transform encodes it.
                    Op::Bootstrap { .. } => vec![sizes.n * 8],
                    _ => Vec::new(),
                };
                let input = boot_input.filter(|_| i > 0);
                sets.push(
                    held.iter()
                        .copied()
                        .chain(hoisted)
                        .chain(input)
                        .chain(scratch)
                        .chain(pins)
                        .chain(writes)
                        .collect(),
                );
            }
        }
        sets
    }

    /// Byte lengths of the scratch buffers a run of a program that bootstraps takes from the
    /// store's budget once, at its start, and holds to its end: the bootstrap's key-switch
    /// buffers at the top level and the spares of its ciphertext temporaries and linear
    /// transforms ([`crate::nn::BootstrapSpec::spare_words`]), shared by every bootstrap op of
    /// the run. Empty for a program without bootstrap ops.
    pub fn bootstrap_scratch_lengths(&self) -> Vec<u64> {
        let p = self.program;
        let Some(spec) = p.bootstrap().filter(|_| self.holds_bootstrap_buffers()) else {
            return Vec::new();
        };
        let top = p.params().max_level();
        let ks = Scratch::<Vec<u64>>::words_at(p.params(), top);
        ks.iter().chain(&spec.spare_words).map(|&w| w as u64 * 8).collect()
    }

    /// Whether a run holds its bootstraps' buffers ([`Self::bootstrap_scratch_lengths`]): the
    /// program has bootstrap ops.
    fn holds_bootstrap_buffers(&self) -> bool {
        self.program.bootstrap().is_some() && self.program.bootstraps() > 0
    }

    /// Byte lengths of every buffer a real run holds in the budget from its start to its end
    /// beside its objects: [`Self::bootstrap_scratch_lengths`], and the expansion block the
    /// bootstrap's seed-compressed keys keep for as long as they are loaded.
    pub fn run_buffers(&self) -> Vec<u64> {
        let mut v = self.bootstrap_scratch_lengths();
        if let Backend::Real(real) = &self.backend {
            v.extend(real.boot_keys.as_ref().map(|k| k.held_block_lengths()).unwrap_or_default());
        }
        v
    }

    /// The most scratch op `op` borrows from the store's budget at once (beside its pins and
    /// result), each buffer in whole pages as the store charges it: key-switch buffers (none in
    /// a run that bootstraps: its bootstrap's serve every op), `mul_relin`'s degree-2 product,
    /// or a hoisted group's decomposition and c_0 with its rotations' key-switch buffers, or
    /// rescale's last limbs. Exactly what `compute` asks for.
    fn op_scratch(&self, op: &Op) -> u64 {
        let p = self.program;
        let sizes = p.sizes();
        // A run that bootstraps lends its bootstrap's key-switch buffers to every other op.
        let shared = self.holds_bootstrap_buffers();
        // Key-switch buffers; without the decomposition its buffer is one word (one page).
        let ks = |level: usize, dec: bool| -> u64 {
            if shared {
                return 0;
            }
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

    /// The most DRAM a run borrows from the store's budget at once beside its objects (see
    /// `op_scratch`): the bootstrap's buffers it holds for the whole run
    /// ([`Self::bootstrap_scratch_lengths`]) and the most scratch one op borrows beside them.
    /// What a real run reserves for its scratch, and what a prediction of the run takes off the
    /// budget (the trace carries objects only).
    pub fn scratch_charge(&self) -> u64 {
        self.boot_scratch_charge() + self.op_scratch_charge()
    }

    /// The bootstrap's buffers held for the whole run, each in whole pages.
    pub(super) fn boot_scratch_charge(&self) -> u64 {
        self.bootstrap_scratch_lengths().into_iter().map(page).sum()
    }

    /// The most scratch one op borrows at once.
    fn op_scratch_charge(&self) -> u64 {
        self.program.ops().iter().map(|r| self.op_scratch(&r.op)).max().unwrap_or(0)
    }

    /// The scratch a real run under `budget` reserves for its whole run: [`Self::scratch_charge`],
    /// less what the largest step's pins and result (and the buffers held for the run) need
    /// beside the ops' scratch when the budget cannot hold both (the steps whose scratch then
    /// exceeds the reservation borrow the rest step by step, as before; no budget that passes
    /// [`Self::working_sets`]' check is refused). The bootstrap's buffers are always reserved
    /// whole: the run takes them out of the reservation at its start.
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
            .flat_map(|r| {
                // A bootstrap's input stays pinned through its key steps.
                let input = match &r.op {
                    Op::Bootstrap { src, .. } => bytes(src),
                    _ => 0,
                };
                let steps = self.op_steps(&r.op).into_iter().enumerate();
                steps.map(move |(i, s)| (s, if i > 0 { input } else { 0 }))
            })
            .map(|(s, input)| s.pins.iter().chain(&s.writes).map(bytes).sum::<u64>() + input)
            .max()
            .unwrap_or(0);
        let boot = self.boot_scratch_charge();
        let keys: u64 = self.run_buffers().into_iter().map(page).sum::<u64>() - boot;
        let room = budget.saturating_sub(objects + boot + keys);
        boot + self.op_scratch_charge().min(room)
    }
}
