//! Rollouts on worker processes, on this machine or others, through NATS JetStream.
//!
//! Per run (`system.remote.run`), the coordinator makes:
//! - a work-queue stream of generation tasks with one durable pull consumer shared by all
//!   workers: explicit acks, redelivery after `ack_wait` without a sign of life, at most
//!   `max_in_flight` tasks handed out;
//! - a work-queue stream of results, read by the coordinator alone;
//! - an object store with the run's spec (model config) and one object per policy version,
//!   put before the first task that names it and deleted once the staleness bound rules it out.
//!
//! A task carries everything a sample depends on besides the weights (prompt ids, seeds,
//! sampling settings, stop ids), so a worker's responses equal a local rollout actor's on the
//! same kind of device, whichever worker answers and however often the task was delivered. The
//! coordinator takes the first result of each task and drops later ones (`remote.*` counters).
//!
//! ```text
//! wire.rs    names of a run's streams and bucket; Spec, Task, TaskResult (postcard)
//! client.rs  RemoteRollouts: the coordinator's side (publish versions, tasks; route results)
//! worker.rs  Worker: `grrm rollout-worker`
//! ```

pub mod client;
pub mod wire;
pub mod worker;

pub use client::RemoteRollouts;
pub use worker::{serve, Worker, WorkerOptions};
