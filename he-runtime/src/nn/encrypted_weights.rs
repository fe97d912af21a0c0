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
    })
}

/// Whether object `o` is an encrypted weight (a ciphertext the model owner supplies once).
pub fn is_encrypted_weight(o: &Object) -> bool {
    o.kind == ObjKind::Ciphertext && o.role == Role::Weight
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::ckks::{Context, Decryptor, Encoder, Encryptor, KeyGenerator, Preset};
    use crate::model::{argmax, Model};
    use crate::nn::{Interpreter, KeyBundle};

    #[test]
    fn digits_with_encrypted_weights_agrees_with_plaintext() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
        let m = Model::load(dir.join("digits.json")).unwrap();
        let params = Preset::N14.params().unwrap();
        let c = m.compile(&params).unwrap();
        let ew = encrypt_weights(&c.program).unwrap();
        let count = |p: &Program, f: fn(&Op) -> bool| p.ops().iter().filter(|r| f(&r.op)).count();
        let plain_products = count(&c.program, |o| matches!(o, Op::MulPlain { .. }));
        assert!(plain_products > 0);
        assert_eq!(count(&ew, |o| matches!(o, Op::MulPlain { .. } | Op::AddPlain { .. })), 0);
        assert_eq!(
            count(&ew, |o| matches!(o, Op::MulRelin { .. })),
            count(&c.program, |o| matches!(o, Op::MulRelin { .. })) + plain_products
        );
        let ctx = Context::new(&params).unwrap();
        let mut kg = KeyGenerator::with_seed(&ctx, [4; 32]);
        let sk = kg.secret_key();
        let keys = KeyBundle::generate(&mut kg, &sk, &ew).unwrap();
        let mut enc = Encryptor::with_seed(&ctx, [5; 32]);
        let encoder = Encoder::new(&ctx);
        let ts = m.test_set().unwrap();
        for i in 0..2 {
            let mut it = Interpreter::new(&ctx, &ew, &keys).unwrap();
            assert!(it.encrypt_weights(&mut enc, &sk).unwrap() >= plain_products);
            let x = m.prepare_input(ts.image(i)).unwrap();
            let slots = c.pack(&x, params.slots()).unwrap();
            let pt = encoder.encode_real(&slots, params.max_level(), params.scale()).unwrap();
            it.set_input(&c.input_name, enc.encrypt_sk(&sk, &pt).unwrap()).unwrap();
            it.run().unwrap();
            let out =
                Decryptor::new(&ctx, &sk).unwrap().decrypt(it.output(&c.output_name).unwrap());
            let y = c.output_layout.unpack(&encoder.decode_real(&out.unwrap()).unwrap());
            let want = ts.reference_logits(i);
            let err = y.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(err < 1e-3, "image {i}: logits differ by {err}");
            assert_eq!(argmax(&y), argmax(want));
        }
    }
}
