//! Models compiled into one program: end-to-end agreement, level bookkeeping and the typed
//! depth error naming the layer.
mod nn_common;
use hetier_he::ckks::Preset;
use hetier_he::nn::layers::*;
use hetier_he::nn::*;
use nn_common::*;

fn small_cnn(seed: u64) -> Model {
    let mut r = rng(seed);
    let conv =
        Conv2d::new("conv", 1, 2, 3, 2, 1, uniform(&mut r, 18, 0.5), Some(uniform(&mut r, 2, 0.1)))
            .unwrap();
    let fc1 =
        Dense::new("fc1", 8, 32, uniform(&mut r, 256, 0.3), Some(uniform(&mut r, 8, 0.1))).unwrap();
    let fc2 = Dense::new("fc2", 4, 8, uniform(&mut r, 32, 0.5), None).unwrap();
    Model::new(
        Layout::image(1, 8, 8),
        vec![
            Layer::Conv2d(conv),
            Layer::Activation(PolyActivation::relu("relu", -2.0, 2.0, 2).unwrap()),
            Layer::Dense(fc1),
            Layer::Square(Square::new("sq")),
            Layer::Dense(fc2),
        ],
    )
}

#[test]
fn model_runs_encrypted_and_matches_reference() {
    let mut pb = Preset::N14.builder();
    // One level more than the preset; 2 bits over the 128-bit bound, fine for a test.
    pb.q_bits(50, &[40; 6]).allow_insecure();
    let params = pb.build().unwrap();
    let mut f = Fixture::with_params(&params);
    let model = small_cnn(1);
    let (prog, out) = model.compile(&params).unwrap();
    // 1 (conv) + 2 (ReLU of degree 2, its x ↦ x/2 map folded into conv) + 1 (fc1)
    // + 1 (square) + 1 (fc2) = 6 > 5 levels: N = 2^14 with depth 6.
    assert_eq!(prog.depth(), 6);
    let xs = uniform(&mut rng(2), 64, 1.0);
    let run = run(&mut f, &prog, &model.input.pack_cts(&xs, params.slots()).unwrap());
    let want = model.reference(&xs).unwrap();
    assert_eq!(want.len(), 4);
    assert!(max_err(&out.unpack_cts(&run.twin), &want) < 1e-9);
    let e = max_err(&out.unpack_cts(&run.slots), &want);
    println!("model err {e:e}, keys {}, ops {}", prog.rotation_steps().len(), prog.ops().len());
    assert!(e < 1e-4, "{e}");
    // Ops are attributed to their layers.
    let names: std::collections::BTreeSet<&str> =
        prog.ops().iter().map(|r| prog.layers()[r.layer as usize].as_str()).collect();
    for n in ["conv", "relu", "fc1", "sq", "fc2"] {
        assert!(names.contains(n), "{n}");
    }
}

#[test]
fn too_deep_model_is_a_typed_error_naming_the_layer() {
    let params = Preset::N13.params().unwrap(); // depth 2
    match small_cnn(3).compile(&params) {
        Err(hetier_he::Error::DepthExceeded { layer, needed: 2, available: 1 }) => {
            assert_eq!(layer, "relu")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn residual_block_model() {
    let mut f = Fixture::new(Preset::N14);
    let params = f.ctx.params().clone();
    let mut r = rng(4);
    let c1 = Conv2d::new("c1", 2, 2, 3, 1, 1, uniform(&mut r, 36, 0.3), None).unwrap();
    let c2 = Conv2d::new("c2", 2, 2, 3, 1, 1, uniform(&mut r, 36, 0.3), None).unwrap();
    let model = Model::new(
        Layout::image(2, 4, 4),
        vec![
            Layer::Residual {
                name: "block".into(),
                body: vec![
                    Layer::Conv2d(c1),
                    Layer::Activation(PolyActivation::silu("silu", -3.0, 3.0, 2).unwrap()),
                    Layer::Conv2d(c2),
                ],
            },
            Layer::AvgPool(AvgPool2d::global("gap", 4, 4)),
        ],
    );
    let (prog, out) = model.compile(&params).unwrap();
    let xs = uniform(&mut r, 32, 1.0);
    let run = run(&mut f, &prog, &model.input.pack_cts(&xs, params.slots()).unwrap());
    let want = model.reference(&xs).unwrap();
    assert!(max_err(&out.unpack_cts(&run.twin), &want) < 1e-9);
    let e = max_err(&out.unpack_cts(&run.slots), &want);
    assert!(e < 1e-4, "{e}");
    assert_eq!(prog.depth(), 1 + 2 + 1 + 1);
}
