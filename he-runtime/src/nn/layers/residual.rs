//! Residual addition y = a + b of two tensors in the same layout.

use crate::error::{Error, Result};
use crate::nn::builder::{scales_match, ProgramBuilder};
use crate::nn::layout::single;
use crate::nn::layout::{Layout, Tensor};
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

    /// Single-ciphertext form of [`Residual::compile_tensor`].
    pub fn compile(
        &self,
        b: &mut ProgramBuilder,
        main: (ObjId, &Layout),
        skip: (ObjId, &Layout),
    ) -> Result<(ObjId, Layout)> {
        let t = self.compile_tensor(
            b,
            &Tensor::single(main.0, *main.1),
            &Tensor::single(skip.0, *skip.1),
        )?;
        single(&self.name, t)
    }

    /// Emits main + skip; both must be in the same layout.
    pub fn compile_tensor(
        &self,
        b: &mut ProgramBuilder,
        main: &Tensor,
        skip: &Tensor,
    ) -> Result<Tensor> {
        if main.layout != skip.layout || main.cts.len() != skip.cts.len() {
            return Err(Error::LayerShape {
                layer: self.name.clone(),
                reason: format!("branch layouts differ: {:?} vs {:?}", main.layout, skip.layout),
            });
        }
        let cts = main
            .cts
            .iter()
            .zip(&skip.cts)
            .map(|(&m, &s)| self.add_ct(b, m, s))
            .collect::<Result<Vec<_>>>()?;
        Tensor::new(cts, main.layout)
    }

    pub(crate) fn add_ct(&self, b: &mut ProgramBuilder, main: ObjId, skip: ObjId) -> Result<ObjId> {
        let (lm, sm) = (b.level(main)?, b.scale(main)?);
        let (ls, ss) = (b.level(skip)?, b.scale(skip)?);
        let (m, s) = if scales_match(sm, ss) {
            let l = lm.min(ls);
            (b.drop_to(main, l)?, b.drop_to(skip, l)?)
        } else if ls > lm {
            (main, b.adjust(skip, lm, sm)?)
        } else if lm > ls {
            (b.adjust(main, ls, ss)?, skip)
        } else {
            return Err(Error::DepthExceeded { layer: self.name.clone(), needed: 1, available: 0 });
        };
        b.add(m, s)
    }
}
