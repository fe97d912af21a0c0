//! Arbitrary bytes decoded as an evaluation-key bundle (the key set a client sends a server:
//! relinearisation and Galois keys, each a seed-compressed blob, under a count and lengths): a
//! typed error or a bundle, never a panic or an allocation the bytes did not pay for. The input
//! is decoded as it is and again behind a valid bundle header for the fuzz context (magic,
//! parameter id, key-set id), so the fuzzer reaches the count, the lengths and the key blobs.
#![no_main]

#[allow(dead_code)] // the bundle is sealed by its own header, not a blob header
mod common;

use hetier_he::exec::EvalKeyBundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ctx = common::ctx();
    let _ = EvalKeyBundle::from_bytes(ctx, data);
    let mut b = b"HTEKB001".to_vec();
    b.extend_from_slice(&ctx.params().id().to_le_bytes());
    b.extend_from_slice(&5u64.to_le_bytes());
    b.extend_from_slice(data);
    if let Ok(v) = EvalKeyBundle::from_bytes(ctx, &b) {
        // A decoded bundle re-encodes to bytes that decode again.
        assert!(EvalKeyBundle::from_bytes(ctx, &v.to_bytes(ctx)).is_ok());
    }
});
