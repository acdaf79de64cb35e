//! `ActorTrainer`: the actor system as a `Trainer`. Runs the actix system on a thread of its
//! own (so evaluations and a round sampled ahead progress between the trainer's calls), starts
//! the actors, publishes the starting weights, and drives steps, evaluations and checkpoints.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use anyhow::{anyhow, Context as _, Result};
use grrm_model::gpu::AdapterSelector;
use grrm_model::GpuContext;

use super::coordinator::{Coordinator, PrefetchSlot, RunStep};
use super::evaluator::{evaluate_now, EvalQueue, EvaluatorActor};
use super::learner::{self, LearnerActor};
use super::rollouts::{RolloutPool, Rollouts};
use super::round::RoundActors;
use super::shared::Shared;
use super::workers::{ReferenceActor, RewardActor};
use crate::checkpoints::CheckpointDir;
use crate::remote::RemoteRollouts;
use crate::srpo::engine::{load_checkpoint, EvalReport, RunContext, StepReport, TrainState};
use crate::srpo::pieces::{upload_into, Learner};
use crate::srpo::run::{TaggedEval, Trainer};
use crate::srpo::Counts;

pub struct ActorTrainer {
    system: System,
    thread: Option<std::thread::JoinHandle<()>>,
    coordinator: Addr<Coordinator>,
    learner: Addr<LearnerActor>,
    evaluator: Addr<EvaluatorActor>,
    evals: EvalQueue,
    prefetch: PrefetchSlot,
    pub shared: Arc<Shared>,
    state: TrainState,
    remote: Option<Arc<RemoteRollouts>>,
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

    /// Continues from a checkpoint folder; the checkpoint's weights are published first.
    pub fn resume(run: RunContext, dir: &Path) -> Result<Self> {
        let mut learner = Learner::new(&run.ctx, &run.cfg, &run.base)?;
        let (state, weights) = load_checkpoint(dir, &run, &learner)?;
        upload_into(&learner.model.params, &weights)?;
        learner.opt.step = state.optimizer_step;
        Self::start(run, learner, state)
    }

    fn start(run: RunContext, learner: Learner, state: TrainState) -> Result<Self> {
        let rewards = run.build_rewards()?;
        let mut rollout_ctxs = Vec::new();
        for (i, a) in run.cfg.system.rollout_adapters.iter().enumerate() {
            rollout_ctxs.push(
                GpuContext::open(&AdapterSelector::parse(a)).with_context(|| {
                    format!("rl config: key `system.rollout_adapters[{i}]`: opening adapter {a:?}")
                })?,
            );
        }
        if rollout_ctxs.is_empty() {
            rollout_ctxs.push(run.ctx.clone());
        }
        let shared = Shared::new(run);
        shared.publish(state.version, &learner.model.params)?;
        let s = shared.clone();
        let prefetch: PrefetchSlot = Arc::new(Mutex::new(None));
        let slot = prefetch.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        // The actix system runs on a thread of its own: a `SyncArbiter` forwards its mailbox to
        // its worker threads from the system's arbiter, so evaluations started with `do_send`
        // and a round sampled ahead progress between the trainer's calls.
        let thread = std::thread::Builder::new()
            .name("grrm-actors".into())
            .spawn(move || {
                let sys = System::new();
                let started = sys.block_on(async move {
                    let sc = &s.run.cfg.system;
                    let rollout = match &sc.remote {
                        Some(r) => {
                            Rollouts::Remote(Arc::new(RemoteRollouts::connect(r, &s).await?))
                        }
                        None => Rollouts::Local(
                            rollout_ctxs
                                .into_iter()
                                .enumerate()
                                .map(|(i, c)| RolloutPool::start(&s, i, c, sc.rollout_workers))
                                .collect(),
                        ),
                    };
                    let remote = match &rollout {
                        Rollouts::Remote(r) => Some(r.clone()),
                        Rollouts::Local(_) => None,
                    };
                    let s2 = s.clone();
                    let reward =
                        SyncArbiter::start(sc.reward_workers, move || RewardActor::new(s2.clone()));
                    let s3 = s.clone();
                    let reference = SyncArbiter::start(1, move || ReferenceActor::new(s3.clone()));
                    let evaluator =
                        SyncArbiter::start(1, EvaluatorActor::factory(s.clone(), rewards));
                    let learner = SyncArbiter::start(1, LearnerActor::factory(s.clone(), learner));
                    let coordinator = Coordinator {
                        round: RoundActors {
                            shared: s,
                            rollout,
                            reward,
                        },
                        reference,
                        learner: learner.clone(),
                        prefetch: slot,
                    }
                    .start();
                    anyhow::Ok((System::current(), coordinator, learner, evaluator, remote))
                });
                let failed = started.is_err();
                let _ = tx.send(started);
                if failed {
                    return;
                }
                if let Err(e) = sys.run() {
                    tracing::warn!("actor system: {e}");
                }
            })
            .context("starting the actor system thread")?;
        let (system, coordinator, learner, evaluator, remote) = rx
            .recv()
            .map_err(|_| anyhow!("the actor system stopped while starting the actors"))??;
        Ok(ActorTrainer {
            system,
            thread: Some(thread),
            coordinator,
            learner,
            evaluator,
            evals: EvalQueue::new(shared.run.cfg.system.pending_evals),
            prefetch,
            shared,
            state,
            remote,
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

    /// The remote rollout client when `system.remote` is set.
    pub fn remote(&self) -> Option<&Arc<RemoteRollouts>> {
        self.remote.as_ref()
    }

    /// Held-out evaluations still running.
    pub fn evals_in_flight(&self) -> usize {
        self.evals.in_flight()
    }

    /// The published weights, which are the learner's current ones between steps.
    fn current_weights(&self) -> Result<Arc<super::publish::Snapshot>> {
        let w = self.shared.published()?;
        if w.version != self.state.version {
            anyhow::bail!(
                "published version {} is not the learner's {}",
                w.version,
                self.state.version
            );
        }
        Ok(w)
    }
}

impl Trainer for ActorTrainer {
    fn step(&mut self) -> Result<StepReport> {
        let cfg = &self.shared.run.cfg;
        let msg = RunStep {
            state: self.state.clone(),
            prefetch_next: cfg.system.max_staleness > 0 && self.state.step + 1 < cfg.steps,
        };
        let (report, state) = pollster::block_on(self.coordinator.send(msg))
            .map_err(|e| anyhow!("coordinator mailbox: {e}"))??;
        self.state = state;
        Ok(report)
    }

    fn evaluate(&mut self) -> Result<EvalReport> {
        evaluate_now(&self.evaluator, self.state.step, self.current_weights()?)
    }

    fn start_eval(&mut self) -> Result<Option<TaggedEval>> {
        let w = self.current_weights()?;
        self.evals.start(&self.evaluator, self.state.step, w)?;
        Ok(None)
    }

    fn finished_evals(&mut self, wait_through: Option<u64>) -> Result<Vec<TaggedEval>> {
        self.evals.finished(wait_through)
    }

    fn save(&mut self, dir: &CheckpointDir, keep_last: Option<usize>) -> Result<()> {
        let msg = learner::Save {
            dir: dir.clone(),
            keep_last,
            state: self.state.clone(),
        };
        pollster::block_on(self.learner.send(msg)).map_err(|e| anyhow!("learner mailbox: {e}"))?
    }

    fn state(&self) -> &TrainState {
        &self.state
    }

    fn state_mut(&mut self) -> &mut TrainState {
        &mut self.state
    }
}

impl Drop for ActorTrainer {
    fn drop(&mut self) {
        if let Some(p) = self.prefetch.lock().ok().and_then(|mut s| s.take()) {
            // Its draws were never committed to the cursor: a resumed run samples them again.
            tracing::info!(
                "dropping the round sampled ahead for step {} (draws {}..+{}, uncounted)",
                p.step + 1,
                p.first_draw,
                p.draws
            );
        }
        if self.evals.in_flight() > 0 {
            tracing::warn!(
                "{} held-out evaluations still running at shutdown",
                self.evals.in_flight()
            );
        }
        self.system.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Sync actors run on detached threads: wait until they have dropped their GPU state
        // (each holds the shared state), so no device is torn down while the process exits.
        // `grrm rl` on NVIDIA segfaulted at exit without this.
        let t0 = std::time::Instant::now();
        while Arc::strong_count(&self.shared) > 1 && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
