//! What the bootstrap-sized benches share: ring sizes and thread count from the environment,
//! and the preset of each ring size.

use hetier_he::ckks::bootstrap::BootstrapPreset;

/// The log N values in env var `var` (comma-separated), or `default`.
pub fn sizes(var: &str, default: u32) -> Vec<u32> {
    std::env::var(var)
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![default])
}

/// A rayon pool of the threads env var `var` asks for (one by default).
pub fn thread_pool(var: &str) -> rayon::ThreadPool {
    let threads = std::env::var(var).ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool")
}

/// The deep preset at log N = 16, the insecure test preset (2 levels left) below.
pub fn preset(log_n: u32) -> BootstrapPreset {
    if log_n == 16 {
        BootstrapPreset::n16_deep()
    } else {
        BootstrapPreset::insecure_test(log_n, 2)
    }
}
