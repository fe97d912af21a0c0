//! The layers of a full-size plan: convolutions, pooling, FC and residual adds over
//! channel-blocked ciphertexts, activations replayed from a compiled template, and modelled
//! bootstrapping (see the module docs of [`super`]).

use std::collections::HashMap;

use super::{Ct, FullPlanner, Template, Value};
use crate::error::{Error, Result};
use crate::model::tables::{Row, RowKind};
use crate::nn::{AccessMode, ObjKind, Op};

impl FullPlanner<'_> {
    /// Replays a template program on `x` (not released); returns its output.
    pub(super) fn replay(&mut self, t: &Template, x: Ct) -> Result<Ct> {
        let shift = x.level as isize - t.in_level as isize;
        let program = t.program.clone();
        let mut map: HashMap<usize, Ct> = HashMap::new();
        map.insert(t.input, x);
        self.retain(x);
        for (i, rec) in program.ops().iter().enumerate() {
            let level = (rec.level as isize + shift).max(0) as usize;
            let acc = rec.op.accesses();
            let mut pins = Vec::new();
            for (o, m) in &acc {
                if *m != AccessMode::Read {
                    continue;
                }
                let obj = &program.objects()[o.index()];
                pins.push(match obj.kind {
                    ObjKind::Ciphertext => map
                        .get(&o.index())
                        .map(|c| c.id)
                        .ok_or(Error::MissingObject { id: o.0, reason: "template" })?,
                    ObjKind::Plaintext => self.weight(
                        format!("template/{}", o.0),
                        (obj.level as isize + shift).max(0) as usize,
                    ),
                    ObjKind::RelinKey => self.special_key("relin"),
                    ObjKind::SwitchingKey { tag } => {
                        self.special_key(if tag == 2 { "to_sparse" } else { "from_sparse" })
                    }
                    ObjKind::GaloisKey { step, .. } => match step.and_then(|s| self.rot_key(s)) {
                        Some(k) => k,
                        None => self.special_key("conjugate"),
                    },
                });
            }
            if let Op::HoistedRotate { .. } = rec.op {
                return Err(Error::InvalidParameter {
                    name: "template",
                    reason: "hoisted rotation in an activation".into(),
                });
            }
            let writes: Vec<_> =
                acc.iter().filter(|(_, m)| *m == AccessMode::Write).map(|(o, _)| *o).collect();
            let out_level = writes
                .first()
                .map(|w| (program.objects()[w.index()].level as isize + shift).max(0) as usize);
            if let Some(c) = self.op(rec.op.name(), pins, level, out_level) {
                if let Some(w) = writes.first() {
                    map.insert(w.index(), c);
                }
            }
            for dead in program.frees_after(i) {
                if let Some(c) = map.remove(&dead.index()) {
                    self.release(c);
                }
            }
        }
        let (_, out) = program.outputs()[0];
        map.remove(&out.index())
            .ok_or(Error::MissingObject { id: out.0, reason: "template output" })
    }

    /// One BSGS linear-transform stage with `d` diagonals on `c` (released), one level.
    fn bsgs(&mut self, c: Ct, d: usize, stride: i64, tag: &str) -> Ct {
        let n1 = 1usize << (d.next_power_of_two().trailing_zeros().div_ceil(2));
        let n2 = d.div_ceil(n1);
        let baby: Vec<i64> = (0..n1 as i64).map(|j| j * stride).collect();
        let rots = self.rotations(c, &baby);
        self.release(c);
        let mut out: Option<Ct> = None;
        for g in 0..n2 {
            let s = self.dot(&rots, &format!("{tag}/g{g}"));
            let s = self.rotate(s, (g * n1) as i64 * stride);
            out = Some(match out {
                None => s,
                Some(o) => self.add(o, s),
            });
        }
        for r in rots {
            self.release(r);
        }
        let o = out.unwrap_or(c);
        self.rescale(o)
    }

    /// Modelled bootstrapping of `c` (released): see the module docs.
    fn bootstrap(&mut self, c: Ct) -> Result<Ct> {
        self.summary.bootstraps += 1;
        let top = self.params.max_level();
        let raised = self.op("mod_raise", vec![c.id], c.level, Some(top)).unwrap_or(c);
        self.release(c);
        let log_slots = self.slots().trailing_zeros() as i64;
        let mut x = raised;
        for stage in 0..3 {
            x = self.bsgs(x, 63, 1 << (stage * log_slots / 3), &format!("cts{stage}"));
        }
        let conj = self.special_key("conjugate");
        let xc = self.op("conjugate", vec![x.id, conj], x.level, Some(x.level)).unwrap_or(x);
        let mut parts = Vec::new();
        for p in [x, xc] {
            let mut v = self.replay(&self.evalmod.clone(), p)?;
            self.release(p);
            for _ in 0..3 {
                let rk = self.special_key("relin");
                let sq =
                    self.op("mul_relin", vec![v.id, v.id, rk], v.level, Some(v.level)).unwrap_or(v);
                self.release(v);
                v = self.rescale(sq);
            }
            parts.push(v);
        }
        let mut y = self.add(parts[0], parts[1]);
        for stage in 0..3 {
            y = self.bsgs(y, 63, 1 << (stage * log_slots / 3), &format!("stc{stage}"));
        }
        Ok(y)
    }

    /// Makes sure every ciphertext of `v` has at least `need` levels, bootstrapping if not.
    fn ensure_levels(&mut self, v: &mut Value, need: usize) -> Result<()> {
        for c in v.cts.iter_mut() {
            if c.level < need {
                *c = self.bootstrap(*c)?;
            }
        }
        Ok(())
    }

    pub(super) fn pack(&self, h: u64, w: u64, c: u64) -> (usize, usize, usize) {
        let slots = self.slots();
        let hw = (h * w) as usize;
        let block = hw.max(1).next_power_of_two();
        if block > slots {
            let tiles = block / slots;
            (slots, 1, c as usize * tiles)
        } else {
            let cb = (slots / block).min((c as usize).max(1).next_power_of_two());
            (block, cb, (c as usize).div_ceil(cb))
        }
    }

    pub(super) fn layer(&mut self, r: &Row, inputs: &[Value]) -> Result<Value> {
        self.raw_len.insert(r.name.clone(), (r.weights + r.bias) * 8);
        let x = &inputs[0];
        let [oh, ow, oc] = r.output;
        let (block, cb, n_out) = self.pack(oh, ow, oc);
        let act = r.activation.is_some();
        let need = match r.kind {
            RowKind::Add => 0,
            _ => 1,
        } + if act { self.relu.program.depth().max(4) } else { 0 };
        let mut xin = x.clone();
        self.ensure_levels(&mut xin, need)?;
        let mut out_cts = Vec::with_capacity(n_out);
        match r.kind {
            RowKind::Conv | RowKind::Dwconv => {
                let [kh, kw] = r.kernel.unwrap_or([1, 1]);
                let pad = r.padding as i64;
                let iw = r.input[1] as i64;
                let offsets: Vec<i64> = (0..kh as i64)
                    .flat_map(|dy| (0..kw as i64).map(move |dx| (dy - pad) * iw + (dx - pad)))
                    .collect();
                let rotated: Vec<Vec<Ct>> =
                    xin.cts.clone().into_iter().map(|c| self.rotations(c, &offsets)).collect();
                if r.kind == RowKind::Dwconv {
                    for (i, rs) in rotated.iter().enumerate().take(n_out) {
                        let s = self.dot(rs, &format!("{}/{i}", r.name));
                        out_cts.push(self.rescale(s));
                    }
                } else {
                    for j in 0..n_out {
                        let mut acc: Option<Ct> = None;
                        for (i, rs) in rotated.iter().enumerate() {
                            for delta in 0..xin.cb.max(1) {
                                let s = self.dot(rs, &format!("{}/{j}/{i}/{delta}", r.name));
                                let s = self.rotate(s, (delta * xin.block) as i64);
                                acc = Some(match acc {
                                    None => s,
                                    Some(a) => self.add(a, s),
                                });
                            }
                        }
                        let a = acc.ok_or(Error::InvalidParameter {
                            name: "layer",
                            reason: format!("{} has no input", r.name),
                        })?;
                        out_cts.push(self.rescale(a));
                    }
                }
                for rs in rotated {
                    for c in rs {
                        self.release(c);
                    }
                }
            }
            RowKind::Pool => {
                let global = r.output[0] == 1 && r.output[1] == 1;
                for &c in &xin.cts {
                    let s = if global {
                        let mut acc = c;
                        self.retain(c);
                        let mut step = 1usize;
                        while step < xin.block {
                            self.retain(acc);
                            let rot = self.rotate(acc, step as i64);
                            acc = self.add(acc, rot);
                            step *= 2;
                        }
                        let m = self
                            .op("mul_const", vec![acc.id], acc.level, Some(acc.level))
                            .unwrap_or(acc);
                        self.release(acc);
                        m
                    } else {
                        let [kh, kw] = r.kernel.unwrap_or([1, 1]);
                        let iw = r.input[1] as i64;
                        let offs: Vec<i64> = (0..kh as i64)
                            .flat_map(|dy| (0..kw as i64).map(move |dx| dy * iw + dx))
                            .collect();
                        let rs = self.rotations(c, &offs);
                        let mut acc = rs[0];
                        for &q in &rs[1..] {
                            acc = self.add(acc, q);
                        }
                        let m = self
                            .op("mul_const", vec![acc.id], acc.level, Some(acc.level))
                            .unwrap_or(acc);
                        self.release(acc);
                        m
                    };
                    out_cts.push(self.rescale(s));
                }
            }
            RowKind::Fc => {
                let d = (r.input.iter().product::<u64>().max(oc) as usize).next_power_of_two();
                for (i, &c) in xin.cts.iter().enumerate() {
                    self.retain(c);
                    let y = self.bsgs(c, d.min(self.slots()), 1, &format!("{}/{i}", r.name));
                    out_cts.push(y);
                }
                // Partial products of several input ciphertexts are summed into one.
                while out_cts.len() > n_out.max(1) {
                    let b = out_cts.pop().ok_or(Error::MissingObject { id: 0, reason: "fc" })?;
                    let a = out_cts.pop().ok_or(Error::MissingObject { id: 0, reason: "fc" })?;
                    out_cts.push(self.add(a, b));
                }
            }
            RowKind::Add => {
                let y = inputs.get(1).ok_or(Error::InvalidParameter {
                    name: "add",
                    reason: format!("{} has one input", r.name),
                })?;
                for (i, &a) in xin.cts.iter().enumerate() {
                    let b = y.cts.get(i).copied().unwrap_or(a);
                    self.retain(a);
                    self.retain(b);
                    out_cts.push(self.add(a, b));
                }
            }
        }
        // Output geometry may need fewer or more ciphertexts than computed: pad / trim to the
        // packing of the output tensor.
        while out_cts.len() > n_out.max(1) {
            let c = out_cts.pop().ok_or(Error::MissingObject { id: 0, reason: "trim" })?;
            self.release(c);
        }
        if act {
            for c in out_cts.iter_mut() {
                let t = self.relu.clone();
                let y = self.replay(&t, *c)?;
                self.release(*c);
                *c = y;
            }
        }
        for c in xin.cts {
            self.release(c);
        }
        Ok(Value { cts: out_cts, block, cb })
    }
}
