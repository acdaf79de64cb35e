//! The coordinator actor: drives one step. Draws prompts and runs sampling rounds through the
//! rollout and reward actors (`round`), hands each round to the learner for advantages and the
//! filter, resamples up to the bound, gets reference log-probs per mini-batch, has the learner
//! update and publish, and accounts for every sample. Rollouts use the version published when
//! the step started (pinned per job). With `system.max_staleness >= 1` it also starts the next
//! step's first round before the reference and learner work of this one (`round::Prefetch`).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix::prelude::*;
use anyhow::{anyhow, bail, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use tracing::Instrument;

use super::call::call;
use super::learner::{AddRound, LearnerActor, Train};
use super::round::{sample_round, Prefetch, RoundActors};
use super::shared::{JobKey, Shared};
use super::workers::{RefLogprobs, ReferenceActor};
use crate::remote::client::{net_counters, net_metrics};
use crate::srpo::engine::{finish_step, StepReport, TrainState};
use crate::srpo::pieces::TrainSample;
use crate::srpo::step::StepBuilder;

/// The next step's first round while it samples ahead (shared with the trainer, which reports
/// one still pending at shutdown).
pub type PrefetchSlot = Arc<Mutex<Option<Prefetch>>>;

pub struct Coordinator {
    pub round: RoundActors,
    pub reference: Addr<ReferenceActor>,
    pub learner: Addr<LearnerActor>,
    pub prefetch: PrefetchSlot,
}

impl Actor for Coordinator {
    type Context = Context<Self>;
}

/// Run one step from `state`; returns the report and the state after it. `prefetch_next`:
/// start the next step's first round while this one trains (bounded staleness 1).
#[derive(Message)]
#[rtype(result = "Result<(StepReport, TrainState)>")]
pub struct RunStep {
    pub state: TrainState,
    pub prefetch_next: bool,
}

impl Handler<RunStep> for Coordinator {
    type Result = ResponseFuture<Result<(StepReport, TrainState)>>;

    fn handle(&mut self, msg: RunStep, _: &mut Context<Self>) -> Self::Result {
        let (actors, reference, learner, slot) = (
            self.round.clone(),
            self.reference.clone(),
            self.learner.clone(),
            self.prefetch.clone(),
        );
        let span = tracing::info_span!(
            "coordinator",
            actor = 0,
            step = msg.state.step,
            version = msg.state.version
        );
        Box::pin(
            async move {
                let shared = actors.shared.clone();
                let mut state = msg.state;
                let t0 = Instant::now();
                let net0 = net_counters(&shared);
                let run = &shared.run;
                let cfg = &run.cfg;
                let step = state.step;
                let weights = shared.published()?;
                if weights.version != state.version {
                    bail!(
                        "step {}: published weights are version {}, the learner's {}",
                        step + 1,
                        weights.version,
                        state.version
                    );
                }
                let mut ahead = slot.lock().expect("prefetch slot").take();
                let mut b = StepBuilder::new(cfg);
                loop {
                    let need = b.need(cfg);
                    if need == 0 {
                        break;
                    }
                    let round = match ahead.take() {
                        Some(p) => {
                            let r = p.take(step, state.cursor, need).await?;
                            state.cursor += need as u64;
                            r
                        }
                        None => {
                            let draws = run.draws(&mut state.cursor, need);
                            sample_round(actors.clone(), step, draws, weights.clone()).await?
                        }
                    };
                    b = learner
                        .send(AddRound {
                            step,
                            builder: b,
                            round,
                            learner_version: state.version,
                        })
                        .await
                        .map_err(|e| anyhow!("learner mailbox: {e}"))??;
                }
                if let Some(p) = ahead {
                    bail!("step {}: the prefetched round went unused", p.step + 1);
                }
                if msg.prefetch_next {
                    let mut cursor = state.cursor;
                    let draws = run.draws(&mut cursor, cfg.prompts_per_step);
                    let p = Prefetch::start(actors.clone(), step + 1, draws, weights.clone());
                    *slot.lock().expect("prefetch slot") = Some(p);
                }
                let mut groups = b.train_groups(&run.pools);
                let chunks: Vec<Arc<Vec<TrainSample>>> = groups
                    .chunks(cfg.mini_batch_prompts)
                    .map(|c| Arc::new(c.iter().flatten().cloned().collect()))
                    .collect();
                let cap = cfg.system.queue_capacity;
                let lps: Vec<Vec<Vec<f32>>> = stream::iter(chunks.into_iter().enumerate())
                    .map(|(i, samples)| {
                        let key = JobKey {
                            kind: "reference",
                            step,
                            id: i as u64,
                        };
                        call(&shared, &reference, key, RefLogprobs { step, samples })
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
                        step,
                        groups,
                        new_version: state.version + 1,
                    })
                    .await
                    .map_err(|e| anyhow!("learner mailbox: {e}"))??;
                shared.bump("coordinator.responses_trained", trained);
                check_drained(&shared, step)?;
                let mut report =
                    finish_step(&mut state, b, &up, t0.elapsed().as_secs_f64(), cfg.n)?;
                if cfg.system.remote.is_some() {
                    for (k, v) in net_metrics(net0, net_counters(&shared)) {
                        report.metrics.insert(k.into(), v);
                    }
                }
                Ok((report, state))
            }
            .instrument(span),
        )
    }
}

/// Every job of this step (or earlier) has its result; only the next step's prefetch may run.
fn check_drained(shared: &Shared, step: u64) -> Result<()> {
    let left: Vec<JobKey> = shared
        .in_flight
        .iter()
        .map(|e| e.key().clone())
        .filter(|k| k.step <= step)
        .collect();
    if !left.is_empty() {
        bail!(
            "{} jobs of step {} still in flight after it: {left:?}",
            left.len(),
            step + 1
        );
    }
    Ok(())
}
