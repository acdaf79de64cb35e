//! The actor system (actix 0.13) that runs SRPO: a coordinator (async, on its own arbiter) and
//! rollout, reward, reference, learner and evaluator actors on sync arbiters (their GPU and
//! plug-in work never blocks an async arbiter). Messages are typed; each stage has at most
//! `system.queue_capacity` jobs in flight and at most `system.pending_evals` evaluations run.
//! The learner publishes each version by copies on the device; rollouts sample with the version
//! the coordinator pins per job, in place on the learner's device (through the host on other
//! adapters: `system.rollout_adapters`), or on worker processes fed through NATS JetStream
//! (`system.remote`, `crate::remote`). With `system.max_staleness >= 1` the next step's first round samples while
//! the learner trains; staleness is logged per step (`staleness_mean`, `staleness_max`).
//! Counters, the in-flight registry and the published weights are shared (DashMap / locks).
//! The actors call the engine's step pieces (`crate::srpo::pieces`), so an on-policy step
//! through the actors equals a step of the synchronous engine bit for bit.
//!
//! ```text
//! trainer.rs      ActorTrainer: starts the actors, drives steps, evaluations, checkpoints
//! shared.rs       Shared: run context, weights, counters, in-flight registry, ids, faults
//! publish.rs      WeightBank: published versions (device copies; host path across adapters)
//! supervise.rs    panic supervision of the sync actors (restart + re-send)
//! call.rs         sending a job with re-queueing until its result is in
//! rollout.rs      RolloutActor: sampling with a pinned published version on its device
//! rollouts.rs     Rollouts: a job to the least busy device pool, or to remote workers
//! workers.rs      RewardActor, ReferenceActor
//! learner.rs      LearnerActor: advantages, PPO update, publish, checkpoint
//! evaluator.rs    EvaluatorActor + EvalQueue: held-out evaluation off the learner's path
//! round.rs        one sampling round; the next step's round sampled ahead
//! coordinator.rs  Coordinator: one step, back-pressure, accounting
//! timeline.rs     bounded record of who worked on which step/version when
//! ```

pub mod call;
pub mod coordinator;
pub mod evaluator;
pub mod learner;
pub mod publish;
pub mod rollout;
pub mod rollouts;
pub mod round;
pub mod shared;
pub mod supervise;
pub mod timeline;
pub mod trainer;
pub mod workers;

pub use coordinator::{Coordinator, RunStep};
pub use evaluator::EvaluatorActor;
pub use learner::LearnerActor;
pub use publish::{copy_params, Snapshot, WeightBank};
pub use rollout::RolloutActor;
pub use rollouts::{RolloutPool, Rollouts};
pub use shared::{JobKey, Shared};
pub use supervise::WorkFailure;
pub use timeline::Activity;
pub use trainer::ActorTrainer;
pub use workers::{ReferenceActor, RewardActor};
