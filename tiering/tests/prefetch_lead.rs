//! The prefetch lead ([`PlannedPolicy::with_lead`]) on the access pattern that made a
//! bootstrap's CoeffToSlot wait: each step pins an object kept for later beside one that must
//! be read, and the budget holds the kept ones and little more. The conservative rule can
//! then fetch the next missing object only once the current step has released its own, so
//! every read happens while the computation waits; with a lead it is read during the step
//! before, at the price of reading back some of the kept objects.
//!
//! [`PlannedPolicy::with_lead`]: hetier_tiering::PlannedPolicy::with_lead

mod common;

use common::{durable_key_put, throttled_store};
use hetier_tiering::replay::replay;
use hetier_tiering::sim::{predict, PredictOptions};
use hetier_tiering::{
    CostModel, ObjectId, PmDescription, PolicyConfig, PrefetchRule, TierCost, Trace, TraceEvent,
    TraceHeader,
};

/// Bytes of every object.
const LEN: u64 = 64 << 10;
/// Steps of the first pass.
const STEPS: u64 = 16;
/// Ids of the missing objects start here; the kept ones are 0..STEPS.
const MISSING: u64 = 1000;

/// After a first pass over the kept objects, step i pins kept object i and missing object i;
/// a later pass uses every kept object again (which is why MIN keeps them), and a last one
/// every missing object.
fn kept_beside_missing(compute_ns: u64) -> Trace {
    let mut ev = Vec::new();
    for id in (MISSING..MISSING + STEPS).chain(0..STEPS) {
        ev.push(durable_key_put(id, LEN));
    }
    // A first pass over the kept objects leaves them in DRAM.
    for i in 0..STEPS {
        ev.push(TraceEvent::Op { name: "first".into(), pins: vec![ObjectId(i)], compute_ns });
    }
    for i in 0..STEPS {
        ev.push(TraceEvent::Op {
            name: "pair".into(),
            pins: vec![ObjectId(i), ObjectId(MISSING + i)],
            compute_ns,
        });
    }
    for i in 0..STEPS {
        ev.push(TraceEvent::Op { name: "again".into(), pins: vec![ObjectId(i)], compute_ns });
    }
    // The missing ones come back last (a bootstrap's next CoeffToSlot), so the one a step
    // releases is worth keeping too, and MIN's victim is never free for the next read.
    for i in 0..STEPS {
        let pins = vec![ObjectId(MISSING + i)];
        ev.push(TraceEvent::Op { name: "next".into(), pins, compute_ns });
    }
    Trace { header: TraceHeader::new("kept beside missing"), events: ev }
}

/// A link that reads one object in 65.5 µs.
fn model() -> CostModel {
    CostModel {
        dram: TierCost::symmetric(20e9, 0.0),
        pm: TierCost::symmetric(1e9, 0.0),
        pm_description: PmDescription { label: "test".into(), emulated: true },
        ops_ns: Default::default(),
    }
}

fn conservative(lead: u64) -> PolicyConfig {
    PolicyConfig::planned(PrefetchRule::Conservative).with_lead(lead)
}

/// The kept objects plus the one missing object in use.
fn budget() -> u64 {
    (STEPS + 1) * LEN
}

#[test]
fn a_lead_overlaps_the_reads_that_conservative_makes_the_computation_wait_for() {
    // Each step computes for longer than a read, so a read issued one step ahead is hidden.
    let trace = kept_beside_missing(100_000);
    let m = model();
    let opts = PredictOptions::default();
    let plain = predict(&trace, &m, &conservative(0), budget(), &opts).unwrap();
    let led = predict(&trace, &m, &conservative(2 * LEN), budget(), &opts).unwrap();
    let read_ns = LEN as f64 / 1e9 * 1e9;
    // Plain conservative waits for the reads of several steps (6.4 reads' worth here).
    assert!(plain.stall_ns > 4.0 * read_ns, "plain: {:.0} µs of stalls", plain.stall_ns / 1e3);
    // With the lead most of them overlap the step before.
    assert!(
        led.stall_ns < plain.stall_ns / 2.0,
        "lead: {:.0} µs, plain: {:.0} µs",
        led.stall_ns / 1e3,
        plain.stall_ns / 1e3
    );
    // Kept objects it evicts are read back, at most one per step.
    assert!(led.pm_read_bytes >= plain.pm_read_bytes);
    assert!(led.pm_read_bytes <= plain.pm_read_bytes + STEPS * LEN);
    // A lead as large as the plan is the aggressive rule.
    let whole = predict(&trace, &m, &conservative(u64::MAX), budget(), &opts).unwrap();
    let aggressive =
        predict(&trace, &m, &PolicyConfig::planned(PrefetchRule::Aggressive), budget(), &opts)
            .unwrap();
    assert_eq!(
        (whole.pm_read_bytes, whole.stall_ns.to_bits()),
        (aggressive.pm_read_bytes, aggressive.stall_ns.to_bits())
    );
}

#[test]
fn the_store_reads_what_the_simulator_predicts_with_a_lead() {
    let trace = kept_beside_missing(100_000);
    let m = model();
    for lead in [0, LEN, 2 * LEN, 8 * LEN] {
        let policy = conservative(lead);
        let dir = tempfile::tempdir().unwrap();
        let store = throttled_store(dir.path(), budget(), policy.clone(), &m);
        let r = replay(&store, &trace, &m).unwrap();
        let p = predict(&trace, &m, &policy, budget(), &PredictOptions::default()).unwrap();
        assert_eq!(r.timed.pm_read_bytes, p.pm_read_bytes, "lead {lead}");
        assert_eq!(r.timed.prefetch_evicted_unused, p.prefetch_evicted_unused, "lead {lead}");
    }
}
