//! Encrypted training over the tiered store: the compiled training program
//! ([`crate::train::TrainProgram`]) runs on the store-backed [`Executor`] like any model, so
//! every ciphertext of the run — the encrypted samples, the weights of every iteration, every
//! intermediate — is a scratch store object pinned only while a step uses it, and the
//! evaluation keys are durable objects (reused by a later run with the same secret-key seed).

use std::time::Instant;

use hetier_tiering::{TieredStore, TraceEvent};

use super::steps::steps;
use super::{Executor, KeyReport, KeySetId, Result, RunReport};
use crate::train::{Dataset, EncryptedRun, EncryptedTrainer};

/// What a training run over the store did.
#[derive(Debug, Clone)]
pub struct StoreTraining {
    /// The decrypted report (per-iteration seconds are the steps' compute time; see
    /// `wall_seconds` for the run as a whole).
    pub run: EncryptedRun,
    /// Keys generated or reused from the pool.
    pub keys: KeyReport,
    /// Steps and compute time of the program.
    pub report: RunReport,
    /// Wall time of the program's run over the store (pins, waits and compute).
    pub wall_seconds: f64,
}

/// Trains on `data` (normalised) with `trainer`'s program over `store`.
pub fn train_in_store(
    trainer: &EncryptedTrainer,
    store: &TieredStore,
    data: &Dataset,
) -> Result<StoreTraining> {
    let prog = trainer.program();
    let keyset = KeySetId::from_seed(trainer.seed());
    let mut ex = Executor::real(&prog.program, 0, keyset, store, trainer.context())?;
    let t0 = Instant::now();
    let (mut kg, sk) = trainer.key_generator();
    let keys = ex.prepare_keys(Some(&mut kg), Some(&sk), keyset)?;
    let keygen_seconds = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let inputs = trainer.encrypt(data)?;
    let encrypt_seconds = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let report = ex.run_named(&inputs)?;
    let wall_seconds = t0.elapsed().as_secs_f64();
    let seconds = phase_seconds(&ex, &prog.phases);
    let run = trainer.decrypt_run(|name| ex.output(name), &seconds);
    ex.finish()?;
    let mut run = run?;
    run.keygen_seconds = keygen_seconds;
    run.encrypt_seconds = encrypt_seconds;
    Ok(StoreTraining { run, keys, report, wall_seconds })
}

/// Compute seconds of each phase (a range of program ops), from the op events the executor
/// recorded: one event per step, in program order.
fn phase_seconds(ex: &Executor<'_>, phases: &[std::ops::Range<usize>]) -> Vec<f64> {
    let mut ns = ex.events().iter().filter_map(|e| match e {
        TraceEvent::Op { compute_ns, .. } => Some(*compute_ns),
        _ => None,
    });
    let ops = ex.program().ops();
    phases
        .iter()
        .map(|r| {
            let steps_in: usize = ops[r.clone()].iter().map(|o| steps(&o.op).len()).sum();
            ns.by_ref().take(steps_in).sum::<u64>() as f64 * 1e-9
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use hetier_tiering::{Pool, PoolOptions};

    use super::*;
    use crate::train::{
        deep_params, max_abs_diff, train_plain, Normaliser, Optimizer, Task, TrainConfig,
    };

    #[test]
    fn training_over_a_small_store_matches_plaintext() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data");
        let d = Dataset::named("diabetes", &dir).unwrap().head(48);
        let data = Normaliser::fit(&d, true).unwrap().apply(&d).unwrap();
        let cfg =
            TrainConfig { task: Task::LinReg, optimizer: Optimizer::Nesterov, lr: 0.5, iters: 4 };
        let params = deep_params(12, Some(cfg.levels_needed()), true).unwrap();
        let trainer =
            EncryptedTrainer::new(&params, &cfg, data.len(), data.features(), [5; 32]).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let pool = Pool::create(tmp.path().join("pool"), PoolOptions::default()).unwrap();
        // A budget far below the keys and ciphertexts: the run must page through the pool.
        let store = TieredStore::builder().dram_budget(24 << 20).pool(pool).build().unwrap();
        let out = train_in_store(&trainer, &store, &data).unwrap();
        let reference = train_plain(&cfg, &data).unwrap();
        let err = max_abs_diff(&out.run.weights, reference.weights());
        assert!(err < 1e-3, "{err}");
        for (e, p) in out.run.steps.iter().zip(&reference.steps) {
            assert!((e.loss - p.loss).abs() < 1e-3, "{} vs {}", e.loss, p.loss);
        }
        let st = store.stats();
        assert!(st.bytes_dram_to_pm > 0 && st.peak_dram <= 24 << 20, "{st:?}");
        assert_eq!(out.keys.generated, trainer.program().program.keys().len());
        assert!(out.run.steps[..cfg.iters].iter().all(|s| s.seconds > 0.0));
    }
}
