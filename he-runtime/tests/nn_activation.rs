//! Polynomial activations: plaintext approximation quality, encrypted vs plaintext polynomial,
//! and levels consumed == ⌈log2(d + 1)⌉.
mod nn_common;
use hetier_he::ckks::Preset;
use hetier_he::nn::layers::{PolyActivation, Square};
use hetier_he::nn::poly::{self, depth_for_degree};
use hetier_he::nn::*;
use nn_common::*;

/// Compiles `act` on an input at the top level and `scale`, runs it on values in [a, b].
fn run_act(f: &mut Fixture, act: &PolyActivation, scale: f64, seed: u64) -> (Program, f64) {
    let params = f.ctx.params().clone();
    let mut b = ProgramBuilder::new(&params);
    let x = b.input("x", params.max_level(), scale).unwrap();
    let lay = Layout::vector(params.slots());
    let y = act.compile_tensor(&mut b, &Tensor::single(x, lay)).unwrap();
    b.output("y", y.cts[0]).unwrap();
    let prog = b.finish();
    let mut r = rng(seed);
    let (lo, hi) = (act.poly.a, act.poly.b);
    let xs: Vec<f64> = uniform(&mut r, params.slots(), 1.0)
        .iter()
        .map(|u| lo + (hi - lo) * (u + 1.0) / 2.0)
        .collect();
    let run = run(f, &prog, std::slice::from_ref(&xs));
    let want = act.reference(&xs);
    assert!(max_err(&run.twin[0], &want) < 1e-9, "twin {}", max_err(&run.twin[0], &want));
    (prog, max_err(&run.slots[0], &want))
}

#[test]
fn square_matches_and_costs_one_level() {
    let mut f = Fixture::new(Preset::N13);
    let params = f.ctx.params().clone();
    let mut b = ProgramBuilder::new(&params);
    let x = b.input("x", params.max_level(), params.scale()).unwrap();
    let sq = Square::new("sq");
    let y = sq.compile_tensor(&mut b, &Tensor::single(x, Layout::vector(16))).unwrap();
    b.output("y", y.cts[0]).unwrap();
    let prog = b.finish();
    let xs = f.random_real();
    let run = run(&mut f, &prog, std::slice::from_ref(&xs));
    let e = max_err(&run.slots[0], &sq.reference(&xs));
    assert!(e < 1e-6, "{e}");
    assert_eq!(prog.depth(), 1);
}

#[test]
fn sigmoid_taylor_depth_three_when_the_map_is_free() {
    let mut f = Fixture::new(Preset::N14);
    let nominal = f.ctx.params().scale();
    let act = PolyActivation::sigmoid_taylor("sig", -4.0, 4.0).unwrap();
    assert_eq!(act.poly.degree(), 5);
    // Input scaled so that x ↦ x/4 is a relabelling: depth ⌈log2 6⌉ = 3.
    let (prog, e) = run_act(&mut f, &act, act.preferred_input_scale(nominal), 1);
    println!("sigmoid (free map): err {e:e}, depth {}", prog.depth());
    assert!(e < 1e-5, "{e}");
    assert_eq!(prog.depth(), 3);
    // At the nominal scale the map costs one more level.
    let (prog, e) = run_act(&mut f, &act, nominal, 2);
    assert!(e < 1e-5, "{e}");
    assert_eq!(prog.depth(), 4);
    // The Taylor polynomial itself stays within 0.03 of the sigmoid on [-2, 2].
    let p = &act.poly;
    let worst = (0..=400)
        .map(|i| -2.0 + i as f64 / 100.0)
        .map(|x| (p.eval(x) - poly::sigmoid(x)).abs())
        .fold(0.0, f64::max);
    assert!(worst < 0.03, "{worst}");
}

#[test]
fn chebyshev_relu_and_silu_meet_depth_and_accuracy() {
    let mut f = Fixture::new(Preset::N14);
    let nominal = f.ctx.params().scale();
    for depth in [3usize, 4, 5] {
        let relu = PolyActivation::relu("relu", -1.0, 1.0, depth).unwrap();
        let d = relu.poly.degree();
        assert!(d <= poly::degree_for_depth(depth));
        assert_eq!(depth_for_degree(d), depth);
        // Chebyshev interpolation of a kink converges like 1/d.
        let approx = relu.poly.max_error(poly::relu, 4001);
        println!("relu depth {depth} degree {d}: approx err {approx:.4}");
        assert!(approx < 1.0 / (d as f64), "{approx}");
        let (prog, e) = run_act(&mut f, &relu, nominal, depth as u64);
        println!("  encrypted vs polynomial {e:e}, depth {}", prog.depth());
        assert!(e < 1e-4, "{e}");
        assert_eq!(prog.depth(), depth);
    }
    let silu = PolyActivation::silu("silu", -6.0, 6.0, 4).unwrap();
    let approx = silu.poly.max_error(poly::silu, 4001);
    println!("silu degree {}: approx err {approx:e}", silu.poly.degree());
    assert!(approx < 0.02, "{approx}");
    let (prog, e) = run_act(&mut f, &silu, silu.preferred_input_scale(nominal), 9);
    println!("silu encrypted vs polynomial {e:e}");
    assert!(e < 1e-3, "{e}");
    assert_eq!(prog.depth(), 4);
}

#[test]
fn activation_out_of_depth_is_a_typed_error() {
    let f = Fixture::new(Preset::N13);
    let params = f.ctx.params().clone();
    let mut b = ProgramBuilder::new(&params);
    let x = b.input("x", params.max_level(), params.scale()).unwrap();
    let relu = PolyActivation::relu("relu3", -1.0, 1.0, 3).unwrap();
    match relu.compile_tensor(&mut b, &Tensor::single(x, Layout::vector(8))) {
        Err(hetier_he::Error::DepthExceeded { layer, needed: 3, available: 2 }) => {
            assert_eq!(layer, "relu3")
        }
        other => panic!("{other:?}"),
    }
}
