//! `hetier.Model`: a loaded (ONNX or hetier-model) model with the parameters it runs under and
//! its compiled program, shared by clients and servers.

use std::collections::HashMap;
use std::sync::Arc;

use numpy::{PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use hetier_he::ckks::Params;
use hetier_he::exec::{weights_tag, Executor, KeySetId, OpCosts};
use hetier_he::model::onnx::{self, ActivationRange, ImportOptions};
use hetier_he::model::{Compiled, Model};
use hetier_tiering::calibrate::{calibrate, CalibrationOptions};
use hetier_tiering::sim::{predict, PredictOptions};
use hetier_tiering::{CostModel, PolicyConfig, TraceEvent};

use crate::errors::{exec, he, raise, store, PyRes};

/// Everything a model needs at run time; immutable once loaded.
pub struct ModelState {
    pub model: Model,
    pub params: Params,
    pub compiled: Compiled,
    pub insecure: bool,
    pub activations: Vec<ActivationRange>,
    pub source: String,
}

impl ModelState {
    /// Values of one sample as a flat f64 vector in network units, checking its shape.
    pub fn sample(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyRes<Vec<f64>> {
        let np = py.import("numpy")?;
        let arr = np.call_method1("ascontiguousarray", (x, "float64"))?;
        let arr = arr.downcast_into::<numpy::PyArrayDyn<f64>>()?;
        let shape: Vec<usize> = arr.shape().to_vec();
        let want = &self.model.desc().input.shape;
        let squeezed: Vec<usize> = match shape.split_first() {
            Some((1, rest)) if rest.len() == want.len() => rest.to_vec(),
            _ => shape.clone(),
        };
        let flat_ok = shape.len() == 1 && shape[0] == want.iter().product::<usize>();
        if &squeezed != want && !flat_ok {
            return Err(raise(
                "InputShapeError",
                format!("input of shape {shape:?} does not fit the model's input shape {want:?}"),
            ));
        }
        let v: Vec<f64> = arr.readonly().as_slice()?.to_vec();
        let input = &self.model.desc().input;
        let v = if input.dtype == "uint8" {
            v.iter().map(|&r| r * input.scale + input.offset).collect()
        } else {
            v
        };
        self.model.check_values(&v).map_err(he)?;
        Ok(v)
    }
}

/// A model ready to run encrypted: its layers, parameters and compiled program.
#[pyclass(name = "Model", module = "hetier", frozen)]
pub struct PyModel {
    pub state: Arc<ModelState>,
}

/// Loads an ONNX file (`.onnx`) or a hetier-model JSON description (with its safetensors).
#[pyfunction]
#[pyo3(signature = (path, *, act_range=None, act_degree=15, calibration=None, insecure_test_params=false, name=None))]
pub fn load(
    py: Python<'_>,
    path: std::path::PathBuf,
    act_range: Option<(f64, f64)>,
    act_degree: usize,
    calibration: Option<Bound<'_, PyAny>>,
    insecure_test_params: bool,
    name: Option<String>,
) -> PyRes<PyModel> {
    let calibration = match calibration {
        Some(c) => {
            let np = py.import("numpy")?;
            let a = np.call_method1("ascontiguousarray", (c, "float64"))?;
            let a = a.downcast_into::<numpy::PyArrayDyn<f64>>()?;
            let v = a.readonly().as_slice()?.to_vec();
            v
        }
        None => Vec::new(),
    };
    let opts =
        ImportOptions { name, act_range: act_range.map(|(a, b)| [a, b]), act_degree, calibration };
    let source = path.display().to_string();
    let state = py.allow_threads(move || -> hetier_he::Result<ModelState> {
        let imp = onnx::load_any(&path, &opts)?;
        let (params, compiled) = onnx::compile_smallest(&imp.model, insecure_test_params)?;
        Ok(ModelState {
            model: imp.model,
            params,
            compiled,
            insecure: insecure_test_params,
            activations: imp.activations,
            source,
        })
    });
    Ok(PyModel { state: Arc::new(state.map_err(he)?) })
}

/// One prediction: budget fraction, budget bytes, policy, seconds, stall seconds, PM reads.
type PlanRow = (f64, u64, &'static str, f64, f64, u64);

fn peak_live_bytes(events: &[TraceEvent]) -> u64 {
    let mut sizes: HashMap<u64, u64> = HashMap::new();
    let (mut live, mut peak) = (0u64, 0u64);
    for e in events {
        match e {
            TraceEvent::Put { id, len, .. } => {
                live += len;
                sizes.insert(id.0, *len);
                peak = peak.max(live);
            }
            TraceEvent::Remove { id } => live -= sizes.remove(&id.0).unwrap_or(0),
            _ => {}
        }
    }
    peak
}

#[pymethods]
impl PyModel {
    /// Model name.
    #[getter]
    fn name(&self) -> String {
        self.state.model.name().to_owned()
    }

    /// Multiplicative depth (levels consumed on the deepest path).
    #[getter]
    fn depth(&self) -> usize {
        self.state.model.depth()
    }

    /// Shape of one input sample (no batch axis).
    #[getter]
    fn input_shape(&self) -> Vec<usize> {
        self.state.model.desc().input.shape.clone()
    }

    /// Number of outputs.
    #[getter]
    fn output_size(&self) -> usize {
        self.state.model.desc().classes
    }

    /// The CKKS parameters the model runs under, as a dict.
    fn params<'py>(&self, py: Python<'py>) -> PyRes<Bound<'py, PyDict>> {
        let p = &self.state.params;
        let d = PyDict::new(py);
        d.set_item("log_n", p.log_n())?;
        d.set_item("levels", p.max_level())?;
        d.set_item("slots", p.slots())?;
        d.set_item("log_scale", p.log_scale())?;
        d.set_item("log_qp", p.log_qp())?;
        d.set_item("secure", p.is_secure())?;
        d.set_item("insecure_test_params", self.state.insecure)?;
        d.set_item("id", p.id())?;
        Ok(d)
    }

    /// The lowered layers: a list of dicts (name, kind, in_shape, out_shape, depth, and for
    /// approximated activations the function and range).
    fn layers<'py>(&self, py: Python<'py>) -> PyRes<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for l in self.state.model.layers() {
            let d = PyDict::new(py);
            d.set_item("name", &l.name)?;
            d.set_item("kind", l.kind.name())?;
            d.set_item("inputs", &l.inputs)?;
            d.set_item("in_shape", &l.in_shape)?;
            d.set_item("out_shape", &l.out_shape)?;
            d.set_item("depth", l.kind.depth())?;
            if let Some(a) = self.state.activations.iter().find(|a| a.layer == l.name) {
                d.set_item("function", &a.func)?;
                d.set_item("range", (a.range[0], a.range[1]))?;
            }
            out.append(d)?;
        }
        Ok(out)
    }

    /// The plaintext reference output (float64 forward pass of the lowered model).
    fn reference<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyRes<Bound<'py, PyArray1<f64>>> {
        let v = self.state.sample(py, x)?;
        let y = self.state.model.forward(&v).map_err(he)?;
        Ok(PyArray1::from_vec(py, y))
    }

    /// Writes `<dir>/<name>.json` and its float64 safetensors weights; returns the JSON path.
    fn save(&self, py: Python<'_>, dir: std::path::PathBuf) -> PyRes<String> {
        let state = Arc::clone(&self.state);
        let p = py.allow_threads(move || state.model.save(&dir)).map_err(he)?;
        Ok(p.display().to_string())
    }

    /// Predicted time of one encrypted inference per policy and DRAM budget (fractions of the
    /// peak live set), from the plan-mode trace and a cost model calibrated now in `pm_dir`
    /// (or loaded from `cost_model`). Returns a dict with the footprint and one row per pair.
    #[pyo3(signature = (budgets=vec![0.05, 0.1, 0.25, 0.5, 1.0], policies=vec!["lru".to_owned(), "alpha".to_owned(), "planned".to_owned()], pm_dir=None, cost_model=None))]
    fn plan<'py>(
        &self,
        py: Python<'py>,
        budgets: Vec<f64>,
        policies: Vec<String>,
        pm_dir: Option<std::path::PathBuf>,
        cost_model: Option<std::path::PathBuf>,
    ) -> PyRes<Bound<'py, PyDict>> {
        let pols = policies
            .iter()
            .map(|p| {
                PolicyConfig::parse(p).ok_or_else(|| {
                    raise("ConfigError", format!("unknown policy {p:?} (lru, alpha, planned)"))
                })
            })
            .collect::<PyRes<Vec<_>>>()?;
        if let Some(b) = budgets.iter().find(|b| !(b.is_finite() && **b > 0.0)) {
            return Err(raise("ConfigError", format!("budget fraction {b} is not positive")));
        }
        let state = Arc::clone(&self.state);
        let rows = py.allow_threads(move || -> PyRes<(u64, u64, Vec<PlanRow>)> {
            let program = &state.compiled.program;
            let costs = OpCosts::calibrate(&state.params).map_err(he)?;
            let tag = weights_tag(state.model.weights_hash(), state.params.id());
            let mut ex = Executor::plan(program, tag, KeySetId(0), costs);
            ex.prepare_keys(None, None, KeySetId(0)).map_err(exec)?;
            ex.prepare_weights().map_err(exec)?;
            let rep = ex.run(None).map_err(exec)?;
            ex.finish().map_err(exec)?;
            let trace = ex.trace();
            let peak = peak_live_bytes(ex.events());
            let cm: CostModel = match &cost_model {
                Some(p) => CostModel::load(p).map_err(store)?,
                None => {
                    let dir = pm_dir.clone().unwrap_or_else(std::env::temp_dir);
                    let mut o =
                        CalibrationOptions::new(&dir, true, format!("file in {}", dir.display()));
                    (o.dram_bytes, o.object_bytes) = (32 << 20, 16 << 20);
                    calibrate(&o).map_err(store)?
                }
            };
            let mut rows = Vec::new();
            for &f in &budgets {
                let budget = ((peak as f64) * f) as u64;
                for pol in &pols {
                    let opts = PredictOptions { migrator_threads: 2, reuse_durable: true };
                    let p = predict(&trace, &cm, pol, budget, &opts).map_err(store)?;
                    rows.push((
                        f,
                        budget,
                        pol.name(),
                        p.total_ns / 1e9,
                        p.stall_ns / 1e9,
                        p.pm_read_bytes,
                    ));
                }
            }
            Ok((peak, rep.compute_ns, rows))
        })?;
        let d = PyDict::new(py);
        d.set_item("peak_live_bytes", rows.0)?;
        d.set_item("compute_seconds", rows.1 as f64 / 1e9)?;
        let list = PyList::empty(py);
        for (f, b, pol, t, stall, reads) in rows.2 {
            let r = PyDict::new(py);
            r.set_item("fraction", f)?;
            r.set_item("budget_bytes", b)?;
            r.set_item("policy", pol)?;
            r.set_item("predicted_seconds", t)?;
            r.set_item("stall_seconds", stall)?;
            r.set_item("pm_read_bytes", reads)?;
            list.append(r)?;
        }
        d.set_item("predictions", list)?;
        Ok(d)
    }

    /// The hetier-model JSON description of the (lowered) model.
    fn to_json(&self) -> String {
        self.state.model.desc().to_json("float64")
    }

    fn __repr__(&self) -> String {
        let p = &self.state.params;
        format!(
            "hetier.Model({:?}: {} layers, depth {}, log N = {}{}, from {})",
            self.state.model.name(),
            self.state.model.layers().len(),
            self.state.model.depth(),
            p.log_n(),
            if self.state.insecure { ", INSECURE test parameters" } else { "" },
            self.state.source
        )
    }
}
