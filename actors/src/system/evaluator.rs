//! The evaluator actor: held-out evaluation (mean reward and exact-hit rate on the validation
//! prompts) of one published version, on its own sync thread and reading the published model in
//! place, so the learner goes on training meanwhile. Results come back through a bounded
//! crossbeam channel tagged with the step and version they belong to; `EvalQueue` is the
//! trainer's end (at most `system.pending_evals` evaluations in flight).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix::prelude::*;
use anyhow::{anyhow, bail, Result};
use crossbeam::channel::{bounded, Receiver, Sender, TryRecvError};
use grrm_rewards::RewardSet;

use super::publish::Snapshot;
use super::shared::Shared;
use super::supervise::{supervised, WorkFailure};
use super::timeline::Activity;
use crate::srpo::engine::EvalReport;
use crate::srpo::run::TaggedEval;

/// Evaluate `weights`, the policy after `step` steps; the result goes to `reply`.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct Evaluate {
    pub step: u64,
    pub weights: Arc<Snapshot>,
    pub reply: Sender<EvalDone>,
    /// Restarts so far (a panicking evaluator is restarted and the job sent again).
    pub attempt: u64,
}

#[derive(Debug)]
pub struct EvalDone {
    pub step: u64,
    pub version: u64,
    pub result: Result<EvalReport, String>,
}

pub struct EvaluatorActor {
    shared: Arc<Shared>,
    id: u64,
    rewards: Option<RewardSet>,
}

impl EvaluatorActor {
    /// The first instance takes `rewards` (built when the run started); restarts build fresh
    /// ones.
    pub fn factory(
        shared: Arc<Shared>,
        rewards: RewardSet,
    ) -> impl Fn() -> EvaluatorActor + Send + Sync + 'static {
        let slot = Mutex::new(Some(rewards));
        move || {
            shared.bump("evaluator.starts", 1);
            EvaluatorActor {
                id: shared.next_id("evaluator"),
                shared: shared.clone(),
                rewards: slot.lock().expect("rewards slot").take(),
            }
        }
    }
}

impl Actor for EvaluatorActor {
    type Context = SyncContext<Self>;
}

impl Handler<Evaluate> for EvaluatorActor {
    type Result = ();
    fn handle(&mut self, msg: Evaluate, ctx: &mut SyncContext<Self>) {
        let shared = self.shared.clone();
        let version = msg.weights.version;
        let _span =
            tracing::info_span!("evaluator", actor = self.id, step = msg.step, version).entered();
        let start = Instant::now();
        let r = supervised(&shared, "evaluator", ctx, || {
            shared.tick("evaluator");
            if self.rewards.is_none() {
                self.rewards = Some(shared.run.build_rewards()?);
            }
            let rewards = self.rewards.as_ref().expect("built above");
            shared.run.evaluate(&msg.weights.model, rewards)
        });
        let result = match r {
            Ok(rep) => Ok(rep),
            Err(WorkFailure::Restarted(why))
                if msg.attempt < shared.run.cfg.system.max_retries as u64 =>
            {
                tracing::warn!("evaluation of step {} re-queued after: {why}", msg.step);
                shared.bump("evaluator.requeued", 1);
                ctx.address().do_send(Evaluate {
                    attempt: msg.attempt + 1,
                    ..msg
                });
                return;
            }
            Err(WorkFailure::Restarted(why) | WorkFailure::Failed(why)) => Err(why),
        };
        shared.timeline.record(Activity {
            actor: "evaluator",
            id: self.id,
            step: msg.step,
            version,
            start,
            end: Instant::now(),
        });
        // A closed channel means the trainer is gone; nobody waits for the result.
        let _ = msg.reply.send(EvalDone {
            step: msg.step,
            version,
            result,
        });
    }
}

/// The trainer's end of the evaluator: started evaluations and finished ones not yet taken.
pub struct EvalQueue {
    tx: Sender<EvalDone>,
    rx: Receiver<EvalDone>,
    /// Steps of evaluations in flight.
    pending: Vec<u64>,
    done: Vec<TaggedEval>,
    cap: usize,
}

impl EvalQueue {
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        // Never more than `cap` results outstanding, so the evaluator never blocks on a send.
        let (tx, rx) = bounded(cap);
        EvalQueue {
            tx,
            rx,
            pending: Vec::new(),
            done: Vec::new(),
            cap,
        }
    }

    /// Starts evaluating `weights` (the policy after `step`); waits first while `cap`
    /// evaluations are in flight (back-pressure).
    pub fn start(
        &mut self,
        evaluator: &Addr<EvaluatorActor>,
        step: u64,
        weights: Arc<Snapshot>,
    ) -> Result<()> {
        while self.pending.len() >= self.cap {
            self.receive(true)?;
        }
        evaluator.do_send(Evaluate {
            step,
            weights,
            reply: self.tx.clone(),
            attempt: 0,
        });
        self.pending.push(step);
        Ok(())
    }

    /// Finished evaluations; first waits for every one started for a step <= `wait_through`.
    pub fn finished(&mut self, wait_through: Option<u64>) -> Result<Vec<TaggedEval>> {
        while self.receive(false)? {}
        if let Some(t) = wait_through {
            while self.pending.iter().any(|&s| s <= t) {
                self.receive(true)?;
            }
        }
        Ok(std::mem::take(&mut self.done))
    }

    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Takes one result (waiting for it when `block`); false when none was there.
    fn receive(&mut self, block: bool) -> Result<bool> {
        let d = if block {
            self.rx
                .recv()
                .map_err(|e| anyhow!("evaluator channel: {e}"))?
        } else {
            match self.rx.try_recv() {
                Ok(d) => d,
                Err(TryRecvError::Empty) => return Ok(false),
                Err(e) => bail!("evaluator channel: {e}"),
            }
        };
        if let Some(i) = self.pending.iter().position(|&s| s == d.step) {
            self.pending.remove(i);
        }
        match d.result {
            Ok(report) => self.done.push(TaggedEval {
                step: d.step,
                version: d.version,
                report,
            }),
            Err(e) => bail!(
                "held-out evaluation after step {} (version {}): {e}",
                d.step,
                d.version
            ),
        }
        Ok(true)
    }
}

/// Evaluates `weights` now (the evaluator actor does it; this thread waits).
pub fn evaluate_now(
    evaluator: &Addr<EvaluatorActor>,
    step: u64,
    weights: Arc<Snapshot>,
) -> Result<EvalReport> {
    let (tx, rx) = bounded(1);
    evaluator.do_send(Evaluate {
        step,
        weights,
        reply: tx,
        attempt: 0,
    });
    let d = rx.recv().map_err(|e| anyhow!("evaluator channel: {e}"))?;
    d.result.map_err(|e| {
        anyhow!(
            "held-out evaluation after step {} (version {}): {e}",
            d.step,
            d.version
        )
    })
}
