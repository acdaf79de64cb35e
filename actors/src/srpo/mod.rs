//! SRPO training (SPEC.md section 4): the config, the prompt pools, the step pieces, the
//! synchronous engine with checkpoints and exact resume, and `run_rl`.
//!
//! ```text
//! config.rs  RlConfig (+ SystemConfig for the actors), defaults from SPEC.md
//! data.rs    RL / validation prompt pools, chat rendering, the seeded draw order
//! pieces.rs  sample a group, score it, group advantages (GPU), reference log-probs, PPO update
//! step.rs    rounds -> zero-variance filter -> kept groups; sample accounting; step metrics
//! engine.rs  RunContext (shared), RlEngine (synchronous), checkpoints
//! run.rs     run_rl: the training loop with logging, evaluation, checkpoints, resume
//! held_out.rs held-out evaluations of a run: started, logged with step/version, awaited
//! ```

pub mod config;
pub mod data;
pub mod engine;
pub mod held_out;
pub mod pieces;
pub mod run;
pub mod step;

pub use config::{FaultConfig, RemoteConfig, RlConfig, SystemConfig};
pub use engine::{EvalReport, RlEngine, RunContext, StepReport, TrainState};
pub use run::{run_rl, RlSummary, RunOptions, TaggedEval};
pub use step::Counts;
