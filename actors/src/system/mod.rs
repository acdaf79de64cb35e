//! The actor system (actix 0.13) that runs SRPO: a coordinator (async) and rollout, reward,
//! reference and learner actors on sync arbiters (their GPU and plug-in work never blocks an
//! async arbiter). Messages are typed; each stage has at most `system.queue_capacity` jobs in
//! flight; the learner publishes weights with a version and rollouts pick them up before their
//! next job (staleness bounded by `system.max_staleness`, logged per step as `staleness`);
//! counters, the in-flight registry and the published weights are shared (DashMap / RwLock).
//! The actors call the engine's step pieces (`crate::srpo::pieces`), so a step through the actors
//! equals a step of the synchronous engine.
//!
//! ```text
//! shared.rs       Shared: run context, published weights + version, counters, in-flight, faults
//! workers.rs      RolloutActor / RewardActor / ReferenceActor with panic supervision
//! learner.rs      LearnerActor: advantages, PPO update, publish, evaluate, checkpoint
//! coordinator.rs  Coordinator: one step, back-pressure, re-queueing, accounting
//! ```

pub mod coordinator;
pub mod learner;
pub mod shared;
pub mod workers;

use std::path::Path;
use std::sync::Arc;

use actix::prelude::*;
use anyhow::{anyhow, Result};

pub use coordinator::{Coordinator, RunStep};
pub use learner::LearnerActor;
pub use shared::{JobKey, Shared};
pub use workers::{ReferenceActor, RewardActor, RolloutActor, WorkFailure};

use crate::checkpoints::CheckpointDir;
use crate::srpo::engine::{load_checkpoint, EvalReport, RunContext, StepReport, TrainState};
use crate::srpo::pieces::{upload_into, Learner};
use crate::srpo::run::Trainer;
use crate::srpo::Counts;

/// The actor system as a `Trainer`: owns an actix system and drives it step by step.
pub struct ActorTrainer {
    sys: SystemRunner,
    coordinator: Addr<Coordinator>,
    learner: Addr<LearnerActor>,
    pub shared: Arc<Shared>,
    state: TrainState,
}

impl ActorTrainer {
    pub fn new(run: RunContext) -> Result<Self> {
        let learner = Learner::new(&run.ctx, &run.cfg, &run.base)?;
        let state = TrainState {
            step: 0,
            cursor: 0,
            optimizer_step: 0,
            seed: run.cfg.seed,
            version: 0,
            totals: Counts::default(),
            initial_eval: None,
        };
        Self::start(run, learner, state)
    }

    /// Continues from a checkpoint folder; rollouts start from the checkpoint's weights.
    pub fn resume(run: RunContext, dir: &Path) -> Result<Self> {
        let mut learner = Learner::new(&run.ctx, &run.cfg, &run.base)?;
        let (state, weights) = load_checkpoint(dir, &run, &learner)?;
        upload_into(&learner.model.params, &weights)?;
        learner.opt.step = state.optimizer_step;
        let t = Self::start(run, learner, state)?;
        t.shared.publish(t.state.version, weights);
        Ok(t)
    }

    fn start(run: RunContext, learner: Learner, state: TrainState) -> Result<Self> {
        let rewards = run.build_rewards()?;
        let sys = System::new();
        let shared = Shared::new(run);
        let s = shared.clone();
        let (coordinator, learner) = sys.block_on(async move {
            let sc = &s.run.cfg.system;
            let s1 = s.clone();
            let rollout =
                SyncArbiter::start(sc.rollout_workers, move || RolloutActor::new(s1.clone()));
            let s2 = s.clone();
            let reward =
                SyncArbiter::start(sc.reward_workers, move || RewardActor::new(s2.clone()));
            let s3 = s.clone();
            let reference = SyncArbiter::start(1, move || ReferenceActor::new(s3.clone()));
            let learner = SyncArbiter::start(1, LearnerActor::factory(s.clone(), learner, rewards));
            let coordinator = Coordinator {
                shared: s,
                rollout,
                reward,
                reference,
                learner: learner.clone(),
            }
            .start();
            (coordinator, learner)
        });
        Ok(ActorTrainer {
            sys,
            coordinator,
            learner,
            shared,
            state,
        })
    }

    /// Named counters of the actors and the coordinator.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .shared
            .counters
            .iter()
            .map(|e| (e.key().clone(), *e.value()))
            .collect();
        v.sort();
        v
    }
}

impl Trainer for ActorTrainer {
    fn step(&mut self) -> Result<StepReport> {
        let msg = RunStep {
            state: self.state.clone(),
        };
        let addr = self.coordinator.clone();
        let (report, state) = self
            .sys
            .block_on(async move { addr.send(msg).await })
            .map_err(|e| anyhow!("coordinator mailbox: {e}"))??;
        self.state = state;
        Ok(report)
    }

    fn evaluate(&mut self) -> Result<EvalReport> {
        let addr = self.learner.clone();
        self.sys
            .block_on(async move { addr.send(learner::Evaluate).await })
            .map_err(|e| anyhow!("learner mailbox: {e}"))?
    }

    fn save(&mut self, dir: &CheckpointDir, keep_last: Option<usize>) -> Result<()> {
        let msg = learner::Save {
            dir: dir.clone(),
            keep_last,
            state: self.state.clone(),
        };
        let addr = self.learner.clone();
        self.sys
            .block_on(async move { addr.send(msg).await })
            .map_err(|e| anyhow!("learner mailbox: {e}"))?
    }

    fn state(&self) -> &TrainState {
        &self.state
    }

    fn state_mut(&mut self) -> &mut TrainState {
        &mut self.state
    }
}
