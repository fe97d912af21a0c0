//! Programs with bootstrap ops over the store: correct against plaintext at a quarter of the
//! footprint, and the plan's trace is the real one, bootstrap keys included.

use std::sync::Arc;

use hetier_tiering::{PolicyConfig, Pool, PoolOptions, PrefetchRule, TieredStore, TraceEvent};

use super::*;
use crate::ckks::bootstrap::BootstrapPreset;
use crate::ckks::KeyGenerator;
use crate::exec::{weights_tag, DiagonalStorage, Session};
use crate::model::bootstrapped::tests::sample;
use crate::model::zoo::reduced_resnet;
use crate::model::{argmax, DEFAULT_MARGIN};
use crate::nn::BootstrapSpec;

const SK_SEED: [u8; 32] = [21; 32];

fn shape(events: &[TraceEvent]) -> Vec<TraceEvent> {
    events
        .iter()
        .map(|e| match e {
            TraceEvent::Op { name, pins, .. } => {
                TraceEvent::Op { name: name.clone(), pins: pins.clone(), compute_ns: 0 }
            }
            other => other.clone(),
        })
        .collect()
}

#[test]
fn a_bootstrapped_resnet_runs_over_the_store_at_a_quarter_budget_as_planned() {
    let m = reduced_resnet().unwrap();
    let preset = BootstrapPreset::insecure_test(12, 5);
    let params = preset.params().unwrap();
    let ctx = Context::new(&params).unwrap();
    let bs = Arc::new(Bootstrapper::new(&ctx, &preset.config).unwrap());
    let c = m.compile_bootstrapped(&params, &BootstrapSpec::of(&bs), DEFAULT_MARGIN).unwrap();
    let footprint: u64 = c.program.objects().iter().map(|o| o.bytes).sum();
    let budget = footprint / 4;
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::create(dir.path(), PoolOptions::default().segment_size(32 << 20)).unwrap();
    let st = TieredStore::builder()
        .dram_budget(budget)
        .pool(pool)
        .policy(PolicyConfig::planned(PrefetchRule::Conservative))
        .build()
        .unwrap();
    let mut s =
        Session::with_bootstrapper(&m, &c, &st, SK_SEED, Arc::clone(&bs), false, KeyForm::Seeded)
            .unwrap();
    // Every key once: the bootstrap's and the layers' (shared ones counted once).
    assert_eq!((s.keys.generated, s.keys.reused), (c.program.keys().len(), 0));
    // The diagonals' coefficients are in the store, not in the executor's bootstrapper (the
    // caller's shared copy keeps its own).
    let coefficient_report = |s: &Session<'_>| {
        let Backend::Real(real) = &s.executor().backend else { panic!("a real executor") };
        assert!(!real.bootstrapper.as_ref().unwrap().holds_diagonal_coefficients());
        real.boot_keys.as_ref().unwrap().diagonal_report().unwrap()
    };
    assert!(bs.holds_diagonal_coefficients());
    let d = coefficient_report(&s);
    assert_eq!((d.storage, d.count), (DiagonalStorage::Coefficients, bs.diagonals().len()));
    for i in 0..2 {
        let (raw, x) = sample(&m, i);
        let want = m.forward(&x).unwrap();
        let (y, report) = s.infer(&raw).unwrap();
        let err = y.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-5, "sample {i}: max logit error {err}");
        assert_eq!(argmax(&y), argmax(&want));
        assert!(report.steps > c.program.ops().len(), "bootstraps run one step per key");
    }
    let d = coefficient_report(&s);
    let encodings = 2 * c.program.bootstraps() as u64 * d.count as u64;
    assert_eq!((d.pins, d.encoded_on_the_fly), (encodings, encodings));
    let stats = st.stats();
    assert!(stats.peak_dram <= budget, "{stats:?}");
    assert!(stats.bytes_pm_to_dram > 0, "keys stream from the pool: {stats:?}");
    let real = s.executor().events().to_vec();
    drop(s);

    // The plan walks the same steps: every bootstrap key pinned where the real run pinned it.
    let keyset = KeySetId::from_seed(&SK_SEED);
    let tag = weights_tag(m.weights_hash(), params.id());
    let costs = OpCosts {
        log_n: 12,
        q_len: params.q().len(),
        p_len: params.p().len(),
        top_ns: [("bootstrap_key".to_owned(), 1000.0)].into(),
    };
    let mut plan = Executor::plan(&c.program, tag, keyset, costs);
    plan.prepare_keys(None, None, keyset).unwrap();
    plan.prepare_weights().unwrap();
    for _ in 0..2 {
        plan.run(None).unwrap();
        plan.finish().unwrap();
    }
    assert_eq!(shape(plan.events()), shape(&real));
    let boot_keys = real
        .iter()
        .filter(|e| matches!(e, TraceEvent::Op { name, .. } if name == "bootstrap_key"))
        .count();
    assert_eq!(boot_keys, 2 * c.program.bootstraps() * bs.key_sequence().len());
}

#[test]
fn weights_encoded_on_the_fly_give_the_same_logits_and_are_never_stored() {
    let m = reduced_resnet().unwrap();
    let preset = BootstrapPreset::insecure_test(12, 5);
    let params = preset.params().unwrap();
    let ctx = Context::new(&params).unwrap();
    let bs = Arc::new(Bootstrapper::new(&ctx, &preset.config).unwrap());
    let c = m.compile_bootstrapped(&params, &BootstrapSpec::of(&bs), DEFAULT_MARGIN).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::create(dir.path(), PoolOptions::default().segment_size(32 << 20)).unwrap();
    let st = TieredStore::builder().dram_budget(256 << 20).pool(pool).build().unwrap();
    let mut s =
        Session::with_bootstrapper(&m, &c, &st, SK_SEED, Arc::clone(&bs), true, KeyForm::Expanded)
            .unwrap();
    assert_eq!(s.weights_encoded, 0);
    let (raw, x) = sample(&m, 3);
    let want = m.forward(&x).unwrap();
    let (y, report) = s.infer(&raw).unwrap();
    let err = y.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(err < 1e-5, "max logit error {err}");
    assert!(report.bootstrap_ns > 0 && report.bootstrap_ns < report.compute_ns);
    // Only keys are durable: no weight plaintext was put.
    let plaintext_puts = s
        .executor()
        .events()
        .iter()
        .filter(|e| {
            matches!(e, TraceEvent::Put { kind: hetier_tiering::ObjectClass::Plaintext, .. })
        })
        .count();
    assert_eq!(plaintext_puts, 0);
}

#[test]
fn a_bootstrapping_program_needs_its_bootstrapper() {
    let m = reduced_resnet().unwrap();
    let preset = BootstrapPreset::insecure_test(12, 5);
    let params = preset.params().unwrap();
    let ctx = Context::new(&params).unwrap();
    let bs = Bootstrapper::new(&ctx, &preset.config).unwrap();
    let c = m.compile_bootstrapped(&params, &BootstrapSpec::of(&bs), DEFAULT_MARGIN).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::create(dir.path(), PoolOptions::default().segment_size(32 << 20)).unwrap();
    let st = TieredStore::builder().dram_budget(1 << 30).pool(pool).build().unwrap();
    let keyset = KeySetId::from_seed(&SK_SEED);
    let mut kg = KeyGenerator::with_seed(&ctx, SK_SEED);
    let sk = kg.secret_key();
    let mut ex = Executor::real(&c.program, 1, keyset, &st, &ctx).unwrap();
    let err = ex.prepare_keys(Some(&mut kg), Some(&sk), keyset).unwrap_err();
    assert!(matches!(err, Error::WrongMode { .. }), "{err}");

    // A bootstrapper of another configuration is refused before anything runs.
    let mut other = preset.config.clone();
    other.double_angle += 1;
    let wrong = Arc::new(Bootstrapper::new(&ctx, &other).unwrap());
    let ex = Executor::real(&c.program, 1, keyset, &st, &ctx).unwrap();
    let err = ex.with_bootstrapper(wrong).err().unwrap();
    assert!(matches!(err, Error::Core(crate::Error::BootstrapMismatch { .. })), "{err}");
}
