//! Reward and reference actors: sync actors (each on its own thread of a `SyncArbiter`, off
//! the async arbiters) that own their plug-ins or model. A handler that panics (or a reward
//! whose plug-in fails) stops its actor, which the arbiter rebuilds (`supervise`); the reply
//! names the failure and the coordinator sends the job again.

use std::sync::Arc;

use actix::prelude::*;
use grrm_model::generate::Sample;
use grrm_model::transformer::Transformer;
use grrm_rewards::RewardSet;

use super::shared::Shared;
use super::supervise::{supervised, WorkFailure};
use crate::srpo::pieces::{response_logprobs, Draw, Scored, TrainSample};

/// Score a sampled group.
#[derive(Clone, Debug, Message)]
#[rtype(result = "Result<Option<Vec<Scored>>, WorkFailure>")]
pub struct Score {
    pub step: u64,
    pub draw: Draw,
    pub samples: Arc<Vec<Sample>>,
}

pub struct RewardActor {
    shared: Arc<Shared>,
    id: u64,
    rewards: Option<RewardSet>,
}

impl RewardActor {
    pub fn new(shared: Arc<Shared>) -> Self {
        shared.bump("reward.starts", 1);
        RewardActor {
            id: shared.next_id("reward"),
            shared,
            rewards: None,
        }
    }
}

impl Actor for RewardActor {
    type Context = SyncContext<Self>;
}

impl Handler<Score> for RewardActor {
    type Result = Result<Option<Vec<Scored>>, WorkFailure>;
    fn handle(&mut self, msg: Score, ctx: &mut SyncContext<Self>) -> Self::Result {
        let shared = self.shared.clone();
        // Per group, so below the info level of the other actors' spans.
        let _span = tracing::debug_span!(
            "reward",
            actor = self.id,
            step = msg.step,
            draw = msg.draw.draw
        )
        .entered();
        let r = supervised(&shared, "reward", ctx, || {
            shared.tick("reward");
            if self.rewards.is_none() {
                self.rewards = Some(shared.run.build_rewards()?);
            }
            let rewards = self.rewards.as_ref().expect("built above");
            shared.run.score(rewards, msg.draw, &msg.samples)
        });
        match r {
            // A reward error under `on_error = stop` (a plug-in that died, timed out, answered
            // garbage): rebuild the rewards (new plug-in processes) and let the job be re-sent.
            Err(WorkFailure::Failed(why)) => {
                tracing::warn!("reward failed ({why}); restarting the reward actor");
                shared.bump("reward.plugin_failures", 1);
                ctx.stop();
                Err(WorkFailure::Restarted(why))
            }
            other => other,
        }
    }
}

/// Reference log-probs of a mini-batch of responses.
#[derive(Clone, Debug, Message)]
#[rtype(result = "Result<Vec<Vec<f32>>, WorkFailure>")]
pub struct RefLogprobs {
    pub step: u64,
    pub samples: Arc<Vec<TrainSample>>,
}

pub struct ReferenceActor {
    shared: Arc<Shared>,
    id: u64,
    model: Option<Transformer>,
}

impl ReferenceActor {
    pub fn new(shared: Arc<Shared>) -> Self {
        shared.bump("reference.starts", 1);
        ReferenceActor {
            id: shared.next_id("reference"),
            shared,
            model: None,
        }
    }
}

impl Actor for ReferenceActor {
    type Context = SyncContext<Self>;
}

impl Handler<RefLogprobs> for ReferenceActor {
    type Result = Result<Vec<Vec<f32>>, WorkFailure>;
    fn handle(&mut self, msg: RefLogprobs, ctx: &mut SyncContext<Self>) -> Self::Result {
        let shared = self.shared.clone();
        let _span = tracing::info_span!(
            "reference",
            actor = self.id,
            step = msg.step,
            responses = msg.samples.len()
        )
        .entered();
        supervised(&shared, "reference", ctx, || {
            shared.tick("reference");
            if self.model.is_none() {
                self.model = Some(shared.run.model_copy()?);
            }
            let model = self.model.as_ref().expect("built above");
            let refs: Vec<&TrainSample> = msg.samples.iter().collect();
            response_logprobs(model, &refs, shared.run.cfg.temperature)
        })
    }
}
