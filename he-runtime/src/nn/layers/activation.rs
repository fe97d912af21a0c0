//! Polynomial activations: square, the sigmoid Taylor polynomial, and Chebyshev approximations
//! of ReLU and SiLU, all evaluated slot-wise by one depth-optimal Chebyshev evaluator.
//!
//! Evaluation of p = Σ c_k T_k(t) of degree d at output level ℓ and scale s:
//! * Powers: T_1 = t; T_2j = 2·T_j² − 1; T_j (odd) = 2·T_a·T_{j−a} − T_{2a−j} with a the largest
//!   power of two below j, so T_j sits exactly ⌈log2 j⌉ levels below T_1. The subtracted term
//!   and the constant are folded in before the rescale (a constant product at scale
//!   s_a·s_b / s_c brings the lower term to the product's scale), so each T_j costs one
//!   relinearised product and one rescale, and only the T_j actually needed are made.
//! * Baby-step giant-step (Paterson–Stockmeyer): p = q·T_{2^k} + r with 2^k the largest power of
//!   two ≤ deg p, recursively; q is evaluated one level higher at the scale s·q_{ℓ+1}/s(T_{2^k}),
//!   so that product and rescale land exactly on (ℓ, s). A part whose degree is below the baby
//!   bound 2^⌈D/2⌉ and whose powers all sit above ℓ is evaluated directly as one sum of
//!   constant products with a single rescale.
//! * Depth: every branch respects the budget ⌈log2(d + 1)⌉, which is what the layer consumes
//!   when t = x (interval [−1, 1]) or when the map x ↦ t is free: t = αx + β is taken as a
//!   relabelling of the scale (s → s/α, which multiplies the message by α) plus a constant
//!   addition, whenever s/α is within half a bit of the nominal scale (so squarings do not
//!   drift the scale); a preceding linear layer makes that so by emitting its output at scale
//!   α·Δ ([`PolyActivation::preferred_input_scale`]). Otherwise one constant product and
//!   rescale map x to t, one extra level.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::nn::builder::ProgramBuilder;
use crate::nn::layout::single;
use crate::nn::layout::{Layout, Tensor};
use crate::nn::poly::{self, depth_for_degree, ChebPoly};
use crate::nn::program::ObjId;

/// A polynomial activation applied to every slot.
#[derive(Debug, Clone)]
pub struct PolyActivation {
    /// Layer name.
    pub name: String,
    /// The polynomial.
    pub poly: ChebPoly,
}

/// Half a bit: the largest scale drift at which the x ↦ t map is a free relabelling.
const FREE_MAP_LOG2_TOL: f64 = 0.5;

impl PolyActivation {
    /// An activation evaluating `poly`.
    pub fn new(name: &str, poly: ChebPoly) -> Self {
        Self { name: name.into(), poly }
    }

    /// The sigmoid Taylor polynomial 1/2 + x/4 − x³/48 + x⁵/480 (depth 3), expressed on the
    /// input range [a, b].
    pub fn sigmoid_taylor(name: &str, a: f64, b: f64) -> Result<Self> {
        Ok(Self::new(name, ChebPoly::from_monomial(&poly::SIGMOID_TAYLOR, a, b)?))
    }

    /// The Chebyshev interpolant of ReLU on [a, b] of the largest degree within `depth` levels.
    pub fn relu(name: &str, a: f64, b: f64, depth: usize) -> Result<Self> {
        Self::approximate(name, poly::relu, a, b, depth)
    }

    /// The Chebyshev interpolant of SiLU on [a, b] of the largest degree within `depth` levels.
    pub fn silu(name: &str, a: f64, b: f64, depth: usize) -> Result<Self> {
        Self::approximate(name, poly::silu, a, b, depth)
    }

    /// The Chebyshev interpolant of `f` on [a, b] of degree 2^depth − 1.
    pub fn approximate(
        name: &str,
        f: impl Fn(f64) -> f64,
        a: f64,
        b: f64,
        depth: usize,
    ) -> Result<Self> {
        if depth == 0 || depth > 12 {
            return Err(Error::InvalidParameter {
                name: "activation depth",
                reason: format!("depth {depth} outside 1..=12"),
            });
        }
        let mut p = ChebPoly::interpolate(f, a, b, poly::degree_for_depth(depth))?;
        p.trim(1e-15);
        Ok(Self::new(name, p))
    }

    /// The polynomial applied to each value in f64.
    pub fn reference(&self, x: &[f64]) -> Vec<f64> {
        x.iter().map(|&v| self.poly.eval(v)).collect()
    }

    /// Input scale at which the map to the Chebyshev variable is free: α·Δ.
    pub fn preferred_input_scale(&self, nominal: f64) -> f64 {
        nominal * self.poly.affine().0
    }

    fn map_is_free(&self, input_scale: f64, nominal: f64) -> bool {
        self.poly.is_unit_interval()
            || ((input_scale / self.poly.affine().0).log2() - nominal.log2()).abs()
                <= FREE_MAP_LOG2_TOL
    }

    /// Levels consumed for an input at `input_scale`: ⌈log2(d + 1)⌉, plus one when mapping
    /// x to t costs a rescale.
    pub fn depth(&self, input_scale: f64, nominal: f64) -> usize {
        self.poly.depth() + usize::from(!self.map_is_free(input_scale, nominal))
    }

    /// Emits the activation on every ciphertext of `x`; the outputs have the parameters'
    /// nominal scale.
    pub fn compile_tensor(&self, b: &mut ProgramBuilder, x: &Tensor) -> Result<Tensor> {
        let cts = x.cts.iter().map(|&c| self.compile_ct(b, c)).collect::<Result<Vec<_>>>()?;
        Tensor::new(cts, x.layout)
    }

    pub(crate) fn compile_ct(&self, b: &mut ProgramBuilder, x: ObjId) -> Result<ObjId> {
        let nominal = b.params().scale();
        let (level, s) = (b.level(x)?, b.scale(x)?);
        let needed = self.depth(s, nominal);
        if needed > level {
            return Err(Error::DepthExceeded {
                layer: self.name.clone(),
                needed,
                available: level,
            });
        }
        if self.poly.degree() == 0 {
            return Err(Error::LayerShape {
                layer: self.name.clone(),
                reason: "constant polynomial".into(),
            });
        }
        let (alpha, beta) = self.poly.affine();
        let t = if self.poly.is_unit_interval() {
            x
        } else if self.map_is_free(s, nominal) {
            // α = 2/(b − a) > 0, so the relabelled scale stays positive.
            let t = b.relabel(x, s / alpha)?;
            if beta != 0.0 {
                b.add_const(t, beta)?
            } else {
                t
            }
        } else {
            let q = b.prime(level)?;
            let m = b.mul_const(x, alpha, nominal * q / s)?;
            let t = b.rescale(m)?;
            if beta != 0.0 {
                b.add_const(t, beta)?
            } else {
                t
            }
        };
        let top = b.level(t)?;
        let depth = self.poly.depth();
        let mut ev = ChebEval::new(b, t, depth)?;
        match ev.eval(&self.poly.coeffs, top - depth, nominal)? {
            Value::Ct(y) => Ok(y),
            Value::Const(_) => Err(Error::LayerShape {
                layer: self.name.clone(),
                reason: "polynomial evaluated to a constant".into(),
            }),
        }
    }

    /// Single-ciphertext form of [`PolyActivation::compile_tensor`]: `x` in `layout`, one output
    /// ciphertext (a typed error if the output would need several).
    pub fn compile(
        &self,
        b: &mut ProgramBuilder,
        x: ObjId,
        layout: &Layout,
    ) -> Result<(ObjId, Layout)> {
        single(&self.name, self.compile_tensor(b, &Tensor::single(x, *layout))?)
    }
}

/// The square activation x², one relinearised product and rescale.
#[derive(Debug, Clone)]
pub struct Square {
    /// Layer name.
    pub name: String,
}

impl Square {
    /// Levels consumed.
    pub const DEPTH: usize = 1;

    /// A square activation.
    pub fn new(name: &str) -> Self {
        Self { name: name.into() }
    }

    /// x² in f64.
    pub fn reference(&self, x: &[f64]) -> Vec<f64> {
        x.iter().map(|v| v * v).collect()
    }

    /// Emits x² (scale s²/q_level) on every ciphertext of `x`.
    pub fn compile_tensor(&self, b: &mut ProgramBuilder, x: &Tensor) -> Result<Tensor> {
        let mut cts = Vec::with_capacity(x.cts.len());
        for &c in &x.cts {
            let level = b.level(c)?;
            if level < Self::DEPTH {
                return Err(Error::DepthExceeded {
                    layer: self.name.clone(),
                    needed: Self::DEPTH,
                    available: level,
                });
            }
            let y = b.mul_relin(c, c)?;
            cts.push(b.rescale(y)?);
        }
        Tensor::new(cts, x.layout)
    }

    /// Single-ciphertext form of [`Square::compile_tensor`]: `x` in `layout`, one output
    /// ciphertext (a typed error if the output would need several).
    pub fn compile(
        &self,
        b: &mut ProgramBuilder,
        x: ObjId,
        layout: &Layout,
    ) -> Result<(ObjId, Layout)> {
        single(&self.name, self.compile_tensor(b, &Tensor::single(x, *layout))?)
    }
}

/// A partial result: a ciphertext, or a constant not yet added anywhere.
#[derive(Debug, Clone, Copy)]
enum Value {
    Ct(ObjId),
    Const(f64),
}

/// Chebyshev evaluation state: the powers T_j made so far.
struct ChebEval<'b> {
    b: &'b mut ProgramBuilder,
    t: BTreeMap<usize, ObjId>,
    top: usize,
    baby: usize,
}

impl<'b> ChebEval<'b> {
    fn new(b: &'b mut ProgramBuilder, t1: ObjId, depth: usize) -> Result<Self> {
        let top = b.level(t1)?;
        let mut t = BTreeMap::new();
        t.insert(1, t1);
        Ok(Self { b, t, top, baby: 1 << depth.div_ceil(2) })
    }

    /// Level T_j will have: ⌈log2 j⌉ below T_1.
    fn level_of(&self, j: usize) -> usize {
        self.top - depth_for_degree(j - 1)
    }

    /// T_j, computed on first use.
    fn power(&mut self, j: usize) -> Result<ObjId> {
        if let Some(&c) = self.t.get(&j) {
            return Ok(c);
        }
        let a = if j.is_multiple_of(2) {
            j / 2
        } else {
            1 << (usize::BITS - 1 - (j - 1).leading_zeros())
        };
        let bb = j - a;
        let (ta, tb) = (self.power(a)?, self.power(bb)?);
        let lower = a - bb; // 2T_aT_b = T_j + T_{a−b}
        let tl = if lower > 0 { Some(self.power(lower)?) } else { None };
        let b = &mut *self.b;
        let level = b.level(ta)?.min(b.level(tb)?);
        let ta = b.drop_to(ta, level)?;
        let tb = b.drop_to(tb, level)?;
        let prod = b.mul_relin(ta, tb)?;
        let two = b.mul_int(prod, 2)?;
        let ps = b.scale(two)?;
        let sum = match tl {
            Some(tl) => {
                let tl = b.drop_to(tl, level)?;
                let sl = b.scale(tl)?;
                let adj = b.mul_const(tl, 1.0, ps / sl)?;
                b.sub(two, adj)?
            }
            None => two,
        };
        let mut out = b.rescale(sum)?;
        if lower == 0 {
            out = b.add_const(out, -1.0)?;
        }
        self.t.insert(j, out);
        Ok(out)
    }

    /// Σ c_k T_k at exactly (level, scale).
    fn eval(&mut self, c: &[f64], level: usize, scale: f64) -> Result<Value> {
        let deg = c.iter().rposition(|&x| x != 0.0).unwrap_or(0);
        if deg == 0 {
            return Ok(Value::Const(c.first().copied().unwrap_or(0.0)));
        }
        let direct = deg < self.baby && (1..=deg).all(|j| c[j] == 0.0 || self.level_of(j) > level);
        if direct {
            let q = self.b.prime(level + 1)?;
            let mut terms = Vec::new();
            for (j, &cj) in c.iter().enumerate().skip(1).take(deg) {
                if cj == 0.0 {
                    continue;
                }
                let tj = self.power(j)?;
                let tj = self.b.drop_to(tj, level + 1)?;
                let sj = self.b.scale(tj)?;
                terms.push(self.b.mul_const(tj, cj, scale * q / sj)?);
            }
            let sum = self.b.sum(&terms)?.ok_or(Error::InvalidParameter {
                name: "polynomial",
                reason: "no non-zero term".into(),
            })?;
            let mut out = self.b.rescale(sum)?;
            if c[0] != 0.0 {
                out = self.b.add_const(out, c[0])?;
            }
            return Ok(Value::Ct(out));
        }
        // p = q·T_g + r with g = 2^k ≤ deg: c_i T_i = 2c_i T_{i−g} T_g − c_i T_{2g−i} (i > g).
        let g = 1usize << (usize::BITS - 1 - deg.leading_zeros());
        let mut qc = vec![0.0; deg - g + 1];
        let mut rc = c[..g].to_vec();
        qc[0] = c[g];
        for i in g + 1..=deg {
            qc[i - g] = 2.0 * c[i];
            rc[2 * g - i] -= c[i];
        }
        let tg = self.power(g)?;
        let tg = self.b.drop_to(tg, level + 1)?;
        let sg = self.b.scale(tg)?;
        let q = self.b.prime(level + 1)?;
        let prod = match self.eval(&qc, level + 1, scale * q / sg)? {
            Value::Ct(qct) => {
                let qct = self.b.drop_to(qct, level + 1)?;
                self.b.mul_relin(qct, tg)?
            }
            Value::Const(k) => self.b.mul_const(tg, k, scale * q / sg)?,
        };
        let prod = self.b.rescale(prod)?;
        Ok(Value::Ct(match self.eval(&rc, level, scale)? {
            Value::Ct(r) => {
                let r = self.b.drop_to(r, level)?;
                self.b.add(prod, r)?
            }
            Value::Const(k) if k != 0.0 => self.b.add_const(prod, k)?,
            Value::Const(_) => prod,
        }))
    }
}
