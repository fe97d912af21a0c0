//! Batch-major packing: every slot is one sample, every element one ciphertext; no rotations.
mod nn_common;
use hetier_he::ckks::Preset;
use hetier_he::nn::layers::*;
use hetier_he::nn::*;
use nn_common::*;

#[test]
fn batched_cnn_matches_reference_for_every_sample() {
    let mut f = Fixture::new(Preset::N14);
    let params = f.ctx.params().clone();
    let slots = params.slots();
    let mut r = rng(1);
    let conv = Conv2d::new("conv", 1, 2, 3, 2, 1, uniform(&mut r, 18, 0.5), Some(vec![0.1, -0.1]))
        .unwrap();
    let fc = Dense::new("fc", 3, 2 * 9, uniform(&mut r, 54, 0.3), Some(uniform(&mut r, 3, 0.1)))
        .unwrap();
    let model = Model::new(
        Layout::image(1, 6, 6),
        vec![
            Layer::Conv2d(conv),
            Layer::Square(Square::new("sq")),
            Layer::AvgPool(AvgPool2d::new("pool", 1, 1)),
            Layer::Dense(fc),
        ],
    );
    let (prog, shape) = model.compile_batched(&params).unwrap();
    assert_eq!(shape, (3, 1, 1));
    assert_eq!(prog.inputs().len(), 36);
    assert!(prog.rotation_steps().is_empty(), "batch-major needs no rotation key");
    assert_eq!(prog.depth(), 4);
    // samples[b] is sample b; input ciphertext f carries element f of every sample.
    let samples: Vec<Vec<f64>> = (0..slots).map(|_| uniform(&mut r, 36, 1.0)).collect();
    let inputs: Vec<Vec<f64>> = (0..36).map(|e| samples.iter().map(|s| s[e]).collect()).collect();
    let run = run(&mut f, &prog, &inputs);
    assert_eq!(prog.trace(), run.accesses);
    let mut worst: f64 = 0.0;
    let mut worst_twin: f64 = 0.0;
    for (bi, s) in samples.iter().enumerate() {
        let want = model.reference(s).unwrap();
        for (i, w) in want.iter().enumerate() {
            worst = worst.max((run.slots[i][bi] - w).abs());
            worst_twin = worst_twin.max((run.twin[i][bi] - w).abs());
        }
    }
    println!("batched: {} samples, max err {worst:e}, ops {}", slots, prog.ops().len());
    assert!(worst_twin < 1e-9);
    assert!(worst < 1e-4, "{worst}");
}

#[test]
fn batched_depth_error_names_the_layer() {
    let params = Preset::N13.params().unwrap();
    let d = Dense::new("fc9", 2, 4, vec![0.5; 8], None).unwrap();
    let model = Model::new(
        Layout::vector(4),
        vec![Layer::Square(Square::new("sq")), Layer::Square(Square::new("sq2")), Layer::Dense(d)],
    );
    match model.compile_batched(&params) {
        Err(hetier_he::Error::DepthExceeded { layer, .. }) => assert_eq!(layer, "fc9"),
        other => panic!("{other:?}"),
    }
}
