//! Residual addition y = a + b of two tensors in the same layout.

use crate::error::{Error, Result};
use crate::nn::builder::{scales_match, ProgramBuilder};
use crate::nn::layout::Layout;
use crate::nn::program::ObjId;

/// Adds the skip branch to the main branch: the higher ciphertext is dropped to the lower
/// level, and if the scales differ the skip branch is brought to the main branch's scale with
/// one constant product (which needs a spare level on it).
#[derive(Debug, Clone)]
pub struct Residual {
    /// Layer name.
    pub name: String,
}

impl Residual {
    /// A residual addition.
    pub fn new(name: &str) -> Self {
        Self { name: name.into() }
    }

    /// Elementwise sum in f64.
    pub fn reference(&self, a: &[f64], b: &[f64]) -> Vec<f64> {
        a.iter().zip(b).map(|(x, y)| x + y).collect()
    }

    /// Emits main + skip; both must be in the same layout.
    pub fn compile(
        &self,
        b: &mut ProgramBuilder,
        main: (ObjId, &Layout),
        skip: (ObjId, &Layout),
    ) -> Result<(ObjId, Layout)> {
        if main.1 != skip.1 {
            return Err(Error::LayerShape {
                layer: self.name.clone(),
                reason: format!("branch layouts differ: {:?} vs {:?}", main.1, skip.1),
            });
        }
        let (lm, sm) = (b.level(main.0)?, b.scale(main.0)?);
        let (ls, ss) = (b.level(skip.0)?, b.scale(skip.0)?);
        let (m, s) = if scales_match(sm, ss) {
            let l = lm.min(ls);
            (b.drop_to(main.0, l)?, b.drop_to(skip.0, l)?)
        } else if ls > lm {
            (main.0, b.adjust(skip.0, lm, sm)?)
        } else if lm > ls {
            (b.adjust(main.0, ls, ss)?, skip.0)
        } else {
            return Err(Error::DepthExceeded { layer: self.name.clone(), needed: 1, available: 0 });
        };
        Ok((b.add(m, s)?, *main.1))
    }
}
