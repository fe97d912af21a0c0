//! Arbitrary bytes decoded as a relinearisation key: a typed error or a value, never a panic and never an
//! allocation the bytes did not pay for. The input is decoded as it is (header, length and
//! checksum checks) and again behind a valid header (the body parser itself).
#![no_main]

mod common;

use hetier_he::ckks::RelinKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ctx = common::ctx();
    let _ = RelinKey::from_bytes(ctx, data);
    if let Ok(v) = RelinKey::from_bytes(ctx, &common::sealed(4, data)) {
        // A decoded value re-encodes to a blob that decodes again.
        assert!(RelinKey::from_bytes(ctx, &v.to_bytes(ctx)).is_ok());
    }
});
