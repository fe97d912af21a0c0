//! Tensors split over several ciphertexts (channel groups): convolution across groups and a
//! dense layer reading a multi-ciphertext vector.
mod nn_common;
use hetier_he::ckks::Preset;
use hetier_he::nn::layers::*;
use hetier_he::nn::*;
use nn_common::*;

#[test]
fn conv_across_channel_groups() {
    let mut f = Fixture::new(Preset::N13); // 4096 slots: 16 channels of 16×16 per ciphertext
    let params = f.ctx.params().clone();
    let mut r = rng(1);
    let (cin, cout) = (24, 20);
    let w = uniform(&mut r, cout * cin * 9, 1.0 / (cin as f64 * 9.0).sqrt());
    let conv =
        Conv2d::new("conv", cin, cout, 3, 1, 1, w, Some(uniform(&mut r, cout, 0.1))).unwrap();
    let model = Model::new(
        Layout::image(cin, 16, 16),
        vec![Layer::Conv2d(conv), Layer::Square(Square::new("sq"))],
    );
    let inl = model.input_layout(&params);
    assert_eq!((inl.ciphertexts(), inl.per_ct), (2, 16));
    let (prog, out) = model.compile(&params).unwrap();
    assert_eq!(out.ciphertexts(), 2);
    assert_eq!(prog.inputs().len(), 2);
    assert_eq!(prog.outputs().len(), 2);
    // 8 kernel offsets + one key for the 15 channel shifts of 256 slots (nested), shared by
    // both groups.
    assert_eq!(prog.rotation_steps().len(), 8 + 1);
    // One hoisted decomposition per input ciphertext.
    let hoisted = prog.ops().iter().filter(|o| matches!(o.op, Op::HoistedRotate { .. })).count();
    assert_eq!(hoisted, 2);
    let xs = uniform(&mut r, cin * 256, 1.0);
    let run = run(&mut f, &prog, &inl.pack_cts(&xs, params.slots()).unwrap());
    let want = model.reference(&xs).unwrap();
    assert!(max_err(&out.unpack_cts(&run.twin), &want) < 1e-9);
    let e = max_err(&out.unpack_cts(&run.slots), &want);
    println!("multi-ct conv err {e:e}");
    assert!(e < 1e-4, "{e}");
    assert_eq!(prog.trace(), run.accesses);
}

#[test]
fn dense_reads_a_split_vector() {
    let mut f = Fixture::new(Preset::N13);
    let params = f.ctx.params().clone();
    let mut r = rng(2);
    let n = 6000;
    let d = Dense::new("fc", 10, n, uniform(&mut r, 10 * n, 0.02), Some(uniform(&mut r, 10, 0.1)))
        .unwrap();
    let model = Model::new(Layout::vector(n), vec![Layer::Dense(d)]);
    let inl = model.input_layout(&params);
    assert_eq!(inl.ciphertexts(), 2);
    let (prog, out) = model.compile(&params).unwrap();
    let xs = uniform(&mut r, n, 1.0);
    let run = run(&mut f, &prog, &inl.pack_cts(&xs, params.slots()).unwrap());
    let want = model.reference(&xs).unwrap();
    assert!(max_err(&out.unpack_cts(&run.twin), &want) < 1e-9);
    let e = max_err(&out.unpack_cts(&run.slots), &want);
    assert!(e < 1e-4, "{e}");
    // 16 diagonals (n1 = n2 = 4: 3 baby keys, one key for the nested giant steps) and
    // log2(4096/16) = 8 fold steps.
    assert_eq!(prog.rotation_steps().len(), 3 + 1 + 8);
}
