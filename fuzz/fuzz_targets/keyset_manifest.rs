//! Arbitrary bytes decoded as a key-set manifest (`hetier-keyset/2`, the pool object that lists
//! a key set's keys — a model's or a bootstrapper's — with their seeds): a typed error or a
//! manifest, never a panic. The input is decoded as it is and spliced into a valid manifest's
//! text (as a key's seed and as a whole key entry), so the fuzzer reaches the field checks.
#![no_main]

use hetier_he::exec::{decode_manifest, KeySetId};
use libfuzzer_sys::fuzz_target;

const KEYSET: KeySetId = KeySetId(5);
const PARAMS: u64 = 9;

fuzz_target!(|data: &[u8]| {
    let _ = decode_manifest(data, KEYSET, PARAMS);
    let text = String::from_utf8_lossy(data);
    let seed = format!(
        r#"{{"format":"hetier-keyset/2","params_id":9,"keyset":5,"generation":1,"keys":[{{"galois_element":5,"id":7,"len":4096,"seed":"{text}","form":"seeded"}}]}}"#
    );
    let _ = decode_manifest(seed.as_bytes(), KEYSET, PARAMS);
    let entry = format!(
        r#"{{"format":"hetier-keyset/2","params_id":9,"keyset":5,"generation":1,"keys":[{text}]}}"#
    );
    if let Ok(n) = decode_manifest(entry.as_bytes(), KEYSET, PARAMS) {
        assert!(n <= data.len());
    }
});
