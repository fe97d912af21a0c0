//! Compiles ResNet-20 at log N = 16 with the real bootstrapper's op sequence and prints what a
//! run needs: ops, bootstraps, keys and bytes, peak live ciphertexts.
//! `cargo run --release -p hetier-he --example plan_resnet20 [channels]`
use hetier_he::ckks::bootstrap::{BootstrapPreset, Bootstrapper};
use hetier_he::ckks::Context;
use hetier_he::model::{zoo, Activation, DEFAULT_MARGIN};
use hetier_he::nn::poly::{self, ChebPoly};
use hetier_he::nn::{BootstrapSpec, ObjKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let channels: usize = std::env::args().nth(1).map_or(Ok(1), |s| s.parse())?;
    let preset = BootstrapPreset::n16_deep();
    let params = preset.params()?;
    let t = std::time::Instant::now();
    let ctx = Context::new(&params)?;
    let bs = Bootstrapper::new(&ctx, &preset.config)?;
    println!("bootstrapper {:.1} s", t.elapsed().as_secs_f64());
    let relu = ChebPoly::interpolate(poly::relu, -1.0, 1.0, 15)?;
    let relu15 = Activation::Chebyshev {
        func: "relu".into(),
        range: [-1.0, 1.0],
        degree: 15,
        coeffs: relu.coeffs,
    };
    let poly2 = Activation::Poly { coeffs: vec![0.1, 0.5, 0.2] };
    for (name, act) in [("degree-2 polynomial", poly2), ("ReLU, Chebyshev degree 15", relu15)] {
        let m = zoo::resnet20(channels, act)?;
        let t = std::time::Instant::now();
        let c = m.compile_bootstrapped(&params, &BootstrapSpec::of(&bs), DEFAULT_MARGIN)?;
        let p = &c.program;
        let keys: Vec<_> = p.objects().iter().filter(|o| o.kind.is_key()).collect();
        let kb: u64 = keys.iter().map(|o| o.bytes).sum();
        let rots = p.ops().iter().map(|r| r.op.key_switches()).sum::<usize>();
        let pts = p.objects().iter().filter(|o| o.kind == ObjKind::Plaintext).count();
        println!(
            "{name}: compile {:.1} s, {} ops, {} bootstraps, {} key switches, {} keys {:.2} GB expanded, {} plaintexts, peak live cts {:.2} GB",
            t.elapsed().as_secs_f64(), p.ops().len(), p.bootstraps(), rots, keys.len(), kb as f64 / 1e9, pts, p.peak_live_ciphertext_bytes() as f64 / 1e9
        );
    }
    Ok(())
}
