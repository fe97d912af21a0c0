use std::path::PathBuf;

use hetier_tiering::{TieredStore, TraceEvent};

use super::*;
use crate::ckks::KeyGenerator;
use crate::ckks::{Decryptor, Encryptor, Preset};
use crate::exec::steps::steps;
use crate::exec::weights_tag;
use crate::exec::KeyReport;
use crate::model::{argmax, Compiled, Model};
use crate::nn::Op;
use hetier_tiering::Durability;

const SK_SEED: [u8; 32] = [42; 32];

fn digits() -> (Model, Compiled, Arc<Context>) {
    load("digits")
}

fn load(name: &str) -> (Model, Compiled, Arc<Context>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
    let m = Model::load(dir.join(format!("{name}.json"))).unwrap();
    let params = Preset::N14.params().unwrap();
    let c = m.compile(&params).unwrap();
    let ctx = Context::new(&params).unwrap();
    (m, c, ctx)
}

fn store(dir: &std::path::Path, budget: u64, create: bool) -> TieredStore {
    crate::exec::test_store::planned_store(dir, budget, create, 32 << 20)
}

fn costs() -> OpCosts {
    OpCosts { log_n: 14, q_len: 6, p_len: 2, top_ns: [("rotate".to_owned(), 1000.0)].into() }
}

/// Events without compute times (those are measured in real mode, estimated in plan mode).
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

fn run_real(
    m: &Model,
    c: &Compiled,
    ctx: &Arc<Context>,
    st: &TieredStore,
    samples: std::ops::Range<usize>,
) -> (Vec<TraceEvent>, KeyReport, f64) {
    let params = ctx.params();
    let keyset = KeySetId::from_seed(&SK_SEED);
    let tag = weights_tag(m.weights_hash(), params.id());
    let mut kg = KeyGenerator::with_seed(ctx, SK_SEED);
    let sk = kg.secret_key();
    let mut ex = Executor::real(&c.program, tag, keyset, st, ctx).unwrap();
    let report = ex.prepare_keys(Some(&mut kg), Some(&sk), keyset).unwrap();
    ex.prepare_weights().unwrap();
    let ts = m.test_set().unwrap();
    let enc = Encoder::new(ctx);
    let mut worst = 0.0f64;
    for i in samples {
        let x = m.prepare_input(ts.image(i)).unwrap();
        let pt = enc
            .encode_real(&c.pack(&x, params.slots()).unwrap(), params.max_level(), params.scale())
            .unwrap();
        let ct = Encryptor::with_seed(ctx, [i as u8; 32]).encrypt_sk(&sk, &pt).unwrap();
        ex.run(Some(&ct)).unwrap();
        let out = ex.output("logits").unwrap();
        ex.finish().unwrap();
        let y = c.output_layout.unpack(
            &enc.decode_real(&Decryptor::new(ctx, &sk).unwrap().decrypt(&out).unwrap()).unwrap(),
        );
        let want = ts.reference_logits(i);
        worst = worst.max(y.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max));
        assert_eq!(argmax(&y), argmax(want), "sample {i}");
    }
    (ex.events().to_vec(), report, worst)
}

#[test]
fn plan_trace_equals_real_trace_and_real_run_is_correct() {
    plan_equals_real("digits");
}

#[test]
fn plan_equals_real_larger_models() {
    plan_equals_real("cryptonets");
    plan_equals_real("digits_wide");
}

fn plan_equals_real(name: &str) {
    let (m, c, ctx) = load(name);
    let footprint: u64 = c.program.objects().iter().map(|o| o.bytes).sum();
    let dir = tempfile::tempdir().unwrap();
    // A budget of a third of the footprint (a fifth for digits, whose seed-compressed keys
    // would fit a third): keys and weights must move between the tiers.
    let budget = if name == "digits" { footprint / 5 } else { footprint / 3 };
    let st = store(dir.path(), budget, true);
    let (real, report, worst) = run_real(&m, &c, &ctx, &st, 0..2);
    assert!(worst < 1e-3, "max logit error {worst}");
    assert_eq!(report.generated, c.program.keys().len());
    assert_eq!(report.reused, 0);
    let stats = st.stats();
    assert!(stats.peak_dram <= budget);
    if name == "digits" {
        // Its 13 keys alone, even stored seed-compressed, exceed the budget: they must be
        // read back from the pool.
        assert!(stats.bytes_pm_to_dram > 0, "{stats:?}");
    }

    let keyset = KeySetId::from_seed(&SK_SEED);
    let tag = weights_tag(m.weights_hash(), ctx.params().id());
    let mut plan = Executor::plan(&c.program, tag, keyset, costs());
    plan.prepare_keys(None, None, keyset).unwrap();
    plan.prepare_weights().unwrap();
    for _ in 0..2 {
        plan.run(None).unwrap();
        plan.finish().unwrap();
    }
    assert_eq!(shape(plan.events()), shape(&real));
    plan.trace().validate().unwrap();
    // Plan mode carries estimates: every rotation priced, nothing measured.
    assert!(plan.events().iter().any(|e| matches!(e, TraceEvent::Op { name, compute_ns, .. } if name == "rotate" && *compute_ns > 0)) || c.program.ops().iter().all(|r| r.op.name() != "rotate"));
    // The trace round-trips through the tiering crate's file format.
    let p = dir.path().join("plan.jsonl");
    plan.trace().save(&p).unwrap();
    assert_eq!(hetier_tiering::Trace::load(&p).unwrap().events, plan.events());
}

#[test]
fn keys_and_weights_are_reused_by_a_later_process() {
    let (m, c, ctx) = digits();
    let dir = tempfile::tempdir().unwrap();
    let budget = 64 << 20;
    {
        let st = store(dir.path(), budget, true);
        let (_, report, _) = run_real(&m, &c, &ctx, &st, 0..1);
        assert_eq!(report.generated, c.program.keys().len());
    }
    // A new store over the reopened pool: keys come from the manifest, weights from the pool.
    let st = store(dir.path(), budget, false);
    let durable_before: Vec<_> = st
        .pool()
        .list()
        .into_iter()
        .filter(|o| o.durability == Durability::Durable)
        .map(|o| (o.id, o.sequence))
        .collect();
    let (events, report, worst) = run_real(&m, &c, &ctx, &st, 1..2);
    assert_eq!(
        report,
        KeyReport { generated: 0, reused: c.program.keys().len(), ..KeyReport::default() }
    );
    assert!(worst < 1e-3);
    // Nothing durable was written again: the pool holds the same durable objects.
    let durable_now: Vec<_> = st
        .pool()
        .list()
        .into_iter()
        .filter(|o| o.durability == Durability::Durable)
        .map(|o| (o.id, o.sequence))
        .collect();
    assert_eq!(durable_now, durable_before);
    // The trace still names every key and weight (as durable setup puts) and matches the plan.
    let keyset = KeySetId::from_seed(&SK_SEED);
    let tag = weights_tag(m.weights_hash(), ctx.params().id());
    let mut plan = Executor::plan(&c.program, tag, keyset, costs());
    plan.prepare_keys(None, None, keyset).unwrap();
    plan.prepare_weights().unwrap();
    plan.run(None).unwrap();
    plan.finish().unwrap();
    assert_eq!(shape(plan.events()), shape(&events));
    plan.trace().validate().unwrap();
}

#[test]
fn plan_mode_refuses_real_only_requests() {
    let (_, c, _) = digits();
    let ex = Executor::plan(&c.program, 1, KeySetId(1), costs());
    assert!(matches!(ex.output("logits"), Err(Error::WrongMode { mode: "plan", .. })));
}

#[test]
fn a_budget_too_small_for_a_step_fails_before_anything_is_put() {
    let (m, c, ctx) = digits();
    let params = ctx.params();
    let objects = c.program.objects();
    let largest = |want: fn(&ObjKind) -> bool| {
        objects.iter().filter(|o| want(&o.kind)).map(|o| o.bytes).max().unwrap()
    };
    let key = largest(|k| matches!(k, ObjKind::GaloisKey { .. }));
    let ct = largest(|k| matches!(k, ObjKind::Ciphertext));
    // Every key fits alone, but no key fits beside a ciphertext: the plan can never run, and
    // says so before the input is put.
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path(), key + ct / 2, true);
    let keyset = KeySetId::from_seed(&SK_SEED);
    let tag = weights_tag(m.weights_hash(), params.id());
    let mut kg = KeyGenerator::with_seed(&ctx, SK_SEED);
    let sk = kg.secret_key();
    let mut ex = Executor::real(&c.program, tag, keyset, &st, &ctx).unwrap();
    ex.prepare_keys(Some(&mut kg), Some(&sk), keyset).unwrap();
    ex.prepare_weights().unwrap();
    let x = m.prepare_input(m.test_set().unwrap().image(0)).unwrap();
    let pt = Encoder::new(&ctx)
        .encode_real(&c.pack(&x, params.slots()).unwrap(), params.max_level(), params.scale())
        .unwrap();
    let input = Encryptor::with_seed(&ctx, [9; 32]).encrypt_sk(&sk, &pt).unwrap();
    let (needed, _) = TieredStore::working_set_need(ex.working_sets());
    assert!(needed >= key + ct, "a rotation holds a key and a ciphertext at once");
    let (in_use_before, events_before) = (st.stats().dram_in_use, ex.events().len());
    for attempt in 0..2 {
        let err = ex.run(Some(&input)).unwrap_err();
        match err.store() {
            Some(hetier_tiering::Error::BudgetTooSmall { budget, needed: n, .. }) => {
                assert_eq!((*budget, *n), (key + ct / 2, needed), "attempt {attempt}");
            }
            other => panic!("attempt {attempt}: expected BudgetTooSmall, got {other:?}"),
        }
    }
    // Nothing was put or recorded.
    assert_eq!((st.stats().dram_in_use, ex.events().len()), (in_use_before, events_before));
    ex.trace().validate().unwrap();
}

/// DRAM a step holds at once: its pins and its result, plus, with `scratch`, what it borrows
/// from the budget — the key-switch buffers at its level, mul_relin's degree-2 product, and
/// the hoisted decomposition with its c_0 while a hoisted rotation group runs.
fn step_need(c: &Compiled, scratch: bool) -> u64 {
    let p = &c.program;
    let sizes = p.sizes();
    // A key is pinned seed-compressed and expanded into a block of its full size.
    let bytes = |o: &ObjId| {
        let obj = &p.objects()[o.index()];
        obj.bytes + if obj.kind.is_key() { sizes.key() / 2 + 64 } else { 0 }
    };
    p.ops()
        .iter()
        .flat_map(|r| {
            let level = |o: &ObjId| p.objects()[o.index()].level;
            let charge = match &r.op {
                _ if !scratch => 0,
                Op::HoistedRotate { src, .. } => {
                    let l = level(src);
                    sizes.decomposition(l) + sizes.plaintext(l) + sizes.key_switch_scratch(l, false)
                }
                Op::Rotate { src, .. } | Op::Conjugate { src, .. } => {
                    sizes.key_switch_scratch(level(src), true)
                }
                Op::MulRelin { a, .. } => {
                    sizes.key_switch_scratch(level(a), true) + 3 * sizes.plaintext(level(a))
                }
                _ => 0,
            };
            // Every step computes into its result's store block while its operands are pinned.
            steps(&r.op).into_iter().map(move |s| {
                let pins: u64 = s.pins.iter().map(bytes).sum();
                let writes: u64 = s.writes.iter().map(bytes).sum();
                charge + pins + writes
            })
        })
        .max()
        .unwrap()
}

#[test]
fn key_switch_scratch_products_and_the_hoisted_decomposition_are_charged_to_the_budget() {
    let (m, c, ctx) = digits();
    let without = step_need(&c, false);
    let with = step_need(&c, true);
    assert!(with > without, "a key-switching step must be the largest once charged");
    let slack = 64 << 10;
    // Enough for every step's objects, but not for a key-switching step's objects plus its
    // scratch: the run fails with a typed error instead of exceeding the budget.
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path(), without + slack, true);
    let keyset = KeySetId::from_seed(&SK_SEED);
    let tag = weights_tag(m.weights_hash(), ctx.params().id());
    let mut kg = KeyGenerator::with_seed(&ctx, SK_SEED);
    let sk = kg.secret_key();
    let mut ex = Executor::real(&c.program, tag, keyset, &st, &ctx).unwrap();
    ex.prepare_keys(Some(&mut kg), Some(&sk), keyset).unwrap();
    ex.prepare_weights().unwrap();
    let params = ctx.params();
    let x = m.prepare_input(m.test_set().unwrap().image(0)).unwrap();
    let pt = Encoder::new(&ctx)
        .encode_real(&c.pack(&x, params.slots()).unwrap(), params.max_level(), params.scale())
        .unwrap();
    let input = Encryptor::with_seed(&ctx, [9; 32]).encrypt_sk(&sk, &pt).unwrap();
    let (needed, _) = TieredStore::working_set_need(ex.working_sets());
    assert!(needed >= with, "the plan's need counts the decomposition");
    let err = ex.run(Some(&input)).unwrap_err();
    assert!(
        matches!(
            err.store(),
            Some(hetier_tiering::Error::BudgetTooSmall { needed: n, .. }) if *n == needed
        ),
        "{err:?}"
    );
    drop(ex);
    drop(st);
    // The smallest workable budget the error names is workable: the same run completes in it.
    let st = store(dir.path(), needed, false);
    let (_, _, worst) = run_real(&m, &c, &ctx, &st, 0..1);
    assert!(worst < 1e-3);
    let stats = st.stats();
    assert!(stats.peak_dram <= with + slack);
    // The scratch was borrowed from the store (and all of it given back).
    assert!(stats.scratch_peak >= sizes_of_scratch(&c), "{}", stats.scratch_peak);
    assert_eq!(stats.scratch_in_use, 0);
}

/// The key-switch scratch of the program's first rotation or product: a lower bound of what a
/// real run borrows from the store.
fn sizes_of_scratch(c: &Compiled) -> u64 {
    let p = &c.program;
    p.ops()
        .iter()
        .find_map(|r| match &r.op {
            Op::Rotate { src, .. } | Op::MulRelin { a: src, .. } => {
                Some(p.sizes().key_switch_scratch(p.objects()[src.index()].level, true))
            }
            _ => None,
        })
        .unwrap_or(1)
}

/// A real run reserves its largest step's scratch once ([`Executor::scratch_charge`]) and
/// every step's scratch comes out of that reservation: none is made room for step by step, the
/// reservation is given back with the run, and it covers what the steps borrowed at most.
#[test]
fn a_run_reserves_its_largest_step_scratch_once_and_borrows_nothing_beyond() {
    let (m, c, ctx) = digits();
    let dir = tempfile::tempdir().unwrap();
    let keyset = KeySetId::from_seed(&SK_SEED);
    let plan = Executor::plan(&c.program, 0, keyset, costs());
    let charge = plan.scratch_charge();
    assert!(charge >= sizes_of_scratch(&c), "{charge}");
    let (needed, _) = TieredStore::working_set_need(plan.working_sets());
    let st = store(dir.path(), needed + charge, true);
    let (_, _, worst) = run_real(&m, &c, &ctx, &st, 0..1);
    assert!(worst < 1e-3);
    let s = st.stats();
    assert_eq!((s.scratch_beyond_reserve, s.scratch_reserved, s.scratch_in_use), (0, 0, 0));
    assert!(s.scratch_peak > 0 && s.scratch_peak <= charge, "{} > {charge}", s.scratch_peak);
}
