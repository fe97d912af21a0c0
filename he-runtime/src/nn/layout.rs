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

    /// Slot of element (c, r, s) within the first period.
    pub fn slot(&self, c: usize, r: usize, s: usize) -> usize {
        c * self.c_stride + r * self.r_stride + s * self.s_stride
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
        let last = self.slot(self.per_ct.min(self.channels) - 1, self.height - 1, self.width - 1);
        let block = (self.height - 1) * self.r_stride + (self.width - 1) * self.s_stride;
        let row = (self.width - 1) * self.s_stride;
        if last >= self.period
            || (self.channels > 1 && block >= self.c_stride)
            || (self.height > 1 && row >= self.r_stride)
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
