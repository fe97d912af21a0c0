//! Secret, public and key-switching keys (relinearisation, rotation, conjugation) and their
//! generation. Key-switching keys use hybrid decomposition over `dnum` digits with the special
//! modulus P; every `a` part is expanded from a stored seed.

use std::collections::HashMap;
use std::sync::Arc;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use zeroize::Zeroize;

use super::context::Context;
use super::key_limbs::{KeyLimbs, SwitchKeyWords};
use super::ring::{add_mod, sub_mod};
use super::sampling::{gaussian, os_seed, small_to_ntt, ternary, uniform_from_seed, Seed};
use crate::error::{Error, Result};

/// The ternary secret key s, in NTT form over every Q and P prime. Zeroized on drop; it has
/// no serialisation and no raw-buffer constructor, so it cannot be written into the store.
pub struct SecretKey {
    /// NTT form over q_0..q_L, p_0..p_{K-1}.
    pub(crate) ntt: Vec<u64>,
    pub(crate) coeffs: Vec<i8>,
    pub(crate) params_id: u64,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey").field("params_id", &self.params_id).finish_non_exhaustive()
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.ntt.zeroize();
        self.coeffs.zeroize();
    }
}

impl SecretKey {
    /// Fingerprint of the parameters it was made under.
    pub fn params_id(&self) -> u64 {
        self.params_id
    }
    pub(crate) fn limb(&self, i: usize, n: usize) -> &[u64] {
        &self.ntt[i * n..(i + 1) * n]
    }
}

/// Public key (b, a) = (-a·s + e, a) over QP, in NTT form; `a` comes from `seed`.
#[derive(Debug, Clone)]
pub struct PublicKey<C = Vec<u64>> {
    pub(crate) data: C,
    pub(crate) seed: Seed,
    pub(crate) params_id: u64,
}

impl<C: AsRef<[u64]>> PublicKey<C> {
    /// Fingerprint of the parameters it was made under.
    pub fn params_id(&self) -> u64 {
        self.params_id
    }
}

/// Words of one expanded switching key under `ctx` (both halves of every digit).
pub fn switch_key_expanded_words(ctx: &Context) -> usize {
    ctx.params().dnum() * 2 * (ctx.q_len() + ctx.p_len()) * ctx.n()
}

/// A hybrid key-switching key from some s' to s: for each digit j, (b_j, a_j) over QP with
/// b_j = -a_j·s + e_j + P·[i ∈ digit j]·s'. Layout: `[digit][b|a][limb over QP][N]`.
#[derive(Debug, Clone)]
pub struct KeySwitchKey<C = Vec<u64>> {
    pub(crate) data: C,
    pub(crate) seed: Seed,
    pub(crate) dnum: usize,
    pub(crate) params_id: u64,
    /// The highest level whose key switches the words serve: the chain's top for a whole
    /// key, lower for one expanded only where a switch at that level reads
    /// ([`super::serialize::KeySwitchKey::expand_pinned_for_level`]).
    pub(crate) max_level: usize,
}

impl<C: AsRef<[u64]>> KeySwitchKey<C> {
    /// Wraps a buffer in the key layout (for instance a pinned store buffer).
    pub fn from_raw(data: C, seed: Seed, ctx: &Context) -> Result<Self> {
        Self::from_raw_for_level(data, seed, ctx, ctx.params().max_level())
    }

    /// As [`KeySwitchKey::from_raw`], for words that hold only what a key switch at
    /// `max_level` or below reads (a block a key was expanded into for that level).
    pub(crate) fn from_raw_for_level(
        data: C,
        seed: Seed,
        ctx: &Context,
        max_level: usize,
    ) -> Result<Self> {
        let p = ctx.params();
        let expected = p.dnum() * 2 * (ctx.q_len() + ctx.p_len()) * ctx.n();
        if data.as_ref().len() != expected {
            return Err(Error::BufferLength { expected, found: data.as_ref().len() });
        }
        if max_level > p.max_level() {
            return Err(Error::InvalidLevel { level: max_level, max: p.max_level() });
        }
        Ok(Self { data, seed, dnum: p.dnum(), params_id: p.id(), max_level })
    }

    /// The raw words.
    pub fn as_words(&self) -> &[u64] {
        self.data.as_ref()
    }
    /// The buffer holding the words (to rewrap it, e.g. with [`KeySwitchKey::from_raw`]).
    pub fn into_words(self) -> C {
        self.data
    }
    /// Fingerprint of the parameters it was made under.
    pub fn params_id(&self) -> u64 {
        self.params_id
    }
    /// Limb `i` (QP index) of part `p` (0 = b, 1 = a) of digit `j`.
    #[inline]
    pub(crate) fn limb(&self, j: usize, p: usize, i: usize, n: usize, qp: usize) -> &[u64] {
        let off = ((j * 2 + p) * qp + i) * n;
        &self.data.as_ref()[off..off + n]
    }
}

impl<C: SwitchKeyWords> KeySwitchKey<C> {
    /// A seed-compressed key read in place by every key switch (`data` answers
    /// [`KeyLimbs::Packed`], a layout parsed under `ctx`): it serves switches up to the level
    /// its layout was parsed for, and is never expanded. Expanded words are
    /// [`Error::BufferLength`] here: wrap those with [`KeySwitchKey::from_raw`].
    pub fn from_packed(data: C, ctx: &Context) -> Result<Self> {
        let (seed, max_level) = match data.key_limbs() {
            KeyLimbs::Packed { layout, .. } => {
                ctx.check_id(layout.params_id())?;
                (*layout.seed(), layout.max_level())
            }
            KeyLimbs::Expanded(words) => {
                return Err(Error::BufferLength { expected: 0, found: words.len() })
            }
        };
        let p = ctx.params();
        Ok(Self { data, seed, dnum: p.dnum(), params_id: p.id(), max_level })
    }

    /// Checks that the key was made under `ctx`'s parameters and, when expanded, holds a whole
    /// key's words.
    pub(crate) fn check_shape(&self, ctx: &Context) -> Result<()> {
        ctx.check_id(self.params_id)?;
        match self.data.key_limbs() {
            KeyLimbs::Expanded(words) => {
                let expected = self.dnum * 2 * (ctx.q_len() + ctx.p_len()) * ctx.n();
                if words.len() != expected {
                    return Err(Error::BufferLength { expected, found: words.len() });
                }
            }
            KeyLimbs::Packed { layout, .. } => ctx.check_id(layout.params_id())?,
        }
        Ok(())
    }
}

impl<C> KeySwitchKey<C> {
    /// The highest level this key switches at: the top of the chain unless it was expanded
    /// (or its blobs located) only for the limbs a lower level reads.
    pub fn max_level(&self) -> usize {
        self.max_level
    }

    /// Fails with [`Error::KeyLevel`] when a switch at `level` would read words this key was
    /// not expanded into.
    pub(crate) fn check_level(&self, level: usize) -> Result<()> {
        if level > self.max_level {
            return Err(Error::KeyLevel { key_level: self.max_level, level });
        }
        Ok(())
    }

    /// The seed the `a` parts are expanded from.
    pub fn seed(&self) -> &Seed {
        &self.seed
    }

    /// The same key over its words wrapped by `f` (in an enum of the kinds of words a source
    /// hands out, say).
    pub fn map_words<D>(self, f: impl FnOnce(C) -> D) -> KeySwitchKey<D> {
        let Self { data, seed, dnum, params_id, max_level } = self;
        KeySwitchKey { data: f(data), seed, dnum, params_id, max_level }
    }
}

/// Relinearisation key: switches s² to s.
#[derive(Debug, Clone)]
pub struct RelinKey<C = Vec<u64>> {
    /// The underlying key-switching key.
    pub key: KeySwitchKey<C>,
}

/// A Galois key for X → X^g: switches s(X^g) to s. Rotations use g = 5^k mod 2N,
/// conjugation g = 2N - 1.
#[derive(Debug, Clone)]
pub struct GaloisKey<C = Vec<u64>> {
    /// The Galois element g.
    pub galois_element: u64,
    /// The underlying key-switching key.
    pub key: KeySwitchKey<C>,
}

/// A set of Galois keys indexed by Galois element.
#[derive(Debug, Clone, Default)]
pub struct GaloisKeySet {
    keys: HashMap<u64, GaloisKey>,
}

impl GaloisKeySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds (or replaces) a key.
    pub fn insert(&mut self, key: GaloisKey) {
        self.keys.insert(key.galois_element, key);
    }
    /// The key for Galois element `g`, if present.
    pub fn get(&self, g: u64) -> Option<&GaloisKey> {
        self.keys.get(&g)
    }
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Generates keys; its randomness comes from the OS or, for reproducible tests, from a seed.
#[derive(Debug)]
pub struct KeyGenerator {
    ctx: Arc<Context>,
    rng: ChaCha20Rng,
}

impl KeyGenerator {
    /// A generator seeded from the operating system.
    pub fn new(ctx: &Arc<Context>) -> Self {
        Self::with_seed(ctx, os_seed())
    }

    /// A deterministic generator (tests and reproducible benchmarks).
    pub fn with_seed(ctx: &Arc<Context>, seed: Seed) -> Self {
        Self { ctx: Arc::clone(ctx), rng: ChaCha20Rng::from_seed(seed) }
    }

    fn next_seed(&mut self) -> Seed {
        let mut s = [0u8; 32];
        self.rng.fill_bytes(&mut s);
        s
    }

    /// A fresh uniform ternary secret key.
    pub fn secret_key(&mut self) -> SecretKey {
        let ctx = &self.ctx;
        let n = ctx.n();
        let coeffs = ternary(&mut self.rng, n);
        let wide: Vec<i64> = coeffs.iter().map(|&c| c as i64).collect();
        let all: Vec<usize> = (0..ctx.q_len() + ctx.p_len()).collect();
        let mut ntt = vec![0u64; all.len() * n];
        small_to_ntt(ctx, &wide, &all, &mut ntt);
        SecretKey { ntt, coeffs, params_id: ctx.params().id() }
    }

    /// A ternary secret key with exactly `h` non-zero coefficients (±1 at uniform positions):
    /// the ephemeral sparse secret of bootstrapping's sparse-secret encapsulation.
    pub fn sparse_secret_key(&mut self, h: usize) -> Result<SecretKey> {
        let ctx = &self.ctx;
        let n = ctx.n();
        if h == 0 || h > n {
            return Err(Error::InvalidParameter {
                name: "hamming weight",
                reason: format!("h = {h} must be in 1..={n}"),
            });
        }
        let mut coeffs = vec![0i8; n];
        let mut placed = 0;
        while placed < h {
            let pos = (self.rng.next_u64() % n as u64) as usize;
            if coeffs[pos] == 0 {
                coeffs[pos] = if self.rng.next_u32() & 1 == 0 { 1 } else { -1 };
                placed += 1;
            }
        }
        let wide: Vec<i64> = coeffs.iter().map(|&c| c as i64).collect();
        let all: Vec<usize> = (0..ctx.q_len() + ctx.p_len()).collect();
        let mut ntt = vec![0u64; all.len() * n];
        small_to_ntt(ctx, &wide, &all, &mut ntt);
        Ok(SecretKey { ntt, coeffs, params_id: ctx.params().id() })
    }

    /// A key-switching key from `from` to `to`: a ciphertext under `from` becomes one under `to`
    /// ([`crate::ckks::Evaluator::key_switch`]).
    pub fn switching_key(&mut self, from: &SecretKey, to: &SecretKey) -> Result<KeySwitchKey> {
        let words = vec![0; switch_key_expanded_words(&self.ctx)];
        self.switching_key_into(from, to, words)
    }

    /// [`Self::switching_key`] written into `data` (exactly
    /// [`switch_key_expanded_words`] long, any contents): e.g. a store block, so the
    /// key is never on the heap.
    pub fn switching_key_into<C: AsMut<[u64]>>(
        &mut self,
        from: &SecretKey,
        to: &SecretKey,
        data: C,
    ) -> Result<KeySwitchKey<C>> {
        self.ctx.check_id(from.params_id)?;
        self.ctx.check_id(to.params_id)?;
        let q = self.ctx.q_len() * self.ctx.n();
        self.switch_key_into(&to.ntt, &from.ntt[..q], data)
    }

    /// The public key of `sk`.
    pub fn public_key(&mut self, sk: &SecretKey) -> Result<PublicKey> {
        let ctx = Arc::clone(&self.ctx);
        ctx.check_id(sk.params_id)?;
        let n = ctx.n();
        // Over QP: encryption works modulo QP and divides by P, which shrinks its noise to
        // rounding size.
        let l1 = ctx.q_len() + ctx.p_len();
        let seed = self.next_seed();
        let q_idx: Vec<usize> = (0..l1).collect();
        let mut data = vec![0u64; 2 * l1 * n];
        let (b, a) = data.split_at_mut(l1 * n);
        uniform_from_seed(&ctx, &seed, 0, &q_idx, a);
        let e = gaussian(&mut self.rng, n);
        small_to_ntt(&ctx, &e, &q_idx, b);
        b.par_chunks_mut(n).zip(a.par_chunks(n)).enumerate().for_each(|(i, (bl, al))| {
            let p = ctx.prime(i);
            let s = sk.limb(i, n);
            for ((bv, &av), &sv) in bl.iter_mut().zip(al).zip(s) {
                *bv = sub_mod(*bv, p.mul(av, sv), p.q);
            }
        });
        Ok(PublicKey { data, seed, params_id: ctx.params().id() })
    }

    /// Key-switching key from s' (NTT form over the Q primes, limb-major) to the secret `t`
    /// (NTT form over QP, limb-major).
    fn switch_key_into<C: AsMut<[u64]>>(
        &mut self,
        t: &[u64],
        s_prime: &[u64],
        mut data: C,
    ) -> Result<KeySwitchKey<C>> {
        let ctx = Arc::clone(&self.ctx);
        let expected = switch_key_expanded_words(&ctx);
        let found = data.as_mut().len();
        if found != expected {
            return Err(Error::BufferLength { expected, found });
        }
        let n = ctx.n();
        let l1 = ctx.q_len();
        let qp = l1 + ctx.p_len();
        let alpha = ctx.params().alpha();
        let dnum = ctx.params().dnum();
        let seed = self.next_seed();
        let all: Vec<usize> = (0..qp).collect();
        // P mod q_i for the gadget term.
        let p_mod: Vec<u64> = (0..l1)
            .map(|i| {
                let qi = ctx.prime(i);
                ctx.params().p().iter().fold(1u64, |acc, &pj| qi.mul(acc, pj % qi.q))
            })
            .collect();
        let errors: Vec<Vec<i64>> = (0..dnum).map(|_| gaussian(&mut self.rng, n)).collect();
        // Every word is written: b from the error, a from the seed.
        for (j, chunk) in data.as_mut().chunks_mut(2 * qp * n).enumerate() {
            let (b, a) = chunk.split_at_mut(qp * n);
            uniform_from_seed(&ctx, &seed, j as u64, &all, a);
            small_to_ntt(&ctx, &errors[j], &all, b);
            let digit = j * alpha..((j + 1) * alpha).min(l1);
            b.par_chunks_mut(n).zip(a.par_chunks(n)).enumerate().for_each(|(i, (bl, al))| {
                let p = ctx.prime(i);
                let s = &t[i * n..(i + 1) * n];
                for ((bv, &av), &sv) in bl.iter_mut().zip(al).zip(s) {
                    *bv = sub_mod(*bv, p.mul(av, sv), p.q);
                }
                if digit.contains(&i) {
                    let sp = &s_prime[i * n..(i + 1) * n];
                    let pm = p_mod[i];
                    for (bv, &x) in bl.iter_mut().zip(sp) {
                        *bv = add_mod(*bv, p.mul(x, pm), p.q);
                    }
                }
            });
        }
        Ok(KeySwitchKey {
            data,
            seed,
            dnum,
            params_id: ctx.params().id(),
            max_level: ctx.params().max_level(),
        })
    }

    /// The relinearisation key of `sk` (switches s² to s).
    pub fn relin_key(&mut self, sk: &SecretKey) -> Result<RelinKey> {
        let words = vec![0; switch_key_expanded_words(&self.ctx)];
        Ok(RelinKey { key: self.relin_key_into(sk, words)? })
    }

    /// [`Self::relin_key`]'s switching key written into `data` (exactly
    /// [`switch_key_expanded_words`] long, any contents).
    pub fn relin_key_into<C: AsMut<[u64]>>(
        &mut self,
        sk: &SecretKey,
        data: C,
    ) -> Result<KeySwitchKey<C>> {
        self.ctx.check_id(sk.params_id)?;
        let n = self.ctx.n();
        let l1 = self.ctx.q_len();
        let mut s2 = vec![0u64; l1 * n];
        s2.par_chunks_mut(n).enumerate().for_each(|(i, out)| {
            let p = self.ctx.prime(i);
            for (o, &s) in out.iter_mut().zip(sk.limb(i, n)) {
                *o = p.mul(s, s);
            }
        });
        let key = self.switch_key_into(&sk.ntt, &s2, data);
        s2.zeroize();
        key
    }

    /// The Galois key for X → X^g (g odd, below 2N).
    pub fn galois_key(&mut self, sk: &SecretKey, g: u64) -> Result<GaloisKey> {
        let words = vec![0; switch_key_expanded_words(&self.ctx)];
        Ok(GaloisKey { galois_element: g, key: self.galois_key_into(sk, g, words)? })
    }

    /// [`Self::galois_key`]'s switching key written into `data` (exactly
    /// [`switch_key_expanded_words`] long, any contents).
    pub fn galois_key_into<C: AsMut<[u64]>>(
        &mut self,
        sk: &SecretKey,
        g: u64,
        data: C,
    ) -> Result<KeySwitchKey<C>> {
        let ctx = Arc::clone(&self.ctx);
        ctx.check_id(sk.params_id)?;
        let n = ctx.n();
        if g.is_multiple_of(2) || g >= 2 * n as u64 {
            return Err(Error::InvalidParameter {
                name: "galois element",
                reason: format!("{g} is not odd and below 2N = {}", 2 * n),
            });
        }
        // The key switches s to σ_g^-1(s): the evaluator key-switches c_1 first and applies
        // σ_g to the two output polynomials, so the shared (hoisted) decomposition needs no
        // permutation and each rotation permutes only 2·(l+1) limbs.
        let qp = ctx.q_len() + ctx.p_len();
        let g_inv = inverse_mod_2n(g, n as u64);
        let perm = ctx.galois_perm(g_inv);
        let mut t = vec![0u64; qp * n];
        t.par_chunks_mut(n).enumerate().for_each(|(i, out)| {
            let s = sk.limb(i, n);
            for (o, &p) in out.iter_mut().zip(&perm) {
                *o = s[p as usize];
            }
        });
        let key = self.switch_key_into(&t, &sk.ntt[..ctx.q_len() * n], data);
        t.zeroize();
        key
    }

    /// The Galois key of a left rotation by `step` slots.
    pub fn rotation_key(&mut self, sk: &SecretKey, step: i64) -> Result<GaloisKey> {
        let g = self.ctx.galois_element_for_step(step);
        self.galois_key(sk, g)
    }

    /// The Galois key of complex conjugation.
    pub fn conjugation_key(&mut self, sk: &SecretKey) -> Result<GaloisKey> {
        let g = self.ctx.galois_element_conjugate();
        self.galois_key(sk, g)
    }
}

/// g^-1 mod 2N for odd g (the Galois group is (Z/2N)^*, of order N).
pub(crate) fn inverse_mod_2n(g: u64, n: u64) -> u64 {
    let m = 2 * n;
    let mut r = 1u64;
    let mut b = g % m;
    let mut e = n - 1;
    while e > 0 {
        if e & 1 == 1 {
            r = r * b % m;
        }
        b = b * b % m;
        e >>= 1;
    }
    r
}

/// A key-switching key borrowing its words (e.g. a pinned store buffer, used in place).
pub type KeySwitchKeyView<'a> = KeySwitchKey<&'a [u64]>;
