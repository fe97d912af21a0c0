//! Shared fixture for the CKKS integration tests.
// Test-only fixture: not every test binary uses every helper.
#![allow(dead_code, missing_docs)]

use std::sync::Arc;

use hetier_he::ckks::*;
use rand::{Rng, SeedableRng};

pub struct Fixture {
    pub ctx: Arc<Context>,
    pub enc: Encoder,
    pub eval: Evaluator,
    pub sk: SecretKey,
    pub pk: PublicKey,
    pub rk: RelinKey,
    pub encryptor: Encryptor,
    pub rng: rand_chacha::ChaCha8Rng,
}

impl Fixture {
    pub fn new(preset: Preset) -> Self {
        let params = preset.params().unwrap();
        Self::with_params(&params)
    }

    pub fn with_params(params: &Params) -> Self {
        let ctx = Context::new(params).unwrap();
        let mut kg = KeyGenerator::with_seed(&ctx, [1; 32]);
        let sk = kg.secret_key();
        let pk = kg.public_key(&sk).unwrap();
        let rk = kg.relin_key(&sk).unwrap();
        Self {
            enc: Encoder::new(&ctx),
            eval: Evaluator::new(&ctx),
            encryptor: Encryptor::with_seed(&ctx, [2; 32]),
            ctx,
            sk,
            pk,
            rk,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(7),
        }
    }

    pub fn keygen(&self) -> KeyGenerator {
        KeyGenerator::with_seed(&self.ctx, [3; 32])
    }

    pub fn random_real(&mut self) -> Vec<f64> {
        let slots = self.ctx.params().slots();
        (0..slots).map(|_| self.rng.gen_range(-1.0..1.0)).collect()
    }

    pub fn random_complex(&mut self) -> Vec<Complex64> {
        let slots = self.ctx.params().slots();
        (0..slots)
            .map(|_| Complex64::new(self.rng.gen_range(-1.0..1.0), self.rng.gen_range(-1.0..1.0)))
            .collect()
    }

    pub fn encrypt(&mut self, v: &[f64]) -> Ciphertext {
        let level = self.ctx.params().max_level();
        self.encrypt_at(v, level)
    }

    pub fn encrypt_at(&mut self, v: &[f64], level: usize) -> Ciphertext {
        let pt = self.enc.encode_real(v, level, self.ctx.params().scale()).unwrap();
        self.encryptor.encrypt_pk(&self.pk, &pt).unwrap()
    }

    pub fn decrypt(&self, ct: &Ciphertext) -> Vec<Complex64> {
        let dec = Decryptor::new(&self.ctx, &self.sk).unwrap();
        self.enc.decode(&dec.decrypt(ct).unwrap()).unwrap()
    }

    pub fn decrypt_real(&self, ct: &Ciphertext) -> Vec<f64> {
        self.decrypt(ct).into_iter().map(|z| z.re).collect()
    }
}

pub fn max_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
}

pub fn max_err_c(got: &[Complex64], want: &[Complex64]) -> f64 {
    got.iter().zip(want).map(|(a, b)| (*a - *b).abs()).fold(0.0, f64::max)
}
