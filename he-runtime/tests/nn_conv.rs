//! Convolution (multi-channel, stride 1 and 2), average pooling, residual add and batch-norm
//! folding against their f64 references.
mod nn_common;
use hetier_he::ckks::Preset;
use hetier_he::nn::layers::*;
use hetier_he::nn::*;
use nn_common::*;

fn conv(
    name: &str,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    seed: u64,
) -> Conv2d {
    let mut r = rng(seed);
    let w = uniform(&mut r, cout * cin * k * k, 1.0 / ((cin * k * k) as f64).sqrt());
    let b = uniform(&mut r, cout, 0.2);
    Conv2d::new(name, cin, cout, k, stride, pad, w, Some(b)).unwrap()
}

fn single(f: &mut Fixture, layer: &Conv2d, h: usize, w: usize, seed: u64) -> (Program, f64) {
    let params = f.ctx.params().clone();
    let mut b = ProgramBuilder::new(&params);
    let x = b.input("x", params.max_level(), params.scale()).unwrap();
    let inl = Layout::image(layer.in_channels, h, w);
    let y = layer.compile_tensor(&mut b, &Tensor::single(x, inl)).unwrap();
    let yl = y.layout;
    b.output("y", y.cts[0]).unwrap();
    let prog = b.finish();
    let xs = uniform(&mut rng(seed), inl.len(), 1.0);
    let run = run(f, &prog, &inl.pack_cts(&xs, params.slots()).unwrap());
    let want = layer.reference(&xs, h, w).unwrap();
    assert!(max_err(&yl.unpack_cts(&run.twin), &want) < 1e-9, "twin");
    (prog, max_err(&yl.unpack_cts(&run.slots), &want))
}

#[test]
fn conv_stride_one_multichannel() {
    let mut f = Fixture::new(Preset::N13);
    let layer = conv("conv1", 3, 4, 3, 1, 1, 1);
    let (prog, e) = single(&mut f, &layer, 8, 8, 2);
    println!("conv 3→4 3×3 s1: err {e:e}, keys {}", prog.rotation_steps().len());
    assert!(e < 1e-5, "{e}");
    assert_eq!(prog.depth(), 1);
    // k² − 1 kernel offsets plus one key for the C' − 1 channel shifts (nested by one block).
    assert_eq!(prog.rotation_steps().len(), 8 + 1);
}

#[test]
fn conv_stride_two_and_valid_padding() {
    let mut f = Fixture::new(Preset::N13);
    let layer = conv("conv2", 2, 3, 3, 2, 1, 3);
    let (_, e) = single(&mut f, &layer, 8, 8, 4);
    assert!(e < 1e-5, "{e}");
    // CryptoNets-like: 5×5, stride 2, no padding, 1 → 5 channels on a 12×12 image.
    let layer = conv("conv3", 1, 5, 5, 2, 0, 5);
    let (_, e) = single(&mut f, &layer, 12, 12, 6);
    assert!(e < 1e-5, "{e}");
}

#[test]
fn strided_conv_pool_and_dense_chain() {
    // conv s2 → avgpool 2×2 → dense, all on the in-place (gapped) layouts.
    let mut f = Fixture::new(Preset::N14);
    let params = f.ctx.params().clone();
    let c = conv("c", 2, 4, 3, 2, 1, 7);
    let pool = AvgPool2d::new("pool", 2, 2);
    let mut r = rng(8);
    let d =
        Dense::new("fc", 6, 16, uniform(&mut r, 96, 0.3), Some(uniform(&mut r, 6, 0.1))).unwrap();
    let mut b = ProgramBuilder::new(&params);
    let x = b.input("x", params.max_level(), params.scale()).unwrap();
    let inl = Layout::image(2, 8, 8);
    let h1 = c.compile_tensor(&mut b, &Tensor::single(x, inl)).unwrap();
    let l1 = h1.layout;
    assert_eq!((l1.height, l1.width, l1.r_stride, l1.s_stride), (4, 4, 16, 2));
    let h2 = pool.compile_tensor(&mut b, &h1).unwrap();
    let l2 = h2.layout;
    assert_eq!((l2.height, l2.width, l2.r_stride, l2.s_stride), (2, 2, 32, 4));
    let y = d.compile_tensor(&mut b, &h2).unwrap();
    let yl = y.layout;
    b.output("y", y.cts[0]).unwrap();
    let prog = b.finish();
    let xs = uniform(&mut r, inl.len(), 1.0);
    let run = run(&mut f, &prog, &inl.pack_cts(&xs, params.slots()).unwrap());
    let want = d.reference(&pool.reference(&c.reference(&xs, 8, 8).unwrap(), 4, 4, 4).unwrap());
    assert!(max_err(&yl.unpack_cts(&run.twin), &want) < 1e-9);
    let e = max_err(&yl.unpack_cts(&run.slots), &want);
    println!("conv→pool→dense: err {e:e}");
    assert!(e < 3e-5, "{e}");
    assert_eq!(prog.depth(), 3);
}

#[test]
fn global_avgpool_and_residual() {
    let mut f = Fixture::new(Preset::N13);
    let params = f.ctx.params().clone();
    let c = conv("c", 2, 2, 3, 1, 1, 9);
    let pool = AvgPool2d::global("gap", 8, 8);
    let res = Residual::new("res");
    let mut b = ProgramBuilder::new(&params);
    let x = b.input("x", params.max_level(), params.scale()).unwrap();
    let inl = Layout::image(2, 8, 8);
    let xt = Tensor::single(x, inl);
    let h = c.compile_tensor(&mut b, &xt).unwrap();
    let s = res.compile_tensor(&mut b, &h, &xt).unwrap();
    let y = pool.compile_tensor(&mut b, &s).unwrap();
    let yl = y.layout;
    b.output("y", y.cts[0]).unwrap();
    let prog = b.finish();
    let xs = uniform(&mut rng(10), inl.len(), 1.0);
    let run = run(&mut f, &prog, &inl.pack_cts(&xs, params.slots()).unwrap());
    let sum = res.reference(&c.reference(&xs, 8, 8).unwrap(), &xs);
    let want = pool.reference(&sum, 2, 8, 8).unwrap();
    assert_eq!(want.len(), 2);
    assert!(max_err(&yl.unpack_cts(&run.twin), &want) < 1e-9);
    let e = max_err(&yl.unpack_cts(&run.slots), &want);
    assert!(e < 1e-5, "{e}");
    // Mismatched layouts are a typed error naming the layer.
    let mut b = ProgramBuilder::new(&params);
    let x = b.input("x", 2, params.scale()).unwrap();
    let other = Layout::image(2, 4, 4);
    match res.compile_tensor(&mut b, &Tensor::single(x, inl), &Tensor::single(x, other)) {
        Err(hetier_he::Error::LayerShape { layer, .. }) => assert_eq!(layer, "res"),
        r => panic!("{r:?}"),
    }
}

#[test]
fn batchnorm_folds_into_conv_and_dense() {
    let mut c = conv("c", 2, 3, 3, 1, 1, 11);
    let mut r = rng(12);
    let bn = BatchNorm::new(
        "bn",
        uniform(&mut r, 3, 2.0),
        uniform(&mut r, 3, 1.0),
        uniform(&mut r, 3, 1.0),
        uniform(&mut r, 3, 1.0).iter().map(|v| v.abs() + 0.1).collect(),
        1e-5,
    )
    .unwrap();
    let xs = uniform(&mut r, 2 * 36, 1.0);
    let want = bn.reference(&c.reference(&xs, 6, 6).unwrap(), 36);
    bn.fold_into_conv(&mut c).unwrap();
    assert!(max_err(&c.reference(&xs, 6, 6).unwrap(), &want) < 1e-12);
    let mut d = Dense::new("d", 3, 4, uniform(&mut r, 12, 1.0), None).unwrap();
    let v = uniform(&mut r, 4, 1.0);
    let want = bn.reference(&d.reference(&v), 1);
    bn.fold_into_dense(&mut d).unwrap();
    assert!(max_err(&d.reference(&v), &want) < 1e-12);
    // Wrong channel count and a non-positive variance are typed errors.
    let mut d2 = Dense::new("d2", 2, 2, vec![1.0; 4], None).unwrap();
    assert!(matches!(bn.fold_into_dense(&mut d2), Err(hetier_he::Error::LayerShape { .. })));
    assert!(matches!(
        BatchNorm::new("bad", vec![1.0], vec![0.0], vec![0.0], vec![-1.0], 0.0),
        Err(hetier_he::Error::LayerShape { .. })
    ));
}
