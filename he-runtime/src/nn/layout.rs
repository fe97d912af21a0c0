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
//! Slots not mapped to an element are zero after a linear layer; after an activation p they
//! hold p(0). Every linear layer multiplies them by zero weights, so they never leak.

use crate::error::{Error, Result};

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
        }
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

    /// Slot of flat element index f = (c·H + r)·W + s (PyTorch flatten order).
    pub fn slot_of(&self, f: usize) -> usize {
        let hw = self.height * self.width;
        let (c, rem) = (f / hw, f % hw);
        self.slot(c, rem / self.width, rem % self.width)
    }

    /// Checks the layout fits `slots` and its elements do not collide.
    pub fn validate(&self, layer: &str, slots: usize) -> Result<()> {
        if !self.period.is_power_of_two() || self.period > slots {
            return Err(Error::LayoutTooLarge { layer: layer.into(), needed: self.period, slots });
        }
        if self.is_empty() {
            return Ok(());
        }
        let last = self.slot(self.channels - 1, self.height - 1, self.width - 1);
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

    /// The slot vector (length `slots`) holding `values` (flat, C·H·W) in this layout.
    pub fn pack(&self, values: &[f64], slots: usize) -> Result<Vec<f64>> {
        self.validate("pack", slots)?;
        if values.len() != self.len() {
            return Err(Error::LayerShape {
                layer: "pack".into(),
                reason: format!("{} values for a layout of {} elements", values.len(), self.len()),
            });
        }
        let mut one = vec![0.0; self.period];
        for (f, &v) in values.iter().enumerate() {
            one[self.slot_of(f)] = v;
        }
        Ok(one.iter().copied().cycle().take(slots).collect())
    }

    /// The flat tensor read from a slot vector in this layout.
    pub fn unpack(&self, slots: &[f64]) -> Vec<f64> {
        (0..self.len()).map(|f| slots.get(self.slot_of(f)).copied().unwrap_or(0.0)).collect()
    }
}
