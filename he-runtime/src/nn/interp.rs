//! Executors of a [`Program`] held entirely in memory: [`Interpreter`] runs it with the CKKS
//! evaluator and records every object access it actually performs (so tests can check it
//! against the symbolic [`Program::trace`]); [`PlainInterpreter`] runs the same ops on f64 slot
//! vectors — the plaintext twin used by the layer tests.

use std::collections::HashMap;
use std::sync::Arc;

use super::program::{key_use_tag, Access, AccessMode, BootstrapSpec, ObjId, ObjKind, Op, Program};
use crate::ckks::bootstrap::{
    encapsulation_view, galois_view, view, Bootstrapper, KeySource, KeyUse, RecordingKeys,
};
use crate::ckks::{
    Ciphertext, Context, Encoder, Encryptor, Evaluator, GaloisKey, GaloisKeySet, KeyGenerator,
    KeySwitchKey, Plaintext, RelinKey, Scratch, SecretKey,
};
use crate::error::{Error, Result};

/// The evaluation keys a program needs.
#[derive(Debug, Clone, Default)]
pub struct KeyBundle {
    /// Galois keys (rotations and conjugation) by Galois element.
    pub galois: GaloisKeySet,
    /// The relinearisation key, if the program multiplies ciphertexts.
    pub relin: Option<RelinKey>,
    /// Dense → sparse switching key of a bootstrap's encapsulation.
    pub to_sparse: Option<KeySwitchKey>,
    /// Sparse → dense switching key of a bootstrap's encapsulation.
    pub from_sparse: Option<KeySwitchKey>,
}

impl KeyBundle {
    /// Generates exactly the keys `program` refers to (a bootstrapping program's encapsulation
    /// pair shares one fresh sparse secret, zeroized before this returns).
    pub fn generate(kg: &mut KeyGenerator, sk: &SecretKey, program: &Program) -> Result<Self> {
        let mut b = Self::default();
        let mut encapsulation = false;
        for id in program.keys() {
            match program.object(id)?.kind {
                ObjKind::GaloisKey { galois_element, .. } => {
                    b.galois.insert(kg.galois_key(sk, galois_element)?)
                }
                ObjKind::RelinKey => b.relin = Some(kg.relin_key(sk)?),
                ObjKind::SwitchingKey { .. } => encapsulation = true,
                _ => {}
            }
        }
        if let (true, Some(h)) =
            (encapsulation, program.bootstrap().and_then(|s| s.config.sparse_secret))
        {
            let sparse = kg.sparse_secret_key(h)?;
            b.to_sparse = Some(kg.switching_key(sk, &sparse)?);
            b.from_sparse = Some(kg.switching_key(&sparse, sk)?);
        }
        Ok(b)
    }
}

impl KeySource for KeyBundle {
    type Error = Error;
    type Words<'a> = &'a [u64];
    type KeyWords<'a> = &'a [u64];

    fn galois(&self, g: u64, _level: usize) -> Result<GaloisKey<&[u64]>> {
        galois_view(&self.galois, g)
    }

    fn relin(&self, _level: usize) -> Result<RelinKey<&[u64]>> {
        let k = self.relin.as_ref().ok_or(Error::MissingKey { what: "relinearisation key" })?;
        Ok(RelinKey { key: view(&k.key) })
    }

    fn switching(&self, which: KeyUse, _level: usize) -> Result<KeySwitchKey<&[u64]>> {
        encapsulation_view(which, self.to_sparse.as_ref(), self.from_sparse.as_ref())
    }
}

/// Checks that `bs` is the bootstrapper `program`'s bootstrap ops were compiled for.
pub fn check_bootstrapper(program: &Program, bs: &Bootstrapper) -> Result<()> {
    let Some(spec) = program.bootstrap() else {
        return Ok(());
    };
    let got = BootstrapSpec::of(bs);
    let reason = if got.config != spec.config {
        format!("configuration {:?}, program has {:?}", got.config, spec.config)
    } else if got.output_level != spec.output_level {
        format!("output level {}, program has {}", got.output_level, spec.output_level)
    } else if got.key_uses != spec.key_uses {
        format!("{} key uses, program has {}", got.key_uses.len(), spec.key_uses.len())
    } else if got.spare_words != spec.spare_words {
        format!("spare buffers {:?}, program has {:?}", got.spare_words, spec.spare_words)
    } else {
        return Ok(());
    };
    Err(Error::BootstrapMismatch { reason })
}

/// Checks that a bootstrap used exactly the keys its op lists, in order.
pub(crate) fn check_key_uses(
    program: &Program,
    keys: &[ObjId],
    uses: &[(KeyUse, std::time::Instant)],
) -> Result<()> {
    let same = keys.len() == uses.len()
        && keys.iter().zip(uses).all(|(&k, &(u, _))| {
            program.objects().get(k.index()).and_then(|o| o.kind.key_tag()) == Some(key_use_tag(u))
        });
    if same {
        Ok(())
    } else {
        Err(Error::BootstrapMismatch {
            reason: format!("it used {} keys, the op lists {}", uses.len(), keys.len()),
        })
    }
}

fn words_bytes(n: usize) -> u64 {
    n as u64 * 8
}

fn read_ct<'m>(
    cts: &'m HashMap<ObjId, Ciphertext>,
    log: &mut Vec<Access>,
    op: usize,
    id: ObjId,
) -> Result<&'m Ciphertext> {
    let ct = cts.get(&id).ok_or(Error::MissingObject { id: id.0, reason: "ciphertext read" })?;
    log.push(Access {
        op,
        obj: id,
        mode: AccessMode::Read,
        bytes: words_bytes(ct.as_words().len()),
    });
    Ok(ct)
}

fn read_pt<'m>(
    pts: &'m HashMap<ObjId, Plaintext>,
    log: &mut Vec<Access>,
    op: usize,
    id: ObjId,
) -> Result<&'m Plaintext> {
    let pt = pts.get(&id).ok_or(Error::MissingObject { id: id.0, reason: "plaintext read" })?;
    log.push(Access {
        op,
        obj: id,
        mode: AccessMode::Read,
        bytes: words_bytes(pt.as_words().len()),
    });
    Ok(pt)
}

fn read_galois<'k>(
    keys: &'k KeyBundle,
    program: &Program,
    log: &mut Vec<Access>,
    op: usize,
    id: ObjId,
) -> Result<&'k GaloisKey> {
    let g = match program.object(id)?.kind {
        ObjKind::GaloisKey { galois_element, .. } => galois_element,
        _ => return Err(Error::MissingObject { id: id.0, reason: "not a Galois key" }),
    };
    let key =
        keys.galois.get(g).ok_or(Error::MissingGaloisKey { galois_element: g, step: None })?;
    let bytes = words_bytes(key.key.as_words().len());
    log.push(Access { op, obj: id, mode: AccessMode::Read, bytes });
    Ok(key)
}

/// Runs a program with the CKKS evaluator, objects in a `HashMap`, recording each access.
#[derive(Debug)]
pub struct Interpreter<'a> {
    program: &'a Program,
    keys: &'a KeyBundle,
    eval: Evaluator,
    encoder: Encoder,
    scratch: Scratch,
    cts: HashMap<ObjId, Ciphertext>,
    pts: HashMap<ObjId, Plaintext>,
    log: Vec<Access>,
    bootstrapper: Option<&'a Bootstrapper>,
}

impl<'a> Interpreter<'a> {
    /// Runs the program's bootstrap ops with `bs` (a typed error if the program was compiled
    /// for another bootstrapper).
    pub fn with_bootstrapper(mut self, bs: &'a Bootstrapper) -> Result<Self> {
        check_bootstrapper(self.program, bs)?;
        self.bootstrapper = Some(bs);
        Ok(self)
    }

    /// An interpreter for `program` under `ctx` with `keys`; plaintext weights are encoded
    /// up front (as an executor would put them in the store before running).
    pub fn new(ctx: &Arc<Context>, program: &'a Program, keys: &'a KeyBundle) -> Result<Self> {
        if ctx.params() != program.params() {
            return Err(Error::ParamsMismatch {
                expected: program.params().id(),
                found: ctx.params().id(),
            });
        }
        let encoder = Encoder::new(ctx);
        let mut pts = HashMap::new();
        for (i, o) in program.objects().iter().enumerate() {
            if let (ObjKind::Plaintext, Some(src)) = (o.kind, &o.plain) {
                pts.insert(ObjId(i as u32), encoder.encode_real(&src.eval(), o.level, o.scale)?);
            }
        }
        let eval = Evaluator::new(ctx);
        Ok(Self {
            program,
            keys,
            scratch: eval.scratch(),
            eval,
            encoder,
            cts: HashMap::new(),
            pts,
            log: Vec::new(),
            bootstrapper: None,
        })
    }

    /// Encrypts every encrypted-weight object of the program (see
    /// [`super::encrypted_weights`]) with the model owner's secret key, at the level and scale
    /// the program records; returns how many there were.
    pub fn encrypt_weights(&mut self, enc: &mut Encryptor, sk: &SecretKey) -> Result<usize> {
        let mut n = 0;
        for (i, o) in self.program.objects().iter().enumerate() {
            if !super::encrypted_weights::is_encrypted_weight(o) {
                continue;
            }
            let src = o.plain.as_ref().ok_or(Error::MissingObject {
                id: i as u32,
                reason: "encrypted weight without values",
            })?;
            let pt = self.encoder.encode_real(&src.eval(), o.level, o.scale)?;
            self.cts.insert(ObjId(i as u32), enc.encrypt_sk(sk, &pt)?);
            n += 1;
        }
        Ok(n)
    }

    /// The encoder (for callers preparing inputs).
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Supplies the input named `name`; its level and scale must be the program's.
    pub fn set_input(&mut self, name: &str, ct: Ciphertext) -> Result<()> {
        let id =
            self.program.inputs().iter().find(|(n, _)| n == name).map(|(_, id)| *id).ok_or(
                Error::InvalidParameter { name: "input", reason: format!("no input {name}") },
            )?;
        let o = self.program.object(id)?;
        if ct.level() != o.level {
            return Err(Error::LevelMismatch { left: o.level, right: ct.level() });
        }
        if !super::builder::scales_match(ct.scale(), o.scale) {
            return Err(Error::ScaleMismatch {
                left_log2: o.scale.log2(),
                right_log2: ct.scale().log2(),
            });
        }
        self.cts.insert(id, ct);
        Ok(())
    }

    /// Runs every op in order, freeing scratch ciphertexts after their last use.
    pub fn run(&mut self) -> Result<()> {
        self.run_ops(0..self.program.ops().len())
    }

    /// Runs the ops `range` in order (the pieces of [`Interpreter::run`], e.g. to time each
    /// phase of a program), freeing scratch ciphertexts after their last use.
    pub fn run_ops(&mut self, range: std::ops::Range<usize>) -> Result<()> {
        let len = self.program.ops().len();
        if range.end > len {
            return Err(Error::InvalidParameter {
                name: "op range",
                reason: format!("{range:?} beyond the program's {len} ops"),
            });
        }
        for i in range {
            self.step(i)?;
            for &dead in self.program.frees_after(i) {
                if let Some(ct) = self.cts.remove(&dead) {
                    let bytes = words_bytes(ct.as_words().len());
                    self.log.push(Access { op: i, obj: dead, mode: AccessMode::Free, bytes });
                }
            }
        }
        Ok(())
    }

    fn put(&mut self, op: usize, id: ObjId, ct: Ciphertext) {
        let bytes = words_bytes(ct.as_words().len());
        self.log.push(Access { op, obj: id, mode: AccessMode::Write, bytes });
        self.cts.insert(id, ct);
    }

    fn step(&mut self, i: usize) -> Result<()> {
        let op = &self.program.ops()[i].op;
        let Self { program, keys, eval, scratch, cts, pts, log, bootstrapper, .. } = self;
        let (dst, out) = match *op {
            Op::Rotate { dst, src, step, key } => {
                let a = read_ct(cts, log, i, src)?;
                let k = read_galois(keys, program, log, i, key)?;
                (dst, eval.rotate(a, step, k, scratch)?)
            }
            Op::Conjugate { dst, src, key } => {
                let a = read_ct(cts, log, i, src)?;
                let k = read_galois(keys, program, log, i, key)?;
                (dst, eval.conjugate(a, k, scratch)?)
            }
            Op::HoistedRotate { src, ref rots } => {
                let h = eval.hoist(read_ct(cts, log, i, src)?, scratch)?;
                for &(step, key, dst) in rots {
                    let k = read_galois(keys, program, log, i, key)?;
                    let r = eval.rotate_hoisted(&h, step, k, scratch)?;
                    log.push(Access {
                        op: i,
                        obj: dst,
                        mode: AccessMode::Write,
                        bytes: words_bytes(r.as_words().len()),
                    });
                    cts.insert(dst, r);
                }
                return Ok(());
            }
            Op::MulPlain { dst, ct, pt } => {
                let a = read_ct(cts, log, i, ct)?;
                (dst, eval.mul_plain(a, read_pt(pts, log, i, pt)?)?)
            }
            Op::AddPlain { dst, ct, pt } => {
                let a = read_ct(cts, log, i, ct)?;
                (dst, eval.add_plain(a, read_pt(pts, log, i, pt)?)?)
            }
            Op::MulConst { dst, src, value, scale } => {
                (dst, eval.mul_const(read_ct(cts, log, i, src)?, value, scale)?)
            }
            Op::MulInt { dst, src, k } => (dst, eval.mul_integer(read_ct(cts, log, i, src)?, k)?),
            Op::AddConst { dst, src, value } => {
                let c = crate::ckks::Complex64::new(value, 0.0);
                (dst, eval.add_const(read_ct(cts, log, i, src)?, c)?)
            }
            Op::Add { dst, a, b } => {
                let x = read_ct(cts, log, i, a)?;
                (dst, eval.add(x, read_ct(cts, log, i, b)?)?)
            }
            Op::Sub { dst, a, b } => {
                let x = read_ct(cts, log, i, a)?;
                (dst, eval.sub(x, read_ct(cts, log, i, b)?)?)
            }
            Op::MulRelin { dst, a, b, key } => {
                let x = read_ct(cts, log, i, a)?;
                let y = read_ct(cts, log, i, b)?;
                let rk = keys.relin.as_ref().ok_or(Error::MissingObject {
                    id: key.0,
                    reason: "relinearisation key not in the bundle",
                })?;
                let bytes = words_bytes(rk.key.as_words().len());
                log.push(Access { op: i, obj: key, mode: AccessMode::Read, bytes });
                (dst, eval.mul_relin(x, y, rk, scratch)?)
            }
            Op::Rescale { dst, src } => (dst, eval.rescale(read_ct(cts, log, i, src)?)?),
            Op::LevelDrop { dst, src, level } => {
                (dst, eval.drop_to_level(read_ct(cts, log, i, src)?, level)?)
            }
            Op::Relabel { dst, src, scale } => {
                let mut c = read_ct(cts, log, i, src)?.clone();
                c.set_scale(scale);
                (dst, c)
            }
            Op::Bootstrap { dst, src, keys: ref key_objs } => {
                let bs = bootstrapper.ok_or(Error::MissingKey { what: "bootstrapper" })?;
                let x = read_ct(cts, log, i, src)?;
                let recorder = RecordingKeys::new(*keys);
                let out = bs.bootstrap(x, &recorder, scratch)?;
                check_key_uses(program, key_objs, &recorder.into_uses())?;
                for &k in key_objs {
                    let bytes = program.object(k)?.bytes;
                    log.push(Access { op: i, obj: k, mode: AccessMode::Read, bytes });
                }
                (dst, out)
            }
        };
        self.put(i, dst, out);
        Ok(())
    }

    /// The output named `name` after [`Interpreter::run`].
    pub fn output(&self, name: &str) -> Result<&Ciphertext> {
        let id = self.program.outputs().iter().find(|(n, _)| n == name).map(|(_, id)| *id).ok_or(
            Error::InvalidParameter { name: "output", reason: format!("no output {name}") },
        )?;
        self.cts.get(&id).ok_or(Error::MissingObject { id: id.0, reason: "output not computed" })
    }

    /// Every access performed so far, in order.
    pub fn accesses(&self) -> &[Access] {
        &self.log
    }

    /// Number of ciphertexts currently held.
    pub fn live_ciphertexts(&self) -> usize {
        self.cts.len()
    }
}

/// Runs a program on f64 slot vectors (no encryption, no noise): the plaintext twin.
#[derive(Debug)]
pub struct PlainInterpreter<'a> {
    program: &'a Program,
    vals: HashMap<ObjId, Vec<f64>>,
}

impl<'a> PlainInterpreter<'a> {
    /// A twin interpreter for `program`.
    pub fn new(program: &'a Program) -> Self {
        Self { program, vals: HashMap::new() }
    }

    fn padded(&self, mut v: Vec<f64>) -> Result<Vec<f64>> {
        let slots = self.program.params().slots();
        if v.len() > slots {
            return Err(Error::TooManyValues { len: v.len(), slots });
        }
        v.resize(slots, 0.0);
        Ok(v)
    }

    /// Supplies the input named `name` as slot values (zero-padded).
    pub fn set_input(&mut self, name: &str, v: &[f64]) -> Result<()> {
        let id =
            self.program.inputs().iter().find(|(n, _)| n == name).map(|(_, id)| *id).ok_or(
                Error::InvalidParameter { name: "input", reason: format!("no input {name}") },
            )?;
        let v = self.padded(v.to_vec())?;
        self.vals.insert(id, v);
        Ok(())
    }

    fn get(&self, id: ObjId) -> Result<Vec<f64>> {
        if let Some(v) = self.vals.get(&id) {
            return Ok(v.clone());
        }
        match &self.program.object(id)?.plain {
            Some(src) => self.padded(src.eval()),
            None => Err(Error::MissingObject { id: id.0, reason: "twin value" }),
        }
    }

    /// Runs every op.
    pub fn run(&mut self) -> Result<()> {
        let zip = |a: Vec<f64>, b: Vec<f64>, f: fn(f64, f64) -> f64| -> Vec<f64> {
            a.into_iter().zip(b).map(|(x, y)| f(x, y)).collect()
        };
        for r in self.program.ops() {
            let (dst, v) = match r.op {
                Op::Rotate { dst, src, step, .. } => {
                    let mut v = self.get(src)?;
                    let len = v.len();
                    v.rotate_left(step as usize % len);
                    (dst, v)
                }
                Op::HoistedRotate { src, ref rots } => {
                    let v = self.get(src)?;
                    for &(step, _, dst) in rots {
                        let mut w = v.clone();
                        let len = w.len();
                        w.rotate_left(step as usize % len);
                        self.vals.insert(dst, w);
                    }
                    continue;
                }
                Op::Conjugate { dst, src, .. } => (dst, self.get(src)?),
                Op::MulPlain { dst, ct, pt } => {
                    (dst, zip(self.get(ct)?, self.get(pt)?, |x, y| x * y))
                }
                Op::AddPlain { dst, ct, pt } => {
                    (dst, zip(self.get(ct)?, self.get(pt)?, |x, y| x + y))
                }
                Op::MulConst { dst, src, value, .. } => {
                    (dst, self.get(src)?.into_iter().map(|x| x * value).collect())
                }
                Op::MulInt { dst, src, k } => {
                    (dst, self.get(src)?.into_iter().map(|x| x * k as f64).collect())
                }
                Op::AddConst { dst, src, value } => {
                    (dst, self.get(src)?.into_iter().map(|x| x + value).collect())
                }
                Op::Add { dst, a, b } => (dst, zip(self.get(a)?, self.get(b)?, |x, y| x + y)),
                Op::Sub { dst, a, b } => (dst, zip(self.get(a)?, self.get(b)?, |x, y| x - y)),
                Op::MulRelin { dst, a, b, .. } => {
                    (dst, zip(self.get(a)?, self.get(b)?, |x, y| x * y))
                }
                Op::Rescale { dst, src }
                | Op::LevelDrop { dst, src, .. }
                | Op::Bootstrap { dst, src, .. } => (dst, self.get(src)?),
                Op::Relabel { dst, src, scale } => {
                    let f = self.program.object(src)?.scale / scale;
                    (dst, self.get(src)?.into_iter().map(|x| x * f).collect())
                }
            };
            self.vals.insert(dst, v);
        }
        Ok(())
    }

    /// The output named `name` after [`PlainInterpreter::run`].
    pub fn output(&self, name: &str) -> Result<&[f64]> {
        let id = self.program.outputs().iter().find(|(n, _)| n == name).map(|(_, id)| *id).ok_or(
            Error::InvalidParameter { name: "output", reason: format!("no output {name}") },
        )?;
        self.vals
            .get(&id)
            .map(|v| v.as_slice())
            .ok_or(Error::MissingObject { id: id.0, reason: "output not computed" })
    }
}
