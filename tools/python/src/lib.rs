//! The `hetier` Python extension (`hetier._hetier`): models (ONNX or hetier-model), a client
//! that holds the secret key, a server over the tiered store, and the low-level `ckks` scheme.
//! Every call that computes releases the GIL; every error is a `hetier.Error` subclass.

mod ckks;
mod client;
mod errors;
mod model;
mod server;

use pyo3::prelude::*;

/// The native module; `hetier/__init__.py` re-exports it.
#[pymodule]
fn _hetier(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(model::load, m)?)?;
    m.add_class::<model::PyModel>()?;
    m.add_class::<client::PyClient>()?;
    m.add_class::<server::PyServer>()?;
    let ck = PyModule::new(m.py(), "ckks")?;
    ckks::register(&ck)?;
    m.add_submodule(&ck)?;
    m.add(
        "SUPPORTED_ONNX_OPS",
        hetier_he::model::onnx::SUPPORTED_OPS.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    )?;
    Ok(())
}
