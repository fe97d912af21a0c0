//! A sequence of layers compiled into one [`Program`], with level bookkeeping: each layer's
//! depth is checked against the levels left at its input, and a model that needs more depth
//! than the parameters give fails with [`Error::DepthExceeded`] naming the layer — before any
//! key exists, since compiling is symbolic.

use crate::ckks::Params;
use crate::error::{Error, Result};
use crate::nn::builder::ProgramBuilder;
use crate::nn::layers::{AvgPool2d, Conv2d, Dense, PolyActivation, Residual, Square};
use crate::nn::layout::Layout;
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

/// Name of the program input.
pub const INPUT: &str = "x";
/// Name of the program output.
pub const OUTPUT: &str = "y";

impl Model {
    /// A model on inputs packed as `input`.
    pub fn new(input: Layout, layers: Vec<Layer>) -> Self {
        Self { input, layers }
    }

    /// Compiles the model: input [`INPUT`] at the top level and nominal scale, output
    /// [`OUTPUT`]; returns the program and the output layout.
    pub fn compile(&self, params: &Params) -> Result<(Program, Layout)> {
        let mut b = ProgramBuilder::new(params);
        let x = b.input(INPUT, params.max_level(), params.scale())?;
        let (y, lay) = compile_seq(&mut b, &self.layers, x, self.input)?;
        b.output(OUTPUT, y)?;
        Ok((b.finish(), lay))
    }

    /// The model in f64 on a flat input tensor.
    pub fn reference(&self, x: &[f64]) -> Result<Vec<f64>> {
        let shape = (self.input.channels, self.input.height, self.input.width);
        Ok(reference_seq(&self.layers, x.to_vec(), shape)?.0)
    }
}

fn compile_seq(
    b: &mut ProgramBuilder,
    layers: &[Layer],
    mut x: ObjId,
    mut lay: Layout,
) -> Result<(ObjId, Layout)> {
    let nominal = b.params().scale();
    for (i, layer) in layers.iter().enumerate() {
        b.begin_layer(layer.name());
        // A linear layer emits at the scale the next activation maps to t for free.
        let out_scale = match layers.get(i + 1) {
            Some(Layer::Activation(a)) => a.preferred_input_scale(nominal),
            _ => b.scale(x)?,
        };
        (x, lay) = match layer {
            Layer::Dense(l) => l.compile_scaled(b, x, &lay, out_scale)?,
            Layer::Conv2d(l) => l.compile_scaled(b, x, &lay, out_scale)?,
            Layer::AvgPool(l) => l.compile(b, x, &lay)?,
            Layer::Square(l) => l.compile(b, x, &lay)?,
            Layer::Activation(l) => l.compile(b, x, &lay)?,
            Layer::Residual { name, body } => {
                let (y, ylay) = compile_seq(b, body, x, lay)?;
                b.begin_layer(name);
                Residual::new(name).compile(b, (y, &ylay), (x, &lay))?
            }
        };
    }
    Ok((x, lay))
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
