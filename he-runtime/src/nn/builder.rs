//! [`ProgramBuilder`]: the layer compilers emit ops through it. It tracks every ciphertext's
//! level and exact scale the way the evaluator computes them (so the compiler can pick
//! constant and weight scales that make additions match exactly), creates key objects on first
//! use, and computes liveness when the program is finished.

use std::collections::BTreeMap;

use super::program::{
    galois_element, switching_key_tag, BootstrapSpec, ObjId, ObjKind, Object, Op, OpRecord,
    PlainSource, Program, Role, SizeModel,
};
use crate::ckks::bootstrap::KeyUse;
use crate::ckks::Params;
use crate::error::{Error, Result};

/// Relative tolerance under which two scales count as equal (the evaluator's).
pub(crate) const SCALE_TOL: f64 = 1e-12;

/// Whether two scales are equal up to a relative 1e-12 (the evaluator's tolerance).
pub fn scales_match(a: f64, b: f64) -> bool {
    (a - b).abs() <= SCALE_TOL * a.abs().max(b.abs())
}

/// Which key a key object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum KeyRef {
    Galois(u64),
    Relin,
    Switching(u64),
}

/// Emits a [`Program`], checking levels and scales as it goes.
#[derive(Debug)]
pub struct ProgramBuilder {
    params: Params,
    sizes: SizeModel,
    objects: Vec<Object>,
    ops: Vec<OpRecord>,
    keys: BTreeMap<KeyRef, ObjId>,
    layers: Vec<String>,
    layer: u16,
    inputs: Vec<(String, ObjId)>,
    outputs: Vec<(String, ObjId)>,
    bootstrap: Option<BootstrapSpec>,
}

impl ProgramBuilder {
    /// An empty program for `params`.
    pub fn new(params: &Params) -> Self {
        Self {
            params: params.clone(),
            sizes: SizeModel::new(params),
            objects: Vec::new(),
            ops: Vec::new(),
            keys: BTreeMap::new(),
            layers: vec!["(program)".into()],
            layer: 0,
            inputs: Vec::new(),
            outputs: Vec::new(),
            bootstrap: None,
        }
    }

    /// Lets the program bootstrap, as `spec` (from the real bootstrapper) says.
    pub fn enable_bootstrap(&mut self, spec: BootstrapSpec) {
        self.bootstrap = Some(spec);
    }

    /// Level of a bootstrapped ciphertext, when bootstrapping is enabled.
    pub fn bootstrap_level(&self) -> Option<usize> {
        self.bootstrap.as_ref().map(|b| b.output_level)
    }

    /// Bootstraps `src` (its slots must lie in [−1, 1]): the same slots, at the bootstrap's
    /// output level and the same scale. A typed error when bootstrapping is not enabled.
    pub fn bootstrap(&mut self, src: ObjId) -> Result<ObjId> {
        let scale = self.scale(src)?;
        let level = self.level(src)?;
        let spec = self.bootstrap.clone().ok_or(Error::InvalidParameter {
            name: "bootstrap",
            reason: "the program was not given a bootstrapping configuration".into(),
        })?;
        let mut keys = Vec::with_capacity(spec.key_uses.len());
        for &u in &spec.key_uses {
            keys.push(match u {
                KeyUse::Relin => self.key(KeyRef::Relin),
                KeyUse::Galois(g) => self.galois_key(g, spec.steps.get(&g).copied().flatten()),
                KeyUse::ToSparse | KeyUse::FromSparse => {
                    let tag = switching_key_tag(u).unwrap_or(0);
                    self.key(KeyRef::Switching(tag))
                }
            });
        }
        let dst = self.fresh(spec.output_level, scale);
        self.emit(Op::Bootstrap { dst, src, keys }, level);
        Ok(dst)
    }

    /// The parameter set.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Number of slots N/2.
    pub fn slots(&self) -> usize {
        self.params.slots()
    }

    /// Attributes the following ops and objects to a layer named `name`.
    pub fn begin_layer(&mut self, name: &str) {
        self.layers.push(name.to_string());
        self.layer = (self.layers.len() - 1).min(u16::MAX as usize) as u16;
    }

    /// Number of ops emitted so far (the index the next op will get).
    pub fn op_count(&self) -> usize {
        self.ops.len()
    }

    /// Name of the current layer.
    pub fn layer_name(&self) -> &str {
        &self.layers[self.layer as usize]
    }

    fn push_obj(&mut self, kind: ObjKind, role: Role, level: usize, scale: f64) -> ObjId {
        let bytes = match kind {
            ObjKind::Ciphertext => self.sizes.ciphertext(level),
            ObjKind::Plaintext => self.sizes.plaintext(level),
            _ => self.sizes.key(),
        };
        let id = ObjId(self.objects.len() as u32);
        self.objects.push(Object {
            kind,
            role,
            level,
            scale,
            bytes,
            plain: None,
            layer: self.layer,
        });
        id
    }

    fn ct(&self, id: ObjId) -> Result<&Object> {
        match self.objects.get(id.index()) {
            Some(o) if o.kind == ObjKind::Ciphertext => Ok(o),
            _ => Err(Error::MissingObject { id: id.0, reason: "not a ciphertext of this program" }),
        }
    }

    /// Level of ciphertext `id`.
    pub fn level(&self, id: ObjId) -> Result<usize> {
        Ok(self.ct(id)?.level)
    }

    /// Scale of ciphertext `id`.
    pub fn scale(&self, id: ObjId) -> Result<f64> {
        Ok(self.ct(id)?.scale)
    }

    /// The prime q_level (what a rescale at `level` divides by).
    pub fn prime(&self, level: usize) -> Result<f64> {
        self.params
            .q()
            .get(level)
            .map(|&q| q as f64)
            .ok_or(Error::InvalidLevel { level, max: self.params.max_level() })
    }

    /// A client-supplied input ciphertext at `level` and `scale`.
    pub fn input(&mut self, name: &str, level: usize, scale: f64) -> Result<ObjId> {
        if level > self.params.max_level() {
            return Err(Error::InvalidLevel { level, max: self.params.max_level() });
        }
        let id = self.push_obj(ObjKind::Ciphertext, Role::Input, level, scale);
        self.inputs.push((name.to_string(), id));
        Ok(id)
    }

    /// Marks `ct` as a named output.
    pub fn output(&mut self, name: &str, ct: ObjId) -> Result<()> {
        self.ct(ct)?;
        let o = &mut self.objects[ct.index()];
        if o.role == Role::Intermediate {
            o.role = Role::Output;
        }
        self.outputs.push((name.to_string(), ct));
        Ok(())
    }

    /// A weight plaintext with values from `src`, encoded at `level` and `scale`.
    pub fn plaintext(&mut self, src: PlainSource, level: usize, scale: f64) -> Result<ObjId> {
        if level > self.params.max_level() {
            return Err(Error::InvalidLevel { level, max: self.params.max_level() });
        }
        let id = self.push_obj(ObjKind::Plaintext, Role::Weight, level, scale);
        self.objects[id.index()].plain = Some(src);
        Ok(id)
    }

    fn key(&mut self, r: KeyRef) -> ObjId {
        if let Some(&k) = self.keys.get(&r) {
            return k;
        }
        let top = self.params.max_level();
        let kind = match r {
            KeyRef::Relin => ObjKind::RelinKey,
            // Rotation keys come from `rotation_key`, which records the step; this path makes
            // the conjugation key.
            KeyRef::Galois(g) => ObjKind::GaloisKey { galois_element: g, step: None },
            KeyRef::Switching(tag) => ObjKind::SwitchingKey { tag },
        };
        let id = self.push_obj(kind, Role::Key, top, 1.0);
        self.keys.insert(r, id);
        id
    }

    fn rotation_key(&mut self, step: i64) -> (i64, ObjId) {
        let step = step.rem_euclid(self.slots() as i64);
        let g = galois_element(self.params.log_n(), step);
        (step, self.galois_key(g, Some(step)))
    }

    /// The key object of Galois element `g` (a rotation by `step`, or the conjugation).
    fn galois_key(&mut self, g: u64, step: Option<i64>) -> ObjId {
        if let Some(&k) = self.keys.get(&KeyRef::Galois(g)) {
            return k;
        }
        let top = self.params.max_level();
        let kind = ObjKind::GaloisKey { galois_element: g, step };
        let id = self.push_obj(kind, Role::Key, top, 1.0);
        self.keys.insert(KeyRef::Galois(g), id);
        id
    }

    fn emit(&mut self, op: Op, level: usize) {
        self.ops.push(OpRecord { op, level, layer: self.layer });
    }

    fn fresh(&mut self, level: usize, scale: f64) -> ObjId {
        self.push_obj(ObjKind::Ciphertext, Role::Intermediate, level, scale)
    }

    /// Left rotation by `step` slots; a step of 0 (mod N/2) returns `src` itself.
    pub fn rotate(&mut self, src: ObjId, step: i64) -> Result<ObjId> {
        let (level, scale) = (self.level(src)?, self.scale(src)?);
        if step.rem_euclid(self.slots() as i64) == 0 {
            return Ok(src);
        }
        let (step, key) = self.rotation_key(step);
        let dst = self.fresh(level, scale);
        self.emit(Op::Rotate { dst, src, step, key }, level);
        Ok(dst)
    }

    /// Rotations of `src` by each step sharing one decomposition; steps of 0 give `src`.
    pub fn rotate_hoisted(&mut self, src: ObjId, steps: &[i64]) -> Result<Vec<ObjId>> {
        let (level, scale) = (self.level(src)?, self.scale(src)?);
        let slots = self.slots() as i64;
        let nonzero: Vec<i64> =
            steps.iter().map(|s| s.rem_euclid(slots)).filter(|&s| s != 0).collect();
        if nonzero.len() <= 1 {
            return steps.iter().map(|&s| self.rotate(src, s)).collect();
        }
        let mut rots: Vec<(i64, ObjId, ObjId)> = Vec::new();
        let mut out = Vec::with_capacity(steps.len());
        for &s in steps {
            let s = s.rem_euclid(slots);
            if s == 0 {
                out.push(src);
            } else if let Some(&(_, _, d)) = rots.iter().find(|r| r.0 == s) {
                out.push(d);
            } else {
                let (_, key) = self.rotation_key(s);
                let dst = self.fresh(level, scale);
                rots.push((s, key, dst));
                out.push(dst);
            }
        }
        self.emit(Op::HoistedRotate { src, rots }, level);
        Ok(out)
    }

    /// Complex conjugation of every slot.
    pub fn conjugate(&mut self, src: ObjId) -> Result<ObjId> {
        let (level, scale) = (self.level(src)?, self.scale(src)?);
        let g = 2 * self.params.n() as u64 - 1;
        let key = self.key(KeyRef::Galois(g));
        let dst = self.fresh(level, scale);
        self.emit(Op::Conjugate { dst, src, key }, level);
        Ok(dst)
    }

    fn pt(&self, id: ObjId) -> Result<&Object> {
        match self.objects.get(id.index()) {
            Some(o) if o.kind == ObjKind::Plaintext => Ok(o),
            _ => Err(Error::MissingObject { id: id.0, reason: "not a plaintext of this program" }),
        }
    }

    /// ct ⊙ pt; the plaintext must be at the ciphertext's level or above.
    pub fn mul_plain(&mut self, ct: ObjId, pt: ObjId) -> Result<ObjId> {
        let (level, scale) = (self.level(ct)?, self.scale(ct)?);
        let p = self.pt(pt)?;
        if p.level < level {
            return Err(Error::LevelMismatch { left: level, right: p.level });
        }
        let dst = self.fresh(level, scale * p.scale);
        self.emit(Op::MulPlain { dst, ct, pt }, level);
        Ok(dst)
    }

    /// ct ⊙ (values of `src` encoded at the ciphertext's level and `pt_scale`).
    pub fn mul_values(&mut self, ct: ObjId, src: PlainSource, pt_scale: f64) -> Result<ObjId> {
        let level = self.level(ct)?;
        let pt = self.plaintext(src, level, pt_scale)?;
        self.mul_plain(ct, pt)
    }

    /// ct + pt (same scale; the plaintext at the ciphertext's level or above).
    pub fn add_plain(&mut self, ct: ObjId, pt: ObjId) -> Result<ObjId> {
        let (level, scale) = (self.level(ct)?, self.scale(ct)?);
        let p = self.pt(pt)?;
        if p.level < level {
            return Err(Error::LevelMismatch { left: level, right: p.level });
        }
        if !scales_match(scale, p.scale) {
            return Err(Error::ScaleMismatch {
                left_log2: scale.log2(),
                right_log2: p.scale.log2(),
            });
        }
        let dst = self.fresh(level, scale);
        self.emit(Op::AddPlain { dst, ct, pt }, level);
        Ok(dst)
    }

    /// ct + (values of `src` encoded at the ciphertext's level and scale).
    pub fn add_values(&mut self, ct: ObjId, src: PlainSource) -> Result<ObjId> {
        let (level, scale) = (self.level(ct)?, self.scale(ct)?);
        let pt = self.plaintext(src, level, scale)?;
        self.add_plain(ct, pt)
    }

    /// src · round(value·scale); the result's scale is multiplied by `scale`.
    pub fn mul_const(&mut self, src: ObjId, value: f64, scale: f64) -> Result<ObjId> {
        let (level, s) = (self.level(src)?, self.scale(src)?);
        let v = (value * scale).round();
        if !(v.is_finite() && v.abs() < 9.0e18) {
            return Err(Error::EncodingOverflow { value, scale_log2: scale.log2() });
        }
        let dst = self.fresh(level, s * scale);
        self.emit(Op::MulConst { dst, src, value, scale }, level);
        Ok(dst)
    }

    /// src · k for an integer k (no scale change).
    pub fn mul_int(&mut self, src: ObjId, k: i64) -> Result<ObjId> {
        let (level, s) = (self.level(src)?, self.scale(src)?);
        let dst = self.fresh(level, s);
        self.emit(Op::MulInt { dst, src, k }, level);
        Ok(dst)
    }

    /// src + value in every slot.
    pub fn add_const(&mut self, src: ObjId, value: f64) -> Result<ObjId> {
        let (level, s) = (self.level(src)?, self.scale(src)?);
        let v = value * s;
        if !(v.is_finite() && v.abs() < 9.0e18) {
            return Err(Error::EncodingOverflow { value, scale_log2: s.log2() });
        }
        let dst = self.fresh(level, s);
        self.emit(Op::AddConst { dst, src, value }, level);
        Ok(dst)
    }

    fn check_pair(&self, a: ObjId, b: ObjId) -> Result<(usize, f64)> {
        let (la, sa) = (self.level(a)?, self.scale(a)?);
        let (lb, sb) = (self.level(b)?, self.scale(b)?);
        if la != lb {
            return Err(Error::LevelMismatch { left: la, right: lb });
        }
        if !scales_match(sa, sb) {
            return Err(Error::ScaleMismatch { left_log2: sa.log2(), right_log2: sb.log2() });
        }
        Ok((la, sa))
    }

    /// a + b (same level and scale).
    pub fn add(&mut self, a: ObjId, b: ObjId) -> Result<ObjId> {
        let (level, scale) = self.check_pair(a, b)?;
        let dst = self.fresh(level, scale);
        self.emit(Op::Add { dst, a, b }, level);
        Ok(dst)
    }

    /// a − b (same level and scale).
    pub fn sub(&mut self, a: ObjId, b: ObjId) -> Result<ObjId> {
        let (level, scale) = self.check_pair(a, b)?;
        let dst = self.fresh(level, scale);
        self.emit(Op::Sub { dst, a, b }, level);
        Ok(dst)
    }

    /// Sum of `terms` (same level and scale) as a balanced tree of additions.
    pub fn sum(&mut self, terms: &[ObjId]) -> Result<Option<ObjId>> {
        let mut v = terms.to_vec();
        while v.len() > 1 {
            let mut next = Vec::with_capacity(v.len().div_ceil(2));
            for pair in v.chunks(2) {
                next.push(match pair {
                    [a, b] => self.add(*a, *b)?,
                    [a] => *a,
                    _ => unreachable!("chunks(2) yields one or two items"),
                });
            }
            v = next;
        }
        Ok(v.first().copied())
    }

    /// relin(a · b) at a common level (same level required; scales multiply).
    pub fn mul_relin(&mut self, a: ObjId, b: ObjId) -> Result<ObjId> {
        let (la, sa) = (self.level(a)?, self.scale(a)?);
        let (lb, sb) = (self.level(b)?, self.scale(b)?);
        if la != lb {
            return Err(Error::LevelMismatch { left: la, right: lb });
        }
        let key = self.key(KeyRef::Relin);
        let dst = self.fresh(la, sa * sb);
        self.emit(Op::MulRelin { dst, a, b, key }, la);
        Ok(dst)
    }

    /// Divides by q_level, dropping one level.
    pub fn rescale(&mut self, src: ObjId) -> Result<ObjId> {
        let (level, s) = (self.level(src)?, self.scale(src)?);
        if level == 0 {
            return Err(Error::LevelExhausted { level: 0, needed: 1 });
        }
        let q = self.prime(level)?;
        let dst = self.fresh(level - 1, s / q);
        self.emit(Op::Rescale { dst, src }, level);
        Ok(dst)
    }

    /// `src` restricted to `level` (itself when already there).
    pub fn drop_to(&mut self, src: ObjId, level: usize) -> Result<ObjId> {
        let (l, s) = (self.level(src)?, self.scale(src)?);
        if level > l {
            return Err(Error::InvalidLevel { level, max: l });
        }
        if level == l {
            return Ok(src);
        }
        let dst = self.fresh(level, s);
        self.emit(Op::LevelDrop { dst, src, level }, l);
        Ok(dst)
    }

    /// `src` reinterpreted at `scale`: the message becomes old/new scale times the old one.
    pub fn relabel(&mut self, src: ObjId, scale: f64) -> Result<ObjId> {
        let level = self.level(src)?;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::InvalidParameter {
                name: "scale",
                reason: format!("cannot relabel to scale {scale}"),
            });
        }
        let dst = self.fresh(level, scale);
        self.emit(Op::Relabel { dst, src, scale }, level);
        Ok(dst)
    }

    /// Brings `src` to (`level`, `scale`) exactly, spending one level on a constant product
    /// when the scale differs (so `src` must then be above `level`).
    pub fn adjust(&mut self, src: ObjId, level: usize, scale: f64) -> Result<ObjId> {
        let (l, s) = (self.level(src)?, self.scale(src)?);
        if scales_match(s, scale) {
            return self.drop_to(src, level);
        }
        if l <= level {
            return Err(Error::LevelExhausted { level: l, needed: level + 1 });
        }
        let x = self.drop_to(src, level + 1)?;
        let q = self.prime(level + 1)?;
        let y = self.mul_const(x, 1.0, scale * q / s)?;
        // The recorded scale is s·(scale·q/s)/q = scale up to f64 rounding; rounding the
        // constant to an integer only perturbs the message by a relative 2^-40 or so.
        self.rescale(y)
    }

    /// Finishes the program: computes when each scratch ciphertext dies.
    pub fn finish(self) -> Program {
        let mut last: Vec<Option<usize>> = vec![None; self.objects.len()];
        let mut written: Vec<Option<usize>> = vec![None; self.objects.len()];
        for (i, r) in self.ops.iter().enumerate() {
            for (obj, mode) in r.op.accesses() {
                match mode {
                    super::program::AccessMode::Read => last[obj.index()] = Some(i),
                    _ => written[obj.index()] = Some(i),
                }
            }
        }
        let mut frees = vec![Vec::new(); self.ops.len()];
        for (idx, o) in self.objects.iter().enumerate() {
            if !matches!(o.role, Role::Intermediate | Role::Input) {
                continue;
            }
            if let Some(i) = last[idx].or(written[idx]) {
                frees[i].push(ObjId(idx as u32));
            }
        }
        Program {
            params: self.params,
            sizes: self.sizes,
            objects: self.objects,
            ops: self.ops,
            layers: self.layers,
            inputs: self.inputs,
            outputs: self.outputs,
            frees,
            bootstrap: self.bootstrap,
        }
    }
}
