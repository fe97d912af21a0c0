//! One module per subcommand.

pub mod demo;
pub mod inspect;
pub mod plan;
pub mod run;
mod run_batch;
