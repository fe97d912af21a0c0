//! The client side of serving: the only holder of the secret key. It makes the evaluation keys
//! a server needs, encrypts samples and decrypts responses; a [`super::Server`] never sees it.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::ckks::{
    os_seed, Ciphertext, Context, Decryptor, Encoder, Encryptor, KeyGenerator, Params, SecretKey,
    Seed,
};
use crate::exec::error::Result;
use crate::exec::{EvalKeyBundle, Executor, KeySetId};
use crate::model::Compiled;

/// A client's secret key with what it needs to encrypt for, and decrypt from, a server.
pub struct Client {
    ctx: Arc<Context>,
    seed: Zeroizing<Seed>,
    sk: SecretKey,
    keyset: KeySetId,
    encoder: Encoder,
    encryptor: Encryptor,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("keyset", &self.keyset).finish_non_exhaustive()
    }
}

impl Client {
    /// A client with a fresh secret key from the operating system's entropy source.
    pub fn new(params: &Params) -> Result<Self> {
        Self::from_seed(params, os_seed())
    }

    /// A client whose secret key is derived from `seed`: the key is only as secret as the
    /// seed (a fixed seed is for reproducible tests and benchmarks).
    pub fn from_seed(params: &Params, seed: Seed) -> Result<Self> {
        let ctx = Context::new(params)?;
        let seed = Zeroizing::new(seed);
        let sk = KeyGenerator::with_seed(&ctx, *seed).secret_key();
        Ok(Self {
            encoder: Encoder::new(&ctx),
            encryptor: Encryptor::new(&ctx),
            keyset: KeySetId::from_seed(&seed),
            ctx,
            seed,
            sk,
        })
    }

    /// The id of this client's key set (what a server files its evaluation keys under).
    pub fn keyset(&self) -> KeySetId {
        self.keyset
    }

    /// The CKKS context (for serialising ciphertexts).
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The evaluation keys `compiled`'s program needs, to send to a server once.
    pub fn evaluation_keys(&self, compiled: &Compiled) -> Result<EvalKeyBundle> {
        // The same generator stream as a session's, so either one's keys can be reused.
        let mut kg = KeyGenerator::with_seed(&self.ctx, *self.seed);
        let sk = kg.secret_key();
        let needed = Executor::needed_keys(&compiled.program);
        EvalKeyBundle::generate(&mut kg, &sk, self.keyset, &needed)
    }

    /// Packs and encrypts one sample in network values (see `Model::prepare_input`) for
    /// `compiled`'s input.
    pub fn encrypt(&mut self, compiled: &Compiled, x: &[f64]) -> Result<Ciphertext> {
        let p = self.ctx.params();
        let slots = compiled.pack(x, p.slots())?;
        let pt = self.encoder.encode_real(&slots, p.max_level(), p.scale())?;
        Ok(self.encryptor.encrypt_sk(&self.sk, &pt)?)
    }

    /// Decrypts a response and unpacks `compiled`'s output values (the logits).
    pub fn decrypt(&self, compiled: &Compiled, ct: &Ciphertext) -> Result<Vec<f64>> {
        let pt = Decryptor::new(&self.ctx, &self.sk)?.decrypt(ct)?;
        Ok(compiled.output_layout.unpack(&self.encoder.decode_real(&pt)?))
    }
}
