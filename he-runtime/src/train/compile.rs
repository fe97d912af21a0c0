//! Compiles a training run into an nn [`Program`]: one straight-line list of CKKS ops, so the
//! in-memory interpreter, the store-backed executor and plan mode all run it unchanged.
//!
//! Scales are exact: the weights keep the input scale Δ for the whole run, and every gradient
//! term is made to land on it by the encoding scale of the constant product that folds its
//! scalar into the data (`scaled`), so no addition ever needs a scale-matching product.

use std::ops::Range;

use super::config::{Optimizer, Task, TrainConfig};
use super::packing::Packing;
use crate::ckks::Params;
use crate::error::{Error, Result};
use crate::nn::{ObjId, Program, ProgramBuilder};

/// A compiled training run.
#[derive(Debug)]
pub struct TrainProgram {
    /// The ops.
    pub program: Program,
    /// Where the samples sit.
    pub packing: Packing,
    /// What it trains.
    pub config: TrainConfig,
    /// Ops of the setup (doubling the rows, the label sums) and of each iteration, in order;
    /// the last range computes the final weights' margins.
    pub phases: Vec<Range<usize>>,
}

impl TrainProgram {
    /// Name of the input ciphertext holding data ciphertext `c` (`z{c}`), and of the targets
    /// (`y{c}`, linreg only).
    pub fn input_names(&self) -> Vec<String> {
        let c = self.packing.cts;
        let mut v: Vec<String> = (0..c).map(|i| format!("z{i}")).collect();
        if self.config.task == Task::LinReg {
            v.extend((0..c).map(|i| format!("y{i}")));
        }
        v
    }

    /// Name of the output holding the residuals (linreg) or margins (logreg) of data
    /// ciphertext `c` at the weights of iteration `t` (0..=K).
    pub fn margins_name(t: usize, c: usize) -> String {
        format!("m{t}.{c}")
    }

    /// Name of the output holding the final weights, `[w, w]` replicated over every row.
    pub const WEIGHTS: &'static str = "w";
}

/// Sum of `x` rotated by every step (each step doubling the window).
fn rotsum(b: &mut ProgramBuilder, mut x: ObjId, steps: &[i64]) -> Result<ObjId> {
    for &s in steps {
        let r = b.rotate(x, s)?;
        x = b.add(x, r)?;
    }
    Ok(x)
}

/// `value`·src at (`level`, exactly `scale`): a constant product one level above, whose
/// encoding scale makes the rescaled result land on `scale`.
fn scaled(
    b: &mut ProgramBuilder,
    src: ObjId,
    value: f64,
    level: usize,
    scale: f64,
) -> Result<ObjId> {
    let x = b.drop_to(src, level + 1)?;
    let enc = scale * b.prime(level + 1)? / b.scale(x)?;
    let y = b.mul_const(x, value, enc)?;
    b.rescale(y)
}

/// relin(a·b) rescaled, after dropping the higher operand to the lower one's level.
fn product(b: &mut ProgramBuilder, x: ObjId, y: ObjId) -> Result<ObjId> {
    let l = b.level(x)?.min(b.level(y)?);
    let (x, y) = (b.drop_to(x, l)?, b.drop_to(y, l)?);
    let p = b.mul_relin(x, y)?;
    b.rescale(p)
}

/// The per-sample inner products w·z, valid in the first half + 1 slots of every row.
fn margins(b: &mut ProgramBuilder, doubled: &[ObjId], w: ObjId, p: &Packing) -> Result<Vec<ObjId>> {
    doubled
        .iter()
        .map(|&zd| {
            let prod = product(b, zd, w)?;
            rotsum(b, prod, &p.feature_steps())
        })
        .collect()
}

/// Compiles `cfg` for `samples` samples of `width` values (features + bias) under `params`.
pub fn compile(
    params: &Params,
    cfg: &TrainConfig,
    samples: usize,
    width: usize,
) -> Result<TrainProgram> {
    cfg.check(params.max_level())?;
    let packing = Packing::new(samples, width, params.slots())?;
    let n = samples as f64;
    let top = params.max_level();
    let delta = params.scale();
    let half = packing.half as i64;
    let linreg = cfg.task == Task::LinReg;
    let mut b = ProgramBuilder::new(params);
    let mut boundaries = vec![0usize];
    let ops_so_far = |b: &ProgramBuilder| b.op_count();

    b.begin_layer("setup");
    let z: Vec<ObjId> =
        (0..packing.cts).map(|c| b.input(&format!("z{c}"), top, delta)).collect::<Result<_>>()?;
    let y: Vec<ObjId> = if linreg {
        (0..packing.cts).map(|c| b.input(&format!("y{c}"), top, delta)).collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    let doubled: Vec<ObjId> = z
        .iter()
        .map(|&zc| {
            let r = b.rotate(zc, -half)?;
            b.add(zc, r)
        })
        .collect::<Result<_>>()?;
    // Σ_i z_i, for the constant term of the sigmoid polynomial (it does not depend on w).
    let zsum = match (linreg, b.sum(&z)?) {
        (false, Some(s)) => Some(rotsum(&mut b, s, &packing.row_steps())?),
        _ => None,
    };
    // Zero weights at (top, Δ): the weights keep the scale Δ for the whole run.
    let mut w = b.mul_int(doubled[0], 0)?;
    let sw = delta;
    let mut prev: Option<(ObjId, ObjId, f64)> = None;
    boundaries.push(ops_so_far(&b));

    let d = cfg.task.depth_per_iter();
    let mut outputs: Vec<(String, ObjId)> = Vec::new();
    for t in 0..=cfg.iters {
        b.begin_layer(&if t < cfg.iters { format!("iteration {t}") } else { "final".into() });
        let l = b.level(w)?;
        if l < 1 || (t < cfg.iters && l < d) {
            return Err(Error::LevelExhausted { level: l, needed: d });
        }
        let u = margins(&mut b, &doubled, w, &packing)?;
        let su = b.scale(u[0])?;
        // Residuals (linreg) or margins (logreg), per data ciphertext.
        let m: Vec<ObjId> = if linreg {
            u.iter()
                .zip(&y)
                .map(|(&uc, &yc)| {
                    let ya = b.adjust(yc, l - 1, su)?;
                    b.sub(uc, ya)
                })
                .collect::<Result<_>>()?
        } else {
            u.clone()
        };
        for (c, &mc) in m.iter().enumerate() {
            let small = b.drop_to(mc, 0)?;
            outputs.push((TrainProgram::margins_name(t, c), small));
        }
        if t == cfg.iters {
            break;
        }
        let mu = cfg.optimizer.momentum(t);
        let kappa = cfg.lr * (1.0 + mu) / n;
        let bottom = l - d;
        let q1 = b.prime(l - 1)?;
        let mut grads = Vec::with_capacity(m.len());
        for (c, &mc) in m.iter().enumerate() {
            let terms = match cfg.task {
                // −κ Σ r_i x̃_i.
                Task::LinReg => {
                    let zk = scaled(&mut b, z[c], -kappa, l - 1, sw * q1 / su)?;
                    vec![product(&mut b, mc, zk)?]
                }
                // κ Σ σ(−u_i) z_i with σ(−u) = c₀ − c₁u − c₃u³ − c₅u⁵; the c₀ term is added
                // after the row sum (from Σ z_i).
                Task::LogReg(s) => {
                    let [_, c1, c3, c5] = s.coeffs();
                    let z1 = scaled(&mut b, z[c], -kappa * c1, l - 1, sw * q1 / su)?;
                    let mut terms = vec![product(&mut b, mc, z1)?];
                    let u2 = product(&mut b, mc, mc)?;
                    let s_a3 = sw * b.prime(l - 2)? / b.scale(u2)?;
                    let z3 = scaled(&mut b, z[c], -kappa * c3, l - 1, s_a3 * q1 / su)?;
                    let a3 = product(&mut b, mc, z3)?;
                    terms.push(product(&mut b, u2, a3)?);
                    if s.degree() >= 5 {
                        let u4 = product(&mut b, u2, u2)?;
                        let s_a5 = sw * b.prime(l - 3)? / b.scale(u4)?;
                        let z5 = scaled(&mut b, z[c], -kappa * c5, l - 1, s_a5 * q1 / su)?;
                        let a5 = product(&mut b, mc, z5)?;
                        terms.push(product(&mut b, u4, a5)?);
                    }
                    terms
                }
            };
            let dropped: Vec<ObjId> =
                terms.iter().map(|&x| b.drop_to(x, bottom)).collect::<Result<_>>()?;
            grads.extend(dropped);
        }
        let g = b.sum(&grads)?.ok_or(Error::TrainData { reason: "no data ciphertexts".into() })?;
        let mut g = rotsum(&mut b, g, &packing.row_steps())?;
        if let (Some(zs), Task::LogReg(s)) = (zsum, cfg.task) {
            let t0 = scaled(&mut b, zs, kappa * s.coeffs()[0], bottom, sw)?;
            g = b.add(g, t0)?;
        }
        let r = b.rotate(g, -half)?;
        let step = b.add(g, r)?;
        // Nesterov folded: w_{t+1} = (1+μ_t)w_t + S_t − μ_t w_{t−1} − μ_t/(1+μ_{t−1}) S_{t−1},
        // S_t = (1+μ_t)·γ·(gradient step); every constant product starts one level above the
        // bottom, off the critical path.
        let next = match (cfg.optimizer, prev) {
            (Optimizer::Nesterov, Some((w_prev, s_prev, mu_prev))) if mu != 0.0 => {
                let a = scaled(&mut b, w, 1.0 + mu, bottom, sw)?;
                let cw = scaled(&mut b, w_prev, mu, bottom, sw)?;
                let cs = scaled(&mut b, s_prev, mu / (1.0 + mu_prev), bottom, sw)?;
                let x = b.add(a, step)?;
                let x = b.sub(x, cw)?;
                b.sub(x, cs)?
            }
            _ => {
                let wd = b.drop_to(w, bottom)?;
                b.add(wd, step)?
            }
        };
        prev = Some((w, step, mu));
        w = next;
        boundaries.push(ops_so_far(&b));
    }
    let wf = b.drop_to(w, 0)?;
    boundaries.push(ops_so_far(&b));
    for (name, id) in outputs {
        b.output(&name, id)?;
    }
    b.output(TrainProgram::WEIGHTS, wf)?;
    let phases = boundaries.windows(2).map(|p| p[0]..p[1]).collect();
    Ok(TrainProgram { program: b.finish(), packing, config: *cfg, phases })
}
