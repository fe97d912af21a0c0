//! Compiles MobileNetV2 or ResNet-50 at 224×224 with the multiplexed packing and the real
//! bootstrapper's op sequence at log N = 16 (`n16_deep`), and prints what a run needs: ops,
//! bootstraps, key switches, keys (expanded and seed-compressed), peak live ciphertexts, and
//! the time and memory the compile took.
//! `cargo run --release -p hetier-he --example plan_fullsize -- mobilenetv2|resnet50`
use hetier_he::ckks::bootstrap::{BootstrapPreset, Bootstrapper};
use hetier_he::ckks::{switch_key_stored_len, Context};
use hetier_he::model::{zoo, Activation, Packing, DEFAULT_MARGIN};
use hetier_he::nn::{BootstrapSpec, ObjKind, Op};

/// Peak resident set of this process so far (Linux `VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "mobilenetv2".into());
    let preset = BootstrapPreset::n16_deep();
    let params = preset.params()?;
    let t = std::time::Instant::now();
    let ctx = Context::new(&params)?;
    let bs = Bootstrapper::new(&ctx, &preset.config)?;
    println!("bootstrapper {:.1} s", t.elapsed().as_secs_f64());
    let act = Activation::Poly { coeffs: vec![0.0, 1.0, 0.1] };
    let m = match which.as_str() {
        "mobilenetv2" => zoo::mobilenetv2(act)?,
        "resnet50" => zoo::resnet50(act)?,
        other => return Err(format!("unknown network {other:?}: mobilenetv2 or resnet50").into()),
    };
    let t = std::time::Instant::now();
    let spec = BootstrapSpec::of(&bs);
    let c = m.compile_packed(&params, &spec, DEFAULT_MARGIN, Packing::Multiplexed)?;
    let compile_s = t.elapsed().as_secs_f64();
    let p = &c.program;
    let keys: Vec<_> = p.objects().iter().filter(|o| o.kind.is_key()).collect();
    let expanded: u64 = keys.iter().map(|o| o.bytes).sum();
    let seeded = keys.len() as u64 * switch_key_stored_len(&ctx);
    let boot_keys: std::collections::BTreeSet<_> = p
        .ops()
        .iter()
        .filter_map(|r| match &r.op {
            Op::Bootstrap { keys, .. } => Some(keys.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect();
    let boot_keys = boot_keys.len();
    let pts = p.objects().iter().filter(|o| o.kind == ObjKind::Plaintext).count();
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    println!("{}: compiled in {compile_s:.1} s (peak RSS {:.2} GiB)", m.name(), gib(peak_rss()));
    println!("  input: {} ciphertexts; logits: {} ", p.inputs().len(), p.outputs().len());
    println!(
        "  ops {}, bootstraps {}, key switches {}",
        p.ops().len(),
        p.bootstraps(),
        p.key_switches()
    );
    println!(
        "  keys {} ({} bootstrap + {} model, {} rotation steps): {:.2} GiB expanded, {:.2} GiB seed-compressed",
        keys.len(),
        boot_keys,
        keys.len() - boot_keys,
        p.rotation_steps().len(),
        gib(expanded),
        gib(seeded)
    );
    println!(
        "  weight plaintexts {pts} (encoded on the fly), peak live ciphertexts {:.2} GiB",
        gib(p.peak_live_ciphertext_bytes())
    );
    Ok(())
}
