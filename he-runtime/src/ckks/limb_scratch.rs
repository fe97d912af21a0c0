//! Per-thread temporaries for the limb loops of a key switch, kept between calls.
//!
//! A parallel loop that gave every rayon split its own fresh buffers paid for them in the
//! kernel: with glibc's mmap threshold fixed low (`hetier_allocator::heap`, so that large
//! frees leave the process), each N-word buffer is a new mapping, faulted in page by page,
//! zeroed and unmapped again. At N = 2^16 a bootstrap's hoisted rotations made ~2,000 such
//! sets, 3 GB of fresh pages, and about 8% of its CPU time went to faults and unmapping.
//! Buffers kept per thread cost 8·words bytes per worker thread once (1.5 MiB for three limbs
//! at N = 2^16).

use std::cell::RefCell;

thread_local! {
    static WORDS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch of at least `words` words (exactly `words` are passed).
/// The contents are whatever this thread's last user left: `f` must write before it reads.
///
/// The buffer is taken out of its cell for the call, so a nested call on the same thread (a
/// rayon job run while this one waits) gets a buffer of its own rather than this one; when both
/// are done the larger is kept.
pub(crate) fn with_scratch<R>(words: usize, f: impl FnOnce(&mut [u64]) -> R) -> R {
    let mut buf = WORDS.with(RefCell::take);
    if buf.len() < words {
        buf.resize(words, 0);
    }
    let result = f(&mut buf[..words]);
    WORDS.with(|cell| {
        let mut kept = cell.borrow_mut();
        if kept.len() < buf.len() {
            *kept = buf;
        }
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second call on the thread gets the first call's buffer back (its words still there),
    /// and a longer request grows it.
    #[test]
    fn the_buffer_is_kept_between_calls_and_grows() {
        let first = with_scratch(8, |b| {
            b.fill(7);
            b.as_ptr() as usize
        });
        let (again, seen) = with_scratch(8, |b| (b.as_ptr() as usize, b.to_vec()));
        assert_eq!(again, first, "the same allocation serves the second call");
        assert_eq!(seen, vec![7; 8]);
        let len = with_scratch(1000, |b| b.len());
        assert_eq!(len, 1000);
        assert_eq!(with_scratch(3, |b| b.len()), 3, "exactly the words asked for");
    }

    /// A nested call does not alias the outer call's words.
    #[test]
    fn a_nested_call_gets_its_own_words() {
        with_scratch(16, |outer| {
            outer.fill(1);
            with_scratch(16, |inner| {
                assert_ne!(inner.as_ptr(), outer.as_ptr());
                inner.fill(2);
            });
            assert!(outer.iter().all(|&w| w == 1));
        });
    }
}
