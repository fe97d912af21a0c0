//! CKKS objects living in the tiered store: keys put once (durable) are used in place by a later
//! process through pinned buffers, under a DRAM budget too small to hold them all, and
//! intermediate ciphertexts (scratch) survive a round trip through PM but not a reopen.

use hetier_allocator::{Durability, ObjectId, ObjectKind};
use hetier_he::ckks::{Ciphertext, Evaluator, Preset};
use hetier_he::Error as HeError;
use hetier_tests::*;

const STEPS: [i64; 4] = [1, 2, 5, -3];
const ROT_BOUND: f64 = 1e-5;

fn key_id(i: usize) -> ObjectId {
    ObjectId(100 + i as u64)
}

fn seed_id(i: usize) -> ObjectId {
    ObjectId(200 + i as u64)
}

fn rotated(values: &[f64], step: i64) -> Vec<f64> {
    let n = values.len() as i64;
    (0..n).map(|i| values[(i + step).rem_euclid(n) as usize]).collect()
}

#[test]
fn rotation_keys_put_once_are_used_in_place_by_a_later_process() {
    let crypto = Crypto::new(Preset::N13);
    let dir = tempfile::tempdir().unwrap();
    let pool_dir = dir.path().join("pool");
    let mut kg = crypto.keygen();
    let keys: Vec<_> = STEPS.iter().map(|&s| kg.rotation_key(&crypto.sk, s).unwrap()).collect();
    let key_bytes = keys[0].key.as_words().len() as u64 * 8;

    // Process 1: upload the keys. The budget holds two of the four, so the store must spill.
    {
        let store = store(open_or_create_pool(&pool_dir), 2 * key_bytes);
        for (i, key) in keys.iter().enumerate() {
            let kind =
                ObjectKind::EvalKey { galois_element: key.galois_element, level: 0, digit: 0 };
            put_words(&store, key_id(i), kind, Durability::Durable, key.key.as_words());
            store
                .put(seed_id(i), ObjectKind::Blob, Durability::Durable, &seed_bytes(&key.key))
                .unwrap();
        }
        assert!(store.stats().peak_dram <= 2 * key_bytes);
    }

    // Process 2: a fresh store over the reopened pool, room for one key and two ciphertexts.
    let values = crypto.values(1);
    let ct = crypto.encrypt(&values);
    let ct_bytes = ct.as_words().len() as u64 * 8;
    let budget = key_bytes + 2 * ct_bytes;
    let store = store(open_or_create_pool(&pool_dir), budget);
    let eval = Evaluator::new(&crypto.ctx);
    let mut scratch = eval.scratch();
    for (i, &step) in STEPS.iter().enumerate() {
        let seed = store.pin(seed_id(i)).unwrap().as_bytes().to_vec();
        let pinned = store.pin(key_id(i)).unwrap();
        let g = crypto.ctx.galois_element_for_step(step);
        let key = galois_key_in_place(&crypto.ctx, g, pinned.as_u64s(), &seed);
        let out = eval.rotate(&ct, step, &key, &mut scratch).unwrap();
        let err = max_abs_diff(&crypto.decrypt(&out), &rotated(&values, step));
        assert!(err < ROT_BOUND, "step {step}: error {err}");
    }
    let stats = store.stats();
    assert!(stats.bytes_pm_to_dram >= STEPS.len() as u64 * key_bytes, "{stats:?}");
    assert!(stats.peak_dram <= budget, "{stats:?}");
}

#[test]
fn a_key_rebuilt_with_the_wrong_galois_element_is_refused() {
    let crypto = Crypto::new(Preset::N13);
    let key = crypto.keygen().rotation_key(&crypto.sk, 1).unwrap();
    let seed = seed_bytes(&key.key);
    let wrong = galois_key_in_place(
        &crypto.ctx,
        crypto.ctx.galois_element_for_step(2),
        key.key.as_words(),
        &seed,
    );
    let ct = crypto.encrypt(&crypto.values(2));
    let eval = Evaluator::new(&crypto.ctx);
    let err = eval.rotate(&ct, 1, &wrong, &mut eval.scratch()).unwrap_err();
    assert!(matches!(err, HeError::MissingGaloisKey { .. }), "{err:?}");
}

#[test]
fn a_pinned_buffer_of_the_wrong_shape_is_a_typed_error() {
    let crypto = Crypto::new(Preset::N13);
    let ct = crypto.encrypt(&crypto.values(3));
    let seed = [0u8; 32];
    let err =
        hetier_he::ckks::KeySwitchKey::from_raw(ct.as_words(), seed, &crypto.ctx).unwrap_err();
    assert!(matches!(err, HeError::BufferLength { .. }), "{err:?}");
}

#[test]
fn scratch_ciphertexts_round_trip_through_pm_and_vanish_on_reopen() {
    let crypto = Crypto::new(Preset::N13);
    let dir = tempfile::tempdir().unwrap();
    let pool_dir = dir.path().join("pool");
    let p = crypto.ctx.params();
    let inputs: Vec<Vec<f64>> = (0..4).map(|s| crypto.values(10 + s)).collect();
    let cts: Vec<Ciphertext> = inputs.iter().map(|v| crypto.encrypt(v)).collect();
    let ct_bytes = cts[0].as_words().len() as u64 * 8;
    {
        // Room for two of the four: the others must be written back and read again.
        let store = store(open_or_create_pool(&pool_dir), 2 * ct_bytes);
        for (i, ct) in cts.iter().enumerate() {
            put_words(
                &store,
                ObjectId(i as u64),
                ObjectKind::Ciphertext,
                Durability::Scratch,
                ct.as_words(),
            );
        }
        for (i, want) in inputs.iter().enumerate() {
            let pinned = store.pin(ObjectId(i as u64)).unwrap();
            let ct = Ciphertext::from_raw(
                pinned.as_u64s(),
                2,
                p.max_level(),
                p.scale(),
                crypto.ctx.n(),
                p.id(),
            )
            .unwrap();
            let err = max_abs_diff(&crypto.decrypt(&ct), want);
            assert!(err < 1e-6, "ciphertext {i}: error {err}");
        }
        let stats = store.stats();
        assert!(stats.bytes_dram_to_pm > 0 && stats.bytes_pm_to_dram > 0, "{stats:?}");
    }
    let store = store(open_or_create_pool(&pool_dir), 2 * ct_bytes);
    for i in 0..cts.len() {
        assert!(!store.contains(ObjectId(i as u64)), "scratch object {i} survived a reopen");
    }
}
