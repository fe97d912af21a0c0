//! Training tests at small N (insecure parameters, opt-in): the compiled program's f64 twin
//! equals the reference, the encrypted weights and losses agree with it within 1e-3, and bad
//! input is a typed error.

use std::path::PathBuf;

use super::*;
use crate::ckks::Params;
use crate::nn::PlainInterpreter;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data")
}

/// The first `n` samples of a named data set, normalised on themselves.
fn prepared(name: &str, n: usize, linreg: bool) -> Dataset {
    let d = Dataset::named(name, &data_dir()).unwrap().head(n);
    Normaliser::fit(&d, linreg).unwrap().apply(&d).unwrap()
}

fn small_params(cfg: &TrainConfig) -> Params {
    deep_params(12, Some(cfg.levels_needed()), true).unwrap()
}

/// The compiled program run on f64 slots (no cryptography) against the textbook reference:
/// checks packing, rotations, folding of the constants and the Nesterov rewrite.
fn twin_matches_reference(cfg: TrainConfig, data: &Dataset) {
    let params = small_params(&cfg);
    let prog = compile(&params, &cfg, data.len(), data.features() + 1).unwrap();
    let mut twin = PlainInterpreter::new(&prog.program);
    for (name, v) in pack_inputs(&prog, data).unwrap() {
        twin.set_input(&name, &v).unwrap();
    }
    twin.run().unwrap();
    let reference = train_plain(&cfg, data).unwrap();
    let w = &twin.output(TrainProgram::WEIGHTS).unwrap()[..prog.packing.width];
    assert!(max_abs_diff(w, reference.weights()) < 1e-9, "{w:?} vs {:?}", reference.weights());
    for t in 0..=cfg.iters {
        let cts: Vec<Vec<f64>> = (0..prog.packing.cts)
            .map(|c| twin.output(&TrainProgram::margins_name(t, c)).unwrap().to_vec())
            .collect();
        let m = prog.packing.first_of_rows(&cts).unwrap();
        assert!(max_abs_diff(&m, &reference.steps[t].margins) < 1e-9, "iteration {t}");
    }
}

#[test]
fn compiled_program_is_the_reference_on_f64() {
    let lin = prepared("diabetes", 100, true);
    let log = prepared("breast-cancer", 100, false);
    for opt in [Optimizer::Gd, Optimizer::Nesterov] {
        twin_matches_reference(
            TrainConfig { task: Task::LinReg, optimizer: opt, lr: 1.0, iters: 6 },
            &lin,
        );
        for s in [SigmoidApprox::Taylor5, SigmoidApprox::least_squares(3, 8.0).unwrap()] {
            let cfg = TrainConfig { task: Task::LogReg(s), optimizer: opt, lr: 1.0, iters: 4 };
            twin_matches_reference(cfg, &log);
        }
    }
}

/// Encrypted training against the reference: final weights and every iteration's loss (and
/// accuracy) within 1e-3.
fn encrypted_matches_reference(cfg: TrainConfig, data: &Dataset) {
    let params = small_params(&cfg);
    let trainer =
        EncryptedTrainer::new(&params, &cfg, data.len(), data.features(), [7; 32]).unwrap();
    let run = trainer.run(data).unwrap();
    let reference = train_plain(&cfg, data).unwrap();
    let err = max_abs_diff(&run.weights, reference.weights());
    let loss_err = run
        .steps
        .iter()
        .zip(&reference.steps)
        .map(|(e, p)| (e.loss - p.loss).abs())
        .fold(0.0, f64::max);
    let umax = reference.steps.iter().flat_map(|s| &s.margins).fold(0.0f64, |a, m| a.max(m.abs()));
    eprintln!(
        "{}: weights within {err:.2e}, losses within {loss_err:.2e}, max |margin| {umax:.2}",
        cfg.task.name()
    );
    assert!(err < 1e-3, "weights differ by {err}: {:?} vs {:?}", run.weights, reference.weights());
    // The weights moved: a run that left them at zero would agree trivially.
    assert!(reference.weights().iter().any(|w| w.abs() > 0.05), "{:?}", reference.weights());
    assert_eq!(run.steps.len(), cfg.iters + 1);
    for (t, (e, p)) in run.steps.iter().zip(&reference.steps).enumerate() {
        assert!((e.loss - p.loss).abs() < 1e-3, "iteration {t}: loss {} vs {}", e.loss, p.loss);
        if let (Some(a), Some(b)) = (e.accuracy, p.accuracy) {
            assert!((a - b).abs() < 1e-3, "iteration {t}: accuracy {a} vs {b}");
        }
    }
    assert!(reference.steps[cfg.iters].loss < reference.steps[0].loss);
}

#[test]
fn encrypted_linreg_matches_plaintext() {
    let data = prepared("diabetes", 96, true);
    let cfg =
        TrainConfig { task: Task::LinReg, optimizer: Optimizer::Nesterov, lr: 0.5, iters: 10 };
    encrypted_matches_reference(cfg, &data);
}

#[test]
fn encrypted_logreg_matches_plaintext() {
    let data = prepared("breast-cancer", 64, false);
    let cfg = TrainConfig {
        task: Task::LogReg(SigmoidApprox::least_squares(3, 8.0).unwrap()),
        optimizer: Optimizer::Nesterov,
        lr: 1.0,
        iters: 10,
    };
    encrypted_matches_reference(cfg, &data);
}

#[test]
fn bad_input_is_a_typed_error() {
    let data = prepared("diabetes", 32, true);
    let cfg = TrainConfig { task: Task::LinReg, optimizer: Optimizer::Gd, lr: 1.0, iters: 3 };
    let params = small_params(&cfg);
    // More iterations than the chain has levels for.
    let deep = TrainConfig { iters: 20, ..cfg };
    match compile(&params, &deep, 32, data.features() + 1) {
        Err(crate::Error::TrainingTooDeep {
            iters: 20,
            per_iter: 2,
            needed: 41,
            available: 7,
            max_iters: 3,
            ..
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    // Data with another feature count than the program was compiled for.
    let prog = compile(&params, &cfg, 32, data.features() + 2).unwrap();
    assert!(matches!(
        pack_inputs(&prog, &data),
        Err(crate::Error::FeatureCount { expected: 11, found: 10, .. })
    ));
    // NaN in the data.
    let mut x = data.x.clone();
    x[3][2] = f64::NAN;
    assert!(matches!(
        Dataset::new("nan", x, data.y.clone()),
        Err(crate::Error::NonFiniteData { row: 3, col: 2, .. })
    ));
    let bad_lr = TrainConfig { lr: -1.0, ..cfg };
    assert!(matches!(bad_lr.check(40), Err(crate::Error::InvalidParameter { .. })));
}
