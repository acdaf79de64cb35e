//! What crosses the network between the coordinator and rollout workers: the NATS names of a
//! run, and the messages (postcard-encoded tasks and results, a JSON spec object).

use anyhow::{Context, Result};
use grrm_model::generate::Sample;
use serde::{Deserialize, Serialize};

use crate::srpo::pieces::GroupSampling;

/// Bumped whenever a message below changes shape; a worker refuses another protocol.
pub const PROTOCOL: u32 = 1;

/// Consumer the workers share (each task goes to one of them).
pub const WORKERS_CONSUMER: &str = "workers";
/// Consumer the coordinator reads results with.
pub const COORDINATOR_CONSUMER: &str = "coordinator";
/// Object holding the run's `Spec`.
pub const SPEC_OBJECT: &str = "spec";

/// Whether `run` can name NATS streams and buckets: letters, digits, `-` and `_`.
pub fn valid_run_name(run: &str) -> bool {
    !run.is_empty()
        && run
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The NATS names of run `run` (validated by the config: letters, digits, `-`, `_`).
#[derive(Clone, Debug)]
pub struct Names {
    pub tasks_stream: String,
    pub tasks_subject: String,
    pub results_stream: String,
    pub results_subject: String,
    pub weights_bucket: String,
}

impl Names {
    pub fn of_run(run: &str) -> Self {
        Names {
            tasks_stream: format!("GRRM_{run}_TASKS"),
            tasks_subject: format!("grrm.{run}.tasks"),
            results_stream: format!("GRRM_{run}_RESULTS"),
            results_subject: format!("grrm.{run}.results"),
            weights_bucket: format!("grrm_{run}_weights"),
        }
    }
}

/// Object name of policy version `v`'s weights.
pub fn weights_object(version: u64) -> String {
    format!("v{version}")
}

/// What a worker needs besides weights to build the policy: written by the coordinator when it
/// starts (a new `epoch` each time), read by workers when a task names an epoch they lack.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Spec {
    pub protocol: u32,
    pub epoch: u64,
    /// The model's config.json (transformers' format).
    pub config: serde_json::Value,
    /// Positions the RoPE table must cover (prompt + response).
    pub max_positions: usize,
}

/// One generation task: sample `sampling.n` responses to each prompt with the weights of
/// `version`; prompt i's samples draw from the streams of `seeds[i]`, so any worker (or a local
/// rollout actor) produces the same responses.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Task {
    pub protocol: u32,
    /// The coordinator incarnation that issued it; results of another epoch are stale.
    pub epoch: u64,
    /// Unique within the epoch: `step.first_draw`.
    pub id: String,
    pub step: u64,
    pub version: u64,
    pub prompts: Vec<Vec<u32>>,
    pub seeds: Vec<u64>,
    pub sampling: GroupSampling,
    pub stop: Vec<u32>,
}

/// A worker's answer to a task.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskResult {
    pub epoch: u64,
    pub id: String,
    pub worker: String,
    /// The version the samples come from (always the task's).
    pub version: u64,
    /// JetStream's delivery count of the task when answered (> 1: it was redelivered).
    pub delivered: u64,
    /// Weight bytes this worker pulled from the object store for this task (0 when it held
    /// the version already).
    pub weight_bytes: u64,
    /// One group per prompt.
    pub groups: Vec<Vec<Sample>>,
}

pub fn encode<T: Serialize>(what: &str, msg: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(msg).with_context(|| format!("encoding a {what}"))
}

pub fn decode<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T> {
    postcard::from_bytes(bytes)
        .with_context(|| format!("decoding a {what} ({} bytes)", bytes.len()))
}
