//! `hetier.Server`: runs a model over the tiered store — evaluation keys and encoded weights
//! are durable pool objects (reused by later processes), ciphertexts are scratch. It holds no
//! secret: keys arrive as bytes from a client.

use std::sync::Arc;
use std::time::Instant;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use hetier_allocator::{Backend, Pool, PoolOptions};
use hetier_he::ckks::{Ciphertext, Context};
use hetier_he::exec::Error;
use hetier_he::exec::{weights_tag, EvalKeyBundle, Executor, KeySetId};
use hetier_tiering::calibrate::{calibrate, CalibrationOptions};
use hetier_tiering::{PolicyConfig, TieredStore};

use crate::errors::{exec, he, raise, store, PyRes};
use crate::model::{ModelState, PyModel};

/// Parses a byte size: an integer, or a number with B, KiB, MiB, GiB, KB, MB or GB.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.trim().parse().ok()?;
    let mul = match unit.trim() {
        "" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    (v.is_finite() && v > 0.0).then_some((v * mul) as u64)
}

#[derive(Default)]
struct Report {
    seconds: f64,
    compute_seconds: f64,
    steps: usize,
    layers: Vec<(String, f64)>,
    bytes_pm_to_dram: u64,
    bytes_dram_to_pm: u64,
    store_peak_dram: u64,
    peak_rss: Option<u64>,
}

fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// The server side of a model over one pool.
#[pyclass(name = "Server", module = "hetier")]
pub struct PyServer {
    state: Arc<ModelState>,
    ctx: Arc<Context>,
    store: TieredStore,
    keyset: Option<KeySetId>,
    last: Option<Report>,
    pool: String,
    budget: u64,
    policy: PolicyConfig,
    weights_encoded: usize,
}

impl PyServer {
    fn tag(&self) -> u64 {
        weights_tag(self.state.model.weights_hash(), self.state.params.id())
    }

    fn missing_keys(
        keyset: KeySetId,
    ) -> impl FnMut(u64) -> hetier_he::exec::Result<hetier_he::ckks::KeySwitchKey> {
        move |g| {
            Err(Error::KeyManifest {
                reason: format!(
                    "the pool holds no evaluation key for Galois element {g} of key set {:#x}: call server.load_keys(client.evaluation_keys()) first",
                    keyset.0
                ),
            })
        }
    }
}

#[pymethods]
impl PyServer {
    /// Opens (or creates) the pool directory `pool` and a tiered store over it with a DRAM
    /// budget (`"256MiB"`, `"1GiB"` or bytes) and a policy (`lru`, `alpha`, `planned`);
    /// encodes the model's weights into the pool unless an earlier process did. A second
    /// server on the same pool is refused (the pool is locked).
    #[new]
    #[pyo3(signature = (model, pool, dram_budget=None, policy="planned", mmap=false))]
    fn new(
        py: Python<'_>,
        model: &PyModel,
        pool: std::path::PathBuf,
        dram_budget: Option<PyObject>,
        policy: &str,
        mmap: bool,
    ) -> PyRes<Self> {
        let budget = if let Some(n) = dram_budget.as_ref().and_then(|b| b.extract::<u64>(py).ok()) {
            n
        } else if let Some(dram_budget) = dram_budget {
            let s: String = dram_budget.extract(py).map_err(|_| {
                raise("ConfigError", "dram_budget must be a byte count or a string like \"1GiB\"")
            })?;
            parse_bytes(&s).ok_or_else(|| {
                raise("ConfigError", format!("dram_budget {s:?} is not a size like \"256MiB\""))
            })?
        } else {
            256 << 20
        };
        let policy = PolicyConfig::parse(policy).ok_or_else(|| {
            raise("ConfigError", format!("unknown policy {policy:?} (lru, alpha, planned)"))
        })?;
        let state = Arc::clone(&model.state);
        let pool_s = pool.display().to_string();
        let pol = policy.clone();
        let (ctx, store, encoded) = py.allow_threads(move || -> PyRes<_> {
            let backend = if mmap { Backend::Mmap } else { Backend::Direct };
            let opts = PoolOptions::default().backend(backend).segment_size(64 << 20);
            let exists = pool.read_dir().map(|mut d| d.next().is_some()).unwrap_or(false);
            let p = if exists {
                Pool::open(&pool, opts).map(|(p, _)| p)
            } else {
                Pool::create(&pool, opts)
            }
            .map_err(|e| raise("StoreError", format!("pool {}: {e}", pool.display())))?;
            let mut b = TieredStore::builder().dram_budget(budget).pool(p).policy(pol.clone());
            if matches!(pol, PolicyConfig::Alpha { .. }) {
                let parent = pool.parent().map_or_else(std::env::temp_dir, |p| p.to_path_buf());
                let mut o = CalibrationOptions::new(
                    &parent,
                    !mmap,
                    format!("file in {}", parent.display()),
                );
                (o.dram_bytes, o.object_bytes) = (32 << 20, 16 << 20);
                b = b.cost_model(calibrate(&o).map_err(store)?);
            }
            let store = b.build().map_err(store)?;
            let ctx = Context::new(&state.params).map_err(he)?;
            let tag = weights_tag(state.model.weights_hash(), state.params.id());
            let encoded = {
                let mut ex =
                    Executor::real(&state.compiled.program, tag, KeySetId(0), &store, &ctx)
                        .map_err(exec)?;
                ex.prepare_weights().map_err(exec)?
            };
            Ok((ctx, store, encoded))
        })?;
        Ok(Self {
            state: Arc::clone(&model.state),
            ctx,
            store,
            keyset: None,
            last: None,
            pool: pool_s,
            budget,
            policy,
            weights_encoded: encoded,
        })
    }

    /// Puts a client's evaluation keys (bytes from `client.evaluation_keys()`) in the pool,
    /// durably, and uses them for the following requests. Keys already there are reused.
    /// Returns a dict: key_set_id, keys_put, keys_reused, bytes_put.
    fn load_keys<'py>(&mut self, py: Python<'py>, keys: &[u8]) -> PyRes<Bound<'py, PyDict>> {
        let tag = self.tag();
        let (ctx, store, program) = (&self.ctx, &self.store, &self.state.compiled.program);
        let (keyset, rep) = py
            .allow_threads(|| -> hetier_he::exec::Result<_> {
                let mut bundle = EvalKeyBundle::from_bytes(ctx, keys)?;
                let keyset = bundle.keyset;
                let mut ex = Executor::real(program, tag, keyset, store, ctx)?;
                let rep = ex.prepare_keys_from(keyset, |g| bundle.take(g))?;
                Ok((keyset, rep))
            })
            .map_err(exec)?;
        self.keyset = Some(keyset);
        let d = PyDict::new(py);
        d.set_item("key_set_id", keyset.0)?;
        d.set_item("keys_put", rep.generated)?;
        d.set_item("keys_reused", rep.reused)?;
        d.set_item("bytes_put", rep.bytes_generated)?;
        Ok(d)
    }

    /// Uses key set `key_set_id` already in the pool (put by an earlier process); fails with
    /// `KeySetError` when the pool lacks any of its keys. Returns how many keys it found.
    fn use_keys(&mut self, py: Python<'_>, key_set_id: u64) -> PyRes<usize> {
        let keyset = KeySetId(key_set_id);
        let tag = self.tag();
        let (ctx, store, program) = (&self.ctx, &self.store, &self.state.compiled.program);
        let rep = py
            .allow_threads(|| {
                let mut ex = Executor::real(program, tag, keyset, store, ctx)?;
                ex.prepare_keys_from(keyset, Self::missing_keys(keyset))
            })
            .map_err(exec)?;
        self.keyset = Some(keyset);
        Ok(rep.reused)
    }

    /// Runs the model on one encrypted sample (bytes from `client.encrypt`) and returns the
    /// encrypted output as bytes. The GIL is released while it runs.
    fn infer<'py>(&mut self, py: Python<'py>, ct: &[u8]) -> PyRes<Bound<'py, PyBytes>> {
        let keyset = self.keyset.ok_or_else(|| {
            raise("KeySetError", "no evaluation keys: call server.load_keys(client.evaluation_keys()) or server.use_keys(id) first")
        })?;
        let tag = self.tag();
        let (ctx, store, state) = (&self.ctx, &self.store, &self.state);
        let (bytes, report) = py
            .allow_threads(|| -> hetier_he::exec::Result<(Vec<u8>, Report)> {
                let t0 = Instant::now();
                let before = store.stats();
                let ct = Ciphertext::from_bytes(ctx, ct)?;
                let p = &state.params;
                if ct.level() != p.max_level() || (ct.scale() - p.scale()).abs() > 1e-6 * p.scale() {
                    return Err(Error::Core(hetier_he::Error::Corrupt {
                        reason: format!(
                            "input ciphertext at level {} and scale 2^{:.2}; the model takes level {} and scale 2^{:.2} (encrypt with client.encrypt)",
                            ct.level(),
                            ct.scale().log2(),
                            p.max_level(),
                            p.scale().log2()
                        ),
                    }));
                }
                let program = &state.compiled.program;
                let mut ex = Executor::real(program, tag, keyset, store, ctx)?;
                ex.prepare_keys_from(keyset, Self::missing_keys(keyset))?;
                ex.prepare_weights()?;
                let rep = ex.run(Some(&ct))?;
                let out = ex.output(&state.compiled.output_name)?;
                ex.finish()?;
                let after = store.stats();
                let layers = program
                    .layers()
                    .iter()
                    .zip(ex.layer_compute_ns())
                    .filter(|(n, &t)| t > 0 || !n.starts_with('('))
                    .map(|(n, &t)| (n.clone(), t as f64 / 1e9))
                    .collect();
                let report = Report {
                    seconds: t0.elapsed().as_secs_f64(),
                    compute_seconds: rep.compute_ns as f64 / 1e9,
                    steps: rep.steps,
                    layers,
                    bytes_pm_to_dram: after.bytes_pm_to_dram - before.bytes_pm_to_dram,
                    bytes_dram_to_pm: after.bytes_dram_to_pm - before.bytes_dram_to_pm,
                    store_peak_dram: after.peak_dram,
                    peak_rss: peak_rss(),
                };
                Ok((out.to_bytes(ctx), report))
            })
            .map_err(exec)?;
        self.last = Some(report);
        Ok(PyBytes::new(py, &bytes))
    }

    /// The report of the last `infer`: seconds, compute seconds, steps, per-layer compute
    /// seconds, bytes moved between the tiers, the store's peak DRAM, the budget and the
    /// process's peak RSS. `None` before the first request.
    fn last_report<'py>(&self, py: Python<'py>) -> PyRes<Option<Bound<'py, PyDict>>> {
        let Some(r) = &self.last else { return Ok(None) };
        let d = PyDict::new(py);
        d.set_item("seconds", r.seconds)?;
        d.set_item("compute_seconds", r.compute_seconds)?;
        d.set_item("steps", r.steps)?;
        let layers = PyList::empty(py);
        for (n, s) in &r.layers {
            let l = PyDict::new(py);
            l.set_item("layer", n)?;
            l.set_item("compute_seconds", s)?;
            layers.append(l)?;
        }
        d.set_item("layers", layers)?;
        d.set_item("bytes_pm_to_dram", r.bytes_pm_to_dram)?;
        d.set_item("bytes_dram_to_pm", r.bytes_dram_to_pm)?;
        d.set_item("store_peak_dram", r.store_peak_dram)?;
        d.set_item("dram_budget", self.budget)?;
        d.set_item("peak_rss", r.peak_rss)?;
        d.set_item("policy", self.policy.name())?;
        d.set_item("pool", self.store.pm_description().to_string())?;
        d.set_item("weights_encoded_at_start", self.weights_encoded)?;
        Ok(Some(d))
    }

    fn __repr__(&self) -> String {
        format!(
            "hetier.Server(model {:?}, pool {}, budget {} bytes, policy {})",
            self.state.model.name(),
            self.pool,
            self.budget,
            self.policy.name()
        )
    }
}
