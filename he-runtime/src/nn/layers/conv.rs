//! Encrypted 2-D convolution with channel packing.
//!
//! Packing: the input is a C_in×H×W image in a [`Layout`] — channel c in the slot block
//! starting at c·B (B = `c_stride`), pixel (r, s) at offset r·ρ + s·σ inside it (ρ = `r_stride`,
//! σ = `s_stride`; a fresh image has ρ = W, σ = 1, B = next_pow2(H·W)). With
//! C' = next_pow2(max(C_in, C_out)) the layer works on the period P = C'·B: output channel o
//! is computed in block o from input block (o + δ) mod C' for every channel shift δ < C'.
//!
//! Output pixel (r, s) is computed *in place* at the slot of input pixel (r·t, s·t) (t the
//! stride) of block o, so
//! `y = Σ_δ Σ_(dy,dx) m_{δ,dy,dx} ⊙ rot(x, δ·B + (dy − p)·ρ + (dx − p)·σ)`
//! where the mask m holds `K[o][(o+δ) mod C'][dy][dx]` at the output slots whose source pixel
//! (r·t + dy − p, s·t + dx − p) lies inside the image, and zero elsewhere (zero padding,
//! stride selection and channel validity all live in the mask). The rotations are split as
//! baby steps = the k² kernel offsets (hoisted: one decomposition of x) and giant steps = the
//! C' − 1 channel shifts δ·B, with the masks pre-rotated by −δ·B: k² − 1 + C' − 1 rotations
//! and keys, C'·k² weight plaintexts, one level. A stride leaves the output on the input grid
//! with strides t·ρ, t·σ (no compaction); the following layers read that layout directly.
//!
//! Tensors split over several ciphertexts (K = N/(2B) channels each): output group g_o sums,
//! over every input ciphertext g_i, the same masked kernel-offset/channel-shift terms (output
//! block j reads block (j + δ) mod K of g_i); the baby rotations of each input ciphertext are
//! made once and shared by all output groups, the giant rotations are per output group.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::linear::{babies, bsgs, SparseDiag, Term};
use crate::error::{Error, Result};
use crate::nn::builder::ProgramBuilder;
use crate::nn::layout::single;
use crate::nn::layout::{Layout, Tensor};
use crate::nn::program::{ObjId, PlainSource};

/// A 2-D convolution with square kernels, zero padding and a stride.
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// Layer name.
    pub name: String,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size k (k×k).
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Weights `[out][in][k][k]`, row-major.
    pub weights: Vec<f64>,
    /// Bias per output channel.
    pub bias: Option<Vec<f64>>,
}

impl Conv2d {
    /// Levels consumed.
    pub const DEPTH: usize = 1;

    /// A convolution; a typed error if the weight or bias length does not match.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
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
        if ci == 0 || co == 0 || k == 0 || self.stride == 0 {
            return Err(err("zero channels, kernel or stride".into()));
        }
        let want = co * ci * k * k;
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
        self.weights[((o * self.in_channels + c) * k + dy) * k + dx]
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
            for r in 0..ho {
                for s in 0..wo {
                    let mut acc = self.bias.as_ref().map_or(0.0, |b| b[o]);
                    for c in 0..self.in_channels {
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

    /// The output layout for `input`, checking that the packing works.
    pub fn plan_layout(&self, input: &Layout, slots: usize) -> Result<Layout> {
        input.validate(&self.name, slots)?;
        let err = |reason: String| Error::LayerShape { layer: self.name.clone(), reason };
        if input.channels != self.in_channels {
            return Err(err(format!(
                "input has {} channels, layer expects {}",
                input.channels, self.in_channels
            )));
        }
        if input.gap != 1 {
            return Err(err("a multiplexed input needs MuxConv".into()));
        }
        let (ho, wo) = self.output_size(input.height, input.width)?;
        // Output (r, s) sits on input pixel (r·t, s·t), which must exist.
        if (ho - 1) * self.stride >= input.height || (wo - 1) * self.stride >= input.width {
            return Err(err(format!(
                "padding {} too large for in-place output (kernel {})",
                self.padding, self.kernel
            )));
        }
        let block = input.c_stride;
        if block > slots || !block.is_power_of_two() || !input.period.is_multiple_of(block) {
            return Err(Error::LayoutTooLarge { layer: self.name.clone(), needed: block, slots });
        }
        let k_in = input.period / block;
        let k = k_in.max(self.out_channels.next_power_of_two()).min(slots / block);
        let per_ct = if self.out_channels <= k { self.out_channels } else { k };
        Ok(Layout {
            channels: self.out_channels,
            height: ho,
            width: wo,
            c_stride: block,
            r_stride: input.r_stride * self.stride,
            s_stride: input.s_stride * self.stride,
            period: k * block,
            per_ct,
            gap: 1,
        })
    }

    /// Emits the convolution for `x`; the output keeps the input's scale.
    pub fn compile_tensor(&self, b: &mut ProgramBuilder, x: &Tensor) -> Result<Tensor> {
        let s = b.scale(x.cts[0])?;
        self.compile_tensor_scaled(b, x, s)
    }

    /// As [`Conv2d::compile_tensor`] with the output at `out_scale`.
    pub fn compile_tensor_scaled(
        &self,
        b: &mut ProgramBuilder,
        x: &Tensor,
        out_scale: f64,
    ) -> Result<Tensor> {
        let slots = b.slots();
        let input = &x.layout;
        let out = self.plan_layout(input, slots)?;
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
        let period = out.period;
        let kb = period / input.c_stride;
        let (k, p) = (self.kernel, self.padding as isize);
        let per_in = input.per_ct;
        // Masks are generated on demand from the shared weights (a full-size plan never holds
        // them); a term exists when some (output, input) channel pair has a non-zero weight and
        // the kernel offset reaches some pixel of the image.
        let me = Arc::new(self.clone());
        let mut groups: Vec<Vec<Term>> = Vec::new();
        for go in 0..out.ciphertexts() {
            let mut terms = Vec::new();
            for gi in 0..input.ciphertexts() {
                for delta in 0..kb {
                    for dy in 0..k {
                        for dx in 0..k {
                            let geo = ConvTerm { go, gi, delta, dy, dx, kb, per_in, out };
                            if !geo.reaches_image(&me, input) || !geo.has_weight(&me) {
                                continue;
                            }
                            let off = (dy as isize - p) * input.r_stride as isize
                                + (dx as isize - p) * input.s_stride as isize;
                            let (me, inl) = (Arc::clone(&me), *input);
                            terms.push(Term {
                                input: gi,
                                giant: (delta * input.c_stride) as i64,
                                baby: off as i64,
                                diag: Arc::new(move || geo.mask(&me, &inl)),
                            });
                        }
                    }
                }
            }
            groups.push(terms);
        }
        let pt_scale = b.prime(level)? * out_scale / b.scale(x0)?;
        let all: Vec<Term> = groups.iter().flatten().cloned().collect();
        let bab = babies(b, &x.cts, &all)?;
        let mut cts = Vec::with_capacity(groups.len());
        for (go, terms) in groups.into_iter().enumerate() {
            let y = match bsgs(b, &bab, period, terms, pt_scale)? {
                Some(y) => y,
                None => b.mul_const(x0, 0.0, pt_scale)?,
            };
            let mut y = b.rescale(y)?;
            if let Some(bias) = &self.bias {
                let mut one = vec![0.0; period];
                for j in 0..out.per_ct {
                    let Some(&bv) = bias.get(go * out.per_ct + j) else { continue };
                    for r in 0..out.height {
                        for s in 0..out.width {
                            one[out.slot(j, r, s)] = bv;
                        }
                    }
                }
                let src =
                    PlainSource::new(move || one.iter().copied().cycle().take(slots).collect());
                y = b.add_values(y, src)?;
            }
            cts.push(y);
        }
        Tensor::new(cts, out)
    }

    /// Single-ciphertext form of [`Conv2d::compile_tensor`]: `x` in `layout`, one output
    /// ciphertext (a typed error if the output would need several).
    pub fn compile(
        &self,
        b: &mut ProgramBuilder,
        x: ObjId,
        layout: &Layout,
    ) -> Result<(ObjId, Layout)> {
        single(&self.name, self.compile_tensor(b, &Tensor::single(x, *layout))?)
    }

    /// Single-ciphertext form of [`Conv2d::compile_tensor_scaled`].
    pub fn compile_scaled(
        &self,
        b: &mut ProgramBuilder,
        x: ObjId,
        layout: &Layout,
        out_scale: f64,
    ) -> Result<(ObjId, Layout)> {
        single(&self.name, self.compile_tensor_scaled(b, &Tensor::single(x, *layout), out_scale)?)
    }
}

/// Geometry of one convolution term: output group, input group, channel shift and offset.
#[derive(Debug, Clone, Copy)]
struct ConvTerm {
    go: usize,
    gi: usize,
    delta: usize,
    dy: usize,
    dx: usize,
    kb: usize,
    per_in: usize,
    out: Layout,
}

impl ConvTerm {
    /// (output block j, output channel, input channel) triples this term connects.
    fn pairs(&self, conv: &Conv2d) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let (in_c, out_c) = (conv.in_channels, conv.out_channels);
        (0..self.kb.min(self.out.per_ct)).filter_map(move |j| {
            let o = self.go * self.out.per_ct + j;
            let cl = (j + self.delta) % self.kb;
            let c = self.gi * self.per_in + cl;
            (o < out_c && cl < self.per_in && c < in_c).then_some((j, o, c))
        })
    }

    /// Whether some output pixel's source pixel for this offset lies inside the image.
    fn reaches_image(&self, conv: &Conv2d, input: &Layout) -> bool {
        let (t, p) = (conv.stride as isize, conv.padding as isize);
        let inside = |n: usize, d: usize, lim: usize| {
            (0..n as isize).any(|r| (0..lim as isize).contains(&(r * t + d as isize - p)))
        };
        inside(self.out.height, self.dy, input.height)
            && inside(self.out.width, self.dx, input.width)
    }

    /// Whether some connected channel pair has a non-zero weight at this tap.
    fn has_weight(&self, conv: &Conv2d) -> bool {
        self.pairs(conv).any(|(_, o, c)| conv.w(o, c, self.dy, self.dx) != 0.0)
    }

    /// The mask: weight K[o][c][dy][dx] at every output slot whose source pixel is inside.
    fn mask(&self, conv: &Conv2d, input: &Layout) -> SparseDiag {
        let (t, p) = (conv.stride as isize, conv.padding as isize);
        let (h, w) = (input.height as isize, input.width as isize);
        let mut diag = Vec::new();
        for (j, o, c) in self.pairs(conv) {
            let wv = conv.w(o, c, self.dy, self.dx);
            if wv == 0.0 {
                continue;
            }
            for r in 0..self.out.height {
                let ir = r as isize * t + self.dy as isize - p;
                if ir < 0 || ir >= h {
                    continue;
                }
                for s in 0..self.out.width {
                    let is = s as isize * t + self.dx as isize - p;
                    if is >= 0 && is < w {
                        diag.push((self.out.slot(j, r, s), wv));
                    }
                }
            }
        }
        diag
    }
}

/// Average pooling over kh×kw windows with a stride, without padding.
#[derive(Debug, Clone)]
pub struct AvgPool2d {
    /// Layer name.
    pub name: String,
    /// Window height.
    pub kh: usize,
    /// Window width.
    pub kw: usize,
    /// Stride.
    pub stride: usize,
}

impl AvgPool2d {
    /// Levels consumed (the 1/(kh·kw) mask).
    pub const DEPTH: usize = 1;

    /// A k×k pooling with stride `stride`.
    pub fn new(name: &str, kernel: usize, stride: usize) -> Self {
        Self { name: name.into(), kh: kernel, kw: kernel, stride: stride.max(1) }
    }

    /// Global average pooling of an h×w image (one value per channel).
    pub fn global(name: &str, h: usize, w: usize) -> Self {
        Self { name: name.into(), kh: h, kw: w, stride: h.max(w).max(1) }
    }

    pub(crate) fn out_size(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        if self.kh == 0 || self.kw == 0 || self.kh > h || self.kw > w {
            return Err(Error::LayerShape {
                layer: self.name.clone(),
                reason: format!("{}×{} window on a {h}×{w} image", self.kh, self.kw),
            });
        }
        Ok(((h - self.kh) / self.stride + 1, (w - self.kw) / self.stride + 1))
    }

    /// Pooling in f64 on a flat `[C][H][W]` input.
    pub fn reference(&self, x: &[f64], c: usize, h: usize, w: usize) -> Result<Vec<f64>> {
        let (ho, wo) = self.out_size(h, w)?;
        let mut y = Vec::with_capacity(c * ho * wo);
        let inv = 1.0 / (self.kh * self.kw) as f64;
        for ch in 0..c {
            for r in 0..ho {
                for s in 0..wo {
                    let mut acc = 0.0;
                    for dy in 0..self.kh {
                        for dx in 0..self.kw {
                            acc += x[(ch * h + r * self.stride + dy) * w + s * self.stride + dx];
                        }
                    }
                    y.push(acc * inv);
                }
            }
        }
        Ok(y)
    }

    /// Emits the pooling on each ciphertext: log2 k rotate-and-add steps per axis for a
    /// power-of-two window k (k − 1 hoisted rotations summed otherwise), then
    /// a mask carrying 1/(kh·kw) at the output slots (the input grid with strides × stride).
    pub fn compile_tensor(&self, b: &mut ProgramBuilder, x: &Tensor) -> Result<Tensor> {
        let slots = b.slots();
        let input = &x.layout;
        input.validate(&self.name, slots)?;
        let (ho, wo) = self.out_size(input.height, input.width)?;
        let out = Layout {
            height: ho,
            width: wo,
            r_stride: input.r_stride * self.stride,
            s_stride: input.s_stride * self.stride,
            ..*input
        };
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
            let mut acc = ct;
            for (k, stride) in [(self.kw, input.s_stride), (self.kh, input.r_stride)] {
                if k > 1 && k.is_power_of_two() {
                    // Window sums doubling in width: log2 k rotations and keys.
                    let mut width = 1;
                    while width < k {
                        let r = b.rotate(acc, (width * stride) as i64)?;
                        acc = b.add(acc, r)?;
                        width *= 2;
                    }
                } else if k > 1 {
                    let steps: Vec<i64> = (0..k).map(|d| (d * stride) as i64).collect();
                    let rots = b.rotate_hoisted(acc, &steps)?;
                    acc = b.sum(&rots)?.unwrap_or(acc);
                }
            }
            let mut mask = BTreeMap::new();
            let channels = out.per_ct.min(out.channels - g * out.per_ct);
            for c in 0..channels {
                for r in 0..ho {
                    for s in 0..wo {
                        mask.insert(out.slot(c, r, s), 1.0 / (self.kh * self.kw) as f64);
                    }
                }
            }
            let period = input.period;
            let src = PlainSource::new(move || {
                let mut one = vec![0.0; period];
                for (&j, &v) in &mask {
                    one[j] = v;
                }
                one.iter().copied().cycle().take(slots).collect()
            });
            let q = b.prime(level)?;
            let y = b.mul_values(acc, src, q)?;
            cts.push(b.rescale(y)?);
        }
        Tensor::new(cts, out)
    }

    /// Single-ciphertext form of [`AvgPool2d::compile_tensor`]: `x` in `layout`, one output
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
