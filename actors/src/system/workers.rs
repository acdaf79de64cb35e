//! Rollout, reward and reference actors: sync actors (each on its own thread of a
//! `SyncArbiter`, off the async arbiters) that own their GPU state. A handler that panics (or a
//! reward whose plug-in fails) stops its actor, which the arbiter rebuilds from the factory (a
//! restart: fresh model copy, fresh reward plug-ins); the reply names the failure and the
//! coordinator sends the job again.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use actix::prelude::*;
use anyhow::Result;
use grrm_model::generate::Sample;
use grrm_model::transformer::Transformer;
use grrm_rewards::RewardSet;

use super::shared::Shared;
use crate::srpo::pieces::{response_logprobs, upload_into, Draw, Scored, TrainSample};

/// Why a job did not produce a result.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkFailure {
    /// The actor panicked or its plug-in failed; it is being restarted. Retry the job.
    Restarted(String),
    /// A deterministic error (bad input, device error): retrying would not help.
    Failed(String),
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Runs `f`; a panic stops (restarts) the actor.
fn supervised<A, T>(
    shared: &Shared,
    kind: &str,
    ctx: &mut SyncContext<A>,
    f: impl FnOnce() -> Result<T>,
) -> Result<T, WorkFailure>
where
    A: Actor<Context = SyncContext<A>>,
{
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => {
            shared.bump(&format!("{kind}.handled"), 1);
            Ok(v)
        }
        Ok(Err(e)) => Err(WorkFailure::Failed(format!("{kind} actor: {e:#}"))),
        Err(p) => {
            let why = panic_text(p);
            tracing::warn!("{kind} actor panicked ({why}); restarting it");
            shared.bump(&format!("{kind}.panics"), 1);
            ctx.stop();
            Err(WorkFailure::Restarted(why))
        }
    }
}

/// Sample the groups of some prompt draws (one batched call) with the newest published policy.
#[derive(Clone, Debug, Message)]
#[rtype(result = "Result<(Vec<Vec<Sample>>, u64), WorkFailure>")]
pub struct Generate {
    pub step: u64,
    pub draws: Vec<Draw>,
}

pub struct RolloutActor {
    shared: Arc<Shared>,
    model: Option<Transformer>,
    version: u64,
}

impl RolloutActor {
    pub fn new(shared: Arc<Shared>) -> Self {
        shared.bump("rollout.starts", 1);
        RolloutActor {
            shared,
            model: None,
            version: 0,
        }
    }

    /// Picks up newer weights before sampling.
    fn model(&mut self) -> Result<(&Transformer, u64)> {
        let p = self.shared.published();
        if self.model.is_none() {
            self.model = Some(self.shared.run.model_copy()?);
            self.version = 0;
        }
        let m = self.model.as_ref().expect("built above");
        if p.version != self.version {
            if let Some(w) = &p.weights {
                upload_into(&m.params, w)?;
                self.shared.bump("rollout.weight_loads", 1);
            }
            self.version = p.version;
        }
        Ok((m, self.version))
    }
}

impl Actor for RolloutActor {
    type Context = SyncContext<Self>;
}

impl Handler<Generate> for RolloutActor {
    type Result = Result<(Vec<Vec<Sample>>, u64), WorkFailure>;
    fn handle(&mut self, msg: Generate, ctx: &mut SyncContext<Self>) -> Self::Result {
        let shared = self.shared.clone();
        supervised(&shared, "rollout", ctx, || {
            let _span = tracing::debug_span!("rollout", step = msg.step, groups = msg.draws.len())
                .entered();
            shared.tick("rollout");
            let (model, version) = self.model()?;
            let samples = shared.run.rollout(model, msg.step, &msg.draws)?;
            Ok((samples, version))
        })
    }
}

/// Score a sampled group.
#[derive(Clone, Debug, Message)]
#[rtype(result = "Result<Option<Vec<Scored>>, WorkFailure>")]
pub struct Score {
    pub draw: Draw,
    pub samples: Arc<Vec<Sample>>,
}

pub struct RewardActor {
    shared: Arc<Shared>,
    rewards: Option<RewardSet>,
}

impl RewardActor {
    pub fn new(shared: Arc<Shared>) -> Self {
        shared.bump("reward.starts", 1);
        RewardActor {
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
        let r = supervised(&shared, "reward", ctx, || {
            let _span = tracing::debug_span!("reward", draw = msg.draw.draw).entered();
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
    pub samples: Arc<Vec<TrainSample>>,
}

pub struct ReferenceActor {
    shared: Arc<Shared>,
    model: Option<Transformer>,
}

impl ReferenceActor {
    pub fn new(shared: Arc<Shared>) -> Self {
        shared.bump("reference.starts", 1);
        ReferenceActor {
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
        supervised(&shared, "reference", ctx, || {
            let _span = tracing::debug_span!("reference", n = msg.samples.len()).entered();
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
