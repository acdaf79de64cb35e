//! The learner actor: owns the policy being trained and its optimizer; computes group
//! advantages for each sampling round, runs the PPO update, publishes the new weights with
//! their version (copies on the device, `publish`), and writes checkpoints. One sync thread
//! (GPU work off the async arbiters). Evaluation is the evaluator actor's, on a published
//! version, so it never holds the learner up.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix::prelude::*;
use anyhow::Result;

use super::shared::Shared;
use super::timeline::Activity;
use crate::checkpoints::CheckpointDir;
use crate::srpo::engine::{save_checkpoint, TrainState};
use crate::srpo::pieces::{ppo_update, Learner, TrainSample, UpdateMetrics};
use crate::srpo::step::{GroupResult, StepBuilder};

pub struct LearnerActor {
    shared: Arc<Shared>,
    learner: Learner,
}

impl LearnerActor {
    /// The learner is built once (it holds the only copy of the trained state); the arbiter's
    /// factory hands it over on the first call.
    pub fn factory(
        shared: Arc<Shared>,
        learner: Learner,
    ) -> impl Fn() -> LearnerActor + Send + Sync + 'static {
        let slot = Mutex::new(Some(learner));
        move || {
            let learner = slot
                .lock()
                .expect("learner slot")
                .take()
                .expect("the learner actor is not restartable (it holds the training state)");
            LearnerActor {
                shared: shared.clone(),
                learner,
            }
        }
    }
}

impl Actor for LearnerActor {
    type Context = SyncContext<Self>;
}

/// Advantages and the zero-variance filter of one sampling round.
#[derive(Message)]
#[rtype(result = "Result<StepBuilder>")]
pub struct AddRound {
    pub step: u64,
    pub builder: StepBuilder,
    pub round: Vec<GroupResult>,
    pub learner_version: u64,
}

impl Handler<AddRound> for LearnerActor {
    type Result = Result<StepBuilder>;
    fn handle(&mut self, mut msg: AddRound, _: &mut SyncContext<Self>) -> Self::Result {
        let _span = tracing::info_span!(
            "learner",
            actor = 0,
            step = msg.step,
            version = msg.learner_version,
            round = msg.builder.rounds + 1,
            groups = msg.round.len()
        )
        .entered();
        let run = &self.shared.run;
        msg.builder
            .add_round(&run.ctx, &run.cfg, msg.round, msg.learner_version)?;
        Ok(msg.builder)
    }
}

/// The PPO update of step `step`; on success the weights are published as `new_version`.
#[derive(Message)]
#[rtype(result = "Result<UpdateMetrics>")]
pub struct Train {
    pub step: u64,
    pub groups: Vec<Vec<TrainSample>>,
    pub new_version: u64,
}

impl Handler<Train> for LearnerActor {
    type Result = Result<UpdateMetrics>;
    fn handle(&mut self, msg: Train, _: &mut SyncContext<Self>) -> Self::Result {
        let _span = tracing::info_span!(
            "learner",
            actor = 0,
            step = msg.step,
            version = msg.new_version,
            groups = msg.groups.len()
        )
        .entered();
        if msg.groups.is_empty() {
            tracing::warn!("step {}: no informative group; no update", msg.step + 1);
            return Ok(UpdateMetrics::default());
        }
        let start = Instant::now();
        let up = ppo_update(&mut self.learner, &msg.groups, &self.shared.run.cfg)?;
        self.shared.bump("learner.updates", 1);
        self.shared
            .publish(msg.new_version, &self.learner.model.params)?;
        self.shared.timeline.record(Activity {
            actor: "learner",
            id: 0,
            step: msg.step,
            version: msg.new_version,
            start,
            end: Instant::now(),
        });
        tracing::debug!(loss = up.loss, kl = up.kl, "updated and published");
        Ok(up)
    }
}

#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Save {
    pub dir: CheckpointDir,
    pub keep_last: Option<usize>,
    pub state: TrainState,
}

impl Handler<Save> for LearnerActor {
    type Result = Result<()>;
    fn handle(&mut self, msg: Save, _: &mut SyncContext<Self>) -> Self::Result {
        let _span = tracing::info_span!(
            "learner",
            actor = 0,
            step = msg.state.step,
            version = msg.state.version,
            checkpoint = true
        )
        .entered();
        save_checkpoint(
            &msg.dir,
            msg.keep_last,
            &self.shared.run,
            &self.learner,
            &msg.state,
        )
    }
}
