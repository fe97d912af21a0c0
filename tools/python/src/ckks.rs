//! `hetier.ckks`: the RNS-CKKS scheme on numpy arrays — parameters, keys, encrypt, add,
//! multiply (with relinearisation), rotate, rescale, decrypt — without models or a store.

use std::collections::HashMap;
use std::sync::Arc;

use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use hetier_he::ckks::{
    Ciphertext, Context, Decryptor, Encoder, Encryptor, Evaluator, GaloisKey, KeyGenerator,
    ParamsBuilder, RelinKey, SecretKey,
};

use crate::errors::{he, raise, PyRes};

/// A CKKS parameter set with its precomputed context.
#[pyclass(name = "Context", module = "hetier.ckks", frozen)]
pub struct PyContext {
    ctx: Arc<Context>,
}

/// A ciphertext (bound to the context it was made under).
#[pyclass(name = "Ciphertext", module = "hetier.ckks", frozen)]
pub struct PyCiphertext {
    ct: Ciphertext,
}

/// A secret key with the relinearisation and rotation keys made from it.
#[pyclass(name = "Keys", module = "hetier.ckks")]
pub struct PyKeys {
    ctx: Arc<Context>,
    sk: SecretKey,
    relin: RelinKey,
    galois: HashMap<i64, GaloisKey>,
}

fn values(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyRes<Vec<f64>> {
    let a = py.import("numpy")?.call_method1("ascontiguousarray", (x, "float64"))?;
    let a = a.downcast_into::<numpy::PyArrayDyn<f64>>()?;
    let v = a.readonly().as_slice()?.to_vec();
    Ok(v)
}

#[pymethods]
impl PyContext {
    /// Parameters with ring degree 2^log_n, `depth` scaling primes of `log_scale` bits (first
    /// prime 50 bits, dnum 3). Sets beyond the 128-bit security bound need `insecure=True`.
    #[new]
    #[pyo3(signature = (log_n=14, depth=5, log_scale=40.0, insecure=false))]
    fn new(log_n: u32, depth: usize, log_scale: f64, insecure: bool) -> PyRes<Self> {
        if depth == 0 {
            return Err(raise("ConfigError", "depth must be at least 1"));
        }
        let bits = log_scale.round() as u32;
        let mut b = ParamsBuilder::new(log_n);
        b.q_bits(50.max(bits + 10), &vec![bits; depth])
            .special_bits(50.max(bits + 10))
            .dnum(3)
            .log_scale(log_scale);
        if insecure {
            b.allow_insecure();
        }
        let params = b.build().map_err(he)?;
        Ok(Self { ctx: Context::new(&params).map_err(he)? })
    }

    /// Number of slots (N/2).
    #[getter]
    fn slots(&self) -> usize {
        self.ctx.params().slots()
    }

    /// Highest level (a fresh ciphertext's).
    #[getter]
    fn levels(&self) -> usize {
        self.ctx.params().max_level()
    }

    /// The encoding scale.
    #[getter]
    fn scale(&self) -> f64 {
        self.ctx.params().scale()
    }

    /// Whether the set meets the 128-bit bound.
    #[getter]
    fn secure(&self) -> bool {
        self.ctx.params().is_secure()
    }

    /// A fresh secret key (from the OS) with a relinearisation key and a rotation key for
    /// every step in `rotations`.
    #[pyo3(signature = (rotations=vec![]))]
    fn keygen(&self, py: Python<'_>, rotations: Vec<i64>) -> PyRes<PyKeys> {
        let ctx = Arc::clone(&self.ctx);
        py.allow_threads(move || -> hetier_he::Result<PyKeys> {
            let mut kg = KeyGenerator::new(&ctx);
            let sk = kg.secret_key();
            let relin = kg.relin_key(&sk)?;
            let mut galois = HashMap::new();
            for s in rotations {
                galois.insert(s, kg.rotation_key(&sk, s)?);
            }
            Ok(PyKeys { ctx, sk, relin, galois })
        })
        .map_err(he)
    }

    /// a + b (same level and scale).
    fn add(&self, py: Python<'_>, a: &PyCiphertext, b: &PyCiphertext) -> PyRes<PyCiphertext> {
        let ct = py.allow_threads(|| Evaluator::new(&self.ctx).add(&a.ct, &b.ct)).map_err(he)?;
        Ok(PyCiphertext { ct })
    }

    /// a · b, relinearised (scale multiplies; call `rescale` next).
    fn multiply(
        &self,
        py: Python<'_>,
        a: &PyCiphertext,
        b: &PyCiphertext,
        keys: &PyKeys,
    ) -> PyRes<PyCiphertext> {
        let ct = py
            .allow_threads(|| {
                let ev = Evaluator::new(&self.ctx);
                let mut scratch = ev.scratch();
                ev.mul_relin(&a.ct, &b.ct, &keys.relin, &mut scratch)
            })
            .map_err(he)?;
        Ok(PyCiphertext { ct })
    }

    /// Drops the last prime: divides the scale by it and the level by one.
    fn rescale(&self, py: Python<'_>, a: &PyCiphertext) -> PyRes<PyCiphertext> {
        let ct = py.allow_threads(|| Evaluator::new(&self.ctx).rescale(&a.ct)).map_err(he)?;
        Ok(PyCiphertext { ct })
    }

    /// Rotates the slots left by `step` (needs the rotation key made by `keygen`).
    fn rotate(
        &self,
        py: Python<'_>,
        a: &PyCiphertext,
        step: i64,
        keys: &PyKeys,
    ) -> PyRes<PyCiphertext> {
        let key = keys.galois.get(&step).ok_or_else(|| {
            raise(
                "KeySetError",
                format!("no rotation key for step {step}: pass it to keygen(rotations=[...])"),
            )
        })?;
        let ct = py
            .allow_threads(|| {
                let ev = Evaluator::new(&self.ctx);
                let mut scratch = ev.scratch();
                ev.rotate(&a.ct, step, key, &mut scratch)
            })
            .map_err(he)?;
        Ok(PyCiphertext { ct })
    }

    /// Loads a ciphertext serialised by `Ciphertext.to_bytes` under this context.
    fn ciphertext_from_bytes(&self, py: Python<'_>, data: &[u8]) -> PyRes<PyCiphertext> {
        let ct = py.allow_threads(|| Ciphertext::from_bytes(&self.ctx, data)).map_err(he)?;
        Ok(PyCiphertext { ct })
    }

    /// Serialises a ciphertext.
    fn ciphertext_to_bytes<'py>(&self, py: Python<'py>, a: &PyCiphertext) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &a.ct.to_bytes(&self.ctx))
    }
}

#[pymethods]
impl PyCiphertext {
    /// Level (primes left minus one).
    #[getter]
    fn level(&self) -> usize {
        self.ct.level()
    }

    /// Scale of the encoded values.
    #[getter]
    fn scale(&self) -> f64 {
        self.ct.scale()
    }
}

#[pymethods]
impl PyKeys {
    /// Encrypts real values (at most `slots` of them) at the top level.
    fn encrypt(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyRes<PyCiphertext> {
        let v = values(py, x)?;
        let ct = py
            .allow_threads(|| -> hetier_he::Result<Ciphertext> {
                let p = self.ctx.params();
                let pt = Encoder::new(&self.ctx).encode_real(&v, p.max_level(), p.scale())?;
                Encryptor::new(&self.ctx).encrypt_sk(&self.sk, &pt)
            })
            .map_err(he)?;
        Ok(PyCiphertext { ct })
    }

    /// Decrypts to the real parts of all slots.
    fn decrypt<'py>(&self, py: Python<'py>, a: &PyCiphertext) -> PyRes<Bound<'py, PyArray1<f64>>> {
        let v = py
            .allow_threads(|| -> hetier_he::Result<Vec<f64>> {
                let pt = Decryptor::new(&self.ctx, &self.sk)?.decrypt(&a.ct)?;
                Encoder::new(&self.ctx).decode_real(&pt)
            })
            .map_err(he)?;
        Ok(PyArray1::from_vec(py, v))
    }
}

/// Registers the classes of `hetier.ckks`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyContext>()?;
    m.add_class::<PyCiphertext>()?;
    m.add_class::<PyKeys>()?;
    Ok(())
}
