//! The held-out evaluations of a run: started after the steps `rl_eval_every` names (the actor
//! system runs them beside training, the engine at once), logged to metrics as they finish with
//! the step and policy version they belong to, and the final one awaited before the run ends.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use super::engine::EvalReport;
use super::run::{TaggedEval, Trainer};
use crate::metrics_log::{phases, MetricsLog, MetricsWriter, Record};

/// The eval record of `e`.
pub fn eval_record(e: &TaggedEval) -> Record {
    Record::new(e.step, phases::EVAL)
        .with("eval_reward_mean", e.report.reward_mean)
        .with("eval_hit_rate", e.report.hit_rate)
        .with("version", e.version as f64)
}

#[derive(Default)]
pub struct HeldOut {
    /// Step of the last evaluation started.
    started: Option<u64>,
    /// Logged results by step.
    logged: BTreeMap<u64, EvalReport>,
}

impl HeldOut {
    /// Starts evaluating the trainer's current weights (after `trainer.state().step` steps).
    pub fn start(&mut self, trainer: &mut dyn Trainer, log: &mut MetricsWriter) -> Result<()> {
        self.started = Some(trainer.state().step);
        if let Some(e) = trainer.start_eval()? {
            self.log(log, e)?;
        }
        Ok(())
    }

    /// Logs finished evaluations; waits for those of steps <= `wait_through` first.
    pub fn collect(
        &mut self,
        trainer: &mut dyn Trainer,
        log: &mut MetricsWriter,
        wait_through: Option<u64>,
    ) -> Result<()> {
        for e in trainer.finished_evals(wait_through)? {
            self.log(log, e)?;
        }
        Ok(())
    }

    fn log(&mut self, log: &mut MetricsWriter, e: TaggedEval) -> Result<()> {
        log.append(&eval_record(&e))?;
        self.logged.insert(e.step, e.report);
        Ok(())
    }

    /// Step of the last evaluation started.
    pub fn started(&self) -> Option<u64> {
        self.started
    }

    /// The logged result for `step`.
    pub fn result(&self, step: u64) -> Result<EvalReport> {
        self.logged
            .get(&step)
            .copied()
            .with_context(|| format!("no held-out evaluation was logged for step {step}"))
    }
}

/// Whether `metrics` holds an eval record for `step` (a run killed while that evaluation ran
/// has none; resuming from that step's checkpoint evaluates it again).
pub fn logged_in(metrics: &std::path::Path, step: u64) -> Result<bool> {
    if !metrics.exists() {
        return Ok(false);
    }
    let log = MetricsLog::read(metrics)
        .with_context(|| format!("reading {} to resume", metrics.display()))?;
    Ok(log
        .records
        .iter()
        .any(|r| r.phase == phases::EVAL && r.step == step))
}
