//! Calibrated busy work: burn the CPU for a given time, the way a compute kernel would, so a
//! replayed trace occupies the core instead of sleeping.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Spins doing integer arithmetic until `dur` has elapsed; returns a value the optimiser
/// cannot discard.
pub fn busy_work(dur: Duration) -> u64 {
    let end = Instant::now() + dur;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    loop {
        // A few thousand dependent multiply-xorshifts between clock reads (≈1–3 µs).
        for _ in 0..1024 {
            x = black_box(x.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ (x >> 29));
        }
        if Instant::now() >= end {
            return x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lasts_at_least_the_request() {
        let t = Instant::now();
        black_box(busy_work(Duration::from_millis(3)));
        assert!(t.elapsed() >= Duration::from_millis(3));
    }
}
