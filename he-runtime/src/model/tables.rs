//! Full-size layer tables (schema `hetier-layer-table/1`, `models/tables/*.json`): one row per
//! layer of MobileNetV2, ResNet-50 or ResNet-20 with shapes and counts, used by plan mode.
//! Loading recomputes every row's weights, MACs and output size from its shapes and checks
//! them and the totals, so a table cannot disagree with itself.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// Value of a table's `schema` field.
pub const TABLE_SCHEMA: &str = "hetier-layer-table/1";

/// What a row computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// Dense convolution (groups = 1).
    Conv,
    /// Depthwise convolution (groups = channels).
    Dwconv,
    /// Fully connected layer.
    Fc,
    /// Pooling (`op`: avg or max).
    Pool,
    /// Residual add.
    Add,
}

/// One layer row.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Row {
    /// Unique name.
    pub name: String,
    /// Kind.
    pub kind: RowKind,
    /// Producer names (or `"input"`).
    pub inputs: Vec<String>,
    /// Input `[H, W, C]`.
    pub input: [u64; 3],
    /// Output `[H, W, C]`.
    pub output: [u64; 3],
    /// Kernel `[kh, kw]` (none for fc/add).
    pub kernel: Option<[u64; 2]>,
    /// Stride (symmetric).
    pub stride: u64,
    /// Padding (symmetric).
    pub padding: u64,
    /// Channel groups.
    pub groups: u64,
    /// Activation after the layer (`relu`, `relu6`) if any.
    pub activation: Option<String>,
    /// Pool operation (`avg` / `max`).
    #[serde(default)]
    pub op: Option<String>,
    /// Shortcut type of an add (ResNet-20 option A).
    #[serde(default)]
    pub shortcut: Option<String>,
    /// Kernel or matrix weights.
    pub weights: u64,
    /// FC bias.
    pub bias: u64,
    /// Batch-norm parameters (γ, β).
    pub bn: u64,
    /// Trainable parameters (weights + bias + bn).
    pub params: u64,
    /// Parameters after folding batch-norm.
    pub folded_params: u64,
    /// Multiply-adds.
    pub macs: u64,
    /// Output elements.
    pub elems: u64,
}

/// Totals stated by a table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Totals {
    /// Weights.
    pub weights: u64,
    /// FC biases.
    pub bias: u64,
    /// Batch-norm parameters.
    pub bn: u64,
    /// Trainable parameters.
    pub params: u64,
    /// Parameters with batch-norm folded.
    pub folded_params: u64,
    /// Multiply-adds.
    pub macs: u64,
    /// Number of convolutions (dense and depthwise).
    pub convolutions: u64,
    /// Rows of each kind.
    pub rows_by_kind: BTreeMap<RowKind, u64>,
}

/// A published figure and how far the table may be from it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Published {
    /// The published value.
    pub value: f64,
    /// Allowed distance (the publication's rounding).
    pub tolerance: f64,
    /// What it counts.
    pub counted_as: String,
}

/// A validated layer table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LayerTable {
    /// Always [`TABLE_SCHEMA`].
    pub schema: String,
    /// Network name.
    pub model: String,
    /// Stated totals (checked against the rows).
    pub totals: Totals,
    /// Published figures, by quantity (`macs`, `weights`, `params`).
    pub published: BTreeMap<String, Published>,
    /// Rows in execution order.
    pub layers: Vec<Row>,
}

fn row_err(row: &str, reason: String) -> Error {
    Error::ModelLayer { layer: row.to_owned(), reason }
}

impl Row {
    /// Weights and MACs recomputed from the row's shapes.
    fn recompute(&self) -> Result<(u64, u64)> {
        let [_, _, cin] = self.input;
        let [oh, ow, cout] = self.output;
        match self.kind {
            RowKind::Conv | RowKind::Dwconv => {
                let [kh, kw] =
                    self.kernel.ok_or_else(|| row_err(&self.name, "no kernel".into()))?;
                if self.groups == 0 || cin % self.groups != 0 {
                    return Err(row_err(
                        &self.name,
                        format!("{} groups on {cin} channels", self.groups),
                    ));
                }
                if self.kind == RowKind::Dwconv && !(self.groups == cin && cin == cout) {
                    return Err(row_err(&self.name, "depthwise with groups != channels".into()));
                }
                let w = kh * kw * (cin / self.groups) * cout;
                Ok((w, w * oh * ow))
            }
            RowKind::Fc => {
                let w = self.input.iter().product::<u64>() * cout;
                Ok((w, w))
            }
            RowKind::Pool | RowKind::Add => Ok((0, 0)),
        }
    }

    /// Number of distinct values the row reads per input (H·W·C of its input).
    pub fn input_elems(&self) -> u64 {
        self.input.iter().product()
    }
}

impl LayerTable {
    /// Parses and validates a table.
    pub fn from_json(text: &str) -> Result<Self> {
        let t: Self = serde_json::from_str(text)
            .map_err(|e| Error::ModelFormat { reason: format!("layer table: {e}") })?;
        if t.schema != TABLE_SCHEMA {
            return Err(Error::ModelFormat {
                reason: format!("schema {:?}, expected {TABLE_SCHEMA:?}", t.schema),
            });
        }
        t.check()?;
        Ok(t)
    }

    /// Reads and validates a table file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::ModelIo {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_json(&text)
    }

    fn check(&self) -> Result<()> {
        let mut seen: HashSet<&str> = HashSet::from(["input"]);
        let mut sum = Totals {
            weights: 0,
            bias: 0,
            bn: 0,
            params: 0,
            folded_params: 0,
            macs: 0,
            convolutions: 0,
            rows_by_kind: BTreeMap::new(),
        };
        for r in &self.layers {
            if let Some(i) = r.inputs.iter().find(|i| !seen.contains(i.as_str())) {
                return Err(row_err(&r.name, format!("reads {i:?} before it is produced")));
            }
            if !seen.insert(r.name.as_str()) {
                return Err(row_err(&r.name, "duplicate row name".into()));
            }
            let (w, m) = r.recompute()?;
            if (w, m) != (r.weights, r.macs) {
                return Err(row_err(
                    &r.name,
                    format!(
                        "states {} weights / {} MACs, shapes give {w} / {m}",
                        r.weights, r.macs
                    ),
                ));
            }
            if r.params != r.weights + r.bias + r.bn || r.elems != r.output.iter().product::<u64>()
            {
                return Err(row_err(&r.name, "params or elems disagree with the row".into()));
            }
            sum.weights += r.weights;
            sum.bias += r.bias;
            sum.bn += r.bn;
            sum.params += r.params;
            sum.folded_params += r.folded_params;
            sum.macs += r.macs;
            if matches!(r.kind, RowKind::Conv | RowKind::Dwconv) {
                sum.convolutions += 1;
            }
            *sum.rows_by_kind.entry(r.kind).or_insert(0) += 1;
        }
        if sum != self.totals {
            return Err(Error::ModelFormat {
                reason: format!(
                    "table {}: rows sum to {sum:?}, totals state {:?}",
                    self.model, self.totals
                ),
            });
        }
        Ok(())
    }

    /// Rows of a kind.
    pub fn rows(&self, kind: RowKind) -> impl Iterator<Item = &Row> {
        self.layers.iter().filter(move |r| r.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str) -> LayerTable {
        let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../models/tables")
            .join(format!("{name}.json"));
        LayerTable::load(p).unwrap()
    }

    fn near(value: u64, published: f64, tol: f64) -> bool {
        (value as f64 - published).abs() <= tol
    }

    #[test]
    fn mobilenet_v2_reproduces_published_totals() {
        let t = load("mobilenet_v2_1.0_224");
        assert_eq!(t.totals.macs, 300_774_272);
        assert_eq!(t.totals.weights, 3_469_760);
        // Published: 300.8 M MACs (0.1 M rounding), 3.47 M weights (0.01 M rounding).
        assert!(near(t.totals.macs, 300.8e6, 0.05e6));
        assert!(near(t.totals.weights, 3.47e6, 0.005e6));
        assert_eq!(t.totals.convolutions, 52);
        assert_eq!(t.rows(RowKind::Dwconv).count(), 17);
        assert_eq!(t.rows(RowKind::Fc).count(), 1);
    }

    #[test]
    fn resnet50_reproduces_published_totals() {
        let t = load("resnet50_v1.5");
        assert!(near(t.totals.macs, 4.09e9, 0.005e9));
        assert!(near(t.totals.params, 25.56e6, 0.005e6));
        assert_eq!(t.totals.convolutions, 53);
        assert_eq!(t.rows(RowKind::Fc).count(), 1);
    }

    #[test]
    fn resnet20_reproduces_published_totals() {
        let t = load("resnet20_cifar10");
        assert!(near(t.totals.macs, 40.6e6, 0.05e6));
        assert!(near(t.totals.params, 0.27e6, 0.005e6));
        assert_eq!(t.totals.convolutions, 19);
    }

    #[test]
    fn inconsistent_tables_are_rejected_naming_the_row() {
        let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../models/tables/resnet20_cifar10.json");
        let text = std::fs::read_to_string(p).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["layers"][1]["macs"] = 1.into();
        let err = LayerTable::from_json(&v.to_string()).unwrap_err();
        assert!(matches!(err, Error::ModelLayer { layer, .. } if layer == "layer1.0.conv1"));
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["totals"]["macs"] = 5.into();
        assert!(matches!(LayerTable::from_json(&v.to_string()), Err(Error::ModelFormat { .. })));
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["layers"][1]["inputs"] = serde_json::json!(["later"]);
        assert!(matches!(LayerTable::from_json(&v.to_string()), Err(Error::ModelLayer { .. })));
        assert!(matches!(LayerTable::from_json("{"), Err(Error::ModelFormat { .. })));
    }
}
