//! The models compiled into the binary that the tuning commands (and their child runs) load
//! by name.

use anyhow::Result;
use clap::ValueEnum;
use hetier_he::model::{Model, ModelDesc, TestSet};
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
