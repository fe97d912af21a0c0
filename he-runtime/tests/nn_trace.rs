//! The symbolic access trace of a program equals the accesses the interpreter performs.
mod nn_common;
use hetier_he::ckks::Preset;
use hetier_he::nn::layers::Dense;
use hetier_he::nn::*;
use nn_common::*;

#[test]
fn symbolic_trace_equals_interpreter_accesses() {
    let mut f = Fixture::new(Preset::N13);
    let params = f.ctx.params().clone();
    let mut r = rng(11);
    let d1 = Dense::new("fc1", 20, 30, uniform(&mut r, 600, 0.2), Some(uniform(&mut r, 20, 0.1)))
        .unwrap();
    let d2 = Dense::new("fc2", 5, 20, uniform(&mut r, 100, 0.2), None).unwrap();
    let mut b = ProgramBuilder::new(&params);
    let x = b.input("x", params.max_level(), params.scale()).unwrap();
    b.begin_layer("fc1");
    let h = d1.compile_tensor(&mut b, &Tensor::single(x, Layout::vector(30))).unwrap();
    b.begin_layer("fc2");
    let y = d2.compile_tensor(&mut b, &h).unwrap();
    b.output("y", y.cts[0]).unwrap();
    let prog = b.finish();
    let input = Layout::vector(30).pack_cts(&uniform(&mut r, 30, 1.0), params.slots()).unwrap();
    let run = run(&mut f, &prog, &input);
    let trace = prog.trace();
    assert!(!trace.is_empty());
    assert_eq!(trace.len(), run.accesses.len());
    for (i, (a, b)) in trace.iter().zip(&run.accesses).enumerate() {
        assert_eq!(a, b, "access {i} differs");
    }
    // Every scratch ciphertext is freed; only the output survives besides keys and weights.
    let frees = trace.iter().filter(|a| a.mode == AccessMode::Free).count();
    let scratch = prog
        .objects()
        .iter()
        .filter(|o| matches!(o.role, Role::Intermediate | Role::Input))
        .count();
    assert_eq!(frees, scratch);
    assert!(prog.peak_live_ciphertext_bytes() > 0);
    assert_eq!(prog.depth(), 2);
}

#[test]
fn model_trace_with_every_layer_kind_equals_interpreter_accesses() {
    let mut f = Fixture::new(Preset::N14);
    let params = f.ctx.params().clone();
    let mut r = rng(5);
    use hetier_he::nn::layers::*;
    let c1 = Conv2d::new("c1", 2, 2, 3, 1, 1, uniform(&mut r, 36, 0.3), None).unwrap();
    let c2 =
        Conv2d::new("c2", 2, 4, 3, 2, 1, uniform(&mut r, 72, 0.3), Some(vec![0.1; 4])).unwrap();
    let fc = Dense::new("fc", 3, 16, uniform(&mut r, 48, 0.3), None).unwrap();
    let model = Model::new(
        Layout::image(2, 4, 4),
        vec![
            Layer::Residual { name: "res".into(), body: vec![Layer::Conv2d(c1)] },
            Layer::Conv2d(c2),
            Layer::Activation(PolyActivation::relu("relu", -2.0, 2.0, 2).unwrap()),
            Layer::Dense(fc),
        ],
    );
    let (prog, _) = model.compile(&params).unwrap();
    let xs = uniform(&mut r, 32, 1.0);
    let run = run(&mut f, &prog, &model.input.pack_cts(&xs, params.slots()).unwrap());
    assert_eq!(prog.trace(), run.accesses);
    let kinds: std::collections::BTreeSet<&str> = prog.ops().iter().map(|r| r.op.name()).collect();
    for k in ["hoisted_rotate", "rotate", "mul_plain", "mul_relin", "rescale", "relabel"] {
        assert!(kinds.contains(k), "{k} missing from {kinds:?}");
    }
}

#[test]
fn full_size_programs_are_sized_without_cryptography() {
    // log N = 16: only the primes are generated, no key, no NTT table.
    let params = hetier_he::ckks::Preset::N16.params().unwrap();
    let n = 1u64 << 16;
    let mut b = ProgramBuilder::new(&params);
    let top = params.max_level();
    let x = b.input("x", top, params.scale()).unwrap();
    let d = Dense::new("fc", 1024, 1024, vec![0.01; 1024 * 1024], None).unwrap();
    let y = d.compile_tensor(&mut b, &Tensor::single(x, Layout::vector(1024))).unwrap();
    b.output("y", y.cts[0]).unwrap();
    let prog = b.finish();
    // 31 baby keys and one key for the nested giant steps.
    assert_eq!(prog.rotation_steps().len(), 31 + 1);
    let ct = prog.object(x).unwrap();
    assert_eq!(ct.bytes, 2 * (top as u64 + 1) * n * 8);
    let q = params.q().len() as u64;
    let p = params.p().len() as u64;
    let key = prog.keys()[0];
    assert_eq!(prog.object(key).unwrap().bytes, 3 * 2 * (q + p) * n * 8);
    let digits = params.digits_at(top) as u64;
    assert_eq!(prog.sizes().decomposition(top), digits * (top as u64 + 1 + p) * n * 8);
    let by_kind = prog.bytes_by_kind();
    assert_eq!(by_kind["key"], 32 * 3 * 2 * (q + p) * n * 8);
    assert_eq!(by_kind["plaintext"], 1024 * (top as u64 + 1) * n * 8);
    let trace = prog.trace();
    assert!(trace.len() > 3 * 1024);
    assert_eq!(prog.key_switches(), 62);
    println!(
        "fc 1024² at log N 16: {} ops, {} accesses, keys {:.1} GB, weights {:.1} GB, peak live ct {:.2} GB",
        prog.ops().len(),
        trace.len(),
        by_kind["key"] as f64 / 1e9,
        by_kind["plaintext"] as f64 / 1e9,
        prog.peak_live_ciphertext_bytes() as f64 / 1e9
    );
}

#[test]
fn resnet20_first_stage_plans_at_log_n_16() {
    // Symbolic only: CIFAR 3×32×32 → conv 16 → 3 residual blocks (conv, x², conv) → x², with
    // the square standing in for the activation; no key, no encryption.
    use hetier_he::nn::layers::*;
    let params = hetier_he::ckks::Preset::N16.params().unwrap();
    let mut r = rng(20);
    let mut conv = |name: &str, cin: usize| {
        let w = uniform(&mut r, 16 * cin * 9, 0.1);
        Layer::Conv2d(Conv2d::new(name, cin, 16, 3, 1, 1, w, None).unwrap())
    };
    let mut layers = vec![conv("conv0", 3), Layer::Square(Square::new("act0"))];
    for i in 0..3 {
        layers.push(Layer::Residual {
            name: format!("block{i}"),
            body: vec![
                conv(&format!("block{i}.conv1"), 16),
                Layer::Square(Square::new(&format!("block{i}.act"))),
                conv(&format!("block{i}.conv2"), 16),
            ],
        });
        layers.push(Layer::Square(Square::new(&format!("act{}", i + 1))));
    }
    let model = Model::new(Layout::image(3, 32, 32), layers);
    let (prog, out) = model.compile(&params).unwrap();
    assert_eq!(out.ciphertexts(), 1);
    assert_eq!(prog.depth(), 2 + 3 * 4);
    // 8 kernel offsets + one key for the 15 nested channel shifts of 1024 slots.
    assert_eq!(prog.rotation_steps().len(), 8 + 1);
    let kinds = prog.bytes_by_kind();
    let trace = prog.trace();
    assert_eq!(trace.iter().filter(|a| a.mode == AccessMode::Write).count(), {
        let writes: usize = prog
            .ops()
            .iter()
            .map(|o| o.op.accesses().iter().filter(|(_, m)| *m == AccessMode::Write).count())
            .sum();
        writes
    });
    println!(
        "resnet20 stage 1 at log N 16: {} ops, {} key switches, keys {:.2} GB, weights {:.2} GB, \
         peak live ct {:.2} GB",
        prog.ops().len(),
        prog.key_switches(),
        kinds["key"] as f64 / 1e9,
        kinds["plaintext"] as f64 / 1e9,
        prog.peak_live_ciphertext_bytes() as f64 / 1e9
    );
}

#[test]
fn conjugate_sub_and_scalar_ops_run_and_trace() {
    let mut f = Fixture::new(Preset::N13);
    let params = f.ctx.params().clone();
    let mut b = ProgramBuilder::new(&params);
    let x = b.input("x", params.max_level(), params.scale()).unwrap();
    let c = b.conjugate(x).unwrap(); // real slots: conj(x) = x
    let t = b.mul_int(c, 3).unwrap(); // 3x
    let d = b.sub(t, x).unwrap(); // 2x
    let e = b.add_const(d, 0.25).unwrap(); // 2x + 1/4
    let l = b.drop_to(e, 1).unwrap();
    b.output("y", l).unwrap();
    let prog = b.finish();
    assert!(matches!(
        prog.object(prog.keys()[0]).unwrap().kind,
        ObjKind::GaloisKey { step: None, .. }
    ));
    let xs = uniform(&mut rng(3), params.slots(), 1.0);
    let run = run(&mut f, &prog, std::slice::from_ref(&xs));
    let want: Vec<f64> = xs.iter().map(|v| 2.0 * v + 0.25).collect();
    assert!(max_err(&run.twin[0], &want) < 1e-12);
    assert!(max_err(&run.slots[0], &want) < 1e-5);
    assert_eq!(run.level, 1);
    assert_eq!(prog.trace(), run.accesses);
    // Mismatched operands are typed errors.
    let mut b = ProgramBuilder::new(&params);
    let x = b.input("x", 2, params.scale()).unwrap();
    let y = b.input("y", 1, params.scale()).unwrap();
    assert!(matches!(b.add(x, y), Err(hetier_he::Error::LevelMismatch { .. })));
    let z = b.mul_const(x, 1.0, 3.0).unwrap();
    assert!(matches!(b.add(x, z), Err(hetier_he::Error::ScaleMismatch { .. })));
    let r = b.rescale(y).unwrap();
    assert!(matches!(b.rescale(r), Err(hetier_he::Error::LevelExhausted { .. })));
}
