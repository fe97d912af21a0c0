//! The HE op program: a straight-line list of CKKS operations over named objects
//! (ciphertexts, encoded weight plaintexts, evaluation keys), built by the layer compilers and
//! run by an executor — the in-memory [`crate::nn::interp`] interpreter here, later a
//! store-backed one (every object pinned only while an op uses it) and a symbolic plan mode.
//!
//! Everything an executor needs to know ahead of time is in the [`Program`]: each object's kind,
//! level and size in bytes (from the parameters alone, no cryptography), the rotation keys, the
//! order of accesses ([`Program::trace`]) and when each scratch object dies.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use crate::ckks::bootstrap::{BootstrapConfig, Bootstrapper, KeyUse};
use crate::ckks::Params;
use crate::error::{Error, Result};

/// Identifier of an object (ciphertext, plaintext or key) within one program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjId(pub u32);

impl ObjId {
    /// The id as an index into [`Program::objects`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ObjId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What an object is; keys carry what an executor needs to generate or look them up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjKind {
    /// A degree-1 ciphertext.
    Ciphertext,
    /// An encoded plaintext (weights, biases, masks).
    Plaintext,
    /// A Galois key for X → X^g; `step` is the slot rotation it implements (None: conjugation).
    GaloisKey {
        /// The Galois element g.
        galois_element: u64,
        /// Left rotation in slots, normalised to 0..N/2.
        step: Option<i64>,
    },
    /// The relinearisation key.
    RelinKey,
    /// A key switching between the dense secret and a bootstrap's ephemeral sparse one
    /// ([`KeyUse::ToSparse`] / [`KeyUse::FromSparse`]); `tag` is its key-set manifest tag.
    SwitchingKey {
        /// Manifest tag ([`switching_key_tag`]).
        tag: u64,
    },
}

impl ObjKind {
    /// Whether the object is an evaluation key.
    pub fn is_key(self) -> bool {
        matches!(self, Self::GaloisKey { .. } | Self::RelinKey | Self::SwitchingKey { .. })
    }

    /// The key-set manifest tag of a key object: its Galois element, 0 for the
    /// relinearisation key, [`switching_key_tag`] for an encapsulation key; `None` otherwise.
    pub fn key_tag(self) -> Option<u64> {
        match self {
            Self::GaloisKey { galois_element, .. } => Some(galois_element),
            Self::RelinKey => Some(0),
            Self::SwitchingKey { tag } => Some(tag),
            Self::Ciphertext | Self::Plaintext => None,
        }
    }
}

/// Manifest tag of the dense-to-sparse encapsulation key (even, so never a Galois element,
/// which is odd; 0 is the relinearisation key).
pub const TO_SPARSE_TAG: u64 = 2;
/// Manifest tag of the sparse-to-dense encapsulation key.
pub const FROM_SPARSE_TAG: u64 = 4;

/// Manifest tag of a bootstrap's encapsulation key; `None` for the other key uses.
pub fn switching_key_tag(which: KeyUse) -> Option<u64> {
    match which {
        KeyUse::ToSparse => Some(TO_SPARSE_TAG),
        KeyUse::FromSparse => Some(FROM_SPARSE_TAG),
        KeyUse::Relin | KeyUse::Galois(_) => None,
    }
}

/// The key-set manifest tag of the key a use needs (0: relinearisation, g: Galois element g,
/// the encapsulation tags otherwise).
pub fn key_use_tag(u: KeyUse) -> u64 {
    match u {
        KeyUse::Relin => 0,
        KeyUse::Galois(g) => g,
        KeyUse::ToSparse => TO_SPARSE_TAG,
        KeyUse::FromSparse => FROM_SPARSE_TAG,
    }
}

/// What a program's [`Op::Bootstrap`] does, taken from the real [`Bootstrapper`]: its
/// configuration, the level it lands at, and the exact order in which it uses its keys — so
/// a plan's trace of a bootstrap is the one a real run performs.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapSpec {
    /// The bootstrapping configuration.
    pub config: BootstrapConfig,
    /// Level of a bootstrapped ciphertext.
    pub output_level: usize,
    /// Every key use of one bootstrap, in order.
    pub key_uses: Vec<KeyUse>,
    /// The slot rotation of each Galois element it uses (`None`: the conjugation).
    pub steps: BTreeMap<u64, Option<i64>>,
    /// Lengths in words of the spare buffers one bootstrap takes from its scratch at once
    /// ([`Bootstrapper::spare_words`]): with the key-switch buffers at the top level, what a
    /// run that bootstraps holds in the store's budget for its ciphertext temporaries.
    pub spare_words: Vec<usize>,
}

impl BootstrapSpec {
    /// The spec of `bs`.
    pub fn of(bs: &Bootstrapper) -> Self {
        let ctx = bs.context();
        let mut steps: BTreeMap<u64, Option<i64>> = bs
            .rotation_steps()
            .into_iter()
            .map(|s| (ctx.galois_element_for_step(s), Some(s)))
            .collect();
        steps.insert(ctx.galois_element_conjugate(), None);
        Self {
            config: bs.config().clone(),
            output_level: bs.output_level(),
            key_uses: bs.key_sequence(),
            steps,
            spare_words: bs.spare_words(),
        }
    }
}

/// Who provides an object and how long it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A ciphertext the client supplies before the run.
    Input,
    /// A scratch ciphertext written and read by the program; freed after its last use.
    Intermediate,
    /// A ciphertext handed back to the client.
    Output,
    /// An encoded plaintext made once from the model's weights (durable).
    Weight,
    /// An evaluation key (durable).
    Key,
}

/// Slot values of a plaintext, produced on demand so a full-size plan never holds them.
#[derive(Clone)]
pub struct PlainSource(Arc<dyn Fn() -> Vec<f64> + Send + Sync>);

impl PlainSource {
    /// A source computing the (real) slot values with `f`; shorter vectors are zero-padded.
    pub fn new(f: impl Fn() -> Vec<f64> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
    /// A source returning fixed values.
    pub fn values(v: Vec<f64>) -> Self {
        let v = Arc::new(v);
        Self::new(move || v.as_ref().clone())
    }
    /// The slot values.
    pub fn eval(&self) -> Vec<f64> {
        (self.0)()
    }
}

impl fmt::Debug for PlainSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainSource(..)")
    }
}

/// One object of a program.
#[derive(Debug, Clone)]
pub struct Object {
    /// What it is.
    pub kind: ObjKind,
    /// Who provides it and how long it lives.
    pub role: Role,
    /// Level (number of limbs − 1); keys are at the top level of Q plus all of P.
    pub level: usize,
    /// Scale of the encoded message (1.0 for keys).
    pub scale: f64,
    /// Size in bytes of its words (`u64` per coefficient per limb).
    pub bytes: u64,
    /// Values of a plaintext object.
    pub plain: Option<PlainSource>,
    /// Layer that created it (index into [`Program::layers`]).
    pub layer: u16,
}

/// One CKKS operation; `dst` objects are always fresh (objects are immutable once written).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// dst = rotate(src, step) with one key switch.
    Rotate {
        /// Output.
        dst: ObjId,
        /// Input ciphertext.
        src: ObjId,
        /// Left rotation in slots (normalised to 0..N/2).
        step: i64,
        /// Galois key object.
        key: ObjId,
    },
    /// Several rotations of one ciphertext sharing one decomposition (hoisting).
    HoistedRotate {
        /// Input ciphertext.
        src: ObjId,
        /// (step, key, dst) for each rotation, in execution order.
        rots: Vec<(i64, ObjId, ObjId)>,
    },
    /// dst = conj(src).
    Conjugate {
        /// Output.
        dst: ObjId,
        /// Input.
        src: ObjId,
        /// Conjugation key object.
        key: ObjId,
    },
    /// dst = ct ⊙ pt (scales multiply).
    MulPlain {
        /// Output.
        dst: ObjId,
        /// Ciphertext operand.
        ct: ObjId,
        /// Plaintext operand.
        pt: ObjId,
    },
    /// dst = ct + pt (same scale).
    AddPlain {
        /// Output.
        dst: ObjId,
        /// Ciphertext operand.
        ct: ObjId,
        /// Plaintext operand.
        pt: ObjId,
    },
    /// dst = src · round(value·scale) (the scale multiplies by `scale`).
    MulConst {
        /// Output.
        dst: ObjId,
        /// Input.
        src: ObjId,
        /// Real constant.
        value: f64,
        /// Scale the constant is encoded at.
        scale: f64,
    },
    /// dst = src · k for an integer k (no scale change).
    MulInt {
        /// Output.
        dst: ObjId,
        /// Input.
        src: ObjId,
        /// The integer.
        k: i64,
    },
    /// dst = src + value in every slot.
    AddConst {
        /// Output.
        dst: ObjId,
        /// Input.
        src: ObjId,
        /// Real constant.
        value: f64,
    },
    /// dst = a + b.
    Add {
        /// Output.
        dst: ObjId,
        /// Left operand.
        a: ObjId,
        /// Right operand.
        b: ObjId,
    },
    /// dst = a − b.
    Sub {
        /// Output.
        dst: ObjId,
        /// Left operand.
        a: ObjId,
        /// Right operand.
        b: ObjId,
    },
    /// dst = relin(a · b).
    MulRelin {
        /// Output.
        dst: ObjId,
        /// Left operand.
        a: ObjId,
        /// Right operand.
        b: ObjId,
        /// Relinearisation key object.
        key: ObjId,
    },
    /// dst = src / q_level (drops one level).
    Rescale {
        /// Output.
        dst: ObjId,
        /// Input.
        src: ObjId,
    },
    /// dst = src with its recorded scale set to `scale` (the message is multiplied by
    /// old/new scale, at no cost beyond a copy; an executor may alias the buffer).
    Relabel {
        /// Output.
        dst: ObjId,
        /// Input.
        src: ObjId,
        /// New scale.
        scale: f64,
    },
    /// dst = bootstrap(src): the same slots at [`BootstrapSpec::output_level`] and the same
    /// scale (the program's [`BootstrapSpec`] says how).
    Bootstrap {
        /// Output.
        dst: ObjId,
        /// Input (any level; its slots must lie in [−1, 1] for the stated precision).
        src: ObjId,
        /// The key object of each key use, in [`BootstrapSpec::key_uses`] order.
        keys: Vec<ObjId>,
    },
    /// dst = src restricted to q_0..q_level.
    LevelDrop {
        /// Output.
        dst: ObjId,
        /// Input.
        src: ObjId,
        /// Target level.
        level: usize,
    },
}

/// How an object is touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessMode {
    /// Read (an executor pins it for the op).
    Read,
    /// Written (a fresh object is put).
    Write,
    /// Dead after this op; an executor may drop it.
    Free,
}

/// One object access of a program run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access {
    /// Index of the op in [`Program::ops`].
    pub op: usize,
    /// Object touched.
    pub obj: ObjId,
    /// How.
    pub mode: AccessMode,
    /// Size of the object in bytes.
    pub bytes: u64,
}

/// Coarse cost class of an op, for a cost model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CostClass {
    /// Full key switch (decompose + inner product + ModDown): rotate, conjugate, relinearise.
    KeySwitch,
    /// Hoisted rotations: one decomposition, then an inner product + ModDown per rotation.
    Hoisted,
    /// An inverse NTT and a per-limb NTT (rescale).
    Rescale,
    /// Element-wise ciphertext × ciphertext tensor product (before relinearisation).
    Tensor,
    /// Element-wise, linear in the ciphertext size (adds, plaintext and constant products).
    Elementwise,
    /// A copy of a prefix of the limbs.
    Copy,
    /// A whole bootstrap.
    Bootstrap,
}

impl Op {
    /// A short name of the op kind (for traces and cost tables).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Rotate { .. } => "rotate",
            Op::HoistedRotate { .. } => "hoisted_rotate",
            Op::Conjugate { .. } => "conjugate",
            Op::MulPlain { .. } => "mul_plain",
            Op::AddPlain { .. } => "add_plain",
            Op::MulConst { .. } => "mul_const",
            Op::MulInt { .. } => "mul_int",
            Op::AddConst { .. } => "add_const",
            Op::Add { .. } => "add",
            Op::Sub { .. } => "sub",
            Op::MulRelin { .. } => "mul_relin",
            Op::Rescale { .. } => "rescale",
            Op::LevelDrop { .. } => "level_drop",
            Op::Relabel { .. } => "relabel",
            Op::Bootstrap { .. } => "bootstrap",
        }
    }

    /// Cost class of the op.
    pub fn cost_class(&self) -> CostClass {
        match self {
            Op::Rotate { .. } | Op::Conjugate { .. } | Op::MulRelin { .. } => CostClass::KeySwitch,
            Op::HoistedRotate { .. } => CostClass::Hoisted,
            Op::Rescale { .. } => CostClass::Rescale,
            Op::LevelDrop { .. } | Op::Relabel { .. } => CostClass::Copy,
            Op::Bootstrap { .. } => CostClass::Bootstrap,
            _ => CostClass::Elementwise,
        }
    }

    /// Number of key-switch inner products (+ ModDown) the op performs.
    pub fn key_switches(&self) -> usize {
        match self {
            Op::Rotate { .. } | Op::Conjugate { .. } | Op::MulRelin { .. } => 1,
            Op::HoistedRotate { rots, .. } => rots.len(),
            Op::Bootstrap { keys, .. } => keys.len(),
            _ => 0,
        }
    }

    /// The op's object reads and writes, in the order an executor performs them.
    pub fn accesses(&self) -> Vec<(ObjId, AccessMode)> {
        use AccessMode::{Read as R, Write as W};
        match *self {
            Op::Rotate { dst, src, key, .. } | Op::Conjugate { dst, src, key } => {
                vec![(src, R), (key, R), (dst, W)]
            }
            Op::HoistedRotate { src, ref rots } => {
                let mut v = vec![(src, R)];
                for &(_, key, dst) in rots {
                    v.push((key, R));
                    v.push((dst, W));
                }
                v
            }
            Op::MulPlain { dst, ct, pt } | Op::AddPlain { dst, ct, pt } => {
                vec![(ct, R), (pt, R), (dst, W)]
            }
            Op::MulConst { dst, src, .. }
            | Op::MulInt { dst, src, .. }
            | Op::AddConst { dst, src, .. }
            | Op::Rescale { dst, src }
            | Op::LevelDrop { dst, src, .. }
            | Op::Relabel { dst, src, .. } => vec![(src, R), (dst, W)],
            Op::Add { dst, a, b } | Op::Sub { dst, a, b } => vec![(a, R), (b, R), (dst, W)],
            Op::MulRelin { dst, a, b, key } => vec![(a, R), (b, R), (key, R), (dst, W)],
            Op::Bootstrap { dst, src, ref keys } => std::iter::once((src, R))
                .chain(keys.iter().map(|&k| (k, R)))
                .chain(std::iter::once((dst, W)))
                .collect(),
        }
    }
}

/// An op with its bookkeeping.
#[derive(Debug, Clone)]
pub struct OpRecord {
    /// The operation.
    pub op: Op,
    /// Level of its (first) ciphertext input, which sets its cost.
    pub level: usize,
    /// Layer that emitted it (index into [`Program::layers`]).
    pub layer: u16,
}

/// Byte sizes of objects under one parameter set, computable without any cryptography.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeModel {
    /// Ring degree N.
    pub n: u64,
    /// Number of Q primes (L+1).
    pub q_len: u64,
    /// Number of P primes.
    pub p_len: u64,
    /// Key-switching digits.
    pub dnum: u64,
}

impl SizeModel {
    /// The sizes for `params`.
    pub fn new(params: &Params) -> Self {
        Self {
            n: params.n() as u64,
            q_len: params.q().len() as u64,
            p_len: params.p().len() as u64,
            dnum: params.dnum() as u64,
        }
    }
    /// Bytes of a degree-1 ciphertext at `level`.
    pub fn ciphertext(&self, level: usize) -> u64 {
        2 * (level as u64 + 1) * self.n * 8
    }
    /// Bytes of a plaintext at `level`.
    pub fn plaintext(&self, level: usize) -> u64 {
        (level as u64 + 1) * self.n * 8
    }
    /// Bytes of one key-switching key (Galois or relinearisation), `dnum` digits over QP.
    pub fn key(&self) -> u64 {
        self.dnum * 2 * (self.q_len + self.p_len) * self.n * 8
    }
    /// Bytes of the transient decomposition a key switch at `level` holds (ModUp of every
    /// non-empty digit over Q_level·P) — kept for the whole of a [`Op::HoistedRotate`]; not an
    /// object, but an executor's DRAM budget must leave room for it.
    pub fn decomposition(&self, level: usize) -> u64 {
        let l1 = level as u64 + 1;
        let alpha = self.q_len.div_ceil(self.dnum.max(1));
        let digits = l1.div_ceil(alpha.max(1));
        digits * (l1 + self.p_len) * self.n * 8
    }
    /// Bytes of the key-switching scratch for operands at `level` (the same buffers as
    /// [`crate::ckks::Scratch::bytes_at`]); without `decomposition` for hoisted rotations.
    pub fn key_switch_scratch(&self, level: usize, decomposition: bool) -> u64 {
        let l1 = level as u64 + 1;
        let alpha = self.q_len.div_ceil(self.dnum.max(1));
        let dec = if decomposition { self.decomposition(level) } else { 8 };
        (2 * l1 + alpha.max(self.p_len) + 2 * (l1 + self.p_len) + 1) * self.n * 8 + dec
    }
}

/// The Galois element 5^step mod 2N of a left rotation by `step` slots (N = 2^log_n).
pub fn galois_element(log_n: u32, step: i64) -> u64 {
    let slots = 1i64 << (log_n - 1);
    let m = 2u64 << log_n;
    let mut e = step.rem_euclid(slots) as u64;
    let (mut g, mut base) = (1u64, 5u64);
    while e > 0 {
        if e & 1 == 1 {
            g = g * base % m;
        }
        base = base * base % m;
        e >>= 1;
    }
    g
}

/// A compiled HE program: objects, ops in order, and everything derived from them.
#[derive(Debug, Clone)]
pub struct Program {
    pub(crate) params: Params,
    pub(crate) sizes: SizeModel,
    pub(crate) objects: Vec<Object>,
    pub(crate) ops: Vec<OpRecord>,
    pub(crate) layers: Vec<String>,
    pub(crate) inputs: Vec<(String, ObjId)>,
    pub(crate) outputs: Vec<(String, ObjId)>,
    /// frees[i]: objects dead after op i.
    pub(crate) frees: Vec<Vec<ObjId>>,
    /// What its bootstrap ops do (`None`: it has none).
    pub(crate) bootstrap: Option<BootstrapSpec>,
}

impl Program {
    /// The parameter set the program was compiled for.
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// Object sizes under the parameters.
    pub fn sizes(&self) -> SizeModel {
        self.sizes
    }
    /// All objects, indexed by [`ObjId::index`].
    pub fn objects(&self) -> &[Object] {
        &self.objects
    }
    /// One object.
    pub fn object(&self, id: ObjId) -> Result<&Object> {
        self.objects.get(id.index()).ok_or(Error::MissingObject { id: id.0, reason: "lookup" })
    }
    /// The ops in execution order.
    pub fn ops(&self) -> &[OpRecord] {
        &self.ops
    }
    /// Layer names, indexed by [`OpRecord::layer`] / [`Object::layer`].
    pub fn layers(&self) -> &[String] {
        &self.layers
    }
    /// Named input ciphertexts (the client encrypts them at the recorded level and scale).
    pub fn inputs(&self) -> &[(String, ObjId)] {
        &self.inputs
    }
    /// Named output ciphertexts.
    pub fn outputs(&self) -> &[(String, ObjId)] {
        &self.outputs
    }
    /// What the program's bootstrap ops do, if it has any.
    pub fn bootstrap(&self) -> Option<&BootstrapSpec> {
        self.bootstrap.as_ref()
    }
    /// Number of bootstrap ops.
    pub fn bootstraps(&self) -> usize {
        self.ops.iter().filter(|r| matches!(r.op, Op::Bootstrap { .. })).count()
    }
    /// Objects dead after op `i` (scratch ciphertexts past their last use).
    pub fn frees_after(&self, i: usize) -> &[ObjId] {
        self.frees.get(i).map_or(&[], |v| v.as_slice())
    }
    /// The evaluation-key objects, in creation order.
    pub fn keys(&self) -> Vec<ObjId> {
        (0..self.objects.len() as u32)
            .map(ObjId)
            .filter(|id| self.objects[id.index()].kind.is_key())
            .collect()
    }
    /// The distinct rotation steps the program needs keys for.
    pub fn rotation_steps(&self) -> BTreeSet<i64> {
        self.objects
            .iter()
            .filter_map(|o| match o.kind {
                ObjKind::GaloisKey { step: Some(s), .. } => Some(s),
                _ => None,
            })
            .collect()
    }
    /// Levels consumed: highest input level minus lowest output level.
    pub fn depth(&self) -> usize {
        let top = self.inputs.iter().map(|(_, i)| self.objects[i.index()].level).max();
        let bottom = self.outputs.iter().map(|(_, o)| self.objects[o.index()].level).min();
        match (top, bottom) {
            (Some(t), Some(b)) => t.saturating_sub(b),
            _ => 0,
        }
    }
    /// Total key switches (rotations, conjugations, relinearisations).
    pub fn key_switches(&self) -> usize {
        self.ops.iter().map(|r| r.op.key_switches()).sum()
    }
    /// Total bytes of the objects of each kind class ("ciphertext", "plaintext", "key").
    pub fn bytes_by_kind(&self) -> BTreeMap<&'static str, u64> {
        let mut m = BTreeMap::new();
        for o in &self.objects {
            let k = match o.kind {
                ObjKind::Ciphertext => "ciphertext",
                ObjKind::Plaintext => "plaintext",
                _ => "key",
            };
            *m.entry(k).or_insert(0) += o.bytes;
        }
        m
    }

    /// The full access sequence of a run, without any cryptography: for each op its reads and
    /// writes in execution order, then the frees of objects that died at that op.
    pub fn trace(&self) -> Vec<Access> {
        let mut out = Vec::new();
        for (i, r) in self.ops.iter().enumerate() {
            for (obj, mode) in r.op.accesses() {
                out.push(Access { op: i, obj, mode, bytes: self.objects[obj.index()].bytes });
            }
            for &obj in self.frees_after(i) {
                let bytes = self.objects[obj.index()].bytes;
                out.push(Access { op: i, obj, mode: AccessMode::Free, bytes });
            }
        }
        out
    }

    /// Largest total size of live ciphertexts (inputs, scratch, outputs) at any point.
    pub fn peak_live_ciphertext_bytes(&self) -> u64 {
        let mut live: u64 = self.inputs.iter().map(|(_, i)| self.objects[i.index()].bytes).sum();
        let mut peak = live;
        for a in self.trace() {
            let o = &self.objects[a.obj.index()];
            if o.kind != ObjKind::Ciphertext {
                continue;
            }
            match a.mode {
                AccessMode::Write => live += a.bytes,
                AccessMode::Free => live -= a.bytes,
                AccessMode::Read => {}
            }
            peak = peak.max(live);
        }
        peak
    }
}
