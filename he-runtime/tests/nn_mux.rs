//! Multiplexed layouts (the packing of MobileNetV2 / ResNet-50): every layer kind encrypted at
//! log N = 12 (insecure test parameters) against its f64 reference, layer by layer, and the
//! slot-level twin against the reference to 1e-9 (which checks the layouts exactly).
mod nn_common;
use hetier_he::ckks::ParamsBuilder;
use hetier_he::nn::layers::*;
use hetier_he::nn::*;
use nn_common::*;

fn weights(r: &mut rand_chacha::ChaCha8Rng, n: usize, fan_in: usize) -> Vec<f64> {
    uniform(r, n, 1.5 / (fan_in as f64).sqrt())
}

/// A chain over a 16×16 fine grid (blocks of 256 slots, 8 per ciphertext at N = 2^12):
/// dense 3×3 (2 input and 2 output ciphertexts), dense 3×3 stride 2 (gap 1 → 2), depthwise
/// 3×3 at gap 2, depthwise 3×3 stride 2 (gap 2 → 4), a padded 3×3 average pool as a
/// depthwise convolution, 1×1 at gap 4, global average pool, and a dense layer gathered into
/// one ciphertext at gap 8. Every layer's output is a program output, checked on its own.
#[test]
fn multiplexed_layers_match_the_reference() {
    let mut pb = ParamsBuilder::new(12);
    pb.q_bits(50, &[40; 8]).special_bits(50).dnum(1).log_scale(40.0).allow_insecure();
    let params = pb.build().unwrap();
    let slots = params.slots();
    assert_eq!(slots, 2048);
    let mut f = Fixture::with_params(&params);
    let mut r = rng(11);
    let convs = [
        // name, in, out, k, stride, pad, depthwise
        ("dense_s1", 12, 10, 3, 1, 1, false),
        ("dense_s2", 10, 20, 3, 2, 1, false),
        ("dw_s1", 20, 20, 3, 1, 1, true),
        ("dw_s2", 20, 20, 3, 2, 1, true),
        ("pool3", 20, 20, 3, 1, 1, true),
        ("pw", 20, 24, 1, 1, 0, false),
    ];
    let mut b = ProgramBuilder::new(&params);
    let inl = mux_input_layout(12, 16, 16, slots);
    assert_eq!(inl.ciphertexts(), 2);
    let xs: Vec<ObjId> = (0..2)
        .map(|i| b.input(&format!("input.{i}"), params.max_level(), params.scale()).unwrap())
        .collect();
    let mut t = Tensor::new(xs, inl).unwrap();
    let x0 = uniform(&mut r, 12 * 256, 1.0);
    let mut want = x0.clone();
    let (mut h, mut w) = (16, 16);
    let mut expected = Vec::new();
    let mut layouts = Vec::new();
    for (name, ci, co, k, st, p, dw) in convs {
        let n_w = co * if dw { 1 } else { ci } * k * k;
        let wts = if name == "pool3" {
            vec![1.0 / 9.0; n_w]
        } else {
            weights(&mut r, n_w, if dw { k * k } else { ci * k * k })
        };
        let bias = (name != "pool3").then(|| uniform(&mut r, co, 0.1));
        let conv = MuxConv::new(name, ci, co, k, st, p, dw, wts, bias).unwrap();
        want = conv.reference(&want, h, w).unwrap();
        (h, w) = conv.output_size(h, w).unwrap();
        let scale = b.scale(t.cts[0]).unwrap();
        t = conv.compile_tensor_scaled(&mut b, &t, scale, None).unwrap();
        expected.push(want.clone());
        layouts.push(t.layout);
        for (i, &c) in t.cts.iter().enumerate() {
            b.output(&format!("{name}.{i}"), c).unwrap();
        }
    }
    assert_eq!(layouts.iter().map(|l| l.gap).collect::<Vec<_>>(), [1, 2, 2, 4, 4, 4]);
    assert_eq!(layouts.iter().map(|l| l.ciphertexts()).collect::<Vec<_>>(), [2, 1, 1, 1, 1, 1]);
    let pool = MuxPool::new("gap");
    want = pool.reference(&want, 24, h, w);
    t = pool.compile_tensor(&mut b, &t).unwrap();
    expected.push(want.clone());
    layouts.push(t.layout);
    b.output("gap.0", t.cts[0]).unwrap();
    let fc = MuxConv::new("fc", 24, 300, 1, 1, 0, false, weights(&mut r, 7200, 24), None).unwrap();
    want = fc.reference(&want, 1, 1).unwrap();
    let scale = b.scale(t.cts[0]).unwrap();
    t = fc.compile_tensor_scaled(&mut b, &t, scale, Some(8)).unwrap();
    assert_eq!((t.layout.gap, t.cts.len()), (8, 1));
    expected.push(want);
    layouts.push(t.layout);
    b.output("fc.0", t.cts[0]).unwrap();
    let prog = b.finish();
    // Baby keys: 8 taps at gaps 1, 2 and 4; giant keys ±ρ0, ±σ0, B (some coincide with taps);
    // the pool's window sums.
    let steps = prog.rotation_steps().len();
    eprintln!("{} ops, {steps} rotation keys", prog.ops().len());
    assert!(steps <= 8 * 3 + 5 + 4, "{steps} rotation keys");

    let run = run(&mut f, &prog, &inl.pack_cts(&x0, slots).unwrap());
    let mut at = 0;
    for (i, (want, lay)) in expected.iter().zip(&layouts).enumerate() {
        let n = lay.ciphertexts();
        let twin = lay.unpack_cts(&run.twin[at..at + n]);
        let got = lay.unpack_cts(&run.slots[at..at + n]);
        at += n;
        let scale = want.iter().fold(1e-3f64, |a, v| a.max(v.abs()));
        let (et, e) = (max_err(&twin, want), max_err(&got, want));
        eprintln!("layer {i}: twin {et:e}, encrypted {e:e} (values up to {scale:.2})");
        assert!(et < 1e-9 * scale.max(1.0), "layer {i}: twin error {et}");
        assert!(e < 1e-4 * scale.max(1.0), "layer {i}: encrypted error {e}");
    }
    assert_eq!(prog.trace(), run.accesses);
}

#[test]
fn mux_positions_round_trip_and_bad_layouts_are_typed_errors() {
    let l = Layout {
        gap: 4,
        height: 4,
        width: 4,
        r_stride: 64,
        s_stride: 4,
        per_ct: 8 * 16,
        ..mux_input_layout(64, 16, 16, 2048)
    };
    l.validate("x", 2048).unwrap();
    let mut seen = std::collections::HashSet::new();
    for c in 0..l.per_ct {
        let (q, a, b) = l.mux_position(c);
        assert!(a < 4 && b < 4);
        assert_eq!(l.mux_channel(q, a, b), c);
        assert!(seen.insert(l.channel_base(c)));
    }
    // A gap that does not divide the strides.
    let bad = Layout { gap: 3, ..l };
    assert!(bad.validate("x", 2048).is_err());
    // A channel count the depthwise layer does not have.
    assert!(MuxConv::new("dw", 4, 5, 3, 1, 1, true, vec![0.1; 45], None).is_err());
    // A 16-channel layer on a 12-channel input.
    let c = MuxConv::new("c", 16, 4, 1, 1, 0, false, vec![0.1; 64], None).unwrap();
    assert!(c.plan_layout(&mux_input_layout(12, 16, 16, 2048), 2048, None).is_err());
}
