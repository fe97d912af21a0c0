//! Hybrid key switching: ModUp of each digit of a polynomial (the hoistable part), the inner
//! product with a key (optionally under a Galois permutation), and ModDown by P.

use rayon::prelude::*;

use super::context::Context;
use super::keys::KeySwitchKey;
use super::ring::{mul_shoup, sub_mod};

/// Reusable buffers for key switching at any level of one parameter set.
#[derive(Debug)]
pub struct Scratch {
    /// Coefficient form of the polynomial being decomposed, (L+1) limbs.
    pub(crate) coeff: Vec<u64>,
    /// Basis-extension staging, max(α, K) limbs.
    pub(crate) y: Vec<u64>,
    /// Inner-product accumulators, 2·(L+1+K) limbs.
    pub(crate) acc: Vec<u64>,
    /// ModDown staging, (L+1) limbs.
    pub(crate) md: Vec<u64>,
    /// Basis-extension overflow counts, one limb.
    pub(crate) v: Vec<u64>,
    /// The decomposition of the last operand, dnum·(L+1+K) limbs.
    pub(crate) dec: Vec<u64>,
}

impl Scratch {
    /// Buffers sized for `ctx` at its top level.
    pub fn new(ctx: &Context) -> Self {
        let n = ctx.n();
        let l1 = ctx.q_len();
        let k = ctx.p_len();
        let alpha = ctx.params().alpha();
        let dnum = ctx.params().dnum();
        Self {
            coeff: vec![0; l1 * n],
            y: vec![0; alpha.max(k) * n],
            acc: vec![0; 2 * (l1 + k) * n],
            md: vec![0; l1 * n],
            v: vec![0; n],
            dec: vec![0; dnum * (l1 + k) * n],
        }
    }
}

/// Global prime index of position `pos` in a level-`level` extended basis (Q_l then P).
#[inline]
pub(crate) fn qp_prime(ctx: &Context, level: usize, pos: usize) -> usize {
    if pos <= level {
        pos
    } else {
        ctx.q_len() + pos - (level + 1)
    }
}

/// ModUp of every digit of `d` (NTT form, level+1 limbs) into `out`: digits·(level+1+K) limbs
/// in NTT form. Uses `coeff` and `y` as staging.
pub(crate) fn decompose(
    ctx: &Context,
    level: usize,
    d: &[u64],
    coeff: &mut [u64],
    y: &mut [u64],
    v: &mut [u64],
    out: &mut [u64],
) {
    let n = ctx.n();
    let l1 = level + 1;
    let width = l1 + ctx.p_len();
    let coeff = &mut coeff[..l1 * n];
    coeff.copy_from_slice(&d[..l1 * n]);
    coeff.par_chunks_mut(n).enumerate().for_each(|(i, limb)| ctx.prime(i).intt(limb));
    for (j, plan) in ctx.modup(level).iter().enumerate() {
        let dig = plan.digit.clone();
        let y = &mut y[..dig.len() * n];
        y.par_chunks_mut(n).enumerate().for_each(|(ii, yl)| {
            let i = dig.start + ii;
            plan.ext.prepare_limb(ii, &coeff[i * n..(i + 1) * n], yl);
        });
        let y = &*y;
        let v = &mut v[..n];
        plan.ext.overflow(y, v);
        let v = &*v;
        let outj = &mut out[j * width * n..(j + 1) * width * n];
        outj.par_chunks_mut(n).enumerate().for_each(|(pos, limb)| {
            if dig.contains(&pos) {
                limb.copy_from_slice(&d[pos * n..(pos + 1) * n]);
            } else {
                let t = if pos < dig.start { pos } else { pos - dig.len() };
                let p = ctx.prime(qp_prime(ctx, level, pos));
                plan.ext.extend_limb(t, y, v, limb);
                p.ntt(limb);
            }
        });
    }
}

/// acc = Σ_j dec_j ⊙ key_j (both parts), with dec_j read through the Galois permutation
/// `perm` if given. `acc` holds 2·(level+1+K) limbs: part b then part a.
pub(crate) fn inner_product<K: AsRef<[u64]>>(
    ctx: &Context,
    level: usize,
    dec: &[u64],
    key: &KeySwitchKey<K>,
    perm: Option<&[u32]>,
    acc: &mut [u64],
) {
    let n = ctx.n();
    let width = level + 1 + ctx.p_len();
    let qp = ctx.q_len() + ctx.p_len();
    let digits = ctx.params().digits_at(level);
    let (acc0, acc1) = acc[..2 * width * n].split_at_mut(width * n);
    let kd: &[u64] = key.data.as_ref();
    let klimb = |j: usize, p: usize, i: usize| {
        let off = ((j * 2 + p) * qp + i) * n;
        &kd[off..off + n]
    };
    acc0.par_chunks_mut(n).zip(acc1.par_chunks_mut(n)).enumerate().for_each(|(pos, (o0, o1))| {
        let gi = qp_prime(ctx, level, pos);
        let p = ctx.prime(gi);
        const CH: usize = 128;
        let mut s0 = [0u128; CH];
        let mut s1 = [0u128; CH];
        for start in (0..n).step_by(CH) {
            let len = CH.min(n - start);
            s0[..len].iter_mut().for_each(|v| *v = 0);
            s1[..len].iter_mut().for_each(|v| *v = 0);
            for j in 0..digits {
                let dl = &dec[(j * width + pos) * n..(j * width + pos + 1) * n];
                let kb = &klimb(j, 0, gi)[start..start + len];
                let ka = &klimb(j, 1, gi)[start..start + len];
                match perm {
                    None => {
                        let dl = &dl[start..start + len];
                        for c in 0..len {
                            let x = dl[c] as u128;
                            s0[c] += x * kb[c] as u128;
                            s1[c] += x * ka[c] as u128;
                        }
                    }
                    Some(perm) => {
                        let pm = &perm[start..start + len];
                        for c in 0..len {
                            let x = dl[pm[c] as usize] as u128;
                            s0[c] += x * kb[c] as u128;
                            s1[c] += x * ka[c] as u128;
                        }
                    }
                }
                // Fold before 32 products of 61-bit values could overflow 128 bits.
                if j % 32 == 31 {
                    for c in 0..len {
                        s0[c] = p.reduce_u128(s0[c]) as u128;
                        s1[c] = p.reduce_u128(s1[c]) as u128;
                    }
                }
            }
            for c in 0..len {
                o0[start + c] = p.reduce_u128(s0[c]);
                o1[start + c] = p.reduce_u128(s1[c]);
            }
        }
    });
}

/// out (level+1 limbs, NTT) = (acc − ModUp_P→Q(acc mod P))·P^-1, added to `out` if `add`.
/// `acc` holds level+1+K limbs (its P limbs are overwritten).
pub(crate) fn mod_down(
    ctx: &Context,
    level: usize,
    acc: &mut [u64],
    y: &mut [u64],
    v: &mut [u64],
    md: &mut [u64],
    out: &mut [u64],
    add: bool,
) {
    let n = ctx.n();
    let l1 = level + 1;
    let k = ctx.p_len();
    let plan = ctx.moddown(level);
    let (acc_q, acc_p) = acc[..(l1 + k) * n].split_at_mut(l1 * n);
    let y = &mut y[..k * n];
    acc_p.par_chunks_mut(n).zip(y.par_chunks_mut(n)).enumerate().for_each(|(t, (limb, yl))| {
        let p = ctx.prime(ctx.q_len() + t);
        p.intt(limb);
        plan.ext.prepare_limb(t, limb, yl);
    });
    let y = &*y;
    let v = &mut v[..n];
    plan.ext.overflow(y, v);
    let v = &*v;
    let md = &mut md[..l1 * n];
    md.par_chunks_mut(n)
        .zip(out[..l1 * n].par_chunks_mut(n))
        .zip(acc_q.par_chunks(n))
        .enumerate()
        .for_each(|(i, ((tmp, o), a))| {
            let p = ctx.prime(i);
            plan.ext.extend_limb(i, y, v, tmp);
            p.ntt(tmp);
            let (w, ws) = plan.p_inv[i];
            for c in 0..n {
                let v = mul_shoup(sub_mod(a[c], tmp[c], p.q), w, ws, p.q);
                o[c] = if add { super::ring::add_mod(o[c], v, p.q) } else { v };
            }
        });
}
