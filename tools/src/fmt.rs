//! Human-readable formatting shared by the subcommands.

/// Bytes as a short binary-prefixed string: `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A throughput in GB/s (decimal, as disks and memory are quoted).
pub fn gbps(bytes: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "-".into();
    }
    format!("{:.2} GB/s", bytes as f64 / secs / 1e9)
}

/// The "bytes moved" row of a run's report: the store's traffic each way between the tiers.
pub fn bytes_moved_row(st: &hetier_tiering::StoreStats) -> Vec<String> {
    vec![
        "bytes moved".into(),
        format!("PM→DRAM {}, DRAM→PM {}", bytes(st.bytes_pm_to_dram), bytes(st.bytes_dram_to_pm)),
    ]
}

/// Print rows as an aligned text table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("  {}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for row in rows {
        line(row.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_picks_the_largest_whole_unit() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn gbps_is_decimal_and_guards_zero_time() {
        assert_eq!(gbps(2_000_000_000, 1.0), "2.00 GB/s");
        assert_eq!(gbps(1, 0.0), "-");
    }
}
