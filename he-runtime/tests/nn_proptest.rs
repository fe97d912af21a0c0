//! Property tests of the layer compilers on the f64 twin (no cryptography, so many shapes are
//! cheap): for random shapes, strides, paddings and channel counts the compiled program computes
//! the reference, and the program's liveness is consistent.
use hetier_he::ckks::{Params, ParamsBuilder};
use hetier_he::nn::layers::*;
use hetier_he::nn::*;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

fn params() -> Params {
    // log N = 12 (2048 slots), two levels; sizes only, never used for encryption here.
    let mut b = ParamsBuilder::new(12);
    b.q_bits(40, &[30, 30]).special_bits(40).allow_insecure();
    b.build().unwrap()
}

fn vals(seed: u64, n: usize) -> Vec<f64> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| r.gen_range(-1.0..1.0)).collect()
}

fn twin(prog: &Program, inputs: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut t = PlainInterpreter::new(prog);
    for ((name, _), v) in prog.inputs().iter().zip(inputs) {
        t.set_input(name, v).unwrap();
    }
    t.run().unwrap();
    prog.outputs().iter().map(|(n, _)| t.output(n).unwrap().to_vec()).collect()
}

fn max_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn check_liveness(prog: &Program) {
    let trace = prog.trace();
    let mut live = std::collections::HashSet::new();
    for (_, id) in prog.inputs() {
        live.insert(*id);
    }
    for a in &trace {
        let o = prog.object(a.obj).unwrap();
        if o.kind != ObjKind::Ciphertext {
            continue;
        }
        match a.mode {
            AccessMode::Read => assert!(live.contains(&a.obj), "read of dead {}", a.obj),
            AccessMode::Write => assert!(live.insert(a.obj), "double write {}", a.obj),
            AccessMode::Free => assert!(live.remove(&a.obj), "double free {}", a.obj),
        }
    }
    let outs: std::collections::HashSet<ObjId> = prog.outputs().iter().map(|(_, i)| *i).collect();
    assert_eq!(live, outs, "only the outputs survive");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn dense_twin_matches_reference(out in 1usize..40, inp in 1usize..300, seed in 0u64..1000) {
        let p = params();
        let d = Dense::new("fc", out, inp, vals(seed, out * inp), Some(vals(seed + 1, out))).unwrap();
        let model = Model::new(Layout::vector(inp), vec![Layer::Dense(d)]);
        let (prog, lay) = model.compile(&p).unwrap();
        let x = vals(seed + 2, inp);
        let y = twin(&prog, &model.input_layout(&p).pack_cts(&x, p.slots()).unwrap());
        prop_assert!(max_err(&lay.unpack_cts(&y), &model.reference(&x).unwrap()) < 1e-9);
        check_liveness(&prog);
    }

    #[test]
    fn conv_twin_matches_reference(
        cin in 1usize..6, cout in 1usize..6, k in 1usize..4, stride in 1usize..3,
        same in any::<bool>(), h in 4usize..9, w in 4usize..9, seed in 0u64..1000,
    ) {
        let p = params();
        let pad = if same { (k - 1) / 2 } else { 0 };
        let conv = Conv2d::new("c", cin, cout, k, stride, pad,
            vals(seed, cout * cin * k * k), Some(vals(seed + 1, cout))).unwrap();
        let model = Model::new(
            Layout::image(cin, h, w),
            vec![Layer::Conv2d(conv), Layer::AvgPool(AvgPool2d::new("pool", 1, 1))],
        );
        let (prog, lay) = model.compile(&p).unwrap();
        let x = vals(seed + 2, cin * h * w);
        let y = twin(&prog, &model.input_layout(&p).pack_cts(&x, p.slots()).unwrap());
        prop_assert!(max_err(&lay.unpack_cts(&y), &model.reference(&x).unwrap()) < 1e-9);
        check_liveness(&prog);
    }

    #[test]
    fn split_conv_then_dense_twin_matches_reference(
        cin in 9usize..20, cout in 1usize..20, seed in 0u64..1000,
    ) {
        // 16×16 images use 256-slot blocks, so with 2048 slots more than 8 channels split
        // over several ciphertexts.
        let p = params();
        let conv = Conv2d::new("c", cin, cout, 3, 2, 1, vals(seed, cout * cin * 9), None).unwrap();
        let fc = Dense::new("fc", 3, cout * 64, vals(seed + 1, 3 * cout * 64), None).unwrap();
        let model = Model::new(Layout::image(cin, 16, 16), vec![Layer::Conv2d(conv), Layer::Dense(fc)]);
        prop_assert!(model.input_layout(&p).ciphertexts() >= 2);
        let (prog, lay) = model.compile(&p).unwrap();
        let x = vals(seed + 2, cin * 256);
        let y = twin(&prog, &model.input_layout(&p).pack_cts(&x, p.slots()).unwrap());
        prop_assert!(max_err(&lay.unpack_cts(&y), &model.reference(&x).unwrap()) < 1e-9);
        check_liveness(&prog);
    }
}
