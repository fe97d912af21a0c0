//! The multiplexed packing of [`Model::compile_packed`] ([`super::Packing::Multiplexed`]):
//! how each layer kind maps onto [`MuxConv`] and [`MuxPool`].
//!
//! * A convolution (square kernel, symmetric padding, one group or depthwise) is a
//!   [`MuxConv`] on the input's layout; a strided one doubles the gap.
//! * A global average pool is a [`MuxPool`]; any other average pool (padded, strided — the
//!   stand-in for a max pool) is a depthwise [`MuxConv`] with uniform weights 1/k² (zero
//!   padding counted in the mean, as [`LayerKind::AvgPool`] defines).
//! * A dense layer reads a C×1×1 multiplexed tensor (after a global pool) as a 1×1
//!   [`MuxConv`] whose output gap is the smallest that puts every output in one ciphertext,
//!   so the logits are one ciphertext. Flatten, activations and adds are as in-place.

use super::bootstrapped::layer_err;
use super::desc::{Layer, LayerKind};
use super::validated::Model;
use crate::error::Result;
use crate::nn::layers::{MuxConv, MuxPool};
use crate::nn::{ProgramBuilder, Tensor};

impl Model {
    /// Compiles layer `l` on `x` when the multiplexed packing handles it differently from the
    /// in-place one (`None`: compile it as in-place does). Weights are scaled by `ratio`,
    /// biases by `f_out` (see [`super::factors`]).
    pub(super) fn mux_layer(
        &self,
        b: &mut ProgramBuilder,
        l: &Layer,
        x: &Tensor,
        ratio: f64,
        f_out: f64,
        out_scale: f64,
    ) -> Result<Option<Tensor>> {
        let scaled = |name: &Option<String>, f: f64| -> Result<Option<Vec<f64>>> {
            match name {
                Some(n) => Ok(Some(self.tensor(n)?.data.iter().map(|v| v * f).collect())),
                None => Ok(None),
            }
        };
        let y = match &l.kind {
            LayerKind::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                groups,
                weight,
                bias,
            } => {
                let symmetric = padding.iter().all(|&p| p == padding[0]);
                let depthwise = *groups == *in_channels && *groups == *out_channels;
                if (*groups != 1 && !depthwise)
                    || kernel[0] != kernel[1]
                    || stride[0] != stride[1]
                    || !symmetric
                {
                    return Err(layer_err(
                        &l.name,
                        "the multiplexed packing takes square, one-group or depthwise \
                         convolutions with equal strides and symmetric padding",
                    ));
                }
                let w = self.tensor(weight)?.data.iter().map(|v| v * ratio).collect();
                let conv = MuxConv::new(
                    &l.name,
                    *in_channels,
                    *out_channels,
                    kernel[0],
                    stride[0],
                    padding[0],
                    depthwise && *groups > 1,
                    w,
                    scaled(bias, f_out)?,
                )?;
                conv.compile_tensor_scaled(b, x, out_scale, None)?
            }
            LayerKind::AvgPool { kernel, stride, padding } => {
                let lay = &x.layout;
                if *kernel == [lay.height, lay.width] && *padding == [0; 4] {
                    MuxPool::new(&l.name).compile_tensor(b, x)?
                } else {
                    let symmetric = padding.iter().all(|&p| p == padding[0]);
                    if kernel[0] != kernel[1] || stride[0] != stride[1] || !symmetric {
                        return Err(layer_err(&l.name, "a non-square or asymmetric pool"));
                    }
                    let (c, k) = (lay.channels, kernel[0]);
                    let w = vec![ratio / (k * k) as f64; c * k * k];
                    let conv =
                        MuxConv::new(&l.name, c, c, k, stride[0], padding[0], true, w, None)?;
                    conv.compile_tensor_scaled(b, x, out_scale, None)?
                }
            }
            LayerKind::Dense { in_features, out_features, weight, bias } => {
                let lay = &x.layout;
                if lay.height != 1 || lay.width != 1 {
                    return Err(layer_err(
                        &l.name,
                        "the multiplexed packing reads a dense layer's input after a global pool",
                    ));
                }
                let w = self.tensor(weight)?.data.iter().map(|v| v * ratio).collect();
                let conv = MuxConv::new(
                    &l.name,
                    *in_features,
                    *out_features,
                    1,
                    1,
                    0,
                    false,
                    w,
                    scaled(bias, f_out)?,
                )?;
                let slots = b.slots();
                let blocks = (slots / lay.c_stride).max(1);
                let mut gap = lay.gap.max(1);
                while blocks * gap * gap < *out_features {
                    gap *= 2;
                }
                conv.compile_tensor_scaled(b, x, out_scale, Some(gap))?
            }
            _ => return Ok(None),
        };
        Ok(Some(y))
    }
}

#[cfg(test)]
#[path = "tests_multiplexed.rs"]
mod tests;
