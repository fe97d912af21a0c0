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
    let (h, hl) = d1.compile(&mut b, x, &Layout::vector(30)).unwrap();
    b.begin_layer("fc2");
    let (y, _) = d2.compile(&mut b, h, &hl).unwrap();
    b.output("y", y).unwrap();
    let prog = b.finish();
    let input = Layout::vector(30).pack(&uniform(&mut r, 30, 1.0), params.slots()).unwrap();
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
