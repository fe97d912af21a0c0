//! The models compiled into the binary that the tuning commands (and their child runs) load
//! by name, and how a model is compiled for them: at a preset when it fits, with
//! bootstrapping (the real bootstrapper's keys and steps) when it is deeper than every preset.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::ValueEnum;
use hetier_he::ckks::bootstrap::{BootstrapPreset, Bootstrapper};
use hetier_he::ckks::{Context, Params, Preset};
use hetier_he::model::{Compiled, Model, ModelDesc, TestSet, DEFAULT_MARGIN};
use hetier_he::nn::BootstrapSpec;
use serde::{Deserialize, Serialize};

/// A built-in model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamedModel {
    /// 8×8 digits MLP (dense 64→32, square, dense 32→10).
    Digits,
    /// The wide digits MLP of the larger-than-DRAM benchmark.
    DigitsWide,
    /// The CryptoNets network on 28×28 MNIST.
    Cryptonets,
    /// ResNet-20 (MNIST, degree-2 activations) at log N = 16 with bootstrapping, as `hetier run
    /// --model resnet20` runs it.
    Resnet20,
}

impl NamedModel {
    /// Name, description, weights and test set.
    fn parts(self) -> (&'static str, &'static str, &'static [u8], &'static [u8]) {
        match self {
            NamedModel::Digits => (
                "digits",
                include_str!("../../../../models/digits.json"),
                include_bytes!("../../../../models/digits.safetensors"),
                include_bytes!("../../../../models/digits.test.safetensors"),
            ),
            NamedModel::DigitsWide => (
                "digits_wide",
                include_str!("../../../../models/digits_wide.json"),
                include_bytes!("../../../../models/digits_wide.safetensors"),
                include_bytes!("../../../../models/digits_wide.test.safetensors"),
            ),
            NamedModel::Cryptonets => (
                "cryptonets",
                include_str!("../../../../models/cryptonets.json"),
                include_bytes!("../../../../models/cryptonets.safetensors"),
                include_bytes!("../../../../models/cryptonets.test.safetensors"),
            ),
            NamedModel::Resnet20 => (
                "resnet20",
                include_str!("../../../../models/resnet20.json"),
                include_bytes!("../../../../models/resnet20.safetensors"),
                include_bytes!("../../../../models/resnet20.test.safetensors"),
            ),
        }
    }

    /// The validated model.
    pub fn load(self) -> Result<Model> {
        let (_, desc, weights, _) = self.parts();
        Ok(Model::from_parts(ModelDesc::from_json(desc)?, weights)?)
    }

    /// Its held-out test set.
    pub fn test_set(self) -> Result<TestSet> {
        let (name, _, _, test) = self.parts();
        Ok(TestSet::from_bytes(&format!("{name}.test.safetensors"), test)?)
    }
}

/// A model compiled for one ring: its parameters, its program, and the bootstrapper when the
/// model is deeper than every preset.
pub struct CompiledFor {
    /// The CKKS parameters.
    pub params: Params,
    /// The compiled program.
    pub compiled: Compiled,
    /// The bootstrapper the program's bootstraps come from (`None`: no bootstraps).
    pub bootstrapper: Option<Arc<Bootstrapper>>,
}

/// Compiles `model` at `log_n` (default: the smallest preset deep enough). A model deeper than
/// that preset (or than every preset) is compiled with bootstrapping: at log N = 16 with the
/// deep run's preset (`n16_deep`, as `hetier run --model resnet20`), below that with the
/// insecure test preset `hetier calibrate --bootstrap` times (tests and quick looks only).
pub fn compile_for(model: &Model, log_n: Option<u32>) -> Result<CompiledFor> {
    let presets = [Preset::N13, Preset::N14, Preset::N15, Preset::N16];
    let preset = match log_n {
        Some(n) => Some(
            Preset::for_log_n(n)
                .with_context(|| format!("--log-n {n}: presets exist for 13..=16"))?,
        ),
        None => presets.into_iter().find(|p| p.depth() >= model.depth()),
    };
    if let Some(preset) = preset.filter(|p| p.depth() >= model.depth()) {
        let params = preset.params()?;
        model.check_depth(&params)?;
        let compiled = model.compile(&params)?;
        return Ok(CompiledFor { params, compiled, bootstrapper: None });
    }
    let n = log_n.unwrap_or(16);
    let preset = match n {
        16 => BootstrapPreset::n16_deep(),
        13..=15 => BootstrapPreset::insecure_test(n, 3),
        _ => anyhow::bail!("--log-n {n}: bootstrapped models run at 13..=16"),
    };
    let params = preset.params()?;
    let ctx = Context::new(&params)?;
    let bs = Arc::new(Bootstrapper::new(&ctx, &preset.config)?);
    let compiled = model
        .compile_bootstrapped(&params, &BootstrapSpec::of(&bs), DEFAULT_MARGIN)
        .with_context(|| format!("compiling {} with bootstrapping at log N = {n}", model.name()))?;
    Ok(CompiledFor { params, compiled, bootstrapper: Some(bs) })
}
