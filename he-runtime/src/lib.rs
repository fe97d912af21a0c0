//! hetier-he: an RNS-CKKS runtime whose math works on any `AsRef<[u64]>` container.
