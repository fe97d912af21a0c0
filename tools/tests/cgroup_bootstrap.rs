//! `hetier bootstrap` (log N = 12, insecure test parameters) with its keys in a pool, as a child
//! in a cgroup v1 memory group limited to its DRAM budget + a constant: it completes without an
//! OOM kill, at the precision of an in-memory bootstrap, the group's measured maximum and the
//! peak RSS stay within the limit, and the printed memory outside the store is within the
//! constant. A budget below one bootstrap's working set fails before any work with the smallest
//! workable budget. Skipped, with the reason printed, only where the memory controller cannot be
//! written.

mod common;

use std::process::{Command, Output};

use common::MemoryGroup;

const MIB: u64 = 1 << 20;
/// What the process may hold beside its store's budget at log N = 12: the CKKS context and the
/// bootstrapper's precomputed diagonals, the binary, setup and the result. Every ciphertext
/// temporary of the bootstrap is in the budget and large freed heap blocks go back to the OS.
/// Measured: 18.5–19.4 MiB, against 42.6 MiB when the bootstrap's ciphertext temporaries were
/// on the heap and 70.2 MiB when the key-switch scratch and the transforms' buffers were too
/// (docs/measurements.md).
const HEADROOM: u64 = 28 * MIB;
/// The DRAM budget: less than two thirds of the stored (seed-compressed) key set, which streams
/// through it, and above one bootstrap's working set (41.4 MiB: its ciphertext temporaries and
/// transform buffers, its key-switch buffers, one key and its expansion).
const BUDGET_MIB: u64 = 44;

/// `hetier --json bootstrap --log-n 12 --insecure-test-params --dir <pool> <args>`, in `group`
/// when given.
fn bootstrap(pool: &std::path::Path, group: Option<&MemoryGroup>, args: &[&str]) -> Output {
    let hetier = env!("CARGO_BIN_EXE_hetier");
    let mut cmd = group.map_or_else(|| Command::new(hetier), |g| g.command(hetier));
    cmd.args(["--json", "bootstrap", "--log-n", "12", "--levels", "1", "--insecure-test-params"])
        .arg("--dir")
        .arg(pool)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bootstrap_fits_budget_plus_a_constant_under_a_cgroup_limit() {
    let budget = BUDGET_MIB * MIB;
    let limit = budget + HEADROOM;
    let name = format!("hetier-cgroup-test-bootstrap-{}", std::process::id());
    let Some(group) = MemoryGroup::create_or_skip(&name, limit) else { return };
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    // The keys, generated once into the pool (no limit: key generation is not what is measured).
    let keygen = bootstrap(&pool, None, &[]);
    assert!(keygen.status.success(), "{}", String::from_utf8_lossy(&keygen.stderr));
    let r: serde_json::Value = serde_json::from_slice(&keygen.stdout).unwrap();
    let in_memory_bits = r["precision_bits"].as_f64().unwrap();
    let stored = r["key_bytes_stored"].as_u64().unwrap();
    assert!(budget < stored * 2 / 3, "the budget holds a fraction of the key set: {stored} B");

    // A budget below one bootstrap's working set: a typed error before any work, naming the
    // smallest workable budget, which then runs.
    let small = bootstrap(&pool, None, &["--dram-mib", "1"]);
    assert!(!small.status.success());
    let err = String::from_utf8_lossy(&small.stderr);
    assert!(err.contains("smallest workable budget"), "{err}");
    let needed = common::named_budget(&small.stderr);
    assert!(needed > MIB && needed <= budget, "smallest workable budget {needed} B");
    let at_needed = bootstrap(&pool, None, &["--dram-mib", &needed.div_ceil(MIB).to_string()]);
    assert!(at_needed.status.success(), "{}", String::from_utf8_lossy(&at_needed.stderr));

    let out = bootstrap(&pool, Some(&group), &["--dram-mib", &BUDGET_MIB.to_string()]);
    let max = group.max_usage();
    let killed = group.oom_killed();
    assert!(!killed, "OOM-killed under {} MiB (max {} MiB)", limit / MIB, max / MIB);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bits = r["precision_bits"].as_f64().unwrap();
    assert!(
        bits >= 15.0 && bits >= in_memory_bits - 2.0,
        "{bits} bits ({in_memory_bits} in memory)"
    );
    assert_eq!(r["store"]["keys_generated"], 0, "the keys came from the pool");
    let st = &r["store"]["stats"];
    assert!(st["peak_dram"].as_u64().unwrap() <= budget);
    assert!(st["scratch_peak"].as_u64().unwrap() > 0, "the bootstrap's buffers were in the store");
    common::check_outside_store(
        &format!("bootstrap ({bits:.1} bits)"),
        &r,
        budget,
        limit,
        HEADROOM,
        max,
    );
}
