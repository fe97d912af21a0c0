//! `hetier`: run, profile and place encrypted models; inspect pools.
//!
//! The binary is deliberately thin: every subcommand parses its flags, calls the library crates
//! and formats what they return, as a table for people or JSON for machines.

mod cmd;
mod fmt;
mod npy;
mod secret;

use clap::{Parser, Subcommand};

/// hetier — encrypted AI models whose ciphertexts and keys exceed DRAM.
#[derive(Parser, Debug)]
#[command(name = "hetier", version, about, long_about = None)]
struct Cli {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Plan a full-size network (MobileNetV2, ResNet-50, ResNet-20) at log N = 16.
    Plan(cmd::plan::PlanArgs),
    /// Run an encrypted model with every ciphertext and key in the tiered store.
    Run(cmd::run_setup::RunArgs),
    /// Lower an ONNX file to hetier-model files and show its depth and key set.
    Import(cmd::import::ImportArgs),
    /// Put durable and scratch objects in a pool, reopen it, verify and time everything.
    Demo(cmd::demo::DemoArgs),
    /// Show what a pool holds and check every object's checksum.
    Inspect(cmd::inspect::InspectArgs),
    /// The larger-than-DRAM benchmark: a model at log N = 16 under lru / alpha / planned, each
    /// run a child in a cgroup memory limit, against an all-DRAM run.
    BenchModel(cmd::bench_model::BenchModelArgs),
    /// Bootstrap random data: time by phase, precision, levels left, keys, peak RSS.
    Bootstrap(cmd::bootstrap::BootstrapArgs),
    /// Measure DRAM, the PM tier and the CKKS op times into a cost file (`--costs`).
    Calibrate(cmd::tuning::calibrate::CalibrateArgs),
    /// Per-layer work, footprint by kind, top objects and the access trace of a model.
    Profile(cmd::tuning::profile::ProfileArgs),
    /// The budget curve of a model and the smallest DRAM budget meeting a slowdown target.
    Tune(cmd::tuning::tune::TuneArgs),
    /// Load-test the serving API: concurrency levels x policies, throughput, p50/p99
    /// latency, peak RSS and failed requests; every response checked against plaintext.
    ServeBench(cmd::serve_bench::ServeBenchArgs),
    /// Train linear or logistic regression on encrypted data (weights encrypted throughout).
    Train(cmd::train::TrainArgs),
    /// One child run of `bench-model` (internal).
    #[command(hide = true)]
    BenchModelChild {
        /// The job, as JSON.
        job: String,
    },
}

fn main() -> anyhow::Result<()> {
    // Large heap buffers freed go back to the OS instead of staying resident beside the
    // store's budget (glibc would otherwise keep them once its threshold has grown).
    hetier_allocator::heap::release_large_frees();
    let cli = Cli::parse();
    match cli.command {
        Command::Plan(args) => cmd::plan::run(&args, cli.json),
        Command::Run(args) => cmd::run::run(&args, cli.json),
        Command::Import(args) => cmd::import::run(&args, cli.json),
        Command::Demo(args) => cmd::demo::run(&args, cli.json),
        Command::Inspect(args) => cmd::inspect::run(&args, cli.json),
        Command::BenchModel(args) => cmd::bench_model::run(&args, cli.json),
        Command::Bootstrap(args) => cmd::bootstrap::run(&args, cli.json),
        Command::Calibrate(args) => cmd::tuning::calibrate::run(&args, cli.json),
        Command::Profile(args) => cmd::tuning::profile::run(&args, cli.json),
        Command::Tune(args) => cmd::tuning::tune::run(&args, cli.json),
        Command::Train(args) => cmd::train::run(&args, cli.json),
        Command::ServeBench(args) => cmd::serve_bench::run(&args, cli.json),
        Command::BenchModelChild { job } => cmd::bench_model::child_main(&job),
    }
}
