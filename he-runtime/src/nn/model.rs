//! A sequence of layers compiled into one [`Program`], with level bookkeeping: each layer's
//! depth is checked against the levels left at its input, and a model that needs more depth
//! than the parameters give fails with [`Error::DepthExceeded`] naming the layer — before any
//! key exists, since compiling is symbolic.

use crate::ckks::Params;
use crate::error::{Error, Result};
use crate::nn::builder::ProgramBuilder;
use crate::nn::layers::{AvgPool2d, Conv2d, Dense, PolyActivation, Residual, Square};
use crate::nn::layout::{Layout, Tensor};
use crate::nn::program::{ObjId, Program};

/// One layer of a [`Model`].
#[derive(Debug, Clone)]
pub enum Layer {
    /// Fully connected.
    Dense(Dense),
    /// 2-D convolution.
    Conv2d(Conv2d),
    /// Average pooling.
    AvgPool(AvgPool2d),
    /// x².
    Square(Square),
    /// A polynomial activation.
    Activation(PolyActivation),
    /// y = body(x) + x.
    Residual {
        /// Name of the addition.
        name: String,
        /// Layers of the main branch.
        body: Vec<Layer>,
    },
}

impl Layer {
    /// The layer's name.
    pub fn name(&self) -> &str {
        match self {
            Layer::Dense(l) => &l.name,
            Layer::Conv2d(l) => &l.name,
            Layer::AvgPool(l) => &l.name,
            Layer::Square(l) => &l.name,
            Layer::Activation(l) => &l.name,
            Layer::Residual { name, .. } => name,
        }
    }
}

/// Logical tensor shape (channels, height, width).
type Shape = (usize, usize, usize);

/// A sequential model on one input tensor.
#[derive(Debug, Clone)]
pub struct Model {
    /// Layout of the input tensor (the client packs it this way).
    pub input: Layout,
    /// The layers in order.
    pub layers: Vec<Layer>,
}

/// Base name of the program inputs.
pub const INPUT: &str = "x";
/// Base name of the program outputs.
pub const OUTPUT: &str = "y";

/// Name of ciphertext `i` of `count` of a tensor named `base`: `base` itself for one
/// ciphertext, `base.i` otherwise.
pub fn ct_name(base: &str, i: usize, count: usize) -> String {
    if count == 1 {
        base.to_string()
    } else {
        format!("{base}.{i}")
    }
}

impl Model {
    /// A model on inputs packed as `input` (split over ciphertexts at compile time if needed).
    pub fn new(input: Layout, layers: Vec<Layer>) -> Self {
        Self { input, layers }
    }

    /// The input layout under `params` (the client packs its tensor this way).
    pub fn input_layout(&self, params: &Params) -> Layout {
        self.input.split(params.slots())
    }

    /// Compiles the model: inputs named after [`INPUT`] at the top level and nominal scale,
    /// outputs after [`OUTPUT`] (see [`ct_name`]); returns the program and the output layout.
    pub fn compile(&self, params: &Params) -> Result<(Program, Layout)> {
        let mut b = ProgramBuilder::new(params);
        let lay = self.input_layout(params);
        let n = lay.ciphertexts();
        let cts = (0..n)
            .map(|i| b.input(&ct_name(INPUT, i, n), params.max_level(), params.scale()))
            .collect::<Result<Vec<_>>>()?;
        let y = compile_seq(&mut b, &self.layers, Tensor::new(cts, lay)?)?;
        for (i, &c) in y.cts.iter().enumerate() {
            b.output(&ct_name(OUTPUT, i, y.cts.len()), c)?;
        }
        Ok((b.finish(), y.layout))
    }

    /// The model in f64 on a flat input tensor.
    pub fn reference(&self, x: &[f64]) -> Result<Vec<f64>> {
        let shape = (self.input.channels, self.input.height, self.input.width);
        Ok(reference_seq(&self.layers, x.to_vec(), shape)?.0)
    }
}

/// The scale layer `i` should emit at, given its input ciphertexts: a linear layer in front of an
/// activation emits at the scale that activation maps to t for free; anything else keeps the
/// input's scale.
fn layer_output_scale(
    b: &ProgramBuilder,
    layers: &[Layer],
    i: usize,
    input: &[ObjId],
) -> Result<f64> {
    let x0 = *input.first().ok_or(Error::LayerShape {
        layer: layers[i].name().into(),
        reason: "empty tensor".into(),
    })?;
    match layers.get(i + 1) {
        Some(Layer::Activation(a)) => Ok(a.preferred_input_scale(b.params().scale())),
        _ => b.scale(x0),
    }
}

fn compile_seq(b: &mut ProgramBuilder, layers: &[Layer], mut x: Tensor) -> Result<Tensor> {
    for (i, layer) in layers.iter().enumerate() {
        b.begin_layer(layer.name());
        let out_scale = layer_output_scale(b, layers, i, &x.cts)?;
        x = match layer {
            Layer::Dense(l) => l.compile_tensor_scaled(b, &x, out_scale)?,
            Layer::Conv2d(l) => l.compile_tensor_scaled(b, &x, out_scale)?,
            Layer::AvgPool(l) => l.compile_tensor(b, &x)?,
            Layer::Square(l) => l.compile_tensor(b, &x)?,
            Layer::Activation(l) => l.compile_tensor(b, &x)?,
            Layer::Residual { name, body } => {
                let y = compile_seq(b, body, x.clone())?;
                b.begin_layer(name);
                Residual::new(name).compile_tensor(b, &y, &x)?
            }
        };
    }
    Ok(x)
}

fn reference_seq(layers: &[Layer], mut x: Vec<f64>, mut shape: Shape) -> Result<(Vec<f64>, Shape)> {
    for layer in layers {
        let (c, h, w) = shape;
        let len_err = |want: usize| Error::LayerShape {
            layer: layer.name().into(),
            reason: format!("input of {} values, expected {want}", x.len()),
        };
        (x, shape) = match layer {
            Layer::Dense(l) => {
                if x.len() != l.in_features {
                    return Err(len_err(l.in_features));
                }
                (l.reference(&x), (l.out_features, 1, 1))
            }
            Layer::Conv2d(l) => {
                if x.len() != l.in_channels * h * w || c != l.in_channels {
                    return Err(len_err(l.in_channels * h * w));
                }
                let (ho, wo) = l.output_size(h, w)?;
                (l.reference(&x, h, w)?, (l.out_channels, ho, wo))
            }
            Layer::AvgPool(l) => {
                let y = l.reference(&x, c, h, w)?;
                let hw = y.len() / c.max(1);
                let wo = (w - l.kw) / l.stride + 1;
                (y, (c, hw / wo.max(1), wo))
            }
            Layer::Square(l) => (l.reference(&x), shape),
            Layer::Activation(l) => (l.reference(&x), shape),
            Layer::Residual { name, body } => {
                let (y, s) = reference_seq(body, x.clone(), shape)?;
                if s != shape {
                    return Err(Error::LayerShape {
                        layer: name.clone(),
                        reason: format!("branch shapes differ: {s:?} vs {shape:?}"),
                    });
                }
                (Residual::new(name).reference(&y, &x), shape)
            }
        };
    }
    Ok((x, shape))
}
