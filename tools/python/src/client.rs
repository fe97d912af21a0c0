//! `hetier.Client`: holds the secret key (random from the OS unless loaded from a key file),
//! makes the evaluation keys, encrypts samples and decrypts results. The secret never leaves
//! this object except through `save`, which writes a 0600 file.

use std::io::Write;
use std::sync::Arc;

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rand::RngCore;
use zeroize::Zeroizing;

use hetier_he::ckks::{
    Ciphertext, Context, Decryptor, Encoder, Encryptor, KeyGenerator, SecretKey,
};
use hetier_he::exec::{EvalKeyBundle, Executor, KeySetId};

use crate::errors::{exec, he, raise, PyRes};
use crate::model::{ModelState, PyModel};

/// The client side of a model: secret key, encryption and decryption.
#[pyclass(name = "Client", module = "hetier")]
pub struct PyClient {
    state: Arc<ModelState>,
    ctx: Arc<Context>,
    seed: Zeroizing<[u8; 32]>,
    sk: SecretKey,
    keyset: KeySetId,
}

impl PyClient {
    fn with_seed(state: Arc<ModelState>, seed: Zeroizing<[u8; 32]>) -> PyRes<Self> {
        let ctx = Context::new(&state.params).map_err(he)?;
        let sk = KeyGenerator::with_seed(&ctx, *seed).secret_key();
        let keyset = KeySetId::from_seed(&seed);
        Ok(Self { state, ctx, seed, sk, keyset })
    }
}

#[pymethods]
impl PyClient {
    /// A client for `model` with a fresh secret key drawn from the operating system.
    #[new]
    fn new(model: &PyModel) -> PyRes<Self> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng
            .try_fill_bytes(seed.as_mut())
            .map_err(|e| raise("CryptoError", format!("no OS randomness: {e}")))?;
        Self::with_seed(Arc::clone(&model.state), seed)
    }

    /// A client whose secret key is read from `path` (written by `save`).
    #[staticmethod]
    fn load(model: &PyModel, path: std::path::PathBuf) -> PyRes<Self> {
        let bytes = Zeroizing::new(std::fs::read(&path).map_err(|e| {
            raise("FileError", format!("cannot read secret key file {}: {e}", path.display()))
        })?);
        let mut seed = Zeroizing::new([0u8; 32]);
        if bytes.len() != 40 || &bytes[..8] != b"HTSKEY01" {
            return Err(raise(
                "CorruptDataError",
                format!(
                    "{} is not a hetier secret key file ({} bytes)",
                    path.display(),
                    bytes.len()
                ),
            ));
        }
        seed.copy_from_slice(&bytes[8..]);
        Self::with_seed(Arc::clone(&model.state), seed)
    }

    /// Writes the secret key to `path` with mode 0600 (keep it away from the server's pool).
    fn save(&self, path: std::path::PathBuf) -> PyRes<()> {
        let io = |e: std::io::Error| raise("FileError", format!("writing {}: {e}", path.display()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&path).map_err(io)?;
        let mut data = Zeroizing::new(b"HTSKEY01".to_vec());
        data.extend_from_slice(self.seed.as_ref());
        f.write_all(&data).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// Identity of this client's key set (what a server's pool stores its keys under).
    #[getter]
    fn key_set_id(&self) -> u64 {
        self.keyset.0
    }

    /// The evaluation keys the model needs (relinearisation and rotations), serialised for a
    /// server: `server.load_keys(client.evaluation_keys())`.
    fn evaluation_keys<'py>(&self, py: Python<'py>) -> PyRes<Bound<'py, PyBytes>> {
        let (ctx, seed, keyset) = (Arc::clone(&self.ctx), self.seed.clone(), self.keyset);
        let state = Arc::clone(&self.state);
        let bytes = py
            .allow_threads(move || {
                let mut kg = KeyGenerator::with_seed(&ctx, *seed);
                let sk = kg.secret_key();
                let needed = Executor::needed_keys(&state.compiled.program);
                EvalKeyBundle::generate(&mut kg, &sk, keyset, &needed).map(|b| b.to_bytes(&ctx))
            })
            .map_err(exec)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Encrypts one sample (a numpy array of the model's input shape) and returns the
    /// ciphertext as bytes.
    fn encrypt<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyRes<Bound<'py, PyBytes>> {
        let v = self.state.sample(py, x)?;
        let bytes = py
            .allow_threads(|| -> hetier_he::Result<Vec<u8>> {
                let p = &self.state.params;
                let slots = self.state.compiled.pack(&v, p.slots())?;
                let pt = Encoder::new(&self.ctx).encode_real(&slots, p.max_level(), p.scale())?;
                let ct = Encryptor::new(&self.ctx).encrypt_sk(&self.sk, &pt)?;
                Ok(ct.to_bytes(&self.ctx))
            })
            .map_err(he)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Decrypts a result ciphertext (bytes from `server.infer`) into the model's outputs.
    fn decrypt<'py>(&self, py: Python<'py>, ct: &[u8]) -> PyRes<Bound<'py, PyArray1<f64>>> {
        let y = py
            .allow_threads(|| -> hetier_he::Result<Vec<f64>> {
                let ct = Ciphertext::from_bytes(&self.ctx, ct)?;
                let pt = Decryptor::new(&self.ctx, &self.sk)?.decrypt(&ct)?;
                let vals = Encoder::new(&self.ctx).decode_real(&pt)?;
                Ok(self.state.compiled.output_layout.unpack(&vals))
            })
            .map_err(he)?;
        Ok(PyArray1::from_vec(py, y))
    }

    fn __repr__(&self) -> String {
        format!(
            "hetier.Client(key set {:#018x}, model {:?})",
            self.keyset.0,
            self.state.model.name()
        )
    }
}
