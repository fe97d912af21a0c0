//! Each operator's lowering, checked by running the imported model in the plaintext reference
//! interpreter ([`Model::forward`]) against ONNX semantics computed directly here; malformed
//! files and unsupported graphs as typed errors; one imported CNN run encrypted.

use prost::Message;

use super::proto::*;
use super::*;
use crate::model::{Activation, LayerKind};

pub(crate) fn tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: Some(data_type::FLOAT),
        name: Some(name.into()),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

fn ints_tensor(name: &str, data: &[i64]) -> TensorProto {
    TensorProto {
        dims: vec![data.len() as i64],
        data_type: Some(data_type::INT64),
        name: Some(name.into()),
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

pub(crate) enum A {
    I(&'static str, i64),
    F(&'static str, f32),
    Is(&'static str, Vec<i64>),
}

pub(crate) fn node(op: &str, name: &str, ins: &[&str], outs: &[&str], attrs: Vec<A>) -> NodeProto {
    NodeProto {
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: outs.iter().map(|s| s.to_string()).collect(),
        name: Some(name.into()),
        op_type: Some(op.into()),
        attribute: attrs
            .into_iter()
            .map(|a| match a {
                A::I(n, i) => AttributeProto {
                    name: Some(n.into()),
                    i: Some(i),
                    r#type: Some(2),
                    ..Default::default()
                },
                A::F(n, f) => AttributeProto {
                    name: Some(n.into()),
                    f: Some(f),
                    r#type: Some(1),
                    ..Default::default()
                },
                A::Is(n, v) => AttributeProto {
                    name: Some(n.into()),
                    ints: v,
                    r#type: Some(7),
                    ..Default::default()
                },
            })
            .collect(),
        domain: None,
    }
}

fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: Some(data_type::FLOAT),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| {
                            if d < 0 {
                                Dimension { dim_value: None, dim_param: Some("N".into()) }
                            } else {
                                Dimension { dim_value: Some(d), dim_param: None }
                            }
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

/// The bytes of a one-input, one-output ONNX model (input "x", output "y"; batch axis -1).
pub(crate) fn model_bytes(
    in_dims: &[i64],
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
) -> Vec<u8> {
    ModelProto {
        ir_version: Some(8),
        producer_name: Some("hetier-tests".into()),
        graph: Some(GraphProto {
            node: nodes,
            name: Some("g".into()),
            initializer: inits,
            input: vec![value("x", in_dims)],
            output: vec![value("y", &[])],
        }),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(13) }],
    }
    .encode_to_vec()
}

fn import_ok(bytes: &[u8]) -> Model {
    import(bytes, &ImportOptions::default()).unwrap().model
}

fn seq(n: usize, k: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 + 1.0) * k).sin()).collect()
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() < tol, "element {i}: {x} vs {y}");
    }
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// ONNX Conv on one [C, H, W] sample: pads are [top, left, bottom, right].
#[allow(clippy::too_many_arguments)]
fn onnx_conv(
    x: &[f64],
    c: usize,
    h: usize,
    w: usize,
    wt: &[f64],
    o: usize,
    k: [usize; 2],
    s: [usize; 2],
    pads: [usize; 4],
    g: usize,
    b: &[f64],
) -> Vec<f64> {
    let oh = (h + pads[0] + pads[2] - k[0]) / s[0] + 1;
    let ow = (w + pads[1] + pads[3] - k[1]) / s[1] + 1;
    let (cg, og) = (c / g, o / g);
    let mut y = vec![0.0; o * oh * ow];
    for oc in 0..o {
        for r in 0..oh {
            for q in 0..ow {
                let mut acc = b[oc];
                for ci in 0..cg {
                    let ch = (oc / og) * cg + ci;
                    for ky in 0..k[0] {
                        for kx in 0..k[1] {
                            let yy = (r * s[0] + ky) as i64 - pads[0] as i64;
                            let xx = (q * s[1] + kx) as i64 - pads[1] as i64;
                            if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                                acc += wt[((oc * cg + ci) * k[0] + ky) * k[1] + kx]
                                    * x[(ch * h + yy as usize) * w + xx as usize];
                            }
                        }
                    }
                }
                y[(oc * oh + r) * ow + q] = acc;
            }
        }
    }
    y
}

#[test]
fn gemm_with_trans_b_alpha_and_beta_is_one_dense_layer() {
    let (b, c) = (seq(12, 0.3), seq(3, 0.7));
    let bytes = model_bytes(
        &[-1, 4],
        vec![node(
            "Gemm",
            "fc",
            &["x", "B", "C"],
            &["y"],
            vec![A::I("transB", 1), A::F("alpha", 0.5), A::F("beta", 2.0)],
        )],
        vec![tensor("B", &[3, 4], &b), tensor("C", &[3], &c)],
    );
    let m = import_ok(&bytes);
    assert_eq!(m.layers().len(), 1);
    let x = [0.1, -0.2, 0.3, 0.4];
    let want: Vec<f64> = (0..3)
        .map(|o| {
            0.5 * (0..4).map(|i| f64::from(b[o * 4 + i]) * x[i]).sum::<f64>()
                + 2.0 * f64::from(c[o])
        })
        .collect();
    close(&m.forward(&x).unwrap(), &want, 1e-6);
}

#[test]
fn matmul_then_constant_add_folds_the_bias() {
    let (w, bias) = (seq(8, 0.4), seq(2, 1.1));
    let bytes = model_bytes(
        &[1, 4],
        vec![
            node("MatMul", "mm", &["x", "W"], &["h"], vec![]),
            node("Add", "bias", &["h", "b"], &["y"], vec![]),
        ],
        vec![tensor("W", &[4, 2], &w), tensor("b", &[1, 2], &bias)],
    );
    let m = import_ok(&bytes);
    assert_eq!(m.layers().len(), 1, "the Add is folded into the dense layer");
    let x = [1.0, 2.0, -1.0, 0.5];
    let want: Vec<f64> = (0..2)
        .map(|o| (0..4).map(|i| f64::from(w[i * 2 + o]) * x[i]).sum::<f64>() + f64::from(bias[o]))
        .collect();
    close(&m.forward(&x).unwrap(), &want, 1e-6);
}

#[test]
fn conv_with_groups_stride_and_asymmetric_pads_matches_onnx() {
    let (c, h, w, o) = (4usize, 6usize, 5usize, 6usize);
    let wt = seq(o * 2 * 3 * 2, 0.21);
    let b = seq(o, 0.9);
    let pads = [1usize, 0, 0, 2]; // ONNX order: top, left, bottom, right
    let bytes = model_bytes(
        &[-1, c as i64, h as i64, w as i64],
        vec![
            node(
                "Conv",
                "conv",
                &["x", "W", "B"],
                &["c"],
                vec![
                    A::I("group", 2),
                    A::Is("strides", vec![2, 1]),
                    A::Is("pads", pads.iter().map(|&p| p as i64).collect()),
                ],
            ),
            node("Flatten", "flat", &["c"], &["y"], vec![]),
        ],
        vec![tensor("W", &[o as i64, 2, 3, 2], &wt), tensor("B", &[o as i64], &b)],
    );
    let m = import_ok(&bytes);
    let x: Vec<f64> = (0..c * h * w).map(|i| (i as f64 * 0.13).cos()).collect();
    let want = onnx_conv(&x, c, h, w, &f64s(&wt), o, [3, 2], [2, 1], pads, 2, &f64s(&b));
    close(&m.forward(&x).unwrap(), &want, 1e-6);
    let LayerKind::Conv2d { padding, groups, .. } = &m.layers()[0].kind else { panic!() };
    assert_eq!((*padding, *groups), ([1, 0, 0, 2], 2));
}

fn bn_params(ch: usize) -> Vec<TensorProto> {
    vec![
        tensor("s", &[ch as i64], &seq(ch, 0.5).iter().map(|v| v + 1.5).collect::<Vec<_>>()),
        tensor("bb", &[ch as i64], &seq(ch, 0.8)),
        tensor("mu", &[ch as i64], &seq(ch, 0.3)),
        tensor("var", &[ch as i64], &seq(ch, 0.6).iter().map(|v| v * v + 0.5).collect::<Vec<_>>()),
    ]
}

fn bn_ref(x: &[f64], ch: usize, per: usize, p: &[TensorProto]) -> Vec<f64> {
    let t = |i: usize| super::tensor::decode(&p[i]).unwrap().data;
    let (s, bb, mu, var) = (t(0), t(1), t(2), t(3));
    (0..ch * per)
        .map(|i| {
            let k = i / per;
            s[k] * (x[i] - mu[k]) / (var[k] + 1e-5f32 as f64).sqrt() + bb[k]
        })
        .collect()
}

#[test]
fn batchnorm_folds_into_the_conv_before_it_and_stands_alone_elsewhere() {
    let wt = seq(2 * 3 * 9, 0.17);
    let mut inits = bn_params(2);
    inits.push(tensor("W", &[2, 3, 3, 3], &wt));
    let bytes = model_bytes(
        &[-1, 3, 4, 4],
        vec![
            node("Conv", "conv", &["x", "W"], &["c"], vec![A::Is("pads", vec![1, 1, 1, 1])]),
            node("BatchNormalization", "bn", &["c", "s", "bb", "mu", "var"], &["n"], vec![]),
            node("Flatten", "flat", &["n"], &["y"], vec![]),
        ],
        inits.clone(),
    );
    let m = import_ok(&bytes);
    assert_eq!(m.layers().len(), 2, "conv (with the BN folded in) and flatten");
    let x: Vec<f64> = (0..48).map(|i| (i as f64 * 0.37).sin()).collect();
    let conv = onnx_conv(&x, 3, 4, 4, &f64s(&wt), 2, [3, 3], [1, 1], [1, 1, 1, 1], 1, &[0.0, 0.0]);
    close(&m.forward(&x).unwrap(), &bn_ref(&conv, 2, 16, &inits), 1e-6);

    // Straight on the input there is nothing to fold into: a depthwise 1×1 conv layer.
    let bytes = model_bytes(
        &[-1, 2, 3, 3],
        vec![
            node("BatchNormalization", "bn", &["x", "s", "bb", "mu", "var"], &["n"], vec![]),
            node("Flatten", "flat", &["n"], &["y"], vec![]),
        ],
        bn_params(2),
    );
    let m = import_ok(&bytes);
    assert!(matches!(m.layers()[0].kind, LayerKind::Conv2d { groups: 2, kernel: [1, 1], .. }));
    let x: Vec<f64> = (0..18).map(|i| i as f64 * 0.1 - 0.9).collect();
    close(&m.forward(&x).unwrap(), &bn_ref(&x, 2, 9, &bn_params(2)), 1e-6);
}

#[test]
fn residual_add_square_pow_and_scalar_mul() {
    let w = seq(9, 0.5);
    let bytes = model_bytes(
        &[-1, 3],
        vec![
            node("Gemm", "fc", &["x", "W"], &["h"], vec![A::I("transB", 1)]),
            node("Mul", "sq", &["h", "h"], &["s"], vec![]),
            node("Pow", "pw", &["h", "two"], &["p"], vec![]),
            node("Add", "res", &["s", "p"], &["r"], vec![]),
            node("Add", "res2", &["r", "x"], &["q"], vec![]),
            node("Mul", "half", &["q", "k"], &["y"], vec![]),
        ],
        vec![tensor("W", &[3, 3], &w), tensor("two", &[], &[2.0]), tensor("k", &[], &[0.5])],
    );
    let m = import_ok(&bytes);
    let kinds: Vec<&str> = m.layers().iter().map(|l| l.kind.name()).collect();
    assert_eq!(kinds, ["dense", "activation", "activation", "add", "add", "dense"]);
    let x = [0.3, -0.6, 0.9];
    let h: Vec<f64> =
        (0..3).map(|o| (0..3).map(|i| f64::from(w[o * 3 + i]) * x[i]).sum()).collect();
    let want: Vec<f64> = (0..3).map(|i| 0.5 * (2.0 * h[i] * h[i] + x[i])).collect();
    close(&m.forward(&x).unwrap(), &want, 1e-6);
}

#[test]
fn activations_are_chebyshev_fits_on_the_given_range() {
    for (op, f) in [
        ("Relu", crate::nn::poly::relu as fn(f64) -> f64),
        ("Sigmoid", crate::nn::poly::sigmoid),
        ("Tanh", f64::tanh),
        ("SiLU", crate::nn::poly::silu),
    ] {
        let nodes = if op == "SiLU" {
            vec![
                node("Sigmoid", "sig", &["x"], &["s"], vec![]),
                node("Mul", "silu", &["x", "s"], &["y"], vec![]),
            ]
        } else {
            vec![node(op, "act", &["x"], &["y"], vec![])]
        };
        let bytes = model_bytes(&[-1, 5], nodes, vec![]);
        let opts =
            ImportOptions { act_range: Some([-3.0, 3.0]), act_degree: 31, ..Default::default() };
        let imp = import(&bytes, &opts).unwrap();
        assert_eq!(imp.model.layers().len(), 1, "{op}");
        assert_eq!(imp.activations.len(), 1);
        assert_eq!(imp.activations[0].range, [-3.0, 3.0]);
        let x = [-2.5, -0.7, 0.0, 1.3, 2.9];
        let want: Vec<f64> = x.iter().map(|&v| f(v)).collect();
        let tol = if op == "Relu" { 0.05 } else { 1e-3 };
        close(&imp.model.forward(&x).unwrap(), &want, tol);
    }
}

#[test]
fn calibration_sets_each_range_from_the_samples() {
    let bytes = model_bytes(
        &[-1, 2],
        vec![
            node("Relu", "r1", &["x"], &["a"], vec![]),
            node("Mul", "scale", &["a", "k"], &["b"], vec![]),
            node("Tanh", "t", &["b"], &["y"], vec![]),
        ],
        vec![tensor("k", &[], &[3.0])],
    );
    let err = import(&bytes, &ImportOptions::default()).unwrap_err();
    let Error::OnnxUnsupported { nodes } = &err else { panic!("{err}") };
    assert!(nodes[0].starts_with("r1 (Relu): needs the range"), "{nodes:?}");
    let opts = ImportOptions {
        calibration: vec![0.5, -2.0, 1.8, 0.1],
        act_degree: 63,
        ..Default::default()
    };
    let imp = import(&bytes, &opts).unwrap();
    let r: Vec<(String, f64)> =
        imp.activations.iter().map(|a| (a.layer.clone(), a.range[1])).collect();
    // r1 sees |x| ≤ 2.0; t sees 3·relu(x) ≤ 5.4 (through the fitted ReLU, so about that).
    assert_eq!(r[0].0, "r1");
    assert!((r[0].1 - 2.2).abs() < 1e-12, "{r:?}");
    assert!((r[1].1 - 1.1 * 5.4).abs() < 0.1, "{r:?}");
}

#[test]
fn pools_flatten_and_reshape() {
    let bytes = model_bytes(
        &[-1, 2, 4, 4],
        vec![
            node(
                "AveragePool",
                "ap",
                &["x"],
                &["a"],
                vec![A::Is("kernel_shape", vec![2, 2]), A::Is("strides", vec![2, 2])],
            ),
            node("GlobalAveragePool", "gap", &["a"], &["g"], vec![]),
            node("Reshape", "rs", &["g", "shape"], &["y"], vec![]),
        ],
        vec![ints_tensor("shape", &[-1, 2])],
    );
    let m = import_ok(&bytes);
    let x: Vec<f64> = (0..32).map(|i| i as f64).collect();
    // 2×2 pooling then a global mean equals the channel mean.
    close(&m.forward(&x).unwrap(), &[7.5, 23.5], 1e-9);
    // Padding excluded from the mean is refused; included is lowered.
    let pooled = |cip: i64| {
        model_bytes(
            &[-1, 1, 3, 3],
            vec![
                node(
                    "AveragePool",
                    "ap",
                    &["x"],
                    &["a"],
                    vec![
                        A::Is("kernel_shape", vec![2, 2]),
                        A::Is("pads", vec![1, 1, 0, 0]),
                        A::I("count_include_pad", cip),
                    ],
                ),
                node("Flatten", "f", &["a"], &["y"], vec![]),
            ],
            vec![],
        )
    };
    assert!(matches!(
        import(&pooled(0), &ImportOptions::default()),
        Err(Error::OnnxUnsupported { .. })
    ));
    let m = import_ok(&pooled(1));
    let y = m.forward(&[1.0; 9]).unwrap();
    close(&y, &[0.25, 0.5, 0.5, 0.5, 1.0, 1.0, 0.5, 1.0, 1.0], 1e-12);
}

#[test]
fn every_unsupported_node_is_listed_by_name_and_op() {
    let bytes = model_bytes(
        &[-1, 4],
        vec![
            node("Softmax", "sm", &["x"], &["a"], vec![]),
            node("Relu", "r", &["a"], &["b"], vec![]),
            node("LSTM", "rnn", &["b"], &["c"], vec![]),
            node("Conv", "conv_on_vector", &["x", "W"], &["d"], vec![]),
            node("Add", "y", &["c", "d"], &["y"], vec![]),
        ],
        vec![tensor("W", &[1, 1, 1, 1], &[1.0])],
    );
    let err = import(&bytes, &ImportOptions::default()).unwrap_err();
    let Error::OnnxUnsupported { nodes } = &err else { panic!("{err}") };
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert_eq!(nodes[0], "sm (Softmax)");
    assert_eq!(nodes[1], "rnn (LSTM)");
    assert!(nodes[2].starts_with("conv_on_vector (Conv): needs a [C, H, W] input"));
    let msg = err.to_string();
    assert!(msg.contains("sm (Softmax)") && msg.contains("rnn (LSTM)"), "{msg}");
}

#[test]
fn malformed_and_truncated_files_are_typed_errors() {
    let good = model_bytes(&[-1, 2], vec![node("Relu", "r", &["x"], &["y"], vec![])], vec![]);
    for cut in [1, good.len() / 3, good.len() - 1] {
        let e = import(&good[..cut], &ImportOptions::default()).unwrap_err();
        assert!(matches!(e, Error::OnnxFormat { .. }), "cut {cut}: {e}");
    }
    assert!(matches!(
        import(b"{\"not\": \"onnx\"}", &ImportOptions::default()),
        Err(Error::OnnxFormat { .. })
    ));
    // A tensor whose raw data does not match its shape.
    let mut t = tensor("W", &[3, 4], &[1.0; 12]);
    t.raw_data.as_mut().unwrap().truncate(40);
    let bad = model_bytes(
        &[-1, 4],
        vec![node("Gemm", "fc", &["x", "W"], &["y"], vec![A::I("transB", 1)])],
        vec![t],
    );
    let e = import(&bad, &ImportOptions::default()).unwrap_err();
    assert!(e.to_string().contains("needs 48 raw bytes, has 40"), "{e}");
    // A shape claiming 2^62 elements is refused before anything is allocated.
    let mut t = tensor("W", &[1 << 31, 1 << 31], &[]);
    t.raw_data = Some(vec![]);
    let huge =
        model_bytes(&[-1, 4], vec![node("Gemm", "fc", &["x", "W"], &["y"], vec![])], vec![t]);
    assert!(matches!(import(&huge, &ImportOptions::default()), Err(Error::OnnxFormat { .. })));
    // Random bytes never panic.
    let mut s = 0x1234_5678_u64;
    for len in [0usize, 3, 17, 200] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 56) as u8
            })
            .collect();
        assert!(import(&bytes, &ImportOptions::default()).is_err());
    }
}

/// A small CNN: conv (stride 2, pad 1) → BN → x² → residual add with a 1×1 conv of the same
/// input → average pool → flatten → gemm.
pub(crate) fn small_cnn() -> Vec<u8> {
    let mut inits = bn_params(2);
    inits.extend([
        tensor("W", &[2, 1, 3, 3], &seq(18, 0.41).iter().map(|v| v * 0.6).collect::<Vec<_>>()),
        tensor("Wskip", &[2, 1, 1, 1], &[0.5, -0.4]),
        tensor("Wfc", &[3, 8], &seq(24, 0.29)),
        tensor("bfc", &[3], &[0.1, -0.2, 0.05]),
    ]);
    model_bytes(
        &[-1, 1, 8, 8],
        vec![
            node(
                "Conv",
                "conv",
                &["x", "W"],
                &["c"],
                vec![A::Is("strides", vec![2, 2]), A::Is("pads", vec![1, 1, 1, 1])],
            ),
            node("BatchNormalization", "bn", &["c", "s", "bb", "mu", "var"], &["n"], vec![]),
            node("Mul", "sq", &["n", "n"], &["a"], vec![]),
            node("Conv", "skip", &["x", "Wskip"], &["k"], vec![A::Is("strides", vec![2, 2])]),
            node("Add", "res", &["a", "k"], &["r"], vec![]),
            node(
                "AveragePool",
                "pool",
                &["r"],
                &["p"],
                vec![A::Is("kernel_shape", vec![2, 2]), A::Is("strides", vec![2, 2])],
            ),
            node("Flatten", "flat", &["p"], &["f"], vec![]),
            node("Gemm", "fc", &["f", "Wfc", "bfc"], &["y"], vec![A::I("transB", 1)]),
        ],
        inits,
    )
}

#[test]
fn imported_models_save_and_reload_as_hetier_model_files() {
    let m = import_ok(&small_cnn());
    let dir = tempfile::tempdir().unwrap();
    let path = m.save(dir.path()).unwrap();
    let back = Model::load(&path).unwrap();
    assert_eq!(back.desc(), m.desc());
    let x: Vec<f64> = (0..64).map(|i| (i as f64 * 0.3).sin()).collect();
    assert_eq!(back.forward(&x).unwrap(), m.forward(&x).unwrap());
}

#[test]
fn imported_cnn_runs_encrypted_like_its_reference() {
    use crate::ckks::{Context, Decryptor, Encoder, Encryptor, KeyGenerator, Preset};
    use crate::nn::{Interpreter, KeyBundle};

    let m = import_ok(&small_cnn());
    assert_eq!(m.depth(), 4);
    let params = Preset::N14.params().unwrap();
    let c = m.compile(&params).unwrap();
    let ctx = Context::new(&params).unwrap();
    let mut kg = KeyGenerator::with_seed(&ctx, [3; 32]);
    let sk = kg.secret_key();
    let keys = KeyBundle::generate(&mut kg, &sk, &c.program).unwrap();
    let enc = Encoder::new(&ctx);
    let x: Vec<f64> = (0..64).map(|i| (i as f64 * 0.7).cos() * 0.8).collect();
    let pt = enc
        .encode_real(&c.pack(&x, params.slots()).unwrap(), params.max_level(), params.scale())
        .unwrap();
    let ct = Encryptor::with_seed(&ctx, [4; 32]).encrypt_sk(&sk, &pt).unwrap();
    let mut it = Interpreter::new(&ctx, &c.program, &keys).unwrap();
    it.set_input("input", ct).unwrap();
    it.run().unwrap();
    let out = Decryptor::new(&ctx, &sk).unwrap().decrypt(it.output("logits").unwrap()).unwrap();
    let y = c.output_layout.unpack(&enc.decode_real(&out).unwrap());
    close(&y, &m.forward(&x).unwrap(), 1e-3);
    let kinds: Vec<&str> = m.layers().iter().map(|l| l.kind.name()).collect();
    assert_eq!(kinds, ["conv2d", "activation", "conv2d", "add", "avgpool", "flatten", "dense"]);
    assert!(matches!(m.layers()[1].kind, LayerKind::Activation(Activation::Square)));
}
