//! Encrypted inference of the committed models through the store-backed executor, compared
//! with the float64 reference: argmax agreement and max logit error.
//!
//! Default runs use a few images; the full test splits are `#[ignore]`d:
//! `cargo test --release -p hetier-he --test encrypted_models -- --ignored --nocapture`
//! (`HETIER_IMAGES=n` limits the number of images).

use std::path::PathBuf;
use std::time::Instant;

use hetier_he::ckks::Preset;
use hetier_he::exec::Session;
use hetier_he::model::{argmax, Model};
use hetier_tiering::{PolicyConfig, Pool, PoolOptions, PrefetchRule, TieredStore};

struct Outcome {
    images: usize,
    agree: usize,
    max_err: f64,
    secs_per_image: f64,
}

fn run(name: &str, images: usize, budget: u64) -> Outcome {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
    let m = Model::load(dir.join(format!("{name}.json"))).unwrap();
    let c = m.compile(&Preset::N14.params().unwrap()).unwrap();
    let pool_dir = tempfile::tempdir().unwrap();
    let pool =
        Pool::create(pool_dir.path(), PoolOptions::default().segment_size(64 << 20)).unwrap();
    let store = TieredStore::builder()
        .dram_budget(budget)
        .pool(pool)
        .policy(PolicyConfig::planned(PrefetchRule::Conservative))
        .build()
        .unwrap();
    let mut s = Session::new(&m, &c, &store, [3; 32]).unwrap();
    let ts = m.test_set().unwrap();
    let n = images.min(ts.len());
    let (mut agree, mut max_err) = (0, 0.0f64);
    let t = Instant::now();
    for i in 0..n {
        let (y, _) = s.infer(ts.image(i)).unwrap();
        let want = ts.reference_logits(i);
        max_err = max_err.max(y.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max));
        agree += usize::from(argmax(&y) == argmax(want));
    }
    let secs_per_image = t.elapsed().as_secs_f64() / n as f64;
    let st = store.stats();
    eprintln!(
        "{name}: {agree}/{n} argmax agree, max logit error {max_err:.3e}, {secs_per_image:.3} s/image, \
         budget {} MiB, peak DRAM {} MiB, PM->DRAM {} MiB, DRAM->PM {} MiB",
        budget >> 20,
        st.peak_dram >> 20,
        st.bytes_pm_to_dram >> 20,
        st.bytes_dram_to_pm >> 20
    );
    Outcome { images: n, agree, max_err, secs_per_image }
}

fn limit(default: usize) -> usize {
    std::env::var("HETIER_IMAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn digits_few_images_agree_with_plaintext() {
    let o = run("digits", 4, 48 << 20);
    assert_eq!(o.agree, o.images);
    assert!(o.max_err <= 1e-3, "{}", o.max_err);
}

#[test]
fn cryptonets_one_image_agrees_with_plaintext() {
    let o = run("cryptonets", 1, 256 << 20);
    assert_eq!(o.agree, o.images);
    assert!(o.max_err <= 1e-3, "{}", o.max_err);
}

#[test]
#[ignore = "full test split: ~359 encrypted inferences"]
fn digits_full_test_split() {
    let o = run("digits", limit(usize::MAX), 48 << 20);
    assert!(o.agree as f64 >= 0.99 * o.images as f64, "{}/{}", o.agree, o.images);
    assert!(o.max_err <= 1e-3, "{}", o.max_err);
    assert!(o.secs_per_image > 0.0);
}

#[test]
#[ignore = "full test split: 1000 encrypted CryptoNets inferences"]
fn cryptonets_full_test_split() {
    let o = run("cryptonets", limit(usize::MAX), 256 << 20);
    assert!(o.agree as f64 >= 0.99 * o.images as f64, "{}/{}", o.agree, o.images);
    assert!(o.max_err <= 1e-3, "{}", o.max_err);
}
