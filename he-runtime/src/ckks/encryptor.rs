//! Public-key and secret-key (seeded) encryption, and decryption.

use std::sync::Arc;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

use super::ciphertext::{Ciphertext, Plaintext};
use super::context::Context;
use super::keys::{PublicKey, SecretKey};
use super::keyswitch::{mod_down, qp_prime, Finish};
use super::ring::{add_mod, sub_mod};
use super::sampling::{gaussian, os_seed, small_to_ntt, ternary, uniform_from_seed, Seed};
use crate::error::{Error, Result};

/// A symmetric ciphertext stored as (c_0, seed of c_1): half the size of a full ciphertext.
#[derive(Debug, Clone)]
pub struct SeededCiphertext {
    pub(crate) c0: Vec<u64>,
    pub(crate) seed: Seed,
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) params_id: u64,
}

impl SeededCiphertext {
    /// Expands c_1 from the seed into a full ciphertext.
    pub fn expand(&self, ctx: &Context) -> Result<Ciphertext> {
        ctx.check_id(self.params_id)?;
        let n = ctx.n();
        let l1 = self.level + 1;
        if self.c0.len() != l1 * n {
            return Err(Error::BufferLength { expected: l1 * n, found: self.c0.len() });
        }
        let mut data = vec![0u64; 2 * l1 * n];
        data[..l1 * n].copy_from_slice(&self.c0);
        let idx: Vec<usize> = (0..l1).collect();
        uniform_from_seed(ctx, &self.seed, SYM_STREAM, &idx, &mut data[l1 * n..]);
        Ok(Ciphertext {
            data,
            level: self.level,
            scale: self.scale,
            n,
            parts: 2,
            params_id: self.params_id,
            slots: None,
        })
    }
    /// Level of the ciphertext.
    pub fn level(&self) -> usize {
        self.level
    }
}

/// Stream id of symmetric-encryption `a` parts (keys use their digit index).
const SYM_STREAM: u64 = 0xC1;

/// Encrypts plaintexts under a public key or a secret key.
#[derive(Debug)]
pub struct Encryptor {
    ctx: Arc<Context>,
    rng: ChaCha20Rng,
}

impl Encryptor {
    /// An encryptor seeded from the operating system.
    pub fn new(ctx: &Arc<Context>) -> Self {
        Self::with_seed(ctx, os_seed())
    }

    /// A deterministic encryptor (tests and reproducible benchmarks).
    pub fn with_seed(ctx: &Arc<Context>, seed: Seed) -> Self {
        Self { ctx: Arc::clone(ctx), rng: ChaCha20Rng::from_seed(seed) }
    }

    /// Public-key encryption: (u·b, u·a + e_1) computed modulo Q_l·P with ternary u and divided
    /// by P (ModDown, as SEAL does) so the u·e and e_1·s noise shrinks to rounding size, then
    /// + (m + e_0, 0).
    pub fn encrypt_pk<C: AsRef<[u64]>, K: AsRef<[u64]>>(
        &mut self,
        pk: &PublicKey<K>,
        pt: &Plaintext<C>,
    ) -> Result<Ciphertext> {
        let ctx = Arc::clone(&self.ctx);
        ctx.check_id(pk.params_id)?;
        ctx.check_plain(pt)?;
        let n = ctx.n();
        let level = pt.level;
        let l1 = level + 1;
        let qp = ctx.q_len() + ctx.p_len();
        let width = l1 + ctx.p_len();
        let u: Vec<i64> = ternary(&mut self.rng, n).into_iter().map(i64::from).collect();
        let e0 = gaussian(&mut self.rng, n);
        let e1 = gaussian(&mut self.rng, n);
        let pkd: &[u64] = pk.data.as_ref();
        let mut ext = vec![0u64; 2 * width * n];
        let (x0, x1) = ext.split_at_mut(width * n);
        x0.par_chunks_mut(n).zip(x1.par_chunks_mut(n)).enumerate().for_each(|(pos, (a0, a1))| {
            let gi = qp_prime(&ctx, level, pos);
            let p = ctx.prime(gi);
            // u and e_1 in NTT form, then u·b and u·a + e_1 on the slice kernels. e_1 must be
            // divided by P with the rest: decryption multiplies it by s.
            for (o, &x) in a0.iter_mut().zip(&u) {
                *o = p.reduce_i64(x);
            }
            p.ntt(a0);
            for (o, &x) in a1.iter_mut().zip(&e1) {
                *o = p.reduce_i64(x);
            }
            p.ntt(a1);
            p.modulus.mul_add_assign_slice(a1, a0, &pkd[(qp + gi) * n..(qp + gi + 1) * n]);
            p.modulus.mul_assign_slice(a0, &pkd[gi * n..(gi + 1) * n]);
        });
        let mut ct = Ciphertext::zeros(2, level, pt.scale, n, ctx.params().id());
        ct.slots = pt.slots;
        let (c0, c1) = ct.data.split_at_mut(l1 * n);
        let mut y = vec![0u64; ctx.p_len() * n];
        let mut v = vec![0u64; n];
        let mut md = vec![0u64; l1 * n];
        c0.copy_from_slice(&pt.data.as_ref()[..l1 * n]);
        // e_0 joins after the division by P (inside ModDown, at no NTT cost): decryption
        // does not multiply it by s, so its σ = 3.2 is negligible at any scale.
        mod_down(&ctx, level, x0, &mut y, &mut v, &mut md, c0, Finish::Add, Some(&e0));
        mod_down(&ctx, level, x1, &mut y, &mut v, &mut md, c1, Finish::Store, None);
        Ok(ct)
    }

    /// Secret-key encryption with c_1 expanded from a fresh seed; keep the seeded form to store
    /// the ciphertext at half size.
    pub fn encrypt_sk_seeded<C: AsRef<[u64]>>(
        &mut self,
        sk: &SecretKey,
        pt: &Plaintext<C>,
    ) -> Result<SeededCiphertext> {
        let (seeded, _a) = self.encrypt_sk_with_a(sk, pt)?;
        Ok(seeded)
    }

    /// The seeded ciphertext and its expanded uniform part `a`, sampled once.
    fn encrypt_sk_with_a<C: AsRef<[u64]>>(
        &mut self,
        sk: &SecretKey,
        pt: &Plaintext<C>,
    ) -> Result<(SeededCiphertext, Vec<u64>)> {
        let l1 = pt.level + 1;
        let n = self.ctx.n();
        let (mut c0, mut a) = (vec![0u64; l1 * n], vec![0u64; l1 * n]);
        let seed = self.encrypt_sk_parts(sk, pt, &mut c0, &mut a)?;
        let seeded = SeededCiphertext {
            c0,
            seed,
            level: pt.level,
            scale: pt.scale,
            params_id: self.ctx.params().id(),
        };
        Ok((seeded, a))
    }

    /// Secret-key encryption into a caller's buffer of 2·(level+1)·N words (e.g. a store
    /// block or a scratch buffer charged to a DRAM budget), returned as the ciphertext; the
    /// same randomness as [`Self::encrypt_sk`], and nothing the size of a ciphertext is
    /// allocated.
    pub fn encrypt_sk_into<C: AsRef<[u64]>, O: AsRef<[u64]> + AsMut<[u64]>>(
        &mut self,
        sk: &SecretKey,
        pt: &Plaintext<C>,
        out: O,
    ) -> Result<Ciphertext<O>> {
        let n = self.ctx.n();
        let mut ct = Ciphertext::from_raw(out, 2, pt.level, pt.scale, n, self.ctx.params().id())?;
        let l1 = pt.level + 1;
        let (c0, a) = ct.data.as_mut()[..2 * l1 * n].split_at_mut(l1 * n);
        self.encrypt_sk_parts(sk, pt, c0, a)?;
        ct.slots = pt.slots;
        Ok(ct)
    }

    /// Samples a seed, expands the uniform part into `a` and writes c_0 = e − a·s + m into
    /// `c0` ((level+1)·N words each); returns the seed.
    fn encrypt_sk_parts<C: AsRef<[u64]>>(
        &mut self,
        sk: &SecretKey,
        pt: &Plaintext<C>,
        c0: &mut [u64],
        a: &mut [u64],
    ) -> Result<[u8; 32]> {
        let ctx = Arc::clone(&self.ctx);
        ctx.check_id(sk.params_id)?;
        ctx.check_plain(pt)?;
        let n = ctx.n();
        let l1 = pt.level + 1;
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let idx: Vec<usize> = (0..l1).collect();
        uniform_from_seed(&ctx, &seed, SYM_STREAM, &idx, a);
        let e = gaussian(&mut self.rng, n);
        small_to_ntt(&ctx, &e, &idx, c0);
        let ptd: &[u64] = pt.data.as_ref();
        c0.par_chunks_mut(n).zip(a.par_chunks(n)).enumerate().for_each(|(i, (o, al))| {
            let p = ctx.prime(i);
            let s = sk.limb(i, n);
            let m = &ptd[i * n..(i + 1) * n];
            for j in 0..n {
                o[j] = add_mod(sub_mod(o[j], p.mul(al[j], s[j]), p.q), m[j], p.q);
            }
        });
        Ok(seed)
    }

    /// Secret-key encryption into a full ciphertext (the uniform part is sampled once, not
    /// re-expanded from its seed).
    pub fn encrypt_sk<C: AsRef<[u64]>>(
        &mut self,
        sk: &SecretKey,
        pt: &Plaintext<C>,
    ) -> Result<Ciphertext> {
        let (seeded, a) = self.encrypt_sk_with_a(sk, pt)?;
        let SeededCiphertext { mut c0, level, scale, params_id, .. } = seeded;
        c0.extend_from_slice(&a);
        let slots = pt.slots;
        Ok(Ciphertext { data: c0, level, scale, n: self.ctx.n(), parts: 2, params_id, slots })
    }
}

/// Decrypts ciphertexts with the secret key.
#[derive(Debug)]
pub struct Decryptor<'a> {
    ctx: Arc<Context>,
    sk: &'a SecretKey,
}

impl<'a> Decryptor<'a> {
    /// A decryptor for `sk`.
    pub fn new(ctx: &Arc<Context>, sk: &'a SecretKey) -> Result<Self> {
        ctx.check_id(sk.params_id)?;
        Ok(Self { ctx: Arc::clone(ctx), sk })
    }

    /// m = c_0 + c_1·s (+ c_2·s²), as a plaintext at the ciphertext's level and scale.
    pub fn decrypt<C: AsRef<[u64]>>(&self, ct: &Ciphertext<C>) -> Result<Plaintext> {
        self.decrypt_into(ct, vec![0u64; (ct.level + 1) * ct.n])
    }

    /// [`Self::decrypt`] into a caller's buffer of (level+1)·N words (e.g. scratch
    /// charged to a memory budget), so nothing is allocated.
    pub fn decrypt_into<C, O>(&self, ct: &Ciphertext<C>, out: O) -> Result<Plaintext<O>>
    where
        C: AsRef<[u64]>,
        O: AsRef<[u64]> + AsMut<[u64]>,
    {
        let ctx = &self.ctx;
        ctx.check_id(ct.params_id)?;
        if ct.n != ctx.n() {
            return Err(Error::DegreeMismatch { expected: ctx.n(), found: ct.n });
        }
        if ct.level > ctx.params().max_level() {
            return Err(Error::InvalidLevel { level: ct.level, max: ctx.params().max_level() });
        }
        let n = ctx.n();
        let l1 = ct.level + 1;
        let mut data = out;
        let found = data.as_ref().len();
        if found != l1 * n {
            return Err(Error::BufferLength { expected: l1 * n, found });
        }
        let c0 = ct.part(0);
        let c1 = ct.part(1);
        let c2 = if ct.parts == 3 { Some(ct.part(2)) } else { None };
        data.as_mut().par_chunks_mut(n).enumerate().for_each(|(i, o)| {
            let p = ctx.prime(i);
            let s = self.sk.limb(i, n);
            let a = &c1[i * n..(i + 1) * n];
            let b = &c0[i * n..(i + 1) * n];
            for j in 0..n {
                let mut v = p.mul(a[j], s[j]);
                if let Some(c2) = c2 {
                    let s2 = p.mul(s[j], s[j]);
                    v = add_mod(v, p.mul(c2[i * n + j], s2), p.q);
                }
                o[j] = add_mod(b[j], v, p.q);
            }
        });
        let (level, scale, params_id, slots) = (ct.level, ct.scale, ct.params_id, ct.slots);
        let mut pt = Plaintext::from_raw(data, level, scale, n, params_id)?;
        pt.slots = slots;
        Ok(pt)
    }
}
