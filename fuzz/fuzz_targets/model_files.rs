//! Arbitrary bytes as model files: the first byte picks the decoder (model description JSON,
//! weights safetensors, test-set safetensors, the description with the embedded digits
//! weights); each answers with a typed error or a value, never a panic.
#![no_main]

use hetier_he::model::{load_tensors, Model, ModelDesc, TestSet};
use libfuzzer_sys::fuzz_target;

const DIGITS_WEIGHTS: &[u8] = include_bytes!("../../models/digits.safetensors");

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 4 {
        0 => {
            let _ = load_tensors("fuzz", rest);
        }
        1 => {
            let _ = TestSet::from_bytes("fuzz", rest);
        }
        2 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = ModelDesc::from_json(text);
            }
        }
        _ => {
            if let Ok(Ok(d)) = std::str::from_utf8(rest).map(ModelDesc::from_json) {
                let _ = Model::from_parts(d, DIGITS_WEIGHTS);
            }
        }
    }
});
