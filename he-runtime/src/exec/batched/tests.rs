use std::path::PathBuf;

use hetier_tiering::{TieredStore, TraceEvent};

use super::*;
use crate::error::Error as CoreError;
use crate::exec::batched::{batch_params, BatchSession, MAX_PINS};
use crate::model::tests_relu::{add_then_relu, max_err, relu_residual, test_set as relu_test_set};
use crate::model::{argmax, Model};

const SK_SEED: [u8; 32] = [9; 32];

fn load(name: &str) -> Model {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
    Model::load(dir.join(format!("{name}.json"))).unwrap()
}

fn store(dir: &std::path::Path, budget: u64) -> TieredStore {
    crate::exec::test_store::planned_store(dir, budget, true, 32 << 20)
}

/// Events without compute times.
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

/// Runs `images` test images of `name` in one batch at log N = 13; returns (agreement, max
/// logit error, real trace) and checks the plan trace equals the real one.
fn run_batch(name: &str, images: usize, budget: u64) -> (usize, f64, Vec<TraceEvent>) {
    let m = load(name);
    let params = batch_params(13, m.depth()).unwrap();
    assert!(params.is_secure());
    // Sums and pins sized to the budget: the executor borrows the sums from it.
    let plan = BatchPlan::compile_within(&m, &params, budget).unwrap();
    let ts = m.test_set().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path(), budget);
    let raw: Vec<&[u8]> = (0..images).map(|i| ts.image(i % ts.len())).collect();
    let mut s = BatchSession::new(&m, &plan, &st, SK_SEED).unwrap();
    let out = s.infer(&raw).unwrap();
    eprintln!(
        "{name} x{images}: encrypt {:.2} s, run {:.2} s, decrypt {:.2} s",
        out.encrypt_seconds, out.run_seconds, out.decrypt_seconds
    );
    let (mut agree, mut worst) = (0, 0.0f64);
    for (i, y) in out.logits.iter().enumerate() {
        let want = ts.reference_logits(i % ts.len());
        worst = worst.max(y.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max));
        agree += usize::from(argmax(y) == argmax(want));
    }
    let mut by: std::collections::BTreeMap<String, (usize, u64)> = Default::default();
    for e in s.executor().events() {
        if let TraceEvent::Op { name, compute_ns, .. } = e {
            let v = by.entry(name.clone()).or_default();
            v.0 += 1;
            v.1 += compute_ns;
        }
    }
    eprintln!("{name} x{images}: compute by step kind {by:?}");
    // The sums, key-switch buffers, template values and the client's ciphertext were borrowed
    // from the store's budget, and all given back.
    let stats = st.stats();
    assert!(stats.scratch_peak > 0 && stats.scratch_in_use == 0, "{stats:?}");
    assert!(stats.peak_dram <= budget, "{stats:?}");
    let real = shape(s.executor().events());
    let mut p = BatchExecutor::plan(&plan, KeySetId::from_seed(&SK_SEED), costs());
    p.prepare_keys(None, None, KeySetId::from_seed(&SK_SEED)).unwrap();
    p.run().unwrap();
    p.finish().unwrap();
    assert_eq!(shape(p.events()), real, "plan trace == real trace");
    p.trace().validate().unwrap();
    s.executor().trace().validate().unwrap();
    (agree, worst, real)
}

fn costs() -> OpCosts {
    OpCosts {
        log_n: 13,
        q_len: 6,
        p_len: 1,
        top_ns: [("lincomb_term".to_owned(), 10.0), ("mul_relin".to_owned(), 1000.0)].into(),
    }
}

#[test]
fn digits_batch_matches_plaintext_and_plan_trace() {
    let (agree, err, trace) = run_batch("digits", 40, 64 << 20);
    eprintln!("digits batch: {agree}/40, max logit error {err:e}");
    assert_eq!(agree, 40);
    assert!(err < 1e-3, "{err}");
    // Every put ciphertext is removed again; the one key stays.
    let puts = trace.iter().filter(|e| matches!(e, TraceEvent::Put { .. })).count();
    let removes = trace.iter().filter(|e| matches!(e, TraceEvent::Remove { .. })).count();
    assert_eq!(puts, removes + 1);
}

#[test]
fn cryptonets_batch_matches_plaintext_under_a_small_budget() {
    // 48 MiB: far below the 616 MB of input ciphertexts, so the store spills to the pool.
    let (agree, err, _) = run_batch("cryptonets", 16, 48 << 20);
    eprintln!("cryptonets batch: {agree}/16, max logit error {err:e}");
    assert_eq!(agree, 16);
    assert!(err < 1e-3, "{err}");
}

/// The whole held-out split, cycled to fill every slot (4096 at log N = 13).
/// `cargo test --release -p hetier-he --lib -- --ignored cryptonets_full_batch`
#[test]
#[ignore]
fn cryptonets_full_batch() {
    let (agree, err, _) = run_batch("cryptonets", 4096, 256 << 20);
    eprintln!("cryptonets full batch: {agree}/4096, max logit error {err:e}");
    assert!(agree * 100 >= 99 * 4096);
    assert!(err < 1e-3, "{err}");
}

/// Under a budget, a block's sums and a step's pins each stay within a quarter of it, and the
/// blocks split from one group never accumulate at the same time.
#[test]
fn a_plan_within_a_budget_bounds_sums_and_pins_and_runs_split_blocks_in_turn() {
    let m = load("cryptonets");
    let params = batch_params(13, m.depth()).unwrap();
    let budget = 32 << 20;
    let plan = BatchPlan::compile_within(&m, &params, budget).unwrap();
    let free = BatchPlan::compile(&m, &params).unwrap();
    assert!(plan.blocks().len() > free.blocks().len(), "fc1 is split");
    let obj = |o: u32| plan.objects()[o as usize];
    let mut open: Vec<usize> = Vec::new();
    for s in plan.steps() {
        match s {
            BatchStep::Accumulate { block, inputs, .. } => {
                let pinned: u64 = inputs.iter().map(|&o| obj(o).bytes).sum();
                assert!(pinned <= budget / 4, "{pinned}");
                if !open.contains(block) {
                    let b = &plan.blocks()[*block];
                    // No other block of the same layer is still accumulating.
                    let same = |k: &usize| plan.blocks()[*k].layer == b.layer;
                    assert!(!open.iter().any(same), "layer {} interleaves blocks", b.layer);
                    open.push(*block);
                }
                let b = &plan.blocks()[*block];
                let sums = b.outputs.len() as u64 * obj(inputs[0]).bytes;
                assert!(sums <= budget / 4 || b.outputs.len() == 1, "{sums}");
            }
            BatchStep::Finish { block } => open.retain(|k| k != block),
            _ => {}
        }
    }
}

#[test]
fn plan_shapes_cryptonets() {
    let m = load("cryptonets");
    let params = batch_params(13, m.depth()).unwrap();
    let plan = BatchPlan::compile(&m, &params).unwrap();
    assert_eq!(plan.inputs().len(), 784);
    assert_eq!(plan.outputs().len(), 10);
    // conv: one block per output position (5 channels share the window); fc1 and fc2 one each.
    assert_eq!(plan.blocks().len(), 169 + 1 + 1);
    assert!(plan.needs_relin());
    let terms: usize = plan
        .steps()
        .iter()
        .map(|s| match s {
            BatchStep::Accumulate { weights, .. } => weights.len(),
            _ => 0,
        })
        .sum();
    // 845 conv outputs over their (partly padded) windows, 845·100 and 100·10 dense terms.
    assert!(terms > 84_500 + 1000 && terms < 84_500 + 1000 + 845 * 25 + 1);
    assert!(plan.steps().iter().all(|s| match s {
        BatchStep::Accumulate { inputs, .. } => inputs.len() <= MAX_PINS,
        _ => true,
    }));
}

#[test]
fn schedule_keeps_the_live_set_near_the_inputs() {
    let m = load("cryptonets");
    let params = batch_params(13, m.depth()).unwrap();
    let plan = BatchPlan::compile(&m, &params).unwrap();
    let inputs: u64 = plan.inputs().iter().map(|&o| plan.objects()[o as usize].bytes).sum();
    // Without interleaving, all 845 squares (3 polynomials, 5 limbs) would wait for fc1.
    assert!(plan.peak_live_bytes() < inputs + (48 << 20), "{}", plan.peak_live_bytes());
}

#[test]
fn too_few_levels_is_a_typed_error_naming_the_layer() {
    let m = load("cryptonets");
    let params = batch_params(13, 3).unwrap();
    match BatchPlan::compile(&m, &params) {
        Err(CoreError::ModelTooDeep { layer, .. }) => assert_eq!(layer, "act2"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_batches_are_typed_errors() {
    let m = load("digits");
    let params = batch_params(13, m.depth()).unwrap();
    let plan = BatchPlan::compile(&m, &params).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path(), 64 << 20);
    let mut s = BatchSession::new(&m, &plan, &st, SK_SEED).unwrap();
    assert!(matches!(s.infer(&[]), Err(Error::Core(CoreError::InvalidParameter { .. }))));
    let short = [0u8; 3];
    assert!(matches!(s.infer(&[&short[..]]), Err(Error::Core(CoreError::ModelInput { .. }))));
    let p = BatchExecutor::plan(&plan, KeySetId::from_seed(&SK_SEED), costs());
    assert!(matches!(p.output(0), Err(Error::WrongMode { .. })));
}

#[test]
fn calibrated_costs_give_a_plan_time() {
    let m = load("digits");
    let params = batch_params(13, m.depth()).unwrap();
    let costs = OpCosts::calibrate(&params).unwrap();
    for k in ["lincomb_term", "square", "relinearize", "rescale"] {
        assert!(costs.top_ns.get(k).copied().unwrap_or(0.0) > 0.0, "{k}");
    }
    let plan = BatchPlan::compile(&m, &params).unwrap();
    let mut p = BatchExecutor::plan(&plan, KeySetId::from_seed(&SK_SEED), costs);
    let r = p.run().unwrap();
    assert_eq!(r.steps, plan.steps().len());
    assert!(r.compute_ns > 0);
}

#[test]
fn a_reused_key_is_still_in_the_trace() {
    let m = load("digits");
    let params = batch_params(13, m.depth()).unwrap();
    let plan = BatchPlan::compile(&m, &params).unwrap();
    let ts = m.test_set().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path(), 64 << 20);
    let raw: Vec<&[u8]> = (0..2).map(|i| ts.image(i)).collect();
    let mut first = BatchSession::new(&m, &plan, &st, SK_SEED).unwrap();
    first.infer(&raw).unwrap();
    let first_trace = shape(first.executor().events());
    drop(first);
    // A second session over the same store finds the key in the pool and records it anyway,
    // so its trace is complete (it validates) and has the shape of the first.
    let mut second = BatchSession::new(&m, &plan, &st, SK_SEED).unwrap();
    second.infer(&raw).unwrap();
    second.executor().trace().validate().unwrap();
    assert_eq!(shape(second.executor().events()), first_trace);
}

/// The batch-major half of `model/tests_relu.rs`: ReLU and residual adds run batch-major and
/// agree with the plaintext model.
#[test]
fn relu_and_residual_run_batch_major() {
    let m = relu_residual(7).unwrap();
    let params = batch_params(13, m.depth()).unwrap();
    let plan = BatchPlan::compile(&m, &params).unwrap();
    let ts = relu_test_set();
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path(), 64 << 20);
    let raw: Vec<&[u8]> = (0..12).map(|i| ts.image(i)).collect();
    let mut s = BatchSession::new(&m, &plan, &st, [4; 32]).unwrap();
    let out = s.infer(&raw).unwrap();
    for (i, y) in out.logits.iter().enumerate() {
        let want = m.forward(&m.prepare_input(raw[i]).unwrap()).unwrap();
        let err = max_err(y, &want);
        assert!(err < 1e-3, "sample {i}: {err}");
        assert_eq!(argmax(y), argmax(&want), "sample {i}");
    }
}

/// Too deep for the batch-major lowering: typed errors naming the layer, as slot-packed.
#[test]
fn relu_depth_errors_batch_major_name_the_layer() {
    let m = relu_residual(31).unwrap();
    let err = BatchPlan::compile(&m, &batch_params(13, 5).unwrap()).unwrap_err();
    assert!(
        matches!(&err, CoreError::ModelTooDeep { layer, needed: 5, .. } if layer == "act1"),
        "{err:?}"
    );
    let err = BatchPlan::compile(&add_then_relu(), &batch_params(13, 5).unwrap()).unwrap_err();
    assert_eq!(err, CoreError::DepthExceeded { layer: "act2".into(), needed: 3, available: 2 });
}

/// A budget too small for a batch plan fails before any key is made or input put, naming the
/// smallest budget whose own plan (compiled within it) fits it; a plan compiled within that
/// budget runs there and agrees with plaintext, and one page less is refused the same way.
#[test]
fn a_batch_budget_too_small_fails_before_any_work_and_names_one_that_runs() {
    let m = load("cryptonets");
    let params = batch_params(13, m.depth()).unwrap();
    let refused = |budget: u64| -> u64 {
        let plan = BatchPlan::compile_within(&m, &params, budget).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), budget);
        let err = BatchSession::new(&m, &plan, &st, SK_SEED).err().expect("refused");
        assert_eq!(st.stats().objects, 0, "nothing was put before the refusal");
        match err.store() {
            Some(hetier_tiering::Error::BudgetTooSmall { budget: b, needed, .. }) => {
                assert_eq!(*b, budget);
                *needed
            }
            other => panic!("expected BudgetTooSmall, got {other:?}"),
        }
    };
    let needed = refused(16 << 20);
    assert!(needed > 16 << 20);
    // The named budget is a fixed point: its own plan fits it.
    let plan = BatchPlan::compile_within(&m, &params, needed).unwrap();
    let ctx = crate::ckks::Context::new(&params).unwrap();
    let key_pin = [
        crate::ckks::switch_key_stored_len(&ctx),
        crate::ckks::switch_key_expanded_words(&ctx) as u64 * 8,
    ];
    let (need, _) = TieredStore::working_set_need(plan.working_sets(&key_pin));
    assert!(need <= needed);
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path(), needed);
    let mut s = BatchSession::new(&m, &plan, &st, SK_SEED).unwrap();
    let ts = m.test_set().unwrap();
    let raw: Vec<&[u8]> = (0..4).map(|i| ts.image(i)).collect();
    let out = s.infer(&raw).unwrap();
    for (i, y) in out.logits.iter().enumerate() {
        assert_eq!(argmax(y), argmax(ts.reference_logits(i)), "image {i}");
    }
    assert!(st.stats().peak_dram <= needed);
    assert_eq!(refused(needed - 4096), needed, "one page less names the same budget");
}
