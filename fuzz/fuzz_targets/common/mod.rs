//! Shared by the decoder targets: one small (insecure, log N = 12) CKKS context, and the
//! resealing that lets fuzzed bodies past the blob header's length and checksum.

use std::sync::{Arc, OnceLock};

use hetier_he::ckks::{Context, ParamsBuilder};

/// Header length of a ckks blob (magic, version, kind, flags, params id, body length).
pub const HEADER: usize = 24;

/// The context every target decodes under.
pub fn ctx() -> &'static Arc<Context> {
    static CTX: OnceLock<Arc<Context>> = OnceLock::new();
    CTX.get_or_init(|| {
        let mut b = ParamsBuilder::new(12);
        b.q_bits(50, &[40, 40]).special_bits(50).dnum(1).log_scale(40.0).allow_insecure();
        Context::new(&b.build().expect("fuzz parameters")).expect("fuzz context")
    })
}

/// `body` behind a valid header of blob kind `kind` under the fuzz context, with the right
/// length and checksum: the decoder then parses the fuzzed body itself.
pub fn sealed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER + body.len() + 4);
    b.extend_from_slice(b"HTCK");
    b.extend_from_slice(&hetier_he::ckks::FORMAT_VERSION.to_le_bytes());
    b.push(kind);
    b.push(0);
    b.extend_from_slice(&ctx().params().id().to_le_bytes());
    b.extend_from_slice(&(body.len() as u64).to_le_bytes());
    b.extend_from_slice(body);
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}
