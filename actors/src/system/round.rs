//! One sampling round through the actors, and the next step's first round sampled ahead.
//!
//! A round streams rollout jobs of `rollout_batch` prompts (at most `queue_capacity` in flight:
//! a new job is issued only as one finishes) and scores each job's groups on the reward actors.
//! With `system.max_staleness >= 1` the coordinator starts step k+1's first round with version
//! k's weights as soon as step k's rounds are in, so it samples while the reference and the
//! learner work on step k; step k+1 consumes it (staleness 1, corrected by the clipped PPO
//! ratio against the behaviour log-probs recorded here). Its draws are committed to the cursor
//! only when consumed: a run stopped before that samples them again after a resume.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix::prelude::*;
use anyhow::{anyhow, bail, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::call::call;
use super::publish::Snapshot;
use super::rollout::Generate;
use super::rollouts::Rollouts;
use super::shared::{JobKey, Shared};
use super::workers::{RewardActor, Score};
use crate::srpo::pieces::Draw;
use crate::srpo::step::GroupResult;

/// The actors a round goes through.
#[derive(Clone)]
pub struct RoundActors {
    pub shared: Arc<Shared>,
    pub rollout: Rollouts,
    pub reward: Addr<RewardActor>,
}

/// Samples and scores the groups of `draws` for step `step` with `weights`; draw order kept.
pub async fn sample_round(
    actors: RoundActors,
    step: u64,
    draws: Vec<Draw>,
    weights: Arc<Snapshot>,
) -> Result<Vec<GroupResult>> {
    let RoundActors {
        shared,
        rollout,
        reward,
    } = actors;
    let cfg = &shared.run.cfg;
    let cap = cfg.system.queue_capacity;
    shared.bump("coordinator.prompts_issued", draws.len() as u64);
    let jobs: Vec<Vec<Draw>> = draws
        .chunks(cfg.rollout_batch)
        .map(<[Draw]>::to_vec)
        .collect();
    let round: Vec<Vec<GroupResult>> = stream::iter(jobs)
        .map(|draws: Vec<Draw>| {
            let (shared, rollout, reward, weights) = (&shared, &rollout, &reward, &weights);
            async move {
                let key = |kind, id| JobKey { kind, step, id };
                let (groups, version) = rollout
                    .generate(
                        shared,
                        key("rollout", draws[0].draw),
                        Generate {
                            step,
                            draws: draws.clone(),
                            weights: weights.clone(),
                        },
                    )
                    .await?;
                if version != weights.version {
                    bail!(
                        "rollout sampled with version {version}, asked for {}",
                        weights.version
                    );
                }
                // Score the job's groups concurrently on the reward actors.
                stream::iter(draws.into_iter().zip(groups))
                    .map(|(d, samples)| async move {
                        shared.bump("coordinator.responses_generated", samples.len() as u64);
                        let samples = Arc::new(samples);
                        let scores = call(
                            shared,
                            reward,
                            key("reward", d.draw),
                            Score {
                                step,
                                draw: d,
                                samples: samples.clone(),
                            },
                        )
                        .await?;
                        if scores.is_some() {
                            shared.bump("coordinator.responses_scored", samples.len() as u64);
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
    Ok(round.into_iter().flatten().collect())
}

type RoundFuture = Pin<Box<dyn Future<Output = Result<Vec<GroupResult>>> + Send>>;

/// Step `step`'s first round, sampling ahead on the coordinator's arbiter.
pub struct Prefetch {
    pub step: u64,
    pub first_draw: u64,
    pub draws: usize,
    pub version: u64,
    round: RoundFuture,
}

impl Prefetch {
    /// Starts sampling `draws` for `step` with `weights` (runs without being awaited).
    pub fn start(actors: RoundActors, step: u64, draws: Vec<Draw>, weights: Arc<Snapshot>) -> Self {
        let (first_draw, n, version) = (draws[0].draw, draws.len(), weights.version);
        let handle = actix::spawn(sample_round(actors, step, draws, weights));
        Prefetch {
            step,
            first_draw,
            draws: n,
            version,
            round: Box::pin(async move {
                handle
                    .await
                    .map_err(|e| anyhow!("prefetched round of step {}: {e}", step + 1))?
            }),
        }
    }

    /// The round, if it is the one step `step` wants next (`need` draws from `cursor`).
    pub async fn take(self, step: u64, cursor: u64, need: usize) -> Result<Vec<GroupResult>> {
        if (self.step, self.first_draw, self.draws) != (step, cursor, need) {
            bail!(
                "prefetched round (step {}, draws {}..+{}) does not match step {} (draws \
                 {cursor}..+{need})",
                self.step + 1,
                self.first_draw,
                self.draws,
                step + 1
            );
        }
        self.round.await
    }
}
