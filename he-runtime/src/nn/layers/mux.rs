//! Convolutions and pooling on multiplexed layouts: the packing that keeps a deep ImageNet
//! network dense after its strided layers (MobileNetV2, ResNet-50 at 224×224).
//!
//! **Layout** ([`Layout`] with `gap` g): every tensor stays on the fine grid of the first
//! feature map (ρ0, σ0: its row and column strides, B: its block), and after strided layers
//! the g² channels of a block fill each other's gaps (see the layout module docs). A stride-t
//! layer maps gap g to gap g·t; the number of ciphertexts shrinks with the pixel count.
//!
//! **Convolution** ([`MuxConv`], dense or depthwise, any odd kernel, stride 1 or a power of
//! two): output channel o at (block j_o, sub-position a_o, b_o) reads input channel c at
//! (j_c, a_c, b_c) through tap (dy, dx) by the rotation
//! `R = (j_c − j_o)·B + (a_c − a_o)·ρ0 + (b_c − b_o)·σ0 + g·((dy − p)·ρ0 + (dx − p)·σ0)`,
//! the same for every pixel of o (the output sits g·t fine cells apart, the input g). So
//! `y = Σ m ⊙ rot(x, R)` with masks m holding the weights at o's pixels whose source is
//! inside the image (zero padding, stride selection and channel validity all live in the mask).
//! The rotations are split as baby steps = the k² taps at gap g (hoisted, 8 keys per gap for
//! 3×3) and giant steps = the channel displacement (j, a, b), which is nested Horner-style in
//! three dimensions — blocks by B, rows by ±ρ0, columns by ±σ0 — so all giant rotations use
//! five keys for the whole network, with one key switch per displacement. A depthwise layer
//! has displacement 0 at stride 1 (just its k² masked taps) and four displacements at
//! stride 2. One level per layer.
//!
//! **Pooling** ([`MuxPool`]): global average over the H×W pixels of every channel, window
//! sums by doubling (keys: the powers of two and partial offsets of H and W times the gap
//! strides), then one mask with 1/(H·W) at each channel's base slot. A padded or strided
//! average pool is a depthwise [`MuxConv`] with uniform weights.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::linear::{babies, expand, Babies, SparseDiag, Term};
use crate::error::{Error, Result};
use crate::nn::builder::ProgramBuilder;
use crate::nn::layout::{Layout, Tensor};
use crate::nn::program::{ObjId, PlainSource};

/// The layout a client packs a C×H×W image in for the multiplexed layers: one channel per
/// block of next_pow2(H·W) slots, period = all `slots` (split over ciphertexts as needed).
pub fn mux_input_layout(channels: usize, height: usize, width: usize, slots: usize) -> Layout {
    let block = (height * width).max(1).next_power_of_two();
    Layout {
        period: slots,
        per_ct: (slots / block).max(1),
        ..Layout::image(channels, height, width)
    }
}

/// A convolution on multiplexed layouts (see the module docs): dense (`groups` 1) or
/// depthwise (`groups` = channels), square odd kernel, symmetric zero padding.
#[derive(Debug, Clone)]
pub struct MuxConv {
    /// Layer name.
    pub name: String,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size k (k×k).
    pub kernel: usize,
    /// Stride (1 or a power of two).
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Depthwise (one input channel per output channel, `in == out`).
    pub depthwise: bool,
    /// Weights `[out][in][k][k]` (`[out][1][k][k]` when depthwise), row-major.
    pub weights: Vec<f64>,
    /// Bias per output channel.
    pub bias: Option<Vec<f64>>,
}

impl MuxConv {
    /// Levels consumed.
    pub const DEPTH: usize = 1;

    /// A convolution; a typed error if the shapes do not match.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        depthwise: bool,
        weights: Vec<f64>,
        bias: Option<Vec<f64>>,
    ) -> Result<Self> {
        let c = Self {
            name: name.into(),
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            depthwise,
            weights,
            bias,
        };
        c.check()?;
        Ok(c)
    }

    /// Checks that the (public) fields are consistent.
    pub fn check(&self) -> Result<()> {
        let err = |reason: String| Error::LayerShape { layer: self.name.clone(), reason };
        let (ci, co, k) = (self.in_channels, self.out_channels, self.kernel);
        if ci == 0 || co == 0 || k == 0 || !self.stride.is_power_of_two() {
            return Err(err(format!(
                "{ci}→{co} channels, kernel {k}, stride {}: need non-zero sizes and a \
                 power-of-two stride",
                self.stride
            )));
        }
        if self.depthwise && ci != co {
            return Err(err(format!("depthwise with {ci} input and {co} output channels")));
        }
        let want = co * if self.depthwise { 1 } else { ci } * k * k;
        if self.weights.len() != want {
            return Err(err(format!("{} weights, expected {want}", self.weights.len())));
        }
        if let Some(b) = &self.bias {
            if b.len() != co {
                return Err(err(format!("{} biases for {co} channels", b.len())));
            }
        }
        Ok(())
    }

    fn w(&self, o: usize, c: usize, dy: usize, dx: usize) -> f64 {
        let k = self.kernel;
        if self.depthwise {
            if o == c {
                self.weights[(o * k + dy) * k + dx]
            } else {
                0.0
            }
        } else {
            self.weights[((o * self.in_channels + c) * k + dy) * k + dx]
        }
    }

    /// Output height and width for an H×W input.
    pub fn output_size(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        self.check()?;
        let (k, p, t) = (self.kernel, self.padding, self.stride);
        if h + 2 * p < k || w + 2 * p < k {
            return Err(Error::LayerShape {
                layer: self.name.clone(),
                reason: format!("{h}×{w} input smaller than the {k}×{k} kernel"),
            });
        }
        Ok(((h + 2 * p - k) / t + 1, (w + 2 * p - k) / t + 1))
    }

    /// The convolution in f64 on a flat `[C_in][H][W]` input, giving `[C_out][H_out][W_out]`.
    pub fn reference(&self, x: &[f64], h: usize, w: usize) -> Result<Vec<f64>> {
        let (ho, wo) = self.output_size(h, w)?;
        let (k, p, t) = (self.kernel as isize, self.padding as isize, self.stride as isize);
        let mut y = vec![0.0; self.out_channels * ho * wo];
        for o in 0..self.out_channels {
            let inputs = if self.depthwise { o..o + 1 } else { 0..self.in_channels };
            for r in 0..ho {
                for s in 0..wo {
                    let mut acc = self.bias.as_ref().map_or(0.0, |b| b[o]);
                    for c in inputs.clone() {
                        for dy in 0..k {
                            for dx in 0..k {
                                let (ir, is) = (r as isize * t + dy - p, s as isize * t + dx - p);
                                if ir < 0 || is < 0 || ir >= h as isize || is >= w as isize {
                                    continue;
                                }
                                acc += self.w(o, c, dy as usize, dx as usize)
                                    * x[(c * h + ir as usize) * w + is as usize];
                            }
                        }
                    }
                    y[(o * ho + r) * wo + s] = acc;
                }
            }
        }
        Ok(y)
    }

    /// The output layout for `input` (gap × stride, or `out_gap` for a 1×1 output, e.g. a
    /// dense layer gathering its outputs into one ciphertext).
    pub fn plan_layout(
        &self,
        input: &Layout,
        slots: usize,
        out_gap: Option<usize>,
    ) -> Result<Layout> {
        input.validate(&self.name, slots)?;
        let err = |reason: String| Error::LayerShape { layer: self.name.clone(), reason };
        if input.channels != self.in_channels {
            return Err(err(format!(
                "input has {} channels, layer expects {}",
                input.channels, self.in_channels
            )));
        }
        if input.period != slots {
            return Err(err(format!("input period {} is not all {slots} slots", input.period)));
        }
        let (ho, wo) = self.output_size(input.height, input.width)?;
        let g = input.gap.max(1);
        let natural = g * self.stride;
        let g_out = match out_gap {
            Some(go) if ho == 1 && wo == 1 && go.is_power_of_two() && go >= natural => go,
            Some(go) => {
                return Err(err(format!(
                    "output gap {go} for a {ho}×{wo} output (gap × stride = {natural})"
                )))
            }
            None => natural,
        };
        let (rho, sigma) = (input.r_stride / g, input.s_stride / g);
        let block = input.c_stride;
        let out = Layout {
            channels: self.out_channels,
            height: ho,
            width: wo,
            c_stride: block,
            r_stride: g_out * rho,
            s_stride: g_out * sigma,
            period: slots,
            per_ct: (slots / block).max(1) * g_out * g_out,
            gap: g_out,
        };
        out.validate(&self.name, slots)?;
        Ok(out)
    }

    /// Emits the convolution for `x` with the output at `out_scale`, in the layout of
    /// [`MuxConv::plan_layout`].
    pub fn compile_tensor_scaled(
        &self,
        b: &mut ProgramBuilder,
        x: &Tensor,
        out_scale: f64,
        out_gap: Option<usize>,
    ) -> Result<Tensor> {
        let slots = b.slots();
        let input = x.layout;
        let out = self.plan_layout(&input, slots, out_gap)?;
        let x0 = *x.cts.first().ok_or(Error::LayerShape {
            layer: self.name.clone(),
            reason: "input tensor has no ciphertext".into(),
        })?;
        let level = b.level(x0)?;
        if level < Self::DEPTH {
            return Err(Error::DepthExceeded {
                layer: self.name.clone(),
                needed: Self::DEPTH,
                available: level,
            });
        }
        let geo = Geometry::new(self, &input, &out);
        let me = Arc::new(self.clone());
        let pt_scale = b.prime(level)? * out_scale / b.scale(x0)?;
        // Every output group's terms first; each input's baby rotations (all the taps any
        // group needs, one hoisted decomposition) are made just before the first group that
        // reads it, so a depthwise layer keeps one input's taps live, not every input's.
        let groups: Vec<Vec<MuxTerm>> =
            (0..out.ciphertexts()).map(|go| geo.terms(self, go)).collect();
        let mut taps: BTreeMap<usize, Vec<Term>> = BTreeMap::new();
        for t in groups.iter().flatten() {
            taps.entry(t.gi).or_default().push(Term::fixed(
                t.gi,
                0,
                geo.baby(t.dy, t.dx),
                Vec::new(),
            ));
        }
        let mut bab = Babies::new();
        let mut cts = Vec::with_capacity(groups.len());
        for (go, terms) in groups.into_iter().enumerate() {
            for t in &terms {
                if let Some(ts) = taps.remove(&t.gi) {
                    bab.extend(babies(b, &x.cts, &ts)?);
                }
            }
            // Rows of equal (block, row) displacement, each summed per column displacement and
            // folded (Horner) before the next row's products, so few partial sums are live.
            let mut by_row: BTreeMap<(i64, i64), Vec<MuxTerm>> = BTreeMap::new();
            for t in terms {
                by_row.entry((t.dj, t.da)).or_default().push(t);
            }
            let mut rows: BTreeMap<i64, BTreeMap<i64, ObjId>> = BTreeMap::new();
            for ((dj, da), ts) in by_row {
                let mut cols: BTreeMap<i64, ObjId> = BTreeMap::new();
                for t in ts {
                    let x = bab.get(&(t.gi, geo.baby(t.dy, t.dx))).copied().ok_or(
                        Error::MissingObject { id: u32::MAX, reason: "baby rotation not prepared" },
                    )?;
                    let total = geo.giant(t.dj, t.da, t.db);
                    let (me, g) = (Arc::clone(&me), geo);
                    let src =
                        PlainSource::new(move || expand(&g.mask(&me, go, t), total, slots, slots));
                    let p = b.mul_values(x, src, pt_scale)?;
                    let sum = match cols.get(&t.db) {
                        Some(&acc) => b.add(acc, p)?,
                        None => p,
                    };
                    cols.insert(t.db, sum);
                }
                if let Some(s) = horner(b, &cols, geo.sigma)? {
                    rows.entry(dj).or_default().insert(da, s);
                }
            }
            let mut blocks: BTreeMap<i64, ObjId> = BTreeMap::new();
            for (dj, rs) in rows {
                if let Some(s) = horner(b, &rs, geo.rho)? {
                    blocks.insert(dj, s);
                }
            }
            let y = match horner(b, &blocks, geo.block)? {
                Some(y) => y,
                None => b.mul_const(x0, 0.0, pt_scale)?,
            };
            let mut y = b.rescale(y)?;
            if let Some(bias) = &self.bias {
                let mut one = vec![0.0; slots];
                for j in 0..out.per_ct {
                    let Some(&bv) = bias.get(go * out.per_ct + j) else { continue };
                    for r in 0..out.height {
                        for s in 0..out.width {
                            one[out.slot(j, r, s)] = bv;
                        }
                    }
                }
                y = b.add_values(y, PlainSource::values(one))?;
            }
            cts.push(y);
        }
        Tensor::new(cts, out)
    }
}

/// Σ_d rot(y_d, d·step) over signed d, nested Horner-style on each side of 0: every rotation
/// is by `step` or `−step` (two keys), one per unit of |d| up to the largest.
fn horner(
    b: &mut ProgramBuilder,
    items: &BTreeMap<i64, ObjId>,
    step: i64,
) -> Result<Option<ObjId>> {
    let mut total = items.get(&0).copied();
    for sign in [1i64, -1] {
        let mut side: Vec<(i64, ObjId)> =
            items.iter().filter(|(d, _)| d.signum() == sign).map(|(d, y)| (d.abs(), *y)).collect();
        side.sort_unstable_by_key(|(d, _)| std::cmp::Reverse(*d));
        let mut acc: Option<(ObjId, i64)> = None;
        for (m, y) in side {
            let next = match acc {
                Some((a, at)) => {
                    let mut a = a;
                    for _ in m..at {
                        a = b.rotate(a, sign * step)?;
                    }
                    b.add(a, y)?
                }
                None => y,
            };
            acc = Some((next, m));
        }
        if let Some((mut a, at)) = acc {
            for _ in 0..at {
                a = b.rotate(a, sign * step)?;
            }
            total = Some(match total {
                Some(t) => b.add(t, a)?,
                None => a,
            });
        }
    }
    Ok(total)
}

/// One product of a multiplexed convolution: input ciphertext, displacement, tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct MuxTerm {
    gi: usize,
    dj: i64,
    da: i64,
    db: i64,
    dy: usize,
    dx: usize,
}

/// The numbers a multiplexed convolution's rotations and masks are made of.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    input: Layout,
    out: Layout,
    g: i64,
    rho: i64,
    sigma: i64,
    block: i64,
    blocks: i64,
    p: i64,
}

impl Geometry {
    fn new(conv: &MuxConv, input: &Layout, out: &Layout) -> Self {
        let g = input.gap.max(1);
        Self {
            input: *input,
            out: *out,
            g: g as i64,
            rho: (input.r_stride / g) as i64,
            sigma: (input.s_stride / g) as i64,
            block: input.c_stride as i64,
            blocks: (input.period / input.c_stride).max(1) as i64,
            p: conv.padding as i64,
        }
    }

    fn baby(&self, dy: usize, dx: usize) -> i64 {
        self.g * ((dy as i64 - self.p) * self.rho + (dx as i64 - self.p) * self.sigma)
    }

    fn giant(&self, dj: i64, da: i64, db: i64) -> i64 {
        dj * self.block + da * self.rho + db * self.sigma
    }

    /// Whether tap (dy, dx) reads an input pixel for some output pixel.
    fn reaches(&self, conv: &MuxConv, dy: usize, dx: usize) -> bool {
        let t = conv.stride as i64;
        let inside = |n: usize, d: usize, lim: usize| {
            (0..n as i64).any(|r| (0..lim as i64).contains(&(r * t + d as i64 - self.p)))
        };
        inside(self.out.height, dy, self.input.height)
            && inside(self.out.width, dx, self.input.width)
    }

    /// The (output channel, input channel) pairs of output ciphertext `go`, with input
    /// ciphertext and displacement.
    fn pairs(&self, conv: &MuxConv, go: usize) -> Vec<(usize, usize, usize, i64, i64, i64)> {
        let (per_o, per_i) = (self.out.per_ct, self.input.per_ct);
        let mut v = Vec::new();
        for ol in 0..per_o {
            let o = go * per_o + ol;
            if o >= conv.out_channels {
                break;
            }
            let (jo, ao, bo) = self.out.mux_position(ol);
            let inputs = if conv.depthwise { o..o + 1 } else { 0..conv.in_channels };
            for c in inputs {
                let (gi, cl) = (c / per_i, c % per_i);
                let (jc, ac, bc) = self.input.mux_position(cl);
                let dj = (jc as i64 - jo as i64).rem_euclid(self.blocks);
                v.push((o, c, gi, dj, ac as i64 - ao as i64, bc as i64 - bo as i64));
            }
        }
        v
    }

    /// The products output ciphertext `go` needs: one per (input ciphertext, displacement,
    /// tap) with a non-zero weight, in a fixed order.
    fn terms(&self, conv: &MuxConv, go: usize) -> Vec<MuxTerm> {
        let k = conv.kernel;
        let taps: Vec<(usize, usize)> = (0..k)
            .flat_map(|dy| (0..k).map(move |dx| (dy, dx)))
            .filter(|&(dy, dx)| self.reaches(conv, dy, dx))
            .collect();
        let mut set = HashSet::new();
        for (o, c, gi, dj, da, db) in self.pairs(conv, go) {
            for &(dy, dx) in &taps {
                if conv.w(o, c, dy, dx) != 0.0 {
                    set.insert(MuxTerm { gi, dj, da, db, dy, dx });
                }
            }
        }
        let mut v: Vec<MuxTerm> = set.into_iter().collect();
        v.sort_unstable_by_key(|t| (t.dj, t.da, t.db, t.gi, t.dy, t.dx));
        v
    }

    /// The mask of term `t` of output ciphertext `go`: weight at every output pixel of each
    /// connected channel whose source pixel lies inside the image.
    fn mask(&self, conv: &MuxConv, go: usize, t: MuxTerm) -> SparseDiag {
        let (per_o, per_i) = (self.out.per_ct, self.input.per_ct);
        let (st, g_in) = (conv.stride as i64, self.g);
        let (h, w) = (self.input.height as i64, self.input.width as i64);
        let mut diag = Vec::new();
        for ol in 0..per_o {
            let o = go * per_o + ol;
            if o >= conv.out_channels {
                break;
            }
            let (jo, ao, bo) = self.out.mux_position(ol);
            let jc = (jo as i64 + t.dj).rem_euclid(self.blocks) as usize;
            let (ac, bc) = (ao as i64 + t.da, bo as i64 + t.db);
            if !(0..g_in).contains(&ac) || !(0..g_in).contains(&bc) {
                continue;
            }
            let c = t.gi * per_i + self.input.mux_channel(jc, ac as usize, bc as usize);
            if c >= conv.in_channels {
                continue;
            }
            let wv = conv.w(o, c, t.dy, t.dx);
            if wv == 0.0 {
                continue;
            }
            for r in 0..self.out.height {
                let ir = r as i64 * st + t.dy as i64 - self.p;
                if !(0..h).contains(&ir) {
                    continue;
                }
                for s in 0..self.out.width {
                    let is = s as i64 * st + t.dx as i64 - self.p;
                    if (0..w).contains(&is) {
                        diag.push((self.out.slot(ol, r, s), wv));
                    }
                }
            }
        }
        diag
    }
}

/// Global average pooling on a multiplexed layout: one value per channel, at the channel's
/// base slot (see the module docs).
#[derive(Debug, Clone)]
pub struct MuxPool {
    /// Layer name.
    pub name: String,
}

impl MuxPool {
    /// Levels consumed (the 1/(H·W) mask).
    pub const DEPTH: usize = 1;

    /// A global average pool.
    pub fn new(name: &str) -> Self {
        Self { name: name.into() }
    }

    /// Pooling in f64 on a flat `[C][H][W]` input.
    pub fn reference(&self, x: &[f64], c: usize, h: usize, w: usize) -> Vec<f64> {
        (0..c)
            .map(|ch| x[ch * h * w..(ch + 1) * h * w].iter().sum::<f64>() / (h * w) as f64)
            .collect()
    }

    /// Emits the pooling on each ciphertext.
    pub fn compile_tensor(&self, b: &mut ProgramBuilder, x: &Tensor) -> Result<Tensor> {
        let slots = b.slots();
        let input = x.layout;
        input.validate(&self.name, slots)?;
        let out = Layout { height: 1, width: 1, ..input };
        let inv = 1.0 / (input.height * input.width) as f64;
        let mut cts = Vec::with_capacity(x.cts.len());
        for (g, &ct) in x.cts.iter().enumerate() {
            let level = b.level(ct)?;
            if level < Self::DEPTH {
                return Err(Error::DepthExceeded {
                    layer: self.name.clone(),
                    needed: Self::DEPTH,
                    available: level,
                });
            }
            let acc = window_sum(b, ct, input.width, input.s_stride as i64)?;
            let acc = window_sum(b, acc, input.height, input.r_stride as i64)?;
            let mut one = vec![0.0; slots];
            let channels = out.per_ct.min(out.channels.saturating_sub(g * out.per_ct));
            for c in 0..channels {
                one[out.channel_base(c)] = inv;
            }
            let q = b.prime(level)?;
            let y = b.mul_values(acc, PlainSource::values(one), q)?;
            cts.push(b.rescale(y)?);
        }
        Tensor::new(cts, out)
    }
}

/// y[i] = Σ_{d<k} x[i + d·u]: sums of doubling width, then the set bits of k combined, so
/// the keys are u times the powers of two below k and the partial offsets of k's bits.
fn window_sum(b: &mut ProgramBuilder, x: ObjId, k: usize, u: i64) -> Result<ObjId> {
    let mut pow = vec![x];
    while (1usize << pow.len()) <= k {
        let (last, w) = (pow[pow.len() - 1], 1i64 << (pow.len() - 1));
        let r = b.rotate(last, w * u)?;
        pow.push(b.add(last, r)?);
    }
    let mut acc: Option<ObjId> = None;
    let mut off = 0i64;
    for i in (0..pow.len()).rev() {
        if k & (1 << i) == 0 {
            continue;
        }
        let part = b.rotate(pow[i], off * u)?;
        acc = Some(match acc {
            Some(a) => b.add(a, part)?,
            None => part,
        });
        off += 1 << i;
    }
    Ok(acc.unwrap_or(x))
}
