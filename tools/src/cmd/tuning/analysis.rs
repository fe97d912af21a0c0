//! What a trace says, worked out for the tuning reports: the footprint and live bytes over
//! time by kind, per-layer work and traffic, the objects that matter most, and PM bandwidth
//! over time from a predicted timeline.

use std::collections::HashMap;

use hetier_he::nn::{Op, Program};
use hetier_tiering::sim::{split_setup, Timeline};
use hetier_tiering::{ObjectClass, ObjectId, Trace, TraceEvent};
use serde::Serialize;

use super::mib;
use super::plot::Series;

/// The object kinds the reports break bytes down by.
pub const KINDS: [&str; 3] = ["keys", "weights", "ciphertexts"];

/// The report kind of a trace class (index into [`KINDS`]); blobs count as ciphertexts.
fn kind_index(c: ObjectClass) -> usize {
    match c {
        ObjectClass::EvalKey => 0,
        ObjectClass::Plaintext => 1,
        ObjectClass::Ciphertext | ObjectClass::Blob => 2,
    }
}

/// Every object's kind and length as first put.
fn objects(trace: &Trace) -> HashMap<ObjectId, (usize, u64)> {
    let mut m = HashMap::new();
    for e in &trace.events {
        if let TraceEvent::Put { id, kind, len, .. } = e {
            m.entry(*id).or_insert((kind_index(*kind), *len));
        }
    }
    m
}

/// Bytes by kind: what must fit for nothing to move.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Footprint {
    /// Evaluation keys, MiB.
    pub keys_mib: f64,
    /// Encoded weights, MiB.
    pub weights_mib: f64,
    /// Largest total of live ciphertexts, MiB.
    pub peak_ciphertexts_mib: f64,
    /// Largest total of all live objects (bytes).
    pub peak_live_bytes: u64,
    /// The same in MiB.
    pub peak_live_mib: f64,
}

/// Live bytes by kind after every event, against the all-DRAM time (the sum of the compute
/// of the ops before it), downsampled to at most `max_points` per kind; and the footprint.
pub fn live_timeline(trace: &Trace, max_points: usize) -> (Vec<Series>, Footprint) {
    let objs = objects(trace);
    let mut live = [0u64; 3];
    let mut peak = [0u64; 3];
    let mut peak_total = 0u64;
    let mut t = 0.0f64;
    let mut samples: Vec<(f64, [u64; 3])> = vec![(0.0, live)];
    for e in &trace.events {
        match e {
            TraceEvent::Put { kind, len, .. } => live[kind_index(*kind)] += len,
            TraceEvent::Remove { id } => {
                if let Some(&(k, len)) = objs.get(id) {
                    live[k] = live[k].saturating_sub(len);
                }
            }
            TraceEvent::Op { compute_ns, .. } => t += *compute_ns as f64 * 1e-9,
        }
        for k in 0..3 {
            peak[k] = peak[k].max(live[k]);
        }
        peak_total = peak_total.max(live.iter().sum());
        samples.push((t, live));
    }
    // Keep every change of level as a step; drop samples beyond the budget evenly.
    let stride = samples.len().div_ceil(max_points.max(2)).max(1);
    let kept: Vec<&(f64, [u64; 3])> =
        samples.iter().enumerate().filter(|(i, _)| i % stride == 0).map(|(_, s)| s).collect();
    let last = samples.last().copied();
    let series = KINDS
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut pts: Vec<(f64, f64)> = kept.iter().map(|(t, l)| (*t, mib(l[k]))).collect();
            if let Some((t, l)) = last {
                pts.push((t, mib(l[k])));
            }
            Series::line(*name, pts)
        })
        .collect();
    let fp = Footprint {
        keys_mib: mib(peak[0]),
        weights_mib: mib(peak[1]),
        peak_ciphertexts_mib: mib(peak[2]),
        peak_live_bytes: peak_total,
        peak_live_mib: mib(peak_total),
    };
    (series, fp)
}

/// The layer of every timed op of `images` runs of `program`, in trace order (a hoisted
/// rotation is one `hoist` op and one op per rotation, a bootstrap one op and one per key use,
/// as the executor records them).
pub fn op_layers(program: &Program, images: usize) -> Vec<u16> {
    let one: Vec<u16> = program
        .ops()
        .iter()
        .flat_map(|r| {
            let steps = match &r.op {
                Op::HoistedRotate { rots, .. } => 1 + rots.len(),
                Op::Bootstrap { keys, .. } => 1 + keys.len(),
                _ => 1,
            };
            std::iter::repeat_n(r.layer, steps)
        })
        .collect();
    (0..images).flat_map(|_| one.iter().copied()).collect()
}

/// One layer's row of the profile.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LayerRow {
    /// Layer name.
    pub layer: String,
    /// Ops (executor steps) per inference.
    pub ops: usize,
    /// Key switches per inference.
    pub key_switches: usize,
    /// Bootstraps per inference.
    pub bootstraps: usize,
    /// Compute per inference, seconds.
    pub seconds: f64,
    /// Key bytes pinned per inference, MiB.
    pub keys_read_mib: f64,
    /// Weight bytes pinned per inference, MiB.
    pub weights_read_mib: f64,
    /// Ciphertext bytes pinned per inference, MiB.
    pub ciphertexts_read_mib: f64,
    /// Ciphertext bytes written per inference, MiB.
    pub ciphertexts_written_mib: f64,
    /// Bytes the predicted run moved PM → DRAM while this layer ran (all inferences), MiB.
    pub pm_read_mib: f64,
    /// Bytes it moved DRAM → PM, MiB.
    pub pm_write_mib: f64,
}

/// Whether a step switches keys (a bootstrap's key steps included: each is one key switch).
fn is_key_switch(name: &str) -> bool {
    matches!(name, "rotate" | "rotate_hoisted" | "conjugate" | "mul_relin" | "bootstrap_key")
}

/// Per-layer work of a trace whose timed ops map to `layers` (from [`op_layers`]) over
/// `images` inferences, and the PM traffic of a predicted `timeline` attributed to the layer
/// that was running.
pub fn layer_rows(
    trace: &Trace,
    names: &[String],
    layers: &[u16],
    images: usize,
    timeline: Option<&Timeline>,
) -> Vec<LayerRow> {
    let objs = objects(trace);
    let mut rows: Vec<LayerRow> =
        names.iter().map(|n| LayerRow { layer: n.clone(), ..LayerRow::default() }).collect();
    let mut raw = vec![[0u64; 6]; names.len()];
    let (_, timed) = split_setup(trace);
    let mut op = 0usize;
    let mut current: Option<usize> = None;
    for e in timed {
        match e {
            TraceEvent::Op { name, pins, compute_ns } => {
                let l = layers.get(op).map(|&l| l as usize).filter(|&l| l < rows.len());
                op += 1;
                current = l;
                let Some(l) = l else { continue };
                let r = &mut rows[l];
                r.ops += 1;
                r.key_switches += usize::from(is_key_switch(name));
                // A bootstrap is one `bootstrap` step and one `bootstrap_key` step per key use.
                r.bootstraps += usize::from(name == "bootstrap");
                r.seconds += *compute_ns as f64 * 1e-9;
                for id in pins {
                    if let Some(&(k, len)) = objs.get(id) {
                        raw[l][k] += len;
                    }
                }
            }
            TraceEvent::Put { len, .. } => {
                if let Some(l) = current {
                    raw[l][3] += len;
                }
            }
            TraceEvent::Remove { .. } => {}
        }
    }
    if let Some(tl) = timeline {
        for t in &tl.transfers {
            if let Some(&l) = layers.get(t.op) {
                if let Some(r) = raw.get_mut(l as usize) {
                    r[if t.read { 4 } else { 5 }] += t.bytes;
                }
            }
        }
    }
    let n = images.max(1);
    for (r, b) in rows.iter_mut().zip(&raw) {
        r.ops /= n;
        r.key_switches /= n;
        r.bootstraps /= n;
        r.seconds /= n as f64;
        let per = |x: u64| mib(x / n as u64);
        (r.keys_read_mib, r.weights_read_mib, r.ciphertexts_read_mib) =
            (per(b[0]), per(b[1]), per(b[2]));
        r.ciphertexts_written_mib = per(b[3]);
        (r.pm_read_mib, r.pm_write_mib) = (mib(b[4]), mib(b[5]));
    }
    // Names a program lists but no op belongs to (its bookkeeping entry) say nothing.
    rows.retain(|r| r.ops > 0 || r.pm_read_mib > 0.0 || r.pm_write_mib > 0.0);
    rows
}

/// An object that matters: many bytes touched many times.
#[derive(Clone, Debug, Serialize)]
pub struct TopObject {
    /// Store id (hex).
    pub id: String,
    /// Kind (keys, weights, ciphertexts).
    pub kind: &'static str,
    /// Length, MiB.
    pub mib: f64,
    /// Pins over the trace.
    pub uses: u64,
    /// Length × uses, MiB.
    pub mib_x_uses: f64,
}

/// The `n` objects with the largest bytes × uses.
pub fn top_objects(trace: &Trace, n: usize) -> Vec<TopObject> {
    let objs = objects(trace);
    let mut uses: HashMap<ObjectId, u64> = HashMap::new();
    for id in trace.pin_sequence() {
        *uses.entry(id).or_default() += 1;
    }
    let mut v: Vec<(ObjectId, u64, usize, u64)> = uses
        .into_iter()
        .filter_map(|(id, u)| objs.get(&id).map(|&(k, len)| (id, len, k, u)))
        .collect();
    v.sort_by(|a, b| (b.1 * b.3).cmp(&(a.1 * a.3)).then(a.0.cmp(&b.0)));
    v.into_iter()
        .take(n)
        .map(|(id, len, k, u)| TopObject {
            id: format!("{:#x}", id.0),
            kind: KINDS[k],
            mib: mib(len),
            uses: u,
            mib_x_uses: mib(len * u),
        })
        .collect()
}

/// PM read and write bandwidth (GB/s) over time (s) of a predicted timeline, in `bins` equal
/// time bins over `total_ns`: each transfer's bytes spread evenly over its duration.
pub fn bandwidth(tl: &Timeline, total_ns: f64, bins: usize) -> Vec<Series> {
    let bins = bins.max(1);
    let width = (total_ns / bins as f64).max(1.0);
    let mut acc = [vec![0.0f64; bins], vec![0.0f64; bins]];
    for t in &tl.transfers {
        let dur = (t.end_ns - t.start_ns).max(1e-9);
        let rate = t.bytes as f64 / dur;
        let first = ((t.start_ns / width) as usize).min(bins - 1);
        let last = ((t.end_ns / width) as usize).min(bins - 1);
        let dir = &mut acc[usize::from(!t.read)];
        for (b, slot) in dir.iter_mut().enumerate().take(last + 1).skip(first) {
            let lo = t.start_ns.max(b as f64 * width);
            let hi = t.end_ns.min((b + 1) as f64 * width);
            if hi > lo {
                *slot += rate * (hi - lo);
            }
        }
    }
    ["PM read (PM → DRAM)", "PM write (DRAM → PM)"]
        .iter()
        .zip(acc)
        .map(|(name, v)| {
            let pts = v
                .iter()
                .enumerate()
                .flat_map(|(b, bytes)| {
                    // A step per bin: flat over its width.
                    let gbps = bytes / width; // bytes per ns = GB/s
                    [(b as f64 * width * 1e-9, gbps), ((b + 1) as f64 * width * 1e-9, gbps)]
                })
                .collect();
            Series::line(*name, pts)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hetier_tiering::sim::Transfer;
    use hetier_tiering::{TraceDurability, TraceHeader};

    fn put(id: u64, kind: ObjectClass, len: u64) -> TraceEvent {
        TraceEvent::Put { id: ObjectId(id), kind, durability: TraceDurability::Scratch, len }
    }

    #[test]
    fn live_bytes_follow_puts_and_removes_by_kind() {
        let ev = vec![
            put(1, ObjectClass::EvalKey, 4 << 20),
            put(2, ObjectClass::Plaintext, 2 << 20),
            put(3, ObjectClass::Ciphertext, 1 << 20),
            TraceEvent::Op { name: "rotate".into(), pins: vec![ObjectId(3)], compute_ns: 1_000 },
            put(4, ObjectClass::Ciphertext, 1 << 20),
            TraceEvent::Remove { id: ObjectId(3) },
        ];
        let t = Trace { header: TraceHeader::new("t"), events: ev };
        let (s, fp) = live_timeline(&t, 100);
        assert_eq!(s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), KINDS);
        assert_eq!(s[2].points.iter().map(|p| p.1).fold(0.0, f64::max), 2.0);
        assert_eq!(s[2].points.last().unwrap().1, 1.0);
        assert_eq!((fp.keys_mib, fp.weights_mib, fp.peak_ciphertexts_mib), (4.0, 2.0, 2.0));
        assert_eq!(fp.peak_live_bytes, 8 << 20);
        let top = top_objects(&t, 5);
        assert_eq!((top.len(), top[0].uses, top[0].kind), (1, 1, "ciphertexts"));
    }

    #[test]
    fn bandwidth_bins_conserve_bytes() {
        let tr = |start: f64, end: f64, bytes: u64, read: bool| Transfer {
            id: ObjectId(1),
            bytes,
            read,
            start_ns: start,
            end_ns: end,
            op: 0,
        };
        let tl = Timeline {
            transfers: vec![tr(0.0, 150.0, 3000, true), tr(150.0, 200.0, 500, false)],
            ops: vec![],
        };
        let s = bandwidth(&tl, 200.0, 4);
        // Bytes = Σ GB/s × bin width (ns); each bin has two points.
        let bytes = |s: &Series| s.points.chunks(2).map(|p| p[0].1 * 50.0).sum::<f64>();
        assert!((bytes(&s[0]) - 3000.0).abs() < 1e-6 && (bytes(&s[1]) - 500.0).abs() < 1e-6);
        assert_eq!(s[0].points[0].1, 20.0); // 3000 B over 150 ns = 20 GB/s
    }
}
