//! Compiles ResNet-20 at log N = 16 with the real bootstrapper's op sequence and prints what a
//! run needs: ops, bootstraps, keys and bytes, peak live ciphertexts; and, for the trained
//! models `hetier run --model resnet20|resnet20-relu` runs, the smallest DRAM budget its plan
//! accepts (weights encoded on the fly, every bootstrap buffer in the budget).
//! `cargo run --release -p hetier-he --example plan_resnet20 [channels]`
use hetier_he::ckks::bootstrap::{BootstrapPreset, Bootstrapper};
use hetier_he::ckks::{switch_key_expanded_words, Context};
use hetier_he::exec::{Executor, KeySetId, OpCosts};
use hetier_he::model::{zoo, Activation, Model, DEFAULT_MARGIN};
use hetier_he::nn::poly::{self, ChebPoly};
use hetier_he::nn::{BootstrapSpec, ObjKind};
use hetier_tiering::TieredStore;

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
    // The models `hetier run` loads: what its plan checks the budget against before any work.
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let costs =
        OpCosts { log_n: 16, q_len: params.q().len(), p_len: params.p().len(), top_ns: [].into() };
    for name in ["resnet20", "resnet20_relu"] {
        let path = format!("{}/../models/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let m = Model::load(&path)?;
        let c = m.compile_bootstrapped(&params, &BootstrapSpec::of(&bs), DEFAULT_MARGIN)?;
        let ex =
            Executor::plan(&c.program, 0, KeySetId(0), costs.clone()).encode_weights_on_the_fly();
        let held = ex.bootstrap_scratch_lengths();
        let boot: u64 = held.iter().map(|b| b.next_multiple_of(4096)).sum();
        let (needed, step) = TieredStore::working_set_need(ex.working_sets());
        let (before, _) = TieredStore::working_set_need(
            ex.working_sets().into_iter().map(|s| s[held.len()..].to_vec()),
        );
        let block = switch_key_expanded_words(&ctx) as u64 * 8;
        println!(
            "{name} (hetier run): smallest workable budget {:.1} MiB (step {step}) with expanded \
             keys, {:.1} MiB seed-compressed (+ one held expansion block); bootstrap buffers \
             {:.1} MiB in {} blocks held for the run; without them {:.1} MiB; scratch charge \
             {:.1} MiB",
            mib(needed),
            mib(needed + block.next_multiple_of(4096)),
            mib(boot),
            held.len(),
            mib(before),
            mib(ex.scratch_charge()),
        );
    }
    Ok(())
}
