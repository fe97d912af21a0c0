//! Training data: CSV parsing with typed errors, a seeded train/test split, min-max
//! normalisation fitted on the training part, and the vendored data sets by name.

use std::io::Read;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{Error, Result};

/// The vendored data sets `hetier train --data` knows: (name, file in `data/`, task hint).
pub const NAMED_DATASETS: [(&str, &str, &str); 3] = [
    ("diabetes", "diabetes.csv.gz", "linreg"),
    ("breast-cancer", "breast_cancer.csv.gz", "logreg"),
    ("digits01", "digits.csv.gz", "logreg"),
];

/// Samples with their labels (or regression targets); every value finite, every row the same
/// number of features.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Name for reports.
    pub name: String,
    /// One row of features per sample.
    pub x: Vec<Vec<f64>>,
    /// Target (regression) or label ±1 (classification) per sample.
    pub y: Vec<f64>,
}

impl Dataset {
    /// Checks and wraps samples: same feature count in every row, every value finite.
    pub fn new(name: &str, x: Vec<Vec<f64>>, y: Vec<f64>) -> Result<Self> {
        if x.is_empty() || x[0].is_empty() {
            return Err(Error::TrainData { reason: format!("{name}: no samples or no features") });
        }
        if x.len() != y.len() {
            return Err(Error::TrainData {
                reason: format!("{name}: {} samples but {} labels", x.len(), y.len()),
            });
        }
        let f = x[0].len();
        for (row, (xr, &yr)) in x.iter().zip(&y).enumerate() {
            if xr.len() != f {
                return Err(Error::FeatureCount { row, expected: f, found: xr.len() });
            }
            if let Some((col, &value)) = xr.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(Error::NonFiniteData { row, col, value });
            }
            if !yr.is_finite() {
                return Err(Error::NonFiniteData { row, col: f, value: yr });
            }
        }
        Ok(Self { name: name.to_string(), x, y })
    }

    /// Parses comma-separated rows (no header), the label in the last column.
    pub fn from_csv(name: &str, text: &str) -> Result<Self> {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (row, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            let mut vals = Vec::new();
            for (col, field) in line.split(',').enumerate() {
                let v: f64 = field.trim().parse().map_err(|_| Error::TrainData {
                    reason: format!("{name}: row {row}, column {col}: {field:?} is not a number"),
                })?;
                vals.push(v);
            }
            let label = vals
                .pop()
                .ok_or(Error::TrainData { reason: format!("{name}: row {row} is empty") })?;
            x.push(vals);
            y.push(label);
        }
        Self::new(name, x, y)
    }

    /// Reads a CSV file, gunzipping it when its name ends in `.gz`.
    pub fn from_file(name: &str, path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::ModelIo {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        if path.extension().is_some_and(|e| e == "gz") {
            Self::from_gz_csv(name, &bytes)
        } else {
            let text = String::from_utf8(bytes).map_err(|e| Error::TrainData {
                reason: format!("{}: not UTF-8 text: {e}", path.display()),
            })?;
            Self::from_csv(name, &text)
        }
    }

    /// Parses gzip-compressed CSV bytes.
    pub fn from_gz_csv(name: &str, gz: &[u8]) -> Result<Self> {
        let mut text = String::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_string(&mut text)
            .map_err(|e| Error::TrainData { reason: format!("{name}: bad gzip CSV: {e}") })?;
        Self::from_csv(name, &text)
    }

    /// One of [`NAMED_DATASETS`] from the directory `data_dir`; see [`Dataset::named_from_gz`].
    pub fn named(name: &str, data_dir: &Path) -> Result<Self> {
        let file = named_file(name)?;
        let path = data_dir.join(file);
        let bytes = std::fs::read(&path).map_err(|e| Error::ModelIo {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::named_from_gz(name, &bytes)
    }

    /// One of [`NAMED_DATASETS`] from its file's bytes, labels in the form its task needs:
    /// diabetes keeps its regression target, breast-cancer maps 0/1 to −1/+1, digits01 keeps
    /// the digits 0 (−1) and 1 (+1).
    pub fn named_from_gz(name: &str, gz: &[u8]) -> Result<Self> {
        named_file(name)?;
        let raw = Self::from_gz_csv(name, gz)?;
        match name {
            "diabetes" => Ok(raw),
            _ => raw.binary(|l| match l {
                0.0 => Some(-1.0),
                1.0 => Some(1.0),
                _ => None,
            }),
        }
    }

    /// Whether every label is −1 or +1 (what logistic regression needs).
    pub fn has_sign_labels(&self) -> bool {
        self.y.iter().all(|&l| l == 1.0 || l == -1.0)
    }

    /// Keeps the samples whose label `map` accepts, relabelled.
    fn binary(self, map: impl Fn(f64) -> Option<f64>) -> Result<Self> {
        let (x, y): (Vec<_>, Vec<_>) =
            self.x.into_iter().zip(self.y).filter_map(|(x, y)| map(y).map(|l| (x, l))).collect();
        Self::new(&self.name, x, y)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// Whether there are no samples (never true for a constructed data set).
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    /// Number of features per sample.
    pub fn features(&self) -> usize {
        self.x[0].len()
    }

    /// A seeded shuffle split into (train, test) with `test_fraction` of the samples held out.
    pub fn split(&self, test_fraction: f64, seed: u64) -> Result<(Self, Self)> {
        let n = self.len();
        let n_test = (n as f64 * test_fraction).round() as usize;
        if !(0.0..1.0).contains(&test_fraction) || n_test == 0 || n_test >= n {
            return Err(Error::TrainData {
                reason: format!("cannot hold out {test_fraction} of {n} samples"),
            });
        }
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        let pick = |ids: &[usize], suffix: &str| {
            let x = ids.iter().map(|&i| self.x[i].clone()).collect();
            let y = ids.iter().map(|&i| self.y[i]).collect();
            Self::new(&format!("{}/{suffix}", self.name), x, y)
        };
        Ok((pick(&idx[n_test..], "train")?, pick(&idx[..n_test], "test")?))
    }

    /// The first `n` samples (all if fewer).
    pub fn head(&self, n: usize) -> Self {
        let n = n.min(self.len()).max(1);
        Self { name: self.name.clone(), x: self.x[..n].to_vec(), y: self.y[..n].to_vec() }
    }
}

/// The file of a named data set in `data/`.
fn named_file(name: &str) -> Result<&'static str> {
    NAMED_DATASETS.iter().find(|(n, _, _)| *n == name).map(|d| d.1).ok_or_else(|| {
        let known: Vec<&str> = NAMED_DATASETS.iter().map(|d| d.0).collect();
        Error::TrainData { reason: format!("unknown data set {name:?} (known: {known:?})") }
    })
}

/// Min-max scaling of each feature to [−1, 1] (and, for regression, of the target), fitted on
/// a training set; features constant there are dropped (they carry nothing and cannot be
/// scaled).
#[derive(Debug, Clone, PartialEq)]
pub struct Normaliser {
    /// Kept feature indices with their (min, max) on the training data.
    pub kept: Vec<(usize, f64, f64)>,
    /// (min, max) of the target when it is scaled too.
    pub target: Option<(f64, f64)>,
}

impl Normaliser {
    /// Fits on `train`; `scale_target` for regression.
    pub fn fit(train: &Dataset, scale_target: bool) -> Result<Self> {
        let f = train.features();
        let range = |vals: &mut dyn Iterator<Item = f64>| {
            vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
        };
        let kept: Vec<(usize, f64, f64)> = (0..f)
            .map(|j| {
                let (lo, hi) = range(&mut train.x.iter().map(|r| r[j]));
                (j, lo, hi)
            })
            .filter(|&(_, lo, hi)| hi > lo)
            .collect();
        if kept.is_empty() {
            return Err(Error::TrainData {
                reason: format!("{}: every feature is constant", train.name),
            });
        }
        let target = if scale_target {
            let (lo, hi) = range(&mut train.y.iter().copied());
            if hi <= lo {
                return Err(Error::TrainData {
                    reason: format!("{}: the target is constant", train.name),
                });
            }
            Some((lo, hi))
        } else {
            None
        };
        Ok(Self { kept, target })
    }

    /// Number of features after dropping the constant ones.
    pub fn features(&self) -> usize {
        self.kept.len()
    }

    /// `data` scaled (values outside the training range map outside [−1, 1]).
    pub fn apply(&self, data: &Dataset) -> Result<Dataset> {
        let f = self.kept.iter().map(|k| k.0).max().map_or(0, |m| m + 1);
        if data.features() < f {
            return Err(Error::FeatureCount { row: 0, expected: f, found: data.features() });
        }
        let s = |v: f64, lo: f64, hi: f64| 2.0 * (v - lo) / (hi - lo) - 1.0;
        let x = data
            .x
            .iter()
            .map(|r| self.kept.iter().map(|&(j, lo, hi)| s(r[j], lo, hi)).collect())
            .collect();
        let y = match self.target {
            Some((lo, hi)) => data.y.iter().map(|&v| s(v, lo, hi)).collect(),
            None => data.y.clone(),
        };
        Dataset::new(&data.name, x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_errors_are_typed() {
        assert!(matches!(
            Dataset::from_csv("t", "1,2,3\n4,NaN,6\n"),
            Err(Error::NonFiniteData { row: 1, col: 1, .. })
        ));
        assert!(matches!(
            Dataset::from_csv("t", "1,2,3\n4,6\n"),
            Err(Error::FeatureCount { row: 1, expected: 2, found: 1 })
        ));
        assert!(matches!(Dataset::from_csv("t", "1,x,3\n"), Err(Error::TrainData { .. })));
        assert!(matches!(Dataset::from_csv("t", ""), Err(Error::TrainData { .. })));
        assert!(matches!(
            Dataset::new("t", vec![vec![1.0]], vec![f64::INFINITY]),
            Err(Error::NonFiniteData { row: 0, col: 1, .. })
        ));
    }

    #[test]
    fn split_and_normalise() {
        let d = Dataset::from_csv("t", "0,5,1\n1,5,2\n2,5,3\n3,5,4\n4,5,5\n").unwrap();
        let (tr, te) = d.split(0.4, 1).unwrap();
        assert_eq!((tr.len(), te.len()), (3, 2));
        let mut all: Vec<f64> = tr.x.iter().chain(&te.x).map(|r| r[0]).collect();
        all.sort_by(f64::total_cmp);
        assert_eq!(all, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        let n = Normaliser::fit(&d, true).unwrap();
        // The constant second column is dropped; the first maps 0..4 onto −1..1.
        assert_eq!(n.features(), 1);
        let s = n.apply(&d).unwrap();
        assert_eq!(s.x.iter().map(|r| r[0]).collect::<Vec<_>>(), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(s.y, vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert!(d.split(1.5, 0).is_err());
    }
}
