//! The coordinator actor: drives one step. Draws prompts, streams each through a rollout actor
//! and then a reward actor with at most `queue_capacity` groups in flight (back-pressure: a
//! new group is issued only as one finishes), hands each round to the learner for advantages
//! and the filter, resamples up to the bound, gets reference log-probs per mini-batch, has the
//! learner update and publish, and accounts for every sample. Jobs stay in the in-flight
//! registry until their result is in; a restarted actor's job is sent again.

use std::sync::Arc;
use std::time::Instant;

use actix::dev::ToEnvelope;
use actix::prelude::*;
use anyhow::{anyhow, bail, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::learner::{AddRound, LearnerActor, Train};
use super::shared::{JobKey, Shared};
use super::workers::{
    Generate, RefLogprobs, ReferenceActor, RewardActor, RolloutActor, Score, WorkFailure,
};
use crate::srpo::engine::{finish_step, StepReport, TrainState};
use crate::srpo::pieces::{Draw, TrainSample};
use crate::srpo::step::{GroupResult, StepBuilder};

/// Sends `msg` until it succeeds: a restarted actor's job is re-sent (at most `max_retries`
/// times); the job is in `in_flight` meanwhile.
async fn call<A, M, R>(shared: &Shared, addr: &Addr<A>, key: JobKey, msg: M) -> Result<R>
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message<Result = Result<R, WorkFailure>> + Clone + Send + 'static,
    R: Send + 'static,
{
    if shared.in_flight.insert(key.clone(), 0).is_some() {
        bail!("job {key:?} issued twice");
    }
    let max = shared.run.cfg.system.max_retries as u64;
    loop {
        let why = match addr.send(msg.clone()).await {
            Ok(Ok(r)) => {
                shared.in_flight.remove(&key);
                return Ok(r);
            }
            Ok(Err(WorkFailure::Failed(e))) => {
                shared.in_flight.remove(&key);
                bail!("{} job {}: {e}", key.kind, key.id);
            }
            Ok(Err(WorkFailure::Restarted(why))) => why,
            Err(e) => format!("mailbox: {e}"),
        };
        let attempts = {
            let mut a = shared.in_flight.get_mut(&key).expect("in flight");
            *a += 1;
            *a
        };
        shared.bump(&format!("{}.requeued", key.kind), 1);
        tracing::warn!(
            "{} job {} of step {} re-queued after: {why}",
            key.kind,
            key.id,
            key.step
        );
        if attempts > max {
            shared.in_flight.remove(&key);
            bail!(
                "{} job {} failed {attempts} times (system.max_retries = {max}): {why}",
                key.kind,
                key.id
            );
        }
    }
}

pub struct Coordinator {
    pub shared: Arc<Shared>,
    pub rollout: Addr<RolloutActor>,
    pub reward: Addr<RewardActor>,
    pub reference: Addr<ReferenceActor>,
    pub learner: Addr<LearnerActor>,
}

impl Actor for Coordinator {
    type Context = Context<Self>;
}

/// Run one step from `state`; returns the report and the state after it.
#[derive(Message)]
#[rtype(result = "Result<(StepReport, TrainState)>")]
pub struct RunStep {
    pub state: TrainState,
}

impl Handler<RunStep> for Coordinator {
    type Result = ResponseFuture<Result<(StepReport, TrainState)>>;

    fn handle(&mut self, msg: RunStep, _: &mut Context<Self>) -> Self::Result {
        let (shared, rollout, reward, reference, learner) = (
            self.shared.clone(),
            self.rollout.clone(),
            self.reward.clone(),
            self.reference.clone(),
            self.learner.clone(),
        );
        Box::pin(async move {
            let mut state = msg.state;
            let t0 = Instant::now();
            let run = &shared.run;
            let cfg = &run.cfg;
            let step = state.step;
            let cap = cfg.system.queue_capacity;
            let mut b = StepBuilder::new(cfg);
            loop {
                let need = b.need(cfg);
                if need == 0 {
                    break;
                }
                let draws = run.draws(&mut state.cursor, need);
                shared.bump("coordinator.prompts_issued", draws.len() as u64);
                let jobs: Vec<Vec<Draw>> = draws
                    .chunks(cfg.rollout_batch)
                    .map(<[Draw]>::to_vec)
                    .collect();
                let round: Vec<Vec<GroupResult>> = stream::iter(jobs)
                    .map(|draws: Vec<Draw>| {
                        let (shared, rollout, reward) = (&shared, &rollout, &reward);
                        async move {
                            let key = |kind, id| JobKey { kind, step, id };
                            let (groups, version) = call(
                                shared,
                                rollout,
                                key("rollout", draws[0].draw),
                                Generate {
                                    step,
                                    draws: draws.clone(),
                                },
                            )
                            .await?;
                            // Score the job's groups concurrently on the reward actors.
                            stream::iter(draws.into_iter().zip(groups))
                                .map(|(d, samples)| async move {
                                    shared.bump(
                                        "coordinator.responses_generated",
                                        samples.len() as u64,
                                    );
                                    let samples = Arc::new(samples);
                                    let scores = call(
                                        shared,
                                        reward,
                                        key("reward", d.draw),
                                        Score {
                                            draw: d,
                                            samples: samples.clone(),
                                        },
                                    )
                                    .await?;
                                    if scores.is_some() {
                                        shared.bump(
                                            "coordinator.responses_scored",
                                            samples.len() as u64,
                                        );
                                    }
                                    Ok::<_, anyhow::Error>(GroupResult {
                                        draw: d,
                                        samples: Arc::try_unwrap(samples)
                                            .unwrap_or_else(|a| a.as_ref().clone()),
                                        scores,
                                        version,
                                    })
                                })
                                .buffered(cap)
                                .try_collect::<Vec<_>>()
                                .await
                        }
                    })
                    .buffered(cap)
                    .try_collect()
                    .await?;
                let round: Vec<GroupResult> = round.into_iter().flatten().collect();
                b = learner
                    .send(AddRound {
                        builder: b,
                        round,
                        learner_version: state.version,
                    })
                    .await
                    .map_err(|e| anyhow!("learner mailbox: {e}"))??;
            }
            let mut groups = b.train_groups(&run.pools);
            let chunks: Vec<Arc<Vec<TrainSample>>> = groups
                .chunks(cfg.mini_batch_prompts)
                .map(|c| Arc::new(c.iter().flatten().cloned().collect()))
                .collect();
            let lps: Vec<Vec<Vec<f32>>> = stream::iter(chunks.into_iter().enumerate())
                .map(|(i, samples)| {
                    let key = JobKey {
                        kind: "reference",
                        step,
                        id: i as u64,
                    };
                    call(&shared, &reference, key, RefLogprobs { samples })
                })
                .buffered(cap)
                .try_collect()
                .await?;
            for (mb, lp) in groups.chunks_mut(cfg.mini_batch_prompts).zip(lps) {
                for (s, l) in mb.iter_mut().flatten().zip(lp) {
                    s.ref_logp = l;
                }
            }
            let trained: u64 = groups.iter().map(|g| g.len() as u64).sum();
            let up = learner
                .send(Train {
                    groups,
                    new_version: state.version + 1,
                })
                .await
                .map_err(|e| anyhow!("learner mailbox: {e}"))??;
            shared.bump("coordinator.responses_trained", trained);
            if !shared.in_flight.is_empty() {
                bail!(
                    "{} jobs still in flight after the step",
                    shared.in_flight.len()
                );
            }
            let report = finish_step(&mut state, b, &up, t0.elapsed().as_secs_f64(), cfg.n)?;
            Ok((report, state))
        })
    }
}
