//! `hetier.Server`: runs a model over the tiered store on the serving API
//! (`hetier_he::exec::serve::Server`) — evaluation keys and encoded weights are durable pool
//! objects (reused by later processes), each request's ciphertexts are scratch objects of its
//! own. Requests from several Python threads run at once (the GIL is released while they run),
//! admitted while their pinned sets fit the budget. It holds no secret: keys arrive as bytes
//! from a `hetier.Client`.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use hetier_allocator::{Backend, Pool, PoolOptions};
use hetier_he::ckks::{Ciphertext, Context};
use hetier_he::exec::{weights_tag, EvalKeyBundle, Executor, KeySetId, Server, ServerOptions};
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

#[derive(Default, Clone)]
struct Report {
    seconds: f64,
    queued_seconds: f64,
    compute_seconds: f64,
    steps: usize,
    healed: usize,
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

/// The server side of a model over one pool. `frozen`: every method takes `&self`, so calls
/// from several Python threads share it; the serving `Server` is built once a key set is known.
#[pyclass(name = "Server", module = "hetier", frozen)]
pub struct PyServer {
    state: Arc<ModelState>,
    ctx: Arc<Context>,
    store: Arc<TieredStore>,
    /// Serves the key set of the last `load_keys` / `use_keys`; requests running on an earlier
    /// one finish on it.
    server: RwLock<Option<Arc<Server>>>,
    last: Mutex<Option<Report>>,
    pool: String,
    budget: u64,
    policy: PolicyConfig,
    weights_encoded: usize,
}

impl PyServer {
    fn serving(&self) -> PyRes<Arc<Server>> {
        let s = self.server.read().unwrap_or_else(PoisonError::into_inner);
        s.clone().ok_or_else(|| {
            raise(
                "KeySetError",
                "no evaluation keys: call server.load_keys(client.evaluation_keys()) or server.use_keys(id) first",
            )
        })
    }

    /// Builds the serving `Server` for `keyset` (keys from `bundle`, else from the pool).
    fn serve(
        &self,
        py: Python<'_>,
        keyset: KeySetId,
        bundle: Option<EvalKeyBundle>,
    ) -> PyRes<Arc<Server>> {
        let (state, store) = (&self.state, &self.store);
        let srv = py
            .allow_threads(|| {
                let compiled = state.compiled.clone();
                let opts = ServerOptions::default();
                Server::new(&state.model, compiled, Arc::clone(store), keyset, bundle, opts)
            })
            .map_err(exec)?;
        let srv = Arc::new(srv);
        *self.server.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&srv));
        Ok(srv)
    }
}

#[pymethods]
impl PyServer {
    /// Opens (or creates) the pool directory `pool` and a tiered store over it with a DRAM
    /// budget (`"256MiB"`, `"1GiB"` or bytes) and a policy (`lru`, `alpha`, `planned`);
    /// encodes the model's weights into the pool unless an earlier process did, and checks
    /// that one request fits the budget. A second server on the same pool is refused (the
    /// pool is locked).
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
            let store = Arc::new(b.build().map_err(store)?);
            let ctx = Context::new(&state.params).map_err(he)?;
            let tag = weights_tag(state.model.weights_hash(), state.params.id());
            let encoded = {
                let program = &state.compiled.program;
                let mut ex =
                    Executor::real(program, tag, KeySetId(0), &store, &ctx).map_err(exec)?;
                let encoded = ex.prepare_weights().map_err(exec)?;
                // A budget that cannot hold one request fails now, not at the first request.
                let sets = ex.working_sets();
                let check = store.check_working_sets(sets.iter().map(|s| s.iter().copied()));
                check.map_err(crate::errors::store)?;
                encoded
            };
            Ok((ctx, store, encoded))
        })?;
        Ok(Self {
            state: Arc::clone(&model.state),
            ctx,
            store,
            server: RwLock::new(None),
            last: Mutex::new(None),
            pool: pool_s,
            budget,
            policy,
            weights_encoded: encoded,
        })
    }

    /// Puts a client's evaluation keys (bytes from `client.evaluation_keys()`) in the pool,
    /// durably, and serves the following requests with them. Keys already there are reused.
    /// Returns a dict: key_set_id, keys_put, keys_reused, bytes_put.
    fn load_keys<'py>(&self, py: Python<'py>, keys: &[u8]) -> PyRes<Bound<'py, PyDict>> {
        let ctx = &self.ctx;
        let bundle = py.allow_threads(|| EvalKeyBundle::from_bytes(ctx, keys)).map_err(exec)?;
        let keyset = bundle.keyset;
        let rep = self.serve(py, keyset, Some(bundle))?.key_report();
        let d = PyDict::new(py);
        d.set_item("key_set_id", keyset.0)?;
        d.set_item("keys_put", rep.generated)?;
        d.set_item("keys_reused", rep.reused)?;
        d.set_item("bytes_put", rep.bytes_generated)?;
        Ok(d)
    }

    /// Serves key set `key_set_id` already in the pool (put by an earlier process); fails with
    /// `KeySetError` when the pool lacks any of its keys. Returns how many keys it found.
    fn use_keys(&self, py: Python<'_>, key_set_id: u64) -> PyRes<usize> {
        Ok(self.serve(py, KeySetId(key_set_id), None)?.key_report().reused)
    }

    /// Replaces the keys of the served key set that are damaged (or missing) in the pool with
    /// those in `keys` (bytes from `client.evaluation_keys()`), after a request failed with
    /// `KeyDamagedError`. Waits for running requests; returns how many keys it replaced.
    fn restore_keys(&self, py: Python<'_>, keys: &[u8]) -> PyRes<usize> {
        let srv = self.serving()?;
        let ctx = &self.ctx;
        py.allow_threads(|| srv.restore_keys(EvalKeyBundle::from_bytes(ctx, keys)?)).map_err(exec)
    }

    /// Runs the model on one encrypted sample (bytes from `client.encrypt`) and returns the
    /// encrypted output as bytes. The GIL is released while it runs, so requests from several
    /// threads run at once; one waits while the budget cannot hold its pinned set.
    fn infer<'py>(&self, py: Python<'py>, ct: &[u8]) -> PyRes<Bound<'py, PyBytes>> {
        let srv = self.serving()?;
        let (ctx, store, state) = (&self.ctx, &self.store, &self.state);
        let (bytes, report) = py
            .allow_threads(|| -> hetier_he::exec::Result<(Vec<u8>, Report)> {
                let t0 = Instant::now();
                let before = store.stats();
                let ct = Ciphertext::from_bytes(ctx, ct)?;
                let r = srv.infer(&ct)?;
                let after = store.stats();
                let layers = state
                    .compiled
                    .program
                    .layers()
                    .iter()
                    .zip(&r.layer_ns)
                    .filter(|(n, &t)| t > 0 || !n.starts_with('('))
                    .map(|(n, &t)| (n.clone(), t as f64 / 1e9))
                    .collect();
                let report = Report {
                    seconds: t0.elapsed().as_secs_f64(),
                    queued_seconds: r.queued.as_secs_f64(),
                    compute_seconds: r.report.compute_ns as f64 / 1e9,
                    steps: r.report.steps,
                    healed: r.report.healed,
                    layers,
                    bytes_pm_to_dram: after.bytes_pm_to_dram - before.bytes_pm_to_dram,
                    bytes_dram_to_pm: after.bytes_dram_to_pm - before.bytes_dram_to_pm,
                    store_peak_dram: after.peak_dram,
                    peak_rss: peak_rss(),
                };
                Ok((r.output.to_bytes(ctx), report))
            })
            .map_err(exec)?;
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(report);
        Ok(PyBytes::new(py, &bytes))
    }

    /// The report of the last `infer` to finish: seconds (queued_seconds of them waiting for
    /// room), compute seconds, steps, objects healed, per-layer compute seconds, bytes moved
    /// between the tiers while it ran (by every request running then), the store's peak DRAM,
    /// the budget and the process's peak RSS. `None` before the first request.
    fn last_report<'py>(&self, py: Python<'py>) -> PyRes<Option<Bound<'py, PyDict>>> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let Some(r) = last else { return Ok(None) };
        let d = PyDict::new(py);
        d.set_item("seconds", r.seconds)?;
        d.set_item("queued_seconds", r.queued_seconds)?;
        d.set_item("compute_seconds", r.compute_seconds)?;
        d.set_item("steps", r.steps)?;
        d.set_item("healed", r.healed)?;
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

    /// The serving counters since keys were loaded: served, failed, healed (weights
    /// re-encoded), keys_damaged, keys_restored, running_bytes and peak_running_bytes (pinned
    /// sets admitted at once), request_bytes (one request's), peak_waiting and admitted.
    fn stats<'py>(&self, py: Python<'py>) -> PyRes<Bound<'py, PyDict>> {
        let srv = self.serving()?;
        let s = srv.stats();
        let d = PyDict::new(py);
        d.set_item("served", s.served)?;
        d.set_item("failed", s.failed)?;
        d.set_item("healed", s.healed)?;
        d.set_item("keys_damaged", s.keys_damaged)?;
        d.set_item("keys_restored", s.keys_restored)?;
        d.set_item("running_bytes", s.admission.in_use)?;
        d.set_item("peak_running_bytes", s.admission.peak_in_use)?;
        d.set_item("request_bytes", srv.request_need())?;
        d.set_item("peak_waiting", s.admission.peak_waiting)?;
        d.set_item("admitted", s.admission.admitted)?;
        Ok(d)
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
