//! Where each sample's values sit in the slots: one row of 2f slots per sample, features in
//! the first f (f a power of two), rows filled ciphertext after ciphertext.

use crate::error::{Error, Result};

/// The slot layout of one training set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packing {
    /// Values per sample (features plus the bias term).
    pub width: usize,
    /// Half a row: `width` rounded up to a power of two.
    pub half: usize,
    /// Rows (samples) per ciphertext: slots / (2·half).
    pub rows: usize,
    /// Ciphertexts holding the samples.
    pub cts: usize,
    /// Samples.
    pub samples: usize,
    /// Slots per ciphertext.
    pub slots: usize,
}

impl Packing {
    /// The layout of `samples` samples of `width` values in ciphertexts of `slots` slots.
    pub fn new(samples: usize, width: usize, slots: usize) -> Result<Self> {
        let half = width.next_power_of_two();
        if samples == 0 || width == 0 || 2 * half > slots {
            return Err(Error::TrainData {
                reason: format!(
                    "{samples} samples of {width} values need rows of {} slots; a ciphertext \
                     has {slots}",
                    2 * half
                ),
            });
        }
        let rows = slots / (2 * half);
        Ok(Self { width, half, rows, cts: samples.div_ceil(rows), samples, slots })
    }

    /// First slot of sample `i`'s row within its ciphertext, and that ciphertext.
    fn place(&self, i: usize) -> (usize, usize) {
        (i / self.rows, (i % self.rows) * 2 * self.half)
    }

    /// Slot vectors of the ciphertexts holding `rows[i]` in the first half of row i.
    pub fn pack_rows(&self, rows: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
        let mut out = vec![vec![0.0; self.slots]; self.cts];
        if rows.len() != self.samples {
            return Err(Error::TrainData {
                reason: format!("{} rows for a layout of {} samples", rows.len(), self.samples),
            });
        }
        for (i, r) in rows.iter().enumerate() {
            if r.len() != self.width {
                return Err(Error::FeatureCount { row: i, expected: self.width, found: r.len() });
            }
            let (c, s) = self.place(i);
            out[c][s..s + self.width].copy_from_slice(r);
        }
        Ok(out)
    }

    /// Slot vectors with `vals[i]` repeated over the first half of row i.
    pub fn pack_repeated(&self, vals: &[f64]) -> Result<Vec<Vec<f64>>> {
        let rows: Vec<Vec<f64>> = vals.iter().map(|&v| vec![v; self.width]).collect();
        let mut out = self.pack_rows(&rows)?;
        for (i, &v) in vals.iter().enumerate() {
            let (c, s) = self.place(i);
            out[c][s..s + self.half].fill(v);
        }
        Ok(out)
    }

    /// The first slot of every sample's row, from the ciphertexts' decoded slots.
    pub fn first_of_rows(&self, cts: &[Vec<f64>]) -> Result<Vec<f64>> {
        (0..self.samples)
            .map(|i| {
                let (c, s) = self.place(i);
                cts.get(c).and_then(|v| v.get(s)).copied().ok_or(Error::TrainData {
                    reason: format!("decoded margins lack ciphertext {c}"),
                })
            })
            .collect()
    }

    /// Rotation steps of the rotate-and-sum over one half row.
    pub fn feature_steps(&self) -> Vec<i64> {
        (0..self.half.trailing_zeros()).map(|k| 1i64 << k).collect()
    }

    /// Rotation steps of the rotate-and-sum over the rows of a ciphertext.
    pub fn row_steps(&self) -> Vec<i64> {
        let first = 2 * self.half;
        (0..self.rows.trailing_zeros()).map(|k| (first << k) as i64).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_places_rows() {
        let p = Packing::new(5, 3, 16).unwrap();
        assert_eq!((p.half, p.rows, p.cts), (4, 2, 3));
        let rows: Vec<Vec<f64>> = (0..5).map(|i| vec![i as f64; 3]).collect();
        let v = p.pack_rows(&rows).unwrap();
        assert_eq!(v[1][..8], [2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(v[1][8..11], [3.0, 3.0, 3.0]);
        assert_eq!(p.first_of_rows(&v).unwrap(), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(p.feature_steps(), vec![1, 2]);
        assert_eq!(p.row_steps(), vec![8]);
        let r = p.pack_repeated(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(r[0][8..16], [2.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
        assert!(matches!(
            p.pack_rows(&[vec![0.0; 3], vec![0.0; 2], vec![], vec![], vec![]]),
            Err(Error::FeatureCount { row: 1, expected: 3, found: 2 })
        ));
        assert!(Packing::new(1, 9, 16).is_err());
    }
}
