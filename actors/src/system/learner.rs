//! The learner actor: owns the policy being trained and its optimizer; computes group
//! advantages for each sampling round, runs the PPO update, publishes the new weights with
//! their version, evaluates, and writes checkpoints. One sync thread (GPU work off the async
//! arbiters).

use std::sync::{Arc, Mutex};

use actix::prelude::*;
use anyhow::Result;
use grrm_rewards::RewardSet;

use super::shared::Shared;
use crate::checkpoints::CheckpointDir;
use crate::srpo::engine::{save_checkpoint, EvalReport, TrainState};
use crate::srpo::pieces::{ppo_update, Learner, TrainSample, UpdateMetrics};
use crate::srpo::step::{GroupResult, StepBuilder};

pub struct LearnerActor {
    shared: Arc<Shared>,
    learner: Learner,
    rewards: RewardSet,
}

impl LearnerActor {
    /// The learner is built once (it holds the only copy of the trained state); the arbiter's
    /// factory hands it over on the first call.
    pub fn factory(
        shared: Arc<Shared>,
        learner: Learner,
        rewards: RewardSet,
    ) -> impl Fn() -> LearnerActor + Send + Sync + 'static {
        let slot = Mutex::new(Some((learner, rewards)));
        move || {
            let (learner, rewards) = slot
                .lock()
                .expect("learner slot")
                .take()
                .expect("the learner actor is not restartable (it holds the training state)");
            LearnerActor {
                shared: shared.clone(),
                learner,
                rewards,
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
    pub builder: StepBuilder,
    pub round: Vec<GroupResult>,
    pub learner_version: u64,
}

impl Handler<AddRound> for LearnerActor {
    type Result = Result<StepBuilder>;
    fn handle(&mut self, mut msg: AddRound, _: &mut SyncContext<Self>) -> Self::Result {
        let run = &self.shared.run;
        msg.builder
            .add_round(&run.ctx, &run.cfg, msg.round, msg.learner_version)?;
        Ok(msg.builder)
    }
}

/// The PPO update; on success the weights are published as `new_version`.
#[derive(Message)]
#[rtype(result = "Result<UpdateMetrics>")]
pub struct Train {
    pub groups: Vec<Vec<TrainSample>>,
    pub new_version: u64,
}

impl Handler<Train> for LearnerActor {
    type Result = Result<UpdateMetrics>;
    fn handle(&mut self, msg: Train, _: &mut SyncContext<Self>) -> Self::Result {
        let _span = tracing::debug_span!("learner", version = msg.new_version).entered();
        if msg.groups.is_empty() {
            return Ok(UpdateMetrics::default());
        }
        let up = ppo_update(&mut self.learner, &msg.groups, &self.shared.run.cfg)?;
        self.shared.bump("learner.updates", 1);
        self.shared
            .publish(msg.new_version, self.learner.weights()?);
        Ok(up)
    }
}

#[derive(Message)]
#[rtype(result = "Result<EvalReport>")]
pub struct Evaluate;

impl Handler<Evaluate> for LearnerActor {
    type Result = Result<EvalReport>;
    fn handle(&mut self, _: Evaluate, _: &mut SyncContext<Self>) -> Self::Result {
        self.shared.run.evaluate(&self.learner.model, &self.rewards)
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
        save_checkpoint(
            &msg.dir,
            msg.keep_last,
            &self.shared.run,
            &self.learner,
            &msg.state,
        )
    }
}
