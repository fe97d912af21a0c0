//! One module per subcommand.

pub mod bench_model;
pub mod bootstrap;
pub mod demo;
pub mod inspect;
pub mod plan;
pub mod rss;
pub mod run;
mod run_batch;
mod run_encrypted_weights;
pub mod run_setup;
pub mod train;
