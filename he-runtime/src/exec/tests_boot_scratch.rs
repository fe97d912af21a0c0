//! A run that bootstraps takes every buffer of its bootstraps from the store's budget: once per
//! run, shared by its bootstrap ops, counted by the plan's working sets (a budget below them is
//! refused before any work), and bit for bit the bootstrap the heap-buffered bootstrapper makes.

use std::sync::Arc;

use hetier_tiering::{TieredStore, TraceEvent};

use super::*;
use crate::ckks::bootstrap::BootstrapPreset;
use crate::ckks::{Complex64, Encoder, Encryptor, KeyGenerator, Scratch, SecretKey};
use crate::exec::bootstrap::StoredBootstrapKeys;
use crate::exec::test_store::planned_store;
use crate::nn::{BootstrapSpec, ObjId, Program, ProgramBuilder};

const SEED: [u8; 32] = [33; 32];

/// Log N = 12 (insecure test parameters, one level left after a bootstrap): the context, its
/// bootstrapper, and the program `body` builds from input "x" to output "z".
fn bootstrapping_program(
    body: impl FnOnce(&mut ProgramBuilder, ObjId) -> ObjId,
) -> (Arc<Context>, Arc<Bootstrapper>, Program) {
    let preset = BootstrapPreset::insecure_test(12, 1);
    let params = preset.params().unwrap();
    let ctx = Context::new(&params).unwrap();
    let bs = Arc::new(Bootstrapper::new(&ctx, &preset.config).unwrap());
    let mut b = ProgramBuilder::new(&params);
    b.enable_bootstrap(BootstrapSpec::of(&bs));
    let x = b.input("x", 0, params.scale()).unwrap();
    let z = body(&mut b, x);
    b.output("z", z).unwrap();
    (ctx, bs, b.finish())
}

/// [`bootstrapping_program`] bootstrapping its input twice.
fn two_bootstraps() -> (Arc<Context>, Arc<Bootstrapper>, Program) {
    bootstrapping_program(|b, x| {
        let y = b.bootstrap(x).unwrap();
        b.bootstrap(y).unwrap()
    })
}

/// The input: slots in [−1, 1] at level 0, encrypted under `sk` with a fixed seed.
fn input(ctx: &Arc<Context>, sk: &SecretKey) -> Ciphertext {
    let z: Vec<Complex64> = (0..ctx.params().slots())
        .map(|i| Complex64::new((i as f64 * 0.37).sin() * 0.9, (i as f64 * 0.11).cos() * 0.5))
        .collect();
    let pt = Encoder::new(ctx).encode(&z, 0, ctx.params().scale()).unwrap();
    Encryptor::with_seed(ctx, [7; 32]).encrypt_sk(sk, &pt).unwrap()
}

/// `ex` with its keys made from the client's secret key of [`SEED`]: the executor, the
/// generator and that key.
fn prepared<'s>(
    mut ex: Executor<'s>,
    ctx: &Arc<Context>,
) -> (Executor<'s>, KeyGenerator, SecretKey) {
    let mut kg = KeyGenerator::with_seed(ctx, SEED);
    let sk = kg.secret_key();
    ex.prepare_keys(Some(&mut kg), Some(&sk), KeySetId::from_seed(&SEED)).unwrap();
    (ex, kg, sk)
}

fn costs() -> OpCosts {
    OpCosts { log_n: 12, q_len: 4, p_len: 1, top_ns: [("bootstrap_key".to_owned(), 1e3)].into() }
}

fn real<'s>(
    program: &'s Program,
    st: &'s TieredStore,
    ctx: &Arc<Context>,
    bs: &Arc<Bootstrapper>,
) -> Executor<'s> {
    let keyset = KeySetId::from_seed(&SEED);
    let ex = Executor::real(program, 1, keyset, st, ctx).unwrap();
    ex.with_bootstrapper(Arc::clone(bs)).unwrap()
}

/// Both bootstrap ops run on the scratch the run took from the store's budget at its start
/// (nothing borrowed step by step beyond the run's reservation), at the smallest budget the
/// plan names, and the result is bit for bit the standalone bootstrapper's on heap buffers
/// (growable, so its EvalMod halves run side by side on their own second scratch).
#[test]
fn the_executor_bootstraps_in_store_scratch_bit_identical_to_heap_scratch() {
    let (ctx, bs, program) = two_bootstraps();
    let plan = Executor::plan(&program, 1, KeySetId::from_seed(&SEED), costs());
    let lengths = plan.bootstrap_scratch_lengths();
    let boot: u64 = lengths.iter().map(|b| b.next_multiple_of(4096)).sum();
    let top = ctx.params().max_level();
    let words: usize =
        Scratch::<Vec<u64>>::words_at(ctx.params(), top).iter().chain(&bs.spare_words()).sum();
    assert_eq!(lengths.iter().sum::<u64>(), words as u64 * 8, "every bootstrap buffer");
    assert_eq!(plan.scratch_charge(), boot, "bootstrap ops borrow nothing else");
    let (needed, _) = TieredStore::working_set_need(plan.working_sets());

    let dir = tempfile::tempdir().unwrap();
    let st = planned_store(dir.path(), needed, true, 32 << 20);
    let keyset = KeySetId::from_seed(&SEED);
    let (mut ex, mut kg, sk) = prepared(real(&program, &st, &ctx, &bs), &ctx);
    // Plan and real mode charge the same (the keys are expanded: no block held for them).
    assert_eq!(ex.working_sets(), plan.working_sets());
    let ct = input(&ctx, &sk);
    ex.run(Some(&ct)).unwrap();
    let got = ex.output("z").unwrap();
    ex.finish().unwrap();
    let s = st.stats();
    assert!(s.peak_dram <= needed, "{} > {needed}", s.peak_dram);
    assert!(s.scratch_peak >= boot, "the bootstrap's buffers were in the store: {s:?}");
    assert_eq!((s.scratch_beyond_reserve, s.scratch_in_use, s.scratch_reserved), (0, 0, 0));
    let bootstraps = ex
        .events()
        .iter()
        .filter(|e| matches!(e, TraceEvent::Op { name, .. } if name == "bootstrap"))
        .count();
    assert_eq!(bootstraps, 2);
    drop(ex);

    // The same keys, from the pool, on the heap scratch the executor used before.
    let (keys, report) = StoredBootstrapKeys::ensure(&st, &ctx, &mut kg, &sk, keyset, &bs).unwrap();
    assert_eq!(report.generated, 0);
    let mut heap = Scratch::new(&ctx);
    let once = bs.bootstrap(&ct, &keys, &mut heap).unwrap();
    let twice = bs.bootstrap(&once, &keys, &mut heap).unwrap();
    // The executor keeps level and scale (not the slot period) of a stored ciphertext.
    assert_eq!((got.level(), got.scale()), (twice.level(), twice.scale()));
    assert!(got.as_words() == twice.as_words(), "the store-scratch bootstrap differs");
}

/// A budget one page below the smallest the plan names for a bootstrapping program (its
/// bootstrap buffers included) is refused with `BudgetTooSmall` naming that budget before
/// anything is put or run; the run at the named budget then completes within it.
#[test]
fn a_budget_one_page_below_the_bootstrapping_minimum_is_refused_before_any_op() {
    let (ctx, bs, program) = two_bootstraps();
    let keyset = KeySetId::from_seed(&SEED);
    let plan = Executor::plan(&program, 1, keyset, costs());
    let (needed, _) = TieredStore::working_set_need(plan.working_sets());
    // Every step holds the bootstrap's buffers beside its own.
    let held = plan.bootstrap_scratch_lengths();
    let boot: u64 = held.iter().map(|b| b.next_multiple_of(4096)).sum();
    assert!(boot > 0 && plan.working_sets().iter().all(|s| s.starts_with(&held)));
    let (without, _) = TieredStore::working_set_need(
        plan.working_sets().into_iter().map(|s| s[held.len()..].to_vec()),
    );
    assert_eq!(without + boot, needed);
    let dir = tempfile::tempdir().unwrap();
    let below = needed - 4096;
    let mut kg = KeyGenerator::with_seed(&ctx, SEED);
    let sk = kg.secret_key();
    let ct = input(&ctx, &sk);
    {
        let st = planned_store(dir.path(), below, true, 32 << 20);
        let mut ex = real(&program, &st, &ctx, &bs);
        ex.prepare_keys(Some(&mut kg), Some(&sk), keyset).unwrap();
        let (objects, events) = (st.stats().objects, ex.events().len());
        let err = ex.run(Some(&ct)).unwrap_err();
        match err.store() {
            Some(hetier_tiering::Error::BudgetTooSmall { budget, needed: n, .. }) => {
                assert_eq!((*budget, *n), (below, needed));
            }
            other => panic!("expected BudgetTooSmall, got {other:?} ({err})"),
        }
        // Nothing was put, run or recorded, and no scratch was taken.
        let s = st.stats();
        assert_eq!((s.objects, ex.events().len()), (objects, events));
        assert_eq!((s.scratch_peak, s.scratch_in_use), (0, 0));
    }
    let st = planned_store(dir.path(), needed, false, 32 << 20);
    let mut ex = real(&program, &st, &ctx, &bs);
    let report = ex.prepare_keys(Some(&mut kg), Some(&sk), keyset).unwrap();
    assert_eq!(report.generated, 0, "the keys come from the pool");
    ex.run(Some(&ct)).unwrap();
    assert!(st.stats().peak_dram <= needed);
}

/// Seed-compressed bootstrap keys keep an expansion block in the budget while they are loaded:
/// the real executor's working sets count it at every step, beside the bootstrap's buffers.
#[test]
fn seeded_bootstrap_keys_add_their_held_expansion_block_to_every_step() {
    let (ctx, bs, program) = two_bootstraps();
    let keyset = KeySetId::from_seed(&SEED);
    let plan = Executor::plan(&program, 1, keyset, costs());
    let dir = tempfile::tempdir().unwrap();
    let st = planned_store(dir.path(), 1 << 30, true, 32 << 20);
    let (mut ex, _, sk) =
        prepared(real(&program, &st, &ctx, &bs).put_keys_as(KeyForm::Seeded), &ctx);
    let block = crate::ckks::switch_key_expanded_words(&ctx) as u64 * 8;
    let mut want = plan.bootstrap_scratch_lengths();
    want.push(block);
    assert_eq!(ex.run_buffers(), want);
    for (real, planned) in ex.working_sets().iter().zip(plan.working_sets()) {
        let held = want.len() - 1;
        assert_eq!(real[..held], planned[..held]);
        assert_eq!(real[held], block);
        assert_eq!(real[held + 1..], planned[held..]);
    }
    ex.run(Some(&input(&ctx, &sk))).unwrap();
    assert_eq!(st.stats().scratch_beyond_reserve, 0);
}

/// In a run that bootstraps, the other ops' key switches use the bootstrap's key-switch
/// buffers, which the run holds anyway: the plan charges rotations nothing beyond the
/// bootstrap's buffers, and the real run at the smallest budget the plan names rotates,
/// bootstraps and rotates again without borrowing past its reservation, agreeing with the
/// rotated plaintext.
#[test]
fn the_other_ops_of_a_bootstrapping_run_key_switch_in_the_bootstraps_buffers() {
    let (ctx, bs, program) = bootstrapping_program(|b, x| {
        let r = b.rotate(x, 1).unwrap();
        let y = b.bootstrap(r).unwrap();
        b.rotate(y, 2).unwrap()
    });
    let keyset = KeySetId::from_seed(&SEED);
    let plan = Executor::plan(&program, 1, keyset, costs());
    let boot: u64 = plan.bootstrap_scratch_lengths().iter().map(|b| b.next_multiple_of(4096)).sum();
    assert_eq!(plan.scratch_charge(), boot, "rotations borrow no buffers of their own");
    let (needed, _) = TieredStore::working_set_need(plan.working_sets());

    let dir = tempfile::tempdir().unwrap();
    let st = planned_store(dir.path(), needed, true, 32 << 20);
    let (mut ex, _, sk) = prepared(real(&program, &st, &ctx, &bs), &ctx);
    let ct = input(&ctx, &sk);
    ex.run(Some(&ct)).unwrap();
    let got = ex.output("z").unwrap();
    ex.finish().unwrap();
    let s = st.stats();
    assert!(s.peak_dram <= needed, "{} > {needed}", s.peak_dram);
    assert_eq!(s.scratch_beyond_reserve, 0, "{s:?}");

    let enc = Encoder::new(&ctx);
    let dec = crate::ckks::Decryptor::new(&ctx, &sk).unwrap();
    let want = enc.decode(&dec.decrypt(&ct).unwrap()).unwrap();
    let got = enc.decode(&dec.decrypt(&got).unwrap()).unwrap();
    let slots = want.len();
    let err = (0..slots).map(|i| (got[i] - want[(i + 3) % slots]).abs()).fold(0.0, f64::max);
    assert!(err < 1e-4, "max error {err:e}");
}

/// On two threads, with room in the budget for a second set of bootstrap buffers beside the
/// plan's largest working set, each bootstrap's EvalMod halves run side by side on a partner
/// taken from the budget (released between EvalMods), and the result is bit for bit the
/// one-thread run's. One page less room, or one thread, and the halves run one after the
/// other; every run stays within its budget.
#[test]
fn eval_mod_halves_run_side_by_side_when_the_budget_holds_a_partner() {
    let (ctx, bs, program) = two_bootstraps();
    let plan = Executor::plan(&program, 1, KeySetId::from_seed(&SEED), costs());
    let (needed, _) = TieredStore::working_set_need(plan.working_sets());
    let top = ctx.params().max_level();
    let words = Scratch::<Vec<u64>>::words_at(ctx.params(), top);
    let spares = bs.partner_spare_words();
    assert!(!spares.is_empty(), "full slots: two EvalMod halves");
    let partner: u64 =
        words.iter().chain(&spares).map(|&w| (w as u64 * 8).next_multiple_of(4096)).sum();
    let run = |budget: u64, threads: usize| {
        let dir = tempfile::tempdir().unwrap();
        let st = planned_store(dir.path(), budget, true, 32 << 20);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let (side_by_side, out) = pool.install(|| {
            let (mut ex, _, sk) = prepared(real(&program, &st, &ctx, &bs), &ctx);
            let report = ex.run(Some(&input(&ctx, &sk))).unwrap();
            let out = ex.output("z").unwrap();
            ex.finish().unwrap();
            (report.eval_mods_side_by_side, out)
        });
        assert!(st.stats().peak_dram <= budget, "{threads} threads over the budget");
        (side_by_side, out)
    };
    let (side_by_side, wide) = run(needed + partner, 2);
    assert_eq!(side_by_side, 2, "both bootstraps ran their halves side by side");
    let (side_by_side, one) = run(needed + partner, 1);
    assert_eq!(side_by_side, 0, "one thread");
    assert!(wide.as_words() == one.as_words(), "side by side differs from one after the other");
    let (side_by_side, tight) = run(needed + partner - 4096, 2);
    assert_eq!(side_by_side, 0, "no room for the partner");
    assert!(tight.as_words() == one.as_words());
}
