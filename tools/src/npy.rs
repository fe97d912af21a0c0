//! `.npy` files (NumPy's array format, version 1–3): little-endian float32, float64 or uint8
//! arrays in C order, read as f64 rows, and float64 arrays written back.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// An array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major, widened to f64.
    pub data: Vec<f64>,
}

fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

/// Parses the bytes of a `.npy` file.
pub fn parse(bytes: &[u8]) -> Result<Array> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("not a .npy file (bad magic)");
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => {
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => bail!(".npy version {v} is not supported"),
    };
    let end = start.checked_add(hlen).filter(|&e| e <= bytes.len()).context("truncated header")?;
    let header = std::str::from_utf8(&bytes[start..end]).context("header is not text")?;
    let descr = field(header, "descr").context("header has no descr")?;
    let width = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else if descr.starts_with("'|u1'") || descr.starts_with("'u1'") {
        1
    } else {
        bail!(
            "dtype {} is not supported (float32, float64 or uint8)",
            &descr[..descr.len().min(8)]
        );
    };
    if field(header, "fortran_order").is_some_and(|f| f.starts_with("True")) {
        bail!("Fortran-ordered arrays are not supported");
    }
    let shape_txt = field(header, "shape").context("header has no shape")?;
    let inner =
        shape_txt.strip_prefix('(').and_then(|s| s.split(')').next()).context("malformed shape")?;
    let shape: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().with_context(|| format!("shape entry {s:?}")))
        .collect::<Result<_>>()?;
    let count =
        shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).context("shape overflows")?;
    let body = &bytes[end..];
    if body.len() != count * width {
        bail!(
            "array of shape {shape:?} needs {} data bytes, file has {}",
            count * width,
            body.len()
        );
    }
    let data = match width {
        4 => body
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        8 => body
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
        _ => body.iter().map(|&b| f64::from(b)).collect(),
    };
    Ok(Array { shape, data })
}

/// Reads a `.npy` file.
pub fn read(path: &Path) -> Result<Array> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&bytes).with_context(|| format!("parsing {}", path.display()))
}

impl Array {
    /// The rows of a batch of samples of `sample` values each: `[N, …]` or one sample.
    pub fn samples(&self, sample: usize) -> Result<Vec<Vec<f64>>> {
        if sample == 0 || !self.data.len().is_multiple_of(sample) {
            bail!(
                "array of shape {:?} ({} values) is not a batch of samples of {sample} values",
                self.shape,
                self.data.len()
            );
        }
        Ok(self.data.chunks(sample).map(<[f64]>::to_vec).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn reads_float32_float64_and_uint8_and_rejects_bad_files() {
        let body: Vec<u8> =
            [1.5f32, -2.0, 3.25, 0.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = parse(&npy("<f4", "(2, 2)", &body)).unwrap();
        assert_eq!((a.shape.clone(), a.data.clone()), (vec![2, 2], vec![1.5, -2.0, 3.25, 0.0]));
        assert_eq!(a.samples(2).unwrap(), vec![vec![1.5, -2.0], vec![3.25, 0.0]]);
        assert!(a.samples(3).is_err());
        let body: Vec<u8> = [0.125f64].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(parse(&npy("<f8", "(1,)", &body)).unwrap().data, vec![0.125]);
        assert_eq!(parse(&npy("|u1", "(3,)", &[0, 7, 255])).unwrap().data, vec![0.0, 7.0, 255.0]);
        assert!(parse(&npy("<f4", "(3,)", &[0; 8])).is_err());
        assert!(parse(&npy("<i8", "(1,)", &[0; 8])).is_err());
        assert!(parse(b"\x93NUMP").is_err());
    }
}
