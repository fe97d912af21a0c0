//! `hetier import`: lowers an ONNX file to hetier-model files and says what running it
//! encrypted takes — the lowered layers, the multiplicative depth, the parameters, whether
//! bootstrapping would be needed, and the evaluation-key set.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use hetier_he::model::onnx::{self, ImportOptions, Imported};
use hetier_he::model::Model;
use hetier_he::nn::ObjKind;
use serde::Serialize;

use crate::{fmt, npy};

/// How activations are approximated (shared by `import` and `run --model-file`).
#[derive(Args, Debug, Clone)]
pub struct ImportFlags {
    /// Interval `LO,HI` every Relu/Sigmoid/Tanh/SiLU polynomial is fitted on.
    #[arg(long, value_delimiter = ',', num_args = 1, allow_hyphen_values = true)]
    pub act_range: Option<Vec<f64>>,
    /// Chebyshev degree of the activation polynomials (depth ⌈log2(degree + 1)⌉).
    #[arg(long, default_value_t = 15)]
    pub act_degree: usize,
    /// Sample inputs (.npy, `[N, *input shape]`): each activation's range becomes ±1.1× the
    /// largest |value| it sees on them.
    #[arg(long)]
    pub calibrate: Option<PathBuf>,
    /// Use small, NOT SECURE parameters (log N = 12) for quick tests.
    #[arg(long)]
    pub insecure_test_params: bool,
}

impl ImportFlags {
    /// The importer options these flags describe.
    pub fn options(&self) -> Result<ImportOptions> {
        let act_range = match self.act_range.as_deref() {
            None => None,
            Some(&[lo, hi]) => Some([lo, hi]),
            Some(v) => anyhow::bail!("--act-range needs two values LO,HI, got {v:?}"),
        };
        let calibration = match &self.calibrate {
            Some(p) => npy::read(p)?.data,
            None => Vec::new(),
        };
        Ok(ImportOptions { name: None, act_range, act_degree: self.act_degree, calibration })
    }

    /// Loads a model file (ONNX or hetier-model JSON) with these flags.
    pub fn load(&self, path: &std::path::Path) -> Result<Imported> {
        onnx::load_any(path, &self.options()?)
            .with_context(|| format!("loading {}", path.display()))
    }
}

/// Flags of `hetier import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The ONNX file.
    pub model: PathBuf,
    /// Output directory for `<name>.json` and `<name>.safetensors`.
    #[arg(short = 'o', long)]
    pub out: PathBuf,
    /// Model name (default: the graph's name).
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub flags: ImportFlags,
}

#[derive(Serialize)]
struct LayerRow {
    name: String,
    kind: &'static str,
    in_shape: Vec<usize>,
    out_shape: Vec<usize>,
    depth: usize,
    detail: String,
}

/// What running a model encrypted needs, for `import` and `run --model-file` reports.
#[derive(Serialize)]
pub struct KeySummary {
    /// log2 N of the chosen parameters.
    pub log_n: u32,
    /// Levels of the chosen parameters.
    pub levels: usize,
    /// Whether the parameters are the insecure test set.
    pub insecure: bool,
    /// Rotation steps with a Galois key.
    pub rotation_steps: Vec<i64>,
    /// Whether a relinearisation key is needed.
    pub relinearisation: bool,
    /// Bytes of all evaluation keys.
    pub key_bytes: u64,
}

/// Chooses parameters, compiles and lists the key set.
pub fn key_summary(model: &Model, insecure: bool) -> Result<KeySummary> {
    let (params, c) = onnx::compile_smallest(model, insecure)?;
    let mut steps = Vec::new();
    let (mut relin, mut bytes) = (false, 0);
    for k in c.program.keys() {
        let o = &c.program.objects()[k.index()];
        bytes += o.bytes;
        match o.kind {
            ObjKind::GaloisKey { step: Some(s), .. } => steps.push(s),
            ObjKind::RelinKey => relin = true,
            _ => {}
        }
    }
    steps.sort_unstable();
    Ok(KeySummary {
        log_n: params.log_n(),
        levels: params.max_level(),
        insecure,
        rotation_steps: steps,
        relinearisation: relin,
        key_bytes: bytes,
    })
}

#[derive(Serialize)]
struct ImportReport {
    model: String,
    json: String,
    layers: Vec<LayerRow>,
    depth: usize,
    bootstrapping_needed: bool,
    keys: Option<KeySummary>,
    note: String,
}

/// Runs `hetier import`.
pub fn run(args: &ImportArgs, json: bool) -> Result<()> {
    let mut opts = args.flags.options()?;
    opts.name = args.name.clone();
    let imp = onnx::import_file(&args.model, &opts)
        .with_context(|| format!("importing {}", args.model.display()))?;
    let m = &imp.model;
    let path = m.save(&args.out)?;
    let layers: Vec<LayerRow> = m
        .layers()
        .iter()
        .map(|l| {
            let detail = match imp.activations.iter().find(|a| a.layer == l.name) {
                Some(a) => format!(
                    "{} on [{:.3}, {:.3}]{}",
                    a.func,
                    a.range[0],
                    a.range[1],
                    a.observed
                        .map(|o| format!(" (calibrated: max |x| {o:.3})"))
                        .unwrap_or_default()
                ),
                None => match &l.kind {
                    hetier_he::model::LayerKind::Activation(a) => format!("degree {}", a.degree()),
                    _ => String::new(),
                },
            };
            LayerRow {
                name: l.name.clone(),
                kind: l.kind.name(),
                in_shape: l.in_shape.clone(),
                out_shape: l.out_shape.clone(),
                depth: l.kind.depth(),
                detail,
            }
        })
        .collect();
    let boot = m.depth() > 30;
    let (keys, note) = if boot {
        (None, "deeper than the largest preset (30 levels at log N = 16): it would need bootstrapping, which model runs do not support yet".into())
    } else {
        let k = key_summary(m, args.flags.insecure_test_params)?;
        let note = format!("fits log N = {} ({} levels) without bootstrapping", k.log_n, k.levels);
        (Some(k), note)
    };
    let out = ImportReport {
        model: m.name().into(),
        json: path.display().to_string(),
        layers,
        depth: m.depth(),
        bootstrapping_needed: boot,
        keys,
        note,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("hetier import — {} → {}", args.model.display(), out.json);
    let rows: Vec<Vec<String>> = out
        .layers
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                l.kind.into(),
                format!("{:?} → {:?}", l.in_shape, l.out_shape),
                l.depth.to_string(),
                l.detail.clone(),
            ]
        })
        .collect();
    fmt::table(&["layer", "kind", "shape", "depth", ""], &rows);
    println!("multiplicative depth {}: {}", out.depth, out.note);
    if let Some(k) = &out.keys {
        println!(
            "key set: {} rotation keys (steps {:?}){}, {} in all{}",
            k.rotation_steps.len(),
            k.rotation_steps,
            if k.relinearisation { " + relinearisation" } else { "" },
            fmt::bytes(k.key_bytes),
            if k.insecure { " — INSECURE test parameters" } else { "" }
        );
    }
    Ok(())
}
