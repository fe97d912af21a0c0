//! The plaintext twin of the bootstrapped ResNet-20 program at log N = 16: runs the compiled
//! op sequence on f64 slot vectors (bootstraps as the identity) and compares the logits with
//! the reference forward pass. `cargo run --release -p hetier-he --example resnet20_twin`
use hetier_he::ckks::bootstrap::{BootstrapPreset, Bootstrapper};
use hetier_he::ckks::Context;
use hetier_he::model::{argmax, Model, DEFAULT_MARGIN};
use hetier_he::nn::{BootstrapSpec, PlainInterpreter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let m = Model::load(dir.join("resnet20.json"))?;
    let preset = BootstrapPreset::n16_deep();
    let params = preset.params()?;
    let ctx = Context::new(&params)?;
    let bs = Bootstrapper::new(&ctx, &preset.config)?;
    let c = m.compile_bootstrapped(&params, &BootstrapSpec::of(&bs), DEFAULT_MARGIN)?;
    let ts = m.test_set()?;
    for i in 0..2 {
        let x = m.prepare_input(ts.image(i))?;
        let mut it = PlainInterpreter::new(&c.program);
        it.set_input("input", &c.pack(&x, params.slots())?)?;
        let t = std::time::Instant::now();
        it.run()?;
        let y = c.unpack_output(it.output("logits")?);
        let want = ts.reference_logits(i);
        let err = y.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        println!(
            "image {i}: twin {:.1} s, max err {err:e}, argmax {:?} vs {:?}",
            t.elapsed().as_secs_f64(),
            argmax(&y),
            argmax(want)
        );
    }
    Ok(())
}
