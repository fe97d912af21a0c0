//! Diagonals kept one word per run. Most diagonals of the bootstrap's DFT factors are
//! polynomials in X^k (at `n16_deep`, 126 of each transform's 158: k = 32 or 1,024), and the
//! NTT's evaluations of such a polynomial, in its bit-reversed order, come in runs of k equal
//! words. A store keeps every k-th word of each limb, k times fewer bytes to hold and read, and
//! the transform multiplies by the runs without writing them out
//! (`ExtendedCiphertext::mul_add_assign`, `repeat`).

/// The largest power of two k ≤ `n` that divides the index of every coefficient for which
/// `nonzero` is true: the polynomial is one in X^k. `n` (one run per limb) when only the
/// constant term is nonzero.
pub fn coefficient_stride(n: usize, nonzero: impl IntoIterator<Item = bool>) -> usize {
    nonzero
        .into_iter()
        .enumerate()
        .filter(|&(i, nz)| nz && i != 0)
        .map(|(i, _)| 1usize << i.trailing_zeros())
        .fold(n, usize::min)
}

/// Writes every `repeat`-th word of each `n`-word limb of `words` into `out`
/// (`words.len() / repeat` words), after checking that each limb is made of runs of `repeat`
/// equal words: `false`, and `out` unspecified, when it is not (or the lengths do not fit).
pub fn compact_runs(words: &[u64], n: usize, repeat: usize, out: &mut [u64]) -> bool {
    let fits = repeat.is_power_of_two()
        && repeat <= n
        && n > 0
        && words.len().is_multiple_of(n)
        && out.len() * repeat == words.len();
    if !fits {
        return false;
    }
    for (run, o) in words.chunks(repeat).zip(out.iter_mut()) {
        if run.iter().any(|&w| w != run[0]) {
            return false;
        }
        *o = run[0];
    }
    true
}

/// How many times each stored word of a diagonal of `full` words repeats, for stored words of
/// length `stored` over limbs of `n` words: `None` unless `full / stored` is a power of two
/// no larger than `n`.
pub fn repeat_of(full: usize, stored: usize, n: usize) -> Option<usize> {
    if stored == 0 || !full.is_multiple_of(stored) {
        return None;
    }
    let repeat = full / stored;
    (repeat.is_power_of_two() && repeat <= n).then_some(repeat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_runs_and_repeats() {
        let n = 16;
        assert_eq!(coefficient_stride(n, (0..n).map(|i| i == 0)), n);
        assert_eq!(coefficient_stride(n, (0..n).map(|i| i % 4 == 0)), 4);
        assert_eq!(coefficient_stride(n, (0..n).map(|i| i == 8 || i == 12)), 4);
        assert_eq!(coefficient_stride(n, (0..n).map(|i| i == 3)), 1);
        assert_eq!(coefficient_stride(n, (0..n).map(|i| i == 6)), 2, "the power of two in 6");

        let words: Vec<u64> = (0..2 * n as u64).map(|i| i / 4).collect();
        let mut out = vec![0; 8];
        assert!(compact_runs(&words, n, 4, &mut out));
        assert_eq!(out, [0, 1, 2, 3, 4, 5, 6, 7]);
        let mut out = vec![0; 4];
        assert!(!compact_runs(&words, n, 8, &mut out), "runs of 4, not 8");
        assert!(!compact_runs(&words, n, 3, &mut [0; 10]), "not a power of two");
        assert!(!compact_runs(&words, n, 4, &mut [0; 7]), "wrong output length");

        assert_eq!(repeat_of(64, 16, 16), Some(4));
        assert_eq!(repeat_of(64, 64, 16), Some(1));
        assert_eq!(repeat_of(64, 2, 16), None, "32 > n");
        assert_eq!(repeat_of(64, 24, 16), None);
        assert_eq!(repeat_of(64, 0, 16), None);
    }
}
