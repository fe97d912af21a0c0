//! Encrypted weights: rewrites a compiled program so that every weight plaintext (dense and
//! convolution diagonals, biases, masks) becomes a ciphertext the model owner encrypts, each
//! plaintext product a relinearised ciphertext product and each plaintext addition a ciphertext
//! addition. Levels and scales are unchanged (a weight ciphertext is encrypted at the level and
//! scale its plaintext was encoded at, lowered to the level it is used at), so the same layer
//! compilers serve both, and the f64 twin of the rewritten program is the original's.

use super::program::{ObjId, ObjKind, Object, Op, OpRecord, Program, Role};
use crate::error::{Error, Result};

/// The program with its weights as ciphertexts (see the module docs). Errors when a weight is
/// used at two different levels (the layer compilers encode one plaintext per use).
pub fn encrypt_weights(program: &Program) -> Result<Program> {
    let mut objects: Vec<Object> = program.objects.clone();
    let sizes = program.sizes;
    // The level each weight is used at.
    let mut use_level: Vec<Option<usize>> = vec![None; objects.len()];
    for r in &program.ops {
        let pt = match r.op {
            Op::MulPlain { pt, .. } | Op::AddPlain { pt, .. } => pt,
            _ => continue,
        };
        let slot = &mut use_level[pt.index()];
        match *slot {
            Some(l) if l != r.level => {
                return Err(Error::MissingObject {
                    id: pt.0,
                    reason: "weight used at two levels; cannot become one ciphertext",
                })
            }
            _ => *slot = Some(r.level),
        }
    }
    for (o, lvl) in objects.iter_mut().zip(&use_level) {
        if o.kind == ObjKind::Plaintext && o.role == Role::Weight {
            o.kind = ObjKind::Ciphertext;
            o.level = lvl.unwrap_or(o.level);
            o.bytes = sizes.ciphertext(o.level);
        }
    }
    let relin = match objects.iter().position(|o| o.kind == ObjKind::RelinKey) {
        Some(i) => ObjId(i as u32),
        None => {
            let top = program.params.max_level();
            objects.push(Object {
                kind: ObjKind::RelinKey,
                role: Role::Key,
                level: top,
                scale: 1.0,
                bytes: sizes.key(),
                plain: None,
                layer: 0,
            });
            ObjId(objects.len() as u32 - 1)
        }
    };
    let ops = program
        .ops
        .iter()
        .map(|r| {
            let op = match r.op {
                Op::MulPlain { dst, ct, pt } => Op::MulRelin { dst, a: ct, b: pt, key: relin },
                Op::AddPlain { dst, ct, pt } => Op::Add { dst, a: ct, b: pt },
                ref other => other.clone(),
            };
            OpRecord { op, level: r.level, layer: r.layer }
        })
        .collect();
    Ok(Program {
        params: program.params.clone(),
        sizes,
        objects,
        ops,
        layers: program.layers.clone(),
        inputs: program.inputs.clone(),
        outputs: program.outputs.clone(),
        frees: program.frees.clone(),
        bootstrap: program.bootstrap.clone(),
    })
}

/// Whether object `o` is an encrypted weight (a ciphertext the model owner supplies once).
pub fn is_encrypted_weight(o: &Object) -> bool {
    o.kind == ObjKind::Ciphertext && o.role == Role::Weight
}
