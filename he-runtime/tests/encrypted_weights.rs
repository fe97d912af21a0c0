//! Inference with encrypted weights through the store-backed executor: the digits MLP with
//! every weight a durable ciphertext agrees with the plaintext model, and a reopened pool
//! reuses the weight ciphertexts instead of encrypting them again.

use std::path::PathBuf;

use hetier_he::ckks::Preset;
use hetier_he::exec::Session;
use hetier_he::model::{argmax, Model};
use hetier_he::nn::encrypt_weights;
use hetier_tiering::{PolicyConfig, Pool, PoolOptions, PrefetchRule, TieredStore};

fn store(dir: &std::path::Path, create: bool) -> TieredStore {
    let opts = PoolOptions::default().segment_size(64 << 20);
    let pool =
        if create { Pool::create(dir, opts).unwrap() } else { Pool::open(dir, opts).unwrap().0 };
    TieredStore::builder()
        .dram_budget(64 << 20)
        .pool(pool)
        .policy(PolicyConfig::planned(PrefetchRule::Conservative))
        .build()
        .unwrap()
}

#[test]
fn digits_with_encrypted_weights_in_the_store() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
    let m = Model::load(dir.join("digits.json")).unwrap();
    let plain = m.compile(&Preset::N14.params().unwrap()).unwrap();
    let mut c = plain.clone();
    c.program = encrypt_weights(&plain.program).unwrap();
    let weights = c.program.objects().iter().filter(|o| o.plain.is_some()).count();
    let ts = m.test_set().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let pool_dir = tmp.path().join("pool");
    {
        let st = store(&pool_dir, true);
        let mut s = Session::new(&m, &c, &st, [3; 32]).unwrap();
        assert_eq!(s.weights_encoded, weights);
        for i in 0..2 {
            let (y, _) = s.infer(ts.image(i)).unwrap();
            let want = ts.reference_logits(i);
            let err = y.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(err < 1e-3, "image {i}: {err}");
            assert_eq!(argmax(&y), argmax(want));
        }
    }
    // Reopened: the weight ciphertexts are durable and reused.
    let st = store(&pool_dir, false);
    let mut s = Session::new(&m, &c, &st, [3; 32]).unwrap();
    assert_eq!(s.weights_encoded, 0);
    assert_eq!(s.keys.generated, 0);
    let (y, _) = s.infer(ts.image(2)).unwrap();
    assert_eq!(argmax(&y), argmax(ts.reference_logits(2)));
}
