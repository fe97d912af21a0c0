//! Arbitrary bytes decoded as a seed-compressed switching key: the form every evaluation key of
//! a stored key set takes in the pool (a model's, and a bootstrapper's with its encapsulation
//! keys). A typed error or a value, never a panic and never an allocation the bytes did not pay
//! for. The input is decoded as it is and again behind a valid header (the body parser itself).
#![no_main]

mod common;

use hetier_he::ckks::KeySwitchKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ctx = common::ctx();
    let _ = KeySwitchKey::from_bytes(ctx, data);
    if let Ok(v) = KeySwitchKey::from_bytes(ctx, &common::sealed(7, data)) {
        // A decoded value re-encodes to a blob that decodes again.
        assert!(KeySwitchKey::from_bytes(ctx, &v.to_bytes(ctx)).is_ok());
    }
});
