//! Compiles a validated [`Model`] into an HE op [`Program`] with the `nn` layers.
//!
//! Packing: one sample per ciphertext. A vector input is a flat vector in slots 0..len,
//! replicated with period next_pow2(len); an image input whose first layer is a convolution
//! is packed as a [`Layout::image`] for the channel-packed [`Conv2d`] of `nn` — with the
//! first convolution's zero padding applied by the client when it is asymmetric (CryptoNets
//! pads one row on top and one column on the left), so the layer itself runs unpadded.
//! Dense layers use the BSGS diagonal method of [`Dense`] and read any layout, so `flatten`
//! is a no-op. Other convolutions (asymmetric padding, groups, non-square kernels) and average
//! pools are linear maps on the vector, lowered to their exact matrix and run as a BSGS dense
//! layer. Squares are one relinearised product and a rescale. Depth is checked with
//! [`Model::check_depth`] first, so a model that is too deep fails naming its layer before any
//! key is generated.

use std::collections::HashMap;

use super::{Activation, LayerKind, Model};
use crate::ckks::Params;
use crate::error::{Error, Result};
use crate::nn::layers::{Conv2d, Dense, PolyActivation, Residual, Square};
use crate::nn::poly::ChebPoly;
use crate::nn::{Layout, ObjId, Program, ProgramBuilder};

/// The nn activation of a description's polynomial activation: a Chebyshev series on its
/// range as given, a monomial polynomial expressed exactly in the Chebyshev basis of [−1, 1].
pub(crate) fn poly_activation(layer: &str, a: &Activation) -> Result<PolyActivation> {
    let poly = match a {
        Activation::Square => ChebPoly::from_monomial(&[0.0, 0.0, 1.0], -1.0, 1.0)?,
        Activation::Poly { coeffs } => ChebPoly::from_monomial(coeffs, -1.0, 1.0)?,
        Activation::Chebyshev { range, coeffs, .. } => {
            ChebPoly { a: range[0], b: range[1], coeffs: coeffs.clone() }
        }
    };
    Ok(PolyActivation::new(layer, poly))
}

/// The scale linear layer `i` should emit at when a polynomial activation reads it: the scale
/// at which that activation maps x to its Chebyshev variable for free (`None` otherwise).
pub(crate) fn linear_out_scale(model: &Model, i: usize, nominal: f64) -> Result<Option<f64>> {
    let name = &model.layers()[i].name;
    let reader = model.layers().iter().skip(i + 1).find(|l| l.inputs.iter().any(|n| n == name));
    match reader.map(|l| (&l.name, &l.kind)) {
        Some((
            n,
            LayerKind::Activation(a @ (Activation::Chebyshev { .. } | Activation::Poly { .. })),
        )) => Ok(Some(poly_activation(n, a)?.preferred_input_scale(nominal))),
        _ => Ok(None),
    }
}

/// A compiled model: the program plus how to pack its input and read its output.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The HE op program.
    pub program: Program,
    /// Slot layout of the input ciphertext.
    pub input_layout: Layout,
    /// Slot layout of the logits ciphertext.
    pub output_layout: Layout,
    /// Name of the program input.
    pub input_name: String,
    /// Name of the program output.
    pub output_name: String,
    /// Zero padding (top, bottom, left, right) the client applies to a `[C, H, W]` input
    /// before packing it.
    pub input_padding: [usize; 4],
    /// Shape of the model input (`[n]` or `[C, H, W]`, before padding).
    pub input_shape: Vec<usize>,
    /// The client packs its input times this factor (1 unless the model bootstraps: see
    /// [`super::factors`]).
    pub input_factor: f64,
    /// The decrypted logits are this factor times the model's (1 unless it bootstraps).
    pub output_factor: f64,
}

impl Compiled {
    /// The level the client encrypts the input at.
    pub fn input_level(&self) -> Result<usize> {
        let (_, id) = self
            .program
            .inputs()
            .first()
            .ok_or(Error::InvalidParameter { name: "program", reason: "no input".into() })?;
        Ok(self.program.object(*id)?.level)
    }

    /// The model's logits from the decoded slots of the output ciphertext.
    pub fn unpack_output(&self, slots: &[f64]) -> Vec<f64> {
        let f = self.output_factor;
        self.output_layout.unpack(slots).into_iter().map(|v| v / f).collect()
    }

    /// The slot vector of one prepared input sample (padded as needed, then packed, times
    /// [`Self::input_factor`]).
    pub fn pack(&self, x: &[f64], slots: usize) -> Result<Vec<f64>> {
        let f = self.input_factor;
        let mut v = self.pack_unscaled(x, slots)?;
        if f != 1.0 {
            v.iter_mut().for_each(|s| *s *= f);
        }
        Ok(v)
    }

    /// The slot vectors of one prepared input sample, one per input ciphertext (times
    /// [`Self::input_factor`]), for inputs over several ciphertexts (no client padding).
    pub fn pack_cts(&self, x: &[f64], slots: usize) -> Result<Vec<Vec<f64>>> {
        if self.input_padding != [0; 4] {
            return Ok(vec![self.pack(x, slots)?]);
        }
        let f = self.input_factor;
        let mut v = self.input_layout.pack_cts(x, slots)?;
        v.iter_mut().flatten().for_each(|s| *s *= f);
        Ok(v)
    }

    fn pack_unscaled(&self, x: &[f64], slots: usize) -> Result<Vec<f64>> {
        let [pt, pb, pl, pr] = self.input_padding;
        if let (&[c, h, w], true) = (&self.input_shape[..], self.input_padding != [0; 4]) {
            if x.len() != c * h * w {
                return Err(Error::ModelInput { expected: c * h * w, found: x.len() });
            }
            let (hp, wp) = (h + pt + pb, w + pl + pr);
            let mut padded = vec![0.0; c * hp * wp];
            for cc in 0..c {
                for r in 0..h {
                    let src = &x[(cc * h + r) * w..(cc * h + r + 1) * w];
                    let at = (cc * hp + r + pt) * wp + pl;
                    padded[at..at + w].copy_from_slice(src);
                }
            }
            return self.input_layout.pack(&padded, slots);
        }
        self.input_layout.pack(x, slots)
    }
}

/// The dense matrix `[out, in]` of a grouped 2-D convolution on flat `[C, H, W]` vectors.
#[allow(clippy::too_many_arguments)]
fn conv_matrix(
    in_shape: &[usize],
    out_shape: &[usize],
    w: &[f64],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 4],
    groups: usize,
) -> Vec<f64> {
    let n_in = in_shape[0] * in_shape[1] * in_shape[2];
    let rows = conv_rows(in_shape, out_shape, w, kernel, stride, padding, groups);
    let mut m = vec![0.0; rows.len() * n_in];
    for (r, row) in rows.iter().enumerate() {
        for &(col, v) in row {
            m[r * n_in + col] += v;
        }
    }
    m
}

/// The sparse rows `(input index, weight)` of a grouped 2-D convolution on flat `[C, H, W]`
/// vectors, one per output element (zero padding top, bottom, left, right).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_rows(
    in_shape: &[usize],
    out_shape: &[usize],
    w: &[f64],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 4],
    groups: usize,
) -> Vec<Vec<(usize, f64)>> {
    let (c, h, wd) = (in_shape[0], in_shape[1], in_shape[2]);
    let (oc, oh, ow) = (out_shape[0], out_shape[1], out_shape[2]);
    let (cin_g, cout_g) = (c / groups.max(1), oc / groups.max(1));
    let mut rows = Vec::with_capacity(oc * oh * ow);
    for o in 0..oc {
        let g = o / cout_g.max(1);
        for r in 0..oh {
            for s in 0..ow {
                let mut row = Vec::new();
                for ci in 0..cin_g {
                    let cc = g * cin_g + ci;
                    for ky in 0..kernel[0] {
                        let yy = (r * stride[0] + ky) as isize - padding[0] as isize;
                        for kx in 0..kernel[1] {
                            let xx = (s * stride[1] + kx) as isize - padding[2] as isize;
                            if yy < 0 || xx < 0 || yy as usize >= h || xx as usize >= wd {
                                continue;
                            }
                            let wi = ((o * cin_g + ci) * kernel[0] + ky) * kernel[1] + kx;
                            row.push(((cc * h + yy as usize) * wd + xx as usize, w[wi]));
                        }
                    }
                }
                rows.push(row);
            }
        }
    }
    rows
}

/// The matrix of an average pool (a depthwise convolution with weights 1/(kh·kw)).
fn pool_matrix(
    in_shape: &[usize],
    out_shape: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 4],
) -> Vec<f64> {
    let c = in_shape[0];
    let w = vec![1.0 / (kernel[0] * kernel[1]) as f64; c * kernel[0] * kernel[1]];
    conv_matrix(in_shape, out_shape, &w, kernel, stride, padding, c)
}

impl Model {
    /// Compiles the model for `params` (after checking its depth against them).
    pub fn compile(&self, params: &Params) -> Result<Compiled> {
        self.check_depth(params)?;
        let mut b = ProgramBuilder::new(params);
        let in_shape = self.desc().input.shape.clone();
        let in_len: usize = in_shape.iter().product();
        let mut input_layout = Layout::vector(in_len);
        let mut input_padding = [0; 4];
        // The first layer: a convolution on the image runs channel-packed, unless another
        // layer reads the input too (a residual branch would then meet two layouts).
        let input_readers =
            self.layers().iter().filter(|l| l.inputs.iter().any(|i| i == "input")).count();
        let first_conv = match (self.layers().first().map(|l| &l.kind), &in_shape[..]) {
            (Some(LayerKind::Conv2d { kernel, stride, padding, groups: 1, .. }), &[c, h, w])
                if kernel[0] == kernel[1] && stride[0] == stride[1] && input_readers == 1 =>
            {
                let sym = padding.iter().all(|&p| p == padding[0]);
                let pad = if sym { [0; 4] } else { *padding };
                let lay = Layout::image(c, h + pad[0] + pad[1], w + pad[2] + pad[3]);
                if lay.period <= params.slots() {
                    input_layout = lay;
                    input_padding = pad;
                    Some(if sym { padding[0] } else { 0 })
                } else {
                    None
                }
            }
            _ => None,
        };
        let x0 = b.input("input", params.max_level(), params.scale())?;
        let mut values: HashMap<&str, (ObjId, Layout)> = HashMap::new();
        values.insert("input", (x0, input_layout));
        let (mut x, mut layout) = (x0, input_layout);
        let nominal = params.scale();
        for (li, l) in self.layers().iter().enumerate() {
            b.begin_layer(&l.name);
            let value = |n: Option<&String>| {
                n.and_then(|n| values.get(n.as_str()).copied()).ok_or_else(|| Error::ModelLayer {
                    layer: l.name.clone(),
                    reason: format!("reads {n:?}, which is not computed before it"),
                })
            };
            (x, layout) = value(l.inputs.first())?;
            // Linear layers keep their input's scale unless an activation prefers another.
            let out_scale = match linear_out_scale(self, li, nominal)? {
                Some(s) => s,
                None => b.scale(x)?,
            };
            let lowered = |m: Vec<f64>, bias: Option<Vec<f64>>| -> Result<Dense> {
                let out: usize = l.out_shape.iter().product();
                let inp: usize = l.in_shape.iter().product();
                Dense::new(&l.name, out, inp, m, bias)
            };
            let bias_of = |name: &Option<String>, per: usize| -> Result<Option<Vec<f64>>> {
                match name {
                    Some(n) => Ok(Some(
                        self.tensor(n)?
                            .data
                            .iter()
                            .flat_map(|&v| std::iter::repeat_n(v, per))
                            .collect(),
                    )),
                    None => Ok(None),
                }
            };
            (x, layout) = match &l.kind {
                LayerKind::Dense { in_features, out_features, weight, bias } => {
                    let d = Dense::new(
                        &l.name,
                        *out_features,
                        *in_features,
                        self.tensor(weight)?.data.clone(),
                        bias_of(bias, 1)?,
                    )?;
                    d.compile_scaled(&mut b, x, &layout, out_scale)?
                }
                LayerKind::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    stride,
                    weight,
                    bias,
                    ..
                } if first_conv.is_some() && std::ptr::eq(l, &self.layers()[0]) => {
                    let conv = Conv2d::new(
                        &l.name,
                        *in_channels,
                        *out_channels,
                        kernel[0],
                        stride[0],
                        first_conv.unwrap_or(0),
                        self.tensor(weight)?.data.clone(),
                        match bias {
                            Some(b) => Some(self.tensor(b)?.data.clone()),
                            None => None,
                        },
                    )?;
                    conv.compile_scaled(&mut b, x, &layout, out_scale)?
                }
                LayerKind::Conv2d { kernel, stride, padding, groups, weight, bias, .. } => {
                    let m = conv_matrix(
                        &l.in_shape,
                        &l.out_shape,
                        &self.tensor(weight)?.data,
                        *kernel,
                        *stride,
                        *padding,
                        *groups,
                    );
                    let per = l.out_shape[1] * l.out_shape[2];
                    lowered(m, bias_of(bias, per)?)?
                        .compile_scaled(&mut b, x, &layout, out_scale)?
                }
                LayerKind::AvgPool { kernel, stride, padding } => {
                    let m = pool_matrix(&l.in_shape, &l.out_shape, *kernel, *stride, *padding);
                    lowered(m, None)?.compile_scaled(&mut b, x, &layout, out_scale)?
                }
                LayerKind::Activation(Activation::Square) => {
                    Square::new(&l.name).compile(&mut b, x, &layout)?
                }
                // Chebyshev (ReLU, SiLU, …) and monomial polynomials: Paterson–Stockmeyer
                // evaluation; a layer needing more levels than are left is DepthExceeded.
                LayerKind::Activation(a) => {
                    poly_activation(&l.name, a)?.compile(&mut b, x, &layout)?
                }
                LayerKind::Flatten => (x, layout),
                LayerKind::Add => {
                    let (skip, skip_layout) = value(l.inputs.get(1))?;
                    Residual::new(&l.name).compile(&mut b, (x, &layout), (skip, &skip_layout))?
                }
            };
            values.insert(l.name.as_str(), (x, layout));
        }
        b.output("logits", x)?;
        Ok(Compiled {
            program: b.finish(),
            input_layout,
            output_layout: layout,
            input_name: "input".into(),
            output_name: "logits".into(),
            input_padding,
            input_shape: in_shape,
            input_factor: 1.0,
            output_factor: 1.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reference;

    #[test]
    fn conv_matrix_equals_the_reference_convolution() {
        let (ins, outs) = ([2usize, 5, 4], [3usize, 3, 2]);
        let w: Vec<f64> = (0..3 * 2 * 9).map(|i| (i as f64 * 0.37).sin()).collect();
        let x: Vec<f64> = (0..40).map(|i| (i as f64 * 0.11).cos()).collect();
        let m = conv_matrix(&ins, &outs, &w, [3, 3], [2, 2], [1, 0, 1, 0], 1);
        let direct = reference::conv2d(&x, &ins, &outs, &w, None, [3, 3], [2, 2], [1, 0, 1, 0], 1);
        for (r, want) in direct.iter().enumerate() {
            let got: f64 = (0..40).map(|c| m[r * 40 + c] * x[c]).sum();
            assert!((got - want).abs() < 1e-12);
        }
        let p = pool_matrix(&ins, &[2, 2, 2], [2, 2], [2, 2], [0; 4]);
        let direct = reference::avgpool(&x, &ins, &[2, 2, 2], [2, 2], [2, 2], [0; 4]);
        for (r, want) in direct.iter().enumerate() {
            let got: f64 = (0..40).map(|c| p[r * 40 + c] * x[c]).sum();
            assert!((got - want).abs() < 1e-12);
        }
    }
}

#[cfg(test)]
mod encrypted_tests {
    use std::path::PathBuf;

    use crate::ckks::{Context, Decryptor, Encoder, Encryptor, KeyGenerator, Preset};
    use crate::model::{argmax, Model};
    use crate::nn::{Interpreter, KeyBundle};

    #[test]
    fn digits_program_matches_the_reference_in_the_interpreter() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
        let m = Model::load(dir.join("digits.json")).unwrap();
        let params = Preset::N14.params().unwrap();
        let c = m.compile(&params).unwrap();
        let ctx = Context::new(&params).unwrap();
        let mut kg = KeyGenerator::with_seed(&ctx, [7; 32]);
        let sk = kg.secret_key();
        let keys = KeyBundle::generate(&mut kg, &sk, &c.program).unwrap();
        let enc = Encoder::new(&ctx);
        let ts = m.test_set().unwrap();
        for i in 0..2 {
            let x = m.prepare_input(ts.image(i)).unwrap();
            let slots = c.pack(&x, params.slots()).unwrap();
            let pt = enc.encode_real(&slots, params.max_level(), params.scale()).unwrap();
            let ct = Encryptor::with_seed(&ctx, [i as u8; 32]).encrypt_sk(&sk, &pt).unwrap();
            let mut it = Interpreter::new(&ctx, &c.program, &keys).unwrap();
            it.set_input("input", ct).unwrap();
            it.run().unwrap();
            let out =
                Decryptor::new(&ctx, &sk).unwrap().decrypt(it.output("logits").unwrap()).unwrap();
            let y = c.output_layout.unpack(&enc.decode_real(&out).unwrap());
            let want = ts.reference_logits(i);
            let err = y.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            eprintln!("sample {i}: max err {err:e}, keys {}", c.program.keys().len());
            assert!(err < 1e-3, "sample {i}: {err}");
            assert_eq!(argmax(&y), argmax(want));
        }
    }
}
