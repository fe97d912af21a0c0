//! Compiles a [`Model`] deeper than any modulus chain: bootstraps are placed where levels run
//! out, every tensor packed channel-wise (one ciphertext per activation tensor while it fits).
//!
//! * **Values** are carried scaled by their [`ValueFactors`], so every value lies in [−1, 1]
//!   and can be bootstrapped; the factors are folded into weights, biases and activation
//!   coefficients and cost no level.
//! * **Packing**: the input image as a [`Layout::image`]; every convolution (square kernel,
//!   symmetric padding, one group) is the channel-packed [`Conv2d`], strided ones leaving their
//!   output on the input grid; average pools are [`AvgPool2d`] on that grid; dense layers read
//!   any layout; a residual add needs both branches in one layout, which the packing gives
//!   ResNets (a strided block's 1×1 shortcut lands where its 3×3 branch does).
//! * **Bootstraps**: the input is encrypted at the bootstrap's output level. A value read by
//!   several layers (a residual block's input) is bootstrapped first unless its levels cover
//!   the deepest path to the add that joins its branches, so both branches start fresh and the
//!   add does not drag the sum down to a stale shortcut; any other layer whose input has fewer
//!   levels than it consumes gets its input bootstrapped just before it. A bootstrapped value
//!   replaces the old one for every later reader.

use std::collections::HashMap;

use super::compile::poly_activation;
use super::compile::Compiled;
use super::desc::{LayerKind, ModelDesc};
use super::factors::{scaled_activation, ValueFactors};
use super::validated::Model;
use crate::ckks::Params;
use crate::error::{Error, Result};
use crate::nn::layers::{mux_input_layout, AvgPool2d, Conv2d, Dense, PolyActivation, Residual};
use crate::nn::model::ct_name;
use crate::nn::{BootstrapSpec, Layout, ProgramBuilder, Tensor};

/// How [`Model::compile_bootstrapped`] scales values: every recorded range times `margin`
/// fits in [−1, 1] (2 by default: held-out inputs may exceed the recorded ranges).
pub const DEFAULT_MARGIN: f64 = 2.0;

pub(super) fn layer_err(layer: &str, reason: impl Into<String>) -> Error {
    Error::ModelLayer { layer: layer.to_owned(), reason: reason.into() }
}

/// For a value read by several layers: the deepest chain of layer depths from it to the first
/// add that joins all of its branches (`None`: no such add).
fn join_depth(desc: &ModelDesc, value: &str) -> Option<usize> {
    let mut depth: HashMap<&str, usize> = HashMap::from([(value, 0)]);
    for l in &desc.layers {
        let reached: Vec<usize> =
            l.inputs.iter().filter_map(|i| depth.get(i.as_str()).copied()).collect();
        if reached.is_empty() {
            continue;
        }
        if matches!(l.kind, LayerKind::Add) && reached.len() == l.inputs.len() {
            return reached.into_iter().max();
        }
        let d = reached.into_iter().max().unwrap_or(0) + l.kind.depth();
        depth.insert(l.name.as_str(), d);
    }
    None
}

/// The levels of a tensor (of its first ciphertext; all share one level).
fn level_of(b: &ProgramBuilder, t: &Tensor) -> Result<usize> {
    let first = t.cts.first().ok_or(Error::LayerShape {
        layer: b.layer_name().to_owned(),
        reason: "tensor without ciphertexts".into(),
    })?;
    b.level(*first)
}

fn bootstrap_tensor(b: &mut ProgramBuilder, t: &Tensor) -> Result<Tensor> {
    let cts = t.cts.iter().map(|&c| b.bootstrap(c)).collect::<Result<Vec<_>>>()?;
    Tensor::new(cts, t.layout)
}

/// How [`Model::compile_packed`] lays tensors out in the slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// One channel per block; strided layers leave their output on the input grid
    /// ([`Conv2d`]; what ResNet-20 uses).
    InPlace,
    /// Multiplexed: strided layers fill the gaps of their grid with other channels
    /// ([`crate::nn::layers::MuxConv`]), so the ciphertext count shrinks with the pixel
    /// count; depthwise convolutions, padded pools and inputs over several ciphertexts
    /// (224×224 after space-to-depth) are supported (see `model/multiplexed.rs`).
    Multiplexed,
}

impl Model {
    /// Compiles the model for `params` with bootstraps as `spec` (from the real
    /// [`crate::ckks::bootstrap::Bootstrapper`] of `params`) does them; see the module docs.
    /// The input is encrypted at `spec.output_level` and scaled by [`Compiled::input_factor`].
    pub fn compile_bootstrapped(
        &self,
        params: &Params,
        spec: &BootstrapSpec,
        margin: f64,
    ) -> Result<Compiled> {
        self.compile_packed(params, spec, margin, Packing::InPlace)
    }

    /// As [`Model::compile_bootstrapped`] with the given packing.
    pub fn compile_packed(
        &self,
        params: &Params,
        spec: &BootstrapSpec,
        margin: f64,
        packing: Packing,
    ) -> Result<Compiled> {
        let factors = ValueFactors::new(self, margin)?;
        let nominal = params.scale();
        let mut b = ProgramBuilder::new(params);
        b.enable_bootstrap(spec.clone());
        let in_shape = self.desc().input.shape.clone();
        let input_layout = match (&in_shape[..], packing) {
            (&[c, h, w], Packing::InPlace) => Layout::image(c, h, w),
            (&[c, h, w], Packing::Multiplexed) => mux_input_layout(c, h, w, params.slots()),
            (&[n], Packing::InPlace) => Layout::vector(n),
            _ => return Err(layer_err("input", format!("unsupported input shape {in_shape:?}"))),
        };
        input_layout.validate("input", params.slots())?;
        let n_in = input_layout.ciphertexts();
        let xs = (0..n_in)
            .map(|i| b.input(&ct_name("input", i, n_in), spec.output_level, nominal))
            .collect::<Result<Vec<_>>>()?;
        let mut values: HashMap<String, Tensor> = HashMap::new();
        values.insert("input".into(), Tensor::new(xs, input_layout)?);
        let readers = |name: &str| {
            self.layers().iter().filter(|l| l.inputs.iter().any(|i| i == name)).count()
        };
        let mut last = "input".to_owned();
        for (li, l) in self.layers().iter().enumerate() {
            b.begin_layer(&l.name);
            let in_name = l.inputs.first().ok_or_else(|| layer_err(&l.name, "reads nothing"))?;
            let f_in = factors.of(in_name)?;
            let f_out = factors.of(&l.name)?;
            let act = match &l.kind {
                LayerKind::Activation(a) => {
                    Some(poly_activation(&l.name, &scaled_activation(a, f_in, f_out))?)
                }
                _ => None,
            };
            // Bootstrap where the levels run out (see the module docs).
            let mut x = self.value(&values, &l.name, in_name)?;
            let level = level_of(&b, &x)?;
            // Capped at what a bootstrap gives, so a fresh value is never bootstrapped again.
            let fan_out_need = match readers(in_name) {
                n if n > 1 => join_depth(self.desc(), in_name).unwrap_or(0),
                _ => 0,
            }
            .min(spec.output_level);
            let own_need = match &act {
                Some(a) => a.depth(b.scale(x.cts[0])?, nominal),
                None => l.kind.depth(),
            };
            if level < own_need.max(fan_out_need) {
                if own_need > spec.output_level {
                    return Err(Error::DepthExceeded {
                        layer: l.name.clone(),
                        needed: own_need,
                        available: spec.output_level,
                    });
                }
                x = bootstrap_tensor(&mut b, &x)?;
                values.insert(in_name.clone(), x.clone());
            }
            // A linear layer emits at the scale its activation reader maps for free.
            let out_scale = match self.activation_reader(li, f_out)? {
                Some(pa) => pa.preferred_input_scale(nominal),
                None => b.scale(x.cts[0])?,
            };
            let ratio = f_out / f_in;
            if packing == Packing::Multiplexed {
                if let Some(y) = self.mux_layer(&mut b, l, &x, ratio, f_out, out_scale)? {
                    values.insert(l.name.clone(), y);
                    last = l.name.clone();
                    continue;
                }
            }
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
                    if *groups != 1
                        || kernel[0] != kernel[1]
                        || stride[0] != stride[1]
                        || !symmetric
                    {
                        return Err(layer_err(
                            &l.name,
                            "a bootstrapped model packs only square, one-group convolutions \
                             with equal strides and symmetric padding",
                        ));
                    }
                    let w = self.tensor(weight)?.data.iter().map(|v| v * ratio).collect();
                    let bias = match bias {
                        Some(n) => Some(self.tensor(n)?.data.iter().map(|v| v * f_out).collect()),
                        None => None,
                    };
                    let conv = Conv2d::new(
                        &l.name,
                        *in_channels,
                        *out_channels,
                        kernel[0],
                        stride[0],
                        padding[0],
                        w,
                        bias,
                    )?;
                    conv.compile_tensor_scaled(&mut b, &x, out_scale)?
                }
                LayerKind::Dense { in_features, out_features, weight, bias } => {
                    let w = self.tensor(weight)?.data.iter().map(|v| v * ratio).collect();
                    let bias = match bias {
                        Some(n) => Some(self.tensor(n)?.data.iter().map(|v| v * f_out).collect()),
                        None => None,
                    };
                    let d = Dense::new(&l.name, *out_features, *in_features, w, bias)?;
                    d.compile_tensor_scaled(&mut b, &x, out_scale)?
                }
                LayerKind::AvgPool { kernel, stride, padding } => {
                    if *padding != [0; 4]
                        || kernel[0] != kernel[1] && *kernel != [x.layout.height, x.layout.width]
                    {
                        return Err(layer_err(&l.name, "a padded or non-square average pool"));
                    }
                    let pool = if *kernel == [x.layout.height, x.layout.width] {
                        AvgPool2d::global(&l.name, kernel[0], kernel[1])
                    } else {
                        AvgPool2d::new(&l.name, kernel[0], stride[0])
                    };
                    pool.compile_tensor(&mut b, &x)?
                }
                LayerKind::Activation(_) => match &act {
                    Some(a) => a.compile_tensor(&mut b, &x)?,
                    None => return Err(layer_err(&l.name, "activation without a polynomial")),
                },
                LayerKind::Flatten => x,
                LayerKind::Add => {
                    let skip_name =
                        l.inputs.get(1).ok_or_else(|| layer_err(&l.name, "add of one value"))?;
                    let skip = self.value(&values, &l.name, skip_name)?;
                    Residual::new(&l.name).compile_tensor(&mut b, &x, &skip)?
                }
            };
            values.insert(l.name.clone(), y);
            last = l.name.clone();
        }
        let out = self.value(&values, "output", &last)?;
        let &[logits] = &out.cts[..] else {
            return Err(layer_err(&last, format!("{} output ciphertexts, not one", out.cts.len())));
        };
        b.output("logits", logits)?;
        Ok(Compiled {
            program: b.finish(),
            input_layout,
            output_layout: out.layout,
            input_name: "input".into(),
            output_name: "logits".into(),
            input_padding: [0; 4],
            input_shape: in_shape,
            input_factor: factors.of("input")?,
            output_factor: factors.of(&last)?,
        })
    }

    fn value(&self, values: &HashMap<String, Tensor>, layer: &str, name: &str) -> Result<Tensor> {
        values.get(name).cloned().ok_or_else(|| {
            layer_err(layer, format!("reads {name}, which is not computed before it"))
        })
    }

    /// The (scaled) activation reading layer `i`'s output, if an activation does.
    fn activation_reader(&self, i: usize, f_out: f64) -> Result<Option<PolyActivation>> {
        let name = &self.layers()[i].name;
        let reader = self.layers().iter().skip(i + 1).find(|l| l.inputs.iter().any(|n| n == name));
        match reader {
            Some(l) => match &l.kind {
                LayerKind::Activation(a) => {
                    let scaled = scaled_activation(a, f_out, 1.0);
                    Ok(Some(poly_activation(&l.name, &scaled)?))
                }
                _ => Ok(None),
            },
            None => Ok(None),
        }
    }
}

#[cfg(test)]
#[path = "tests_bootstrapped.rs"]
pub(crate) mod tests;
