//! Full-size encrypted training at log N = 16 with the deepest 128-bit chain (L = 31), ten
//! Nesterov iterations on each vendored data set, weights and every iteration's loss within
//! 1e-3 of plaintext. Minutes each, so ignored in CI:
//! `cargo test --release -p hetier-he --test train_full -- --ignored --test-threads 1`.

use std::path::PathBuf;

use hetier_he::train::*;

fn full_run(name: &str, task: Task, lr: f64) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data");
    let all = Dataset::named(name, &dir).unwrap();
    let (train, _) = all.split(0.2, 0).unwrap();
    let norm = Normaliser::fit(&train, task == Task::LinReg).unwrap();
    let train = norm.apply(&train).unwrap();
    let cfg = TrainConfig { task, optimizer: Optimizer::Nesterov, lr, iters: 10 };
    let params = deep_params(16, None, false).unwrap();
    assert!(params.is_secure());
    let trainer =
        EncryptedTrainer::new(&params, &cfg, train.len(), train.features(), [11; 32]).unwrap();
    let run = trainer.run(&train).unwrap();
    let reference = train_plain(&cfg, &train).unwrap();
    let err = max_abs_diff(&run.weights, reference.weights());
    assert!(err < 1e-3, "{name}: weights differ by {err}");
    for (t, (e, p)) in run.steps.iter().zip(&reference.steps).enumerate() {
        assert!((e.loss - p.loss).abs() < 1e-3, "{name} iteration {t}: {} vs {}", e.loss, p.loss);
    }
    assert!(reference.steps[10].loss < reference.steps[0].loss);
}

#[test]
#[ignore = "long: log N = 16"]
fn diabetes_linreg_full() {
    full_run("diabetes", Task::LinReg, 0.5);
}

#[test]
#[ignore = "long: log N = 16"]
fn breast_cancer_logreg_full() {
    full_run("breast-cancer", Task::LogReg(SigmoidApprox::least_squares(3, 8.0).unwrap()), 1.0);
}

#[test]
#[ignore = "long: log N = 16"]
fn digits01_logreg_full() {
    full_run("digits01", Task::LogReg(SigmoidApprox::least_squares(3, 8.0).unwrap()), 1.0);
}
