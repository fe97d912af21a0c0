//! Slot layouts of tensors.
//!
//! A C×H×W tensor (a vector is C = len, H = W = 1) lives in one ciphertext: element (c, r, s)
//! at slot `c·c_stride + r·r_stride + s·s_stride`, all below `period`, a power of two that
//! divides N/2; the pattern repeats every `period` slots, so a rotation by k acts cyclically
//! modulo `period` on every copy. Images start dense (`r_stride = W`, `s_stride = 1`, each
//! channel in its own block of `c_stride` = next_pow2(H·W) slots); a strided convolution or a
//! pooling leaves its output in place on the input grid with the strides multiplied (no
//! compaction), and a dense layer reads a vector from any such layout.
//!
//! A tensor too large for one ciphertext is split by channels: `per_ct` channels per
//! ciphertext (channel c in ciphertext c / per_ct, block c mod per_ct), each ciphertext laid out
//! as above with period N/2. An encrypted tensor is a [`Tensor`]: its ciphertexts and layout.
//!
//! Slots not mapped to an element are zero after a linear layer; after an activation p they
//! hold p(0). Every linear layer multiplies them by zero weights, so they never leak.
//!
//! **Multiplexed layouts** (`gap` g > 1, a power of two; see [`crate::nn::layers::MuxConv`]):
//! after strided layers the pixels of a channel sit g fine-grid cells apart, and g² channels
//! share one block by filling each other's gaps. With ρ0 = `r_stride`/g and σ0 = `s_stride`/g
//! the fine-grid strides, channel c = q·g² + m sits in block q at sub-position (a, b) — a and
//! b being the odd and even bits of m (Morton order: each stride-2 step adds the next bit pair)
//! — so element (c, r, s) is at `q·c_stride + a·ρ0 + b·σ0 + r·r_stride + s·s_stride`.

use crate::error::{Error, Result};
use crate::nn::program::ObjId;

/// Where a C×H×W tensor lives in the slots (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Channels (or vector length).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Slot distance between channels.
    pub c_stride: usize,
    /// Slot distance between rows.
    pub r_stride: usize,
    /// Slot distance between columns.
    pub s_stride: usize,
    /// Replication period (power of two).
    pub period: usize,
    /// Channels per ciphertext (all of them when the tensor fits one ciphertext).
    pub per_ct: usize,
    /// Multiplexing gap g (1: one channel per block; see the module docs).
    pub gap: usize,
}

impl Layout {
    /// A vector of `len` values in slots 0..len, repeated every next_pow2(len) slots.
    pub fn vector(len: usize) -> Self {
        Self {
            channels: len,
            height: 1,
            width: 1,
            c_stride: 1,
            r_stride: 1,
            s_stride: 1,
            period: len.max(1).next_power_of_two(),
            per_ct: len.max(1),
            gap: 1,
        }
    }

    /// A dense C×H×W image: each channel row-major in a block of next_pow2(H·W) slots, the
    /// channel blocks repeated every next_pow2(C) blocks.
    pub fn image(channels: usize, height: usize, width: usize) -> Self {
        let block = (height * width).max(1).next_power_of_two();
        Self {
            channels,
            height,
            width,
            c_stride: block,
            r_stride: width,
            s_stride: 1,
            period: channels.max(1).next_power_of_two() * block,
            per_ct: channels.max(1),
            gap: 1,
        }
    }

    /// The same layout split over as many ciphertexts of `slots` slots as needed (unchanged
    /// when it fits one).
    pub fn split(mut self, slots: usize) -> Self {
        if self.period > slots && self.c_stride <= slots {
            self.per_ct = (slots / self.c_stride).max(1);
            self.period = slots;
        }
        self
    }

    /// Number of ciphertexts holding the tensor.
    pub fn ciphertexts(&self) -> usize {
        self.channels.div_ceil(self.per_ct.max(1)).max(1)
    }

    /// (ciphertext, slot) of flat element f = (c·H + r)·W + s (PyTorch flatten order).
    pub fn locate(&self, f: usize) -> (usize, usize) {
        let hw = self.height * self.width;
        let (c, rem) = (f / hw, f % hw);
        (c / self.per_ct, self.slot(c % self.per_ct, rem / self.width, rem % self.width))
    }

    /// Number of tensor elements C·H·W.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slot of element (c, r, s) within the first period (c < `per_ct`).
    pub fn slot(&self, c: usize, r: usize, s: usize) -> usize {
        if self.gap <= 1 {
            return c * self.c_stride + r * self.r_stride + s * self.s_stride;
        }
        self.channel_base(c) + r * self.r_stride + s * self.s_stride
    }

    /// Slot of channel c's element (0, 0) within the first period (c < `per_ct`).
    pub fn channel_base(&self, c: usize) -> usize {
        let g = self.gap.max(1);
        let (q, a, b) = self.mux_position(c);
        q * self.c_stride + a * (self.r_stride / g) + b * (self.s_stride / g)
    }

    /// (block, fine row offset a, fine column offset b) of channel c < `per_ct` (see the
    /// module docs; (c, 0, 0) when `gap` is 1).
    pub fn mux_position(&self, c: usize) -> (usize, usize, usize) {
        let g = self.gap.max(1);
        let (q, m) = (c / (g * g), c % (g * g));
        let (mut a, mut b) = (0, 0);
        for bit in 0..g.trailing_zeros() {
            b |= ((m >> (2 * bit)) & 1) << bit;
            a |= ((m >> (2 * bit + 1)) & 1) << bit;
        }
        (q, a, b)
    }

    /// The channel (< `per_ct`) at block q and fine offsets (a, b), the inverse of
    /// [`Layout::mux_position`].
    pub fn mux_channel(&self, q: usize, a: usize, b: usize) -> usize {
        let g = self.gap.max(1);
        let mut m = 0;
        for bit in 0..g.trailing_zeros() {
            m |= ((b >> bit) & 1) << (2 * bit);
            m |= ((a >> bit) & 1) << (2 * bit + 1);
        }
        q * g * g + m
    }

    /// Checks the layout fits `slots` and its elements do not collide.
    pub fn validate(&self, layer: &str, slots: usize) -> Result<()> {
        if !self.period.is_power_of_two() || self.period > slots {
            return Err(Error::LayoutTooLarge { layer: layer.into(), needed: self.period, slots });
        }
        if self.is_empty() {
            return Ok(());
        }
        if self.per_ct == 0 || (self.per_ct < self.channels && self.period != slots) {
            return Err(Error::LayerShape {
                layer: layer.into(),
                reason: format!("split layout {self:?} must use all {slots} slots"),
            });
        }
        let g = self.gap.max(1);
        let bad_gap = !g.is_power_of_two()
            || !self.r_stride.is_multiple_of(g)
            || !self.s_stride.is_multiple_of(g)
            || (g > 1 && self.period != slots);
        if bad_gap {
            return Err(Error::LayerShape {
                layer: layer.into(),
                reason: format!("multiplexed layout {self:?} needs strides divisible by the gap"),
            });
        }
        // Extents on the fine grid (the logical grid when the gap is 1).
        let (rho, sigma) = (self.r_stride / g, self.s_stride / g);
        let (fh, fw) = (self.height * g, self.width * g);
        let last = (self.per_ct.min(self.channels) - 1) / (g * g) * self.c_stride
            + (fh - 1) * rho
            + (fw - 1) * sigma;
        let block = (fh - 1) * rho + (fw - 1) * sigma;
        let row = (fw - 1) * sigma;
        if last >= self.period
            || (self.channels > 1 && block >= self.c_stride)
            || (fh > 1 && row >= rho)
        {
            return Err(Error::LayerShape {
                layer: layer.into(),
                reason: format!("layout {self:?} has overlapping or out-of-period elements"),
            });
        }
        Ok(())
    }

    /// The slot vector of a one-ciphertext layout holding `values` (flat, C·H·W).
    pub fn pack(&self, values: &[f64], slots: usize) -> Result<Vec<f64>> {
        let mut v = self.pack_cts(values, slots)?;
        match v.len() {
            1 => Ok(v.remove(0)),
            n => Err(Error::LayerShape {
                layer: "pack".into(),
                reason: format!("layout spans {n} ciphertexts; use pack_cts"),
            }),
        }
    }

    /// The flat tensor read from the slot vector of a one-ciphertext layout.
    pub fn unpack(&self, slots: &[f64]) -> Vec<f64> {
        self.unpack_cts(&[slots.to_vec()])
    }

    /// The slot vectors (one per ciphertext, `slots` long) holding `values` (flat, C·H·W).
    pub fn pack_cts(&self, values: &[f64], slots: usize) -> Result<Vec<Vec<f64>>> {
        self.validate("pack", slots)?;
        if values.len() != self.len() {
            return Err(Error::LayerShape {
                layer: "pack".into(),
                reason: format!("{} values for a layout of {} elements", values.len(), self.len()),
            });
        }
        let mut one = vec![vec![0.0; self.period]; self.ciphertexts()];
        for (f, &v) in values.iter().enumerate() {
            let (ct, slot) = self.locate(f);
            one[ct][slot] = v;
        }
        Ok(one.into_iter().map(|o| o.iter().copied().cycle().take(slots).collect()).collect())
    }

    /// The flat tensor read from slot vectors (one per ciphertext) in this layout.
    pub fn unpack_cts(&self, cts: &[Vec<f64>]) -> Vec<f64> {
        (0..self.len())
            .map(|f| {
                let (ct, slot) = self.locate(f);
                cts.get(ct).and_then(|v| v.get(slot)).copied().unwrap_or(0.0)
            })
            .collect()
    }
}

/// An encrypted tensor: one ciphertext per channel group, and where the elements are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    /// The ciphertexts, channel group 0 first.
    pub cts: Vec<ObjId>,
    /// Layout of the elements.
    pub layout: Layout,
}

impl Tensor {
    /// A tensor; a typed error if the number of ciphertexts does not match the layout.
    pub fn new(cts: Vec<ObjId>, layout: Layout) -> Result<Self> {
        if cts.len() != layout.ciphertexts() {
            return Err(Error::LayerShape {
                layer: "tensor".into(),
                reason: format!(
                    "{} ciphertexts for a layout of {}",
                    cts.len(),
                    layout.ciphertexts()
                ),
            });
        }
        Ok(Self { cts, layout })
    }

    /// A tensor in one ciphertext.
    pub fn single(ct: ObjId, layout: Layout) -> Self {
        Self { cts: vec![ct], layout }
    }
}

/// The one ciphertext of `t`, or a typed error naming `layer` if it has several.
pub(crate) fn single(layer: &str, t: Tensor) -> Result<(ObjId, Layout)> {
    match t.cts.as_slice() {
        [c] => Ok((*c, t.layout)),
        cts => Err(Error::LayerShape {
            layer: layer.into(),
            reason: format!("output spans {} ciphertexts; use compile_tensor", cts.len()),
        }),
    }
}
