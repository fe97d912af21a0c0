//! One module per subcommand.

pub mod bench_model;
pub mod bootstrap;
pub mod bootstrap_store;
pub mod demo;
pub mod import;
pub mod inspect;
pub mod plan;
pub mod rss;
pub mod run;
mod run_batch;
mod run_deep;
mod run_encrypted_weights;
mod run_file;
pub mod run_setup;
pub mod serve_bench;
pub mod train;
pub mod tuning;
