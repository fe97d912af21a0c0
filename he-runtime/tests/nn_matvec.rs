//! Encrypted matrix–vector products (square and rectangular) against the plain reference.
mod nn_common;
use hetier_he::ckks::Preset;
use hetier_he::nn::layers::Dense;
use hetier_he::nn::*;
use nn_common::*;

fn check(f: &mut Fixture, out: usize, inp: usize, seed: u64) -> (Program, Run) {
    let mut r = rng(seed);
    let w = uniform(&mut r, out * inp, 1.0 / (inp as f64).sqrt());
    let bias = uniform(&mut r, out, 0.5);
    let layer = Dense::new("fc", out, inp, w, Some(bias)).unwrap();
    let x = uniform(&mut r, inp, 1.0);
    let params = f.ctx.params().clone();
    let mut b = ProgramBuilder::new(&params);
    let xin = b.input("x", params.max_level(), params.scale()).unwrap();
    let lay = Layout::vector(inp);
    // The single-ciphertext API.
    let (y, ylay) = layer.compile(&mut b, xin, &lay).unwrap();
    b.output("y", y).unwrap();
    let prog = b.finish();
    let slots = params.slots();
    let run = run(f, &prog, &[lay.pack(&x, slots).unwrap()]);
    let want = layer.reference(&x);
    assert!(max_err(&ylay.unpack_cts(&run.twin), &want) < 1e-9, "twin disagrees with reference");
    let e = max_err(&ylay.unpack_cts(&run.slots), &want);
    println!("{out}x{inp}: max err {e:e}, keys {}", prog.rotation_steps().len());
    assert!(e < 1e-4, "{out}x{inp}: encrypted error {e}");
    // The output is replicated with the layout's period everywhere.
    let full = ylay.pack(&want, slots).unwrap();
    assert!(max_err(&run.slots[0], &full) < 1e-4);
    assert!(max_err(&ylay.unpack(&run.slots[0]), &want) < 1e-4);
    assert_eq!(prog.depth(), 1);
    assert_eq!(run.level, params.max_level() - 1);
    (prog, run)
}

#[test]
fn square_matvec_uses_n1_baby_keys_and_one_giant_key() {
    let mut f = Fixture::new(Preset::N13);
    let (prog, _) = check(&mut f, 64, 64, 1);
    let (n1, n2) = Dense::bsgs_split(64);
    assert_eq!((n1, n2), (8, 8));
    // n1 − 1 baby steps; the n2 − 1 giant steps 8, 16, … are nested rotations by 8.
    assert_eq!(prog.rotation_steps().len(), n1 - 1 + 1);
    let want: std::collections::BTreeSet<i64> = (1..8).chain([8]).collect();
    assert_eq!(prog.rotation_steps(), want);
    // Baby steps are hoisted: one decomposition for all seven.
    let hoisted = prog.ops().iter().filter(|r| matches!(r.op, Op::HoistedRotate { .. })).count();
    assert_eq!(hoisted, 1);
}

#[test]
fn tall_and_wide_rectangular_matvec() {
    let mut f = Fixture::new(Preset::N13);
    // 10×50: m' = 16 diagonals over n = 64 (n1 = n2 = 4) and two fold steps (16, 32).
    let (prog, _) = check(&mut f, 10, 50, 2);
    let want: std::collections::BTreeSet<i64> = [1, 2, 3, 4, 16, 32].into();
    assert_eq!(prog.rotation_steps(), want);
    // 100×30: m' = n = 128 (n1 = 16, n2 = 8), input repeated every 32 slots.
    let (prog, _) = check(&mut f, 100, 30, 3);
    assert!(prog.rotation_steps().len() <= 16 + 8 - 2);
}

#[test]
fn dense_shape_errors_are_typed() {
    assert!(matches!(
        Dense::new("fc1", 3, 4, vec![0.0; 11], None),
        Err(hetier_he::Error::LayerShape { ref layer, .. }) if layer == "fc1"
    ));
    let f = Fixture::new(Preset::N13);
    let params = f.ctx.params().clone();
    let mut b = ProgramBuilder::new(&params);
    let x = b.input("x", 0, params.scale()).unwrap();
    let d = Dense::new("fc2", 2, 2, vec![1.0; 4], None).unwrap();
    match d.compile_tensor(&mut b, &Tensor::single(x, Layout::vector(2))) {
        Err(hetier_he::Error::DepthExceeded { layer, needed: 1, available: 0 }) => {
            assert_eq!(layer, "fc2")
        }
        other => panic!("{other:?}"),
    }
    let x = b.input("x2", 2, params.scale()).unwrap();
    assert!(matches!(
        d.compile_tensor(&mut b, &Tensor::single(x, Layout::vector(3))),
        Err(hetier_he::Error::LayerShape { .. })
    ));
}
