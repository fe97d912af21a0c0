//! `hetier run` as a child in a cgroup v1 memory group limited to its DRAM budget + 64 MiB, for
//! the digits model and CryptoNets in the slot and batch layouts: each run completes without an
//! OOM kill, agrees with the plaintext model, and the group's measured maximum stays within the
//! limit. Skipped, with the reason printed, only where the memory controller cannot be written.

mod common;

use common::MemoryGroup;

const MIB: u64 = 1 << 20;
/// What the process may hold beside its store's budget.
const HEADROOM: u64 = 64 * MIB;

/// Runs `hetier --json run --dram-mib <budget> <args>` in a group limited to budget + 64 MiB
/// and checks it: no OOM kill, success, every image agrees with the plaintext model, the
/// group's maximum and the peak RSS within the limit, and the printed memory outside the store
/// consistent with them.
fn run_under_limit(label: &str, budget_mib: u64, images: usize, args: &[&str]) {
    let budget = budget_mib * MIB;
    let limit = budget + HEADROOM;
    let name = format!("hetier-cgroup-test-{label}-{}", std::process::id());
    let group = match MemoryGroup::create(&name, limit) {
        Ok(g) => g,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let out = group
        .command(env!("CARGO_BIN_EXE_hetier"))
        .args(["--json", "run", "--dram-mib", &budget_mib.to_string()])
        .args(["--images", &images.to_string()])
        .args(args)
        .arg("--dir")
        .arg(dir.path().join("pool"))
        .output()
        .unwrap();
    let max = group.max_usage();
    let killed = group.oom_killed();
    assert!(!killed, "{label}: OOM-killed under {} MiB (max {} MiB)", limit / MIB, max / MIB);
    assert!(out.status.success(), "{label}: {}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["agree_with_plaintext"], images, "{label}");
    assert!(r["max_logit_error"].as_f64().unwrap() <= 1e-3, "{label}: {}", r["max_logit_error"]);
    let peak_rss = r["peak_rss"].as_u64().unwrap();
    let o = &r["outside_store"];
    let outside = o["outside_store_bytes"].as_u64().unwrap();
    println!(
        "{label}: budget {} MiB, cgroup limit {} MiB, cgroup max {:.1} MiB, peak RSS {:.1} MiB, \
         outside the store {:.1} MiB",
        budget / MIB,
        limit / MIB,
        max as f64 / MIB as f64,
        peak_rss as f64 / MIB as f64,
        outside as f64 / MIB as f64,
    );
    assert!(max <= limit && peak_rss <= limit, "{label}: max {max}, peak RSS {peak_rss}");
    // The printed constant is the peak RSS less what the store held, and part of the budget.
    assert_eq!(o["peak_rss"].as_u64(), Some(peak_rss), "{label}");
    assert_eq!(outside + o["store_peak"].as_u64().unwrap(), peak_rss, "{label}");
    assert_eq!(o["budget_plus_outside"].as_u64(), Some(budget + outside), "{label}");
    assert!(outside <= HEADROOM, "{label}: {outside} B outside the store");
}

#[test]
fn run_digits_fits_budget_plus_64_mib_under_a_cgroup_limit() {
    run_under_limit("digits", 32, 4, &[]);
}

#[test]
fn run_cryptonets_slot_layout_fits_budget_plus_64_mib_under_a_cgroup_limit() {
    run_under_limit("cryptonets-slot", 32, 2, &["--model", "cryptonets"]);
}

#[test]
fn run_cryptonets_batch_layout_fits_budget_plus_64_mib_under_a_cgroup_limit() {
    run_under_limit("cryptonets-batch", 32, 8, &["--model", "cryptonets", "--layout", "batch"]);
}

#[test]
fn run_digits_batch_layout_fits_budget_plus_64_mib_under_a_cgroup_limit() {
    run_under_limit("digits-batch", 32, 64, &["--model", "digits", "--layout", "batch"]);
}
