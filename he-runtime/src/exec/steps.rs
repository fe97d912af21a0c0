//! The pinning steps of an op: what the executor pins and writes at once (a hoisted rotation
//! group and a bootstrap are several steps, everything else one).

use crate::nn::{AccessMode, ObjId, Op};

/// One pinning step of an op.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Step {
    pub(super) name: &'static str,
    pub(super) pins: Vec<ObjId>,
    pub(super) writes: Vec<ObjId>,
}

/// The steps of op `op` (a hoisted rotation is split; everything else is one step).
pub(super) fn steps(op: &Op) -> Vec<Step> {
    if let Op::Bootstrap { dst, src, keys } = op {
        // The input is pinned for the whole bootstrap, each key only for the step using it.
        let mut v = vec![Step { name: "bootstrap", pins: vec![*src], writes: vec![] }];
        v.extend(keys.iter().map(|&k| Step {
            name: "bootstrap_key",
            pins: vec![k],
            writes: vec![],
        }));
        if let Some(last) = v.last_mut() {
            last.writes.push(*dst);
        }
        return v;
    }
    if let Op::HoistedRotate { src, rots } = op {
        let mut v = vec![Step { name: "hoist", pins: vec![*src], writes: vec![] }];
        v.extend(rots.iter().map(|&(_, key, dst)| Step {
            name: "rotate_hoisted",
            pins: vec![key],
            writes: vec![dst],
        }));
        return v;
    }
    let acc = op.accesses();
    vec![Step {
        name: op.name(),
        pins: acc.iter().filter(|(_, m)| *m == AccessMode::Read).map(|(o, _)| *o).collect(),
        writes: acc.iter().filter(|(_, m)| *m == AccessMode::Write).map(|(o, _)| *o).collect(),
    }]
}
