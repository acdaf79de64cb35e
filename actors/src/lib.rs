//! grrm-actors: the actor system and the run infrastructure around it (configs, run folders,
//! metrics, reports, progress output).

pub mod atomic;
pub mod checkpoints;
pub mod config;
pub mod data;
pub mod demo;
pub mod eval;
pub mod metrics_log;
pub mod progress;
pub mod remote;
pub mod report;
pub mod run_dir;
pub mod sft;
pub mod srpo;
pub mod summary;
pub mod system;
