//! Property tests: encode/decode round trip and the homomorphic identities of encoding
//! (slot-wise sum and product of plaintexts) on random vectors at N = 2^12.
use std::sync::{Arc, OnceLock};

use hetier_he::ckks::*;
use proptest::prelude::*;

fn ctx() -> &'static Arc<Context> {
    static CTX: OnceLock<Arc<Context>> = OnceLock::new();
    CTX.get_or_init(|| {
        let mut b = ParamsBuilder::new(12);
        b.q_bits(36, &[30]).special_bits(36).dnum(2).log_scale(30.0);
        Context::new(&b.build().unwrap()).unwrap()
    })
}

fn slots() -> impl Strategy<Value = Vec<(f64, f64)>> {
    prop::collection::vec((-8.0f64..8.0, -8.0f64..8.0), 1..=2048)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn encode_decode_round_trip(v in slots(), level in 0usize..2, raw_scale in 0u32..1000) {
        let enc = Encoder::new(ctx());
        // Scaled values must stay below q_0/2 (36 bits) at level 0 and Q/2 (66 bits) at level 1.
        let log_scale = 20 + raw_scale % if level == 0 { 10 } else { 26 };
        let z: Vec<Complex64> = v.iter().map(|&(a, b)| Complex64::new(a, b)).collect();
        let scale = 2f64.powi(log_scale as i32);
        let pt = enc.encode(&z, level, scale).unwrap();
        let back = enc.decode(&pt).unwrap();
        // Rounding to integers costs about sqrt(N)/scale per slot.
        let bound = 64.0 * 64.0 / scale;
        for (i, w) in back.iter().enumerate() {
            let want = z.get(i).copied().unwrap_or_default();
            prop_assert!((*w - want).abs() < bound, "slot {} {:?} vs {:?}", i, w, want);
        }
    }

    #[test]
    fn encoding_is_a_ring_homomorphism(a in prop::collection::vec(-1.0f64..1.0, 2048), b in prop::collection::vec(-1.0f64..1.0, 2048)) {
        let ctx = ctx();
        let enc = Encoder::new(ctx);
        let scale = 2f64.powi(30);
        let pa = enc.encode_real(&a, 1, scale).unwrap();
        let pb = enc.encode_real(&b, 1, scale).unwrap();
        // The NTT-form product of two plaintexts decodes (at scale²) to the slot-wise product.
        let n = ctx.n();
        let words: Vec<u64> = pa.as_words().iter().zip(pb.as_words()).enumerate().map(|(k, (&x, &y))| {
            let q = ctx.params().q()[k / n] as u128;
            ((x as u128 * y as u128) % q) as u64
        }).collect();
        let prod = Plaintext::from_raw(words, 1, scale * scale, n, ctx.params().id()).unwrap();
        let got = enc.decode_real(&prod).unwrap();
        for i in 0..2048 {
            prop_assert!((got[i] - a[i] * b[i]).abs() < 1e-6);
        }
    }
}
