//! A store-backed bootstrap's waits for the store, split by the phase they fell in: where a
//! budget starves the bootstrap (CoeffToSlot's top-level keys and diagonals, read at the rate
//! the disk gives) is what its prefetch has to cover.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use crate::ckks::bootstrap::{Phase, PhaseTimes};
use crate::exec::diagonals::StoredDiagonals;
use crate::exec::key_words::KeyPinTimes;

/// Waits attributed to phases as [`PhaseWaits::enter`] hears of them.
#[derive(Debug, Default)]
pub(crate) struct PhaseWaits {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The phase the waits since `since_ns` belong to (none before the first bootstrap).
    current: Option<Phase>,
    /// The source's total wait when `current` began.
    since_ns: u64,
    seconds: PhaseTimes,
}

impl State {
    /// Gives the waits since the current phase began to it, as of `total_ns`.
    fn settle(&mut self, total_ns: u64) {
        let ns = total_ns.saturating_sub(self.since_ns);
        self.since_ns = total_ns;
        let Some(phase) = self.current else { return };
        let secs = ns as f64 * 1e-9;
        match phase {
            Phase::ModRaise => self.seconds.mod_raise += secs,
            Phase::CoeffToSlot => self.seconds.coeff_to_slot += secs,
            Phase::EvalMod => self.seconds.eval_mod += secs,
            Phase::SlotToCoeff => self.seconds.slot_to_coeff += secs,
        }
    }
}

impl PhaseWaits {
    /// A bootstrap enters `phase` with the source having waited `total_ns` in all so far: the
    /// waits since the last phase began are that phase's.
    pub(crate) fn enter(&self, phase: Phase, total_ns: u64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.settle(total_ns);
        s.current = Some(phase);
    }

    /// Seconds waited in each phase, summed over the bootstraps so far, with the current
    /// phase's waits up to `total_ns` counted.
    pub(crate) fn seconds(&self, total_ns: u64) -> PhaseTimes {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.settle(total_ns);
        s.seconds
    }
}

/// Nanoseconds every pin so far waited for the store: the keys' (summed over threads, as
/// [`KeyPinTimes::wait_ns`] is) and the stored diagonals' or coefficients'.
pub(crate) fn total_wait_ns(
    keys: &KeyPinTimes,
    diagonals: [Option<&StoredDiagonals<'_>>; 2],
) -> u64 {
    let d: u64 = diagonals.into_iter().flatten().map(StoredDiagonals::wait_ns).sum();
    keys.wait_ns.load(Ordering::Relaxed) + d
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits go to the phase that was current while they grew, across bootstraps; none
    /// before the first phase; a total that went back (counters reset) counts nothing.
    #[test]
    fn waits_are_given_to_the_phase_they_grew_in() {
        let w = PhaseWaits::default();
        w.enter(Phase::ModRaise, 5_000_000_000);
        w.enter(Phase::CoeffToSlot, 5_100_000_000);
        w.enter(Phase::EvalMod, 7_100_000_000);
        w.enter(Phase::SlotToCoeff, 7_100_000_000);
        let first = w.seconds(7_600_000_000);
        assert!((first.mod_raise - 0.1).abs() < 1e-12);
        assert!((first.coeff_to_slot - 2.0).abs() < 1e-12);
        assert_eq!(first.eval_mod, 0.0);
        assert!((first.slot_to_coeff - 0.5).abs() < 1e-12);
        // A second bootstrap adds to the same phases.
        w.enter(Phase::ModRaise, 7_600_000_000);
        w.enter(Phase::CoeffToSlot, 7_600_000_000);
        let both = w.seconds(8_600_000_000);
        assert!((both.coeff_to_slot - 3.0).abs() < 1e-12);
        assert!((both.slot_to_coeff - 0.5).abs() < 1e-12);
        w.enter(Phase::EvalMod, 100);
        assert!((w.seconds(100).coeff_to_slot - 3.0).abs() < 1e-12);
    }
}
