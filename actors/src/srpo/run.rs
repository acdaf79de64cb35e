//! `run_rl`: the SRPO training loop around a trainer (the actor system or the synchronous
//! engine): held-out evaluation before, every `rl_eval_every` steps (beside training with the
//! actors) and after; metrics JSONL and the summary line per step; checkpoints every
//! `checkpoint_every` steps and at the end; `--resume` from the newest checkpoint.

use std::time::Instant;

use anyhow::{Context, Result};
use grrm_model::gpu::AdapterSelector;
use grrm_model::GpuContext;
use grrm_rewards::Registry;

use super::config::RlConfig;
use super::engine::{EvalReport, RlEngine, RunContext, StepReport, TrainState};
use super::held_out::{eval_record, logged_in, HeldOut};
use crate::checkpoints::CheckpointDir;
use crate::metrics_log::{phases, Record};
use crate::run_dir::RunDir;
use crate::summary::StepSummary;

/// A held-out evaluation of the policy after `step` steps (policy `version`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TaggedEval {
    pub step: u64,
    pub version: u64,
    pub report: EvalReport,
}

/// What drives the steps: the synchronous engine or the actor system.
pub trait Trainer {
    fn step(&mut self) -> Result<StepReport>;
    /// Held-out evaluation of the current weights, waited for.
    fn evaluate(&mut self) -> Result<EvalReport>;
    /// Starts a held-out evaluation of the current weights. A trainer without an evaluator
    /// evaluates now and returns it; the actor system returns `None` and goes on.
    fn start_eval(&mut self) -> Result<Option<TaggedEval>> {
        let report = self.evaluate()?;
        Ok(Some(TaggedEval {
            step: self.state().step,
            version: self.state().version,
            report,
        }))
    }
    /// Evaluations finished since the last call, after waiting for every one started for a
    /// step <= `wait_through`.
    fn finished_evals(&mut self, _wait_through: Option<u64>) -> Result<Vec<TaggedEval>> {
        Ok(Vec::new())
    }
    fn save(&mut self, dir: &CheckpointDir, keep_last: Option<usize>) -> Result<()>;
    fn state(&self) -> &TrainState;
    fn state_mut(&mut self) -> &mut TrainState;
}

impl Trainer for RlEngine {
    fn step(&mut self) -> Result<StepReport> {
        RlEngine::step(self)
    }
    fn evaluate(&mut self) -> Result<EvalReport> {
        RlEngine::evaluate(self)
    }
    fn save(&mut self, dir: &CheckpointDir, keep_last: Option<usize>) -> Result<()> {
        self.save_checkpoint(dir, keep_last)
    }
    fn state(&self) -> &TrainState {
        &self.state
    }
    fn state_mut(&mut self) -> &mut TrainState {
        &mut self.state
    }
}

/// Options of `run_rl` besides the config.
pub struct RunOptions {
    /// Continue from the run folder's newest checkpoint.
    pub resume: bool,
    /// Rewards available to the config (built-ins plus user rewards).
    pub registry: Registry,
    /// Device; default: `cfg.adapter`, else `GRRM_ADAPTER`, else the first adapter.
    pub ctx: Option<GpuContext>,
    /// Print the per-step summary line on stdout.
    pub print: bool,
    /// Stop after this many steps of this call (tests of interrupted runs); None = to the end.
    pub max_steps_this_call: Option<u64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            resume: false,
            registry: Registry::new(),
            ctx: None,
            print: true,
            max_steps_this_call: None,
        }
    }
}

/// The outcome of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct RlSummary {
    /// Held-out mean reward before training and after the last step.
    pub reward_before: f64,
    pub reward_after: f64,
    pub hit_rate_before: f64,
    pub hit_rate_after: f64,
    /// Steps done in all (including those before a resume).
    pub steps: u64,
    /// Wall time of this call.
    pub seconds: f64,
    pub mean_step_seconds: f64,
    pub totals: super::Counts,
}

/// Trains per `cfg` into `run` (a fresh run folder, or one with checkpoints when resuming).
pub fn run_rl(cfg: &RlConfig, run: &RunDir, opts: RunOptions) -> Result<RlSummary> {
    let t0 = Instant::now();
    cfg.validate()?;
    let ctx = match opts.ctx {
        Some(c) => c,
        None => GpuContext::open(&AdapterSelector::from_arg_or_env(cfg.adapter.as_deref()))
            .context("opening the GPU adapter")?,
    };
    let rc = RunContext::load(cfg, &ctx, opts.registry)?;
    let latest = if opts.resume {
        Some(
            run.checkpoints()
                .latest()?
                .with_context(|| format!("--resume: {} has no checkpoint", run.path().display()))?,
        )
    } else {
        None
    };
    let mut trainer: Box<dyn Trainer> = if cfg.system.actors {
        Box::new(match &latest {
            Some(c) => crate::system::ActorTrainer::resume(rc, &c.path)?,
            None => crate::system::ActorTrainer::new(rc)?,
        })
    } else {
        Box::new(match &latest {
            Some(c) => RlEngine::resume(rc, &c.path)?,
            None => RlEngine::new(rc)?,
        })
    };
    if let Some(c) = &latest {
        tracing::info!("resuming from {} (step {})", c.path.display(), c.step);
    }
    let (mut log, _) = run.metrics_writer()?;
    let mut held = HeldOut::default();
    if trainer.state().initial_eval.is_none() {
        let e = trainer.evaluate()?;
        let st = trainer.state();
        log.append(&eval_record(&TaggedEval {
            step: st.step,
            version: st.version,
            report: e,
        }))?;
        if opts.print {
            println!(
                "held-out before training: reward {:.4} | hit {:.4} ({} prompts x {})",
                e.reward_mean, e.hit_rate, e.prompts, cfg.eval_samples
            );
        }
        trainer.state_mut().initial_eval = Some(e);
    }
    let before = trainer.state().initial_eval.expect("set above");
    let due =
        |step: u64| cfg.rl_eval_every > 0 && step > 0 && step.is_multiple_of(cfg.rl_eval_every);
    let resumed_at = trainer.state().step;
    // A kill while the checkpoint step's evaluation ran lost it; its weights are these.
    if latest.is_some() && due(resumed_at) && !logged_in(&run.metrics_path(), resumed_at)? {
        held.start(trainer.as_mut(), &mut log)?;
    }
    let keep = (cfg.keep_checkpoints > 0).then_some(cfg.keep_checkpoints);
    let mut step_secs = Vec::new();
    let mut done_here = 0;
    while trainer.state().step < cfg.steps && opts.max_steps_this_call.is_none_or(|m| done_here < m)
    {
        let r = trainer.step()?;
        done_here += 1;
        step_secs.push(r.seconds);
        let mut rec = Record::new(r.step, phases::RL);
        rec.metrics = r.metrics.clone();
        log.append(&rec)?;
        if opts.print {
            println!("{}", StepSummary::from_record(&rec, Some(cfg.steps)));
        }
        if due(r.step) {
            held.start(trainer.as_mut(), &mut log)?;
        }
        held.collect(trainer.as_mut(), &mut log, None)?;
        let last = r.step == cfg.steps;
        if last || (cfg.checkpoint_every > 0 && r.step % cfg.checkpoint_every == 0) {
            // Earlier steps' evaluations are in the log before the checkpoint that follows
            // them; this step's, if running, is redone by a resume from this checkpoint.
            held.collect(trainer.as_mut(), &mut log, Some(r.step - 1))?;
            trainer.save(run.checkpoints(), keep)?;
        }
    }
    let final_step = trainer.state().step;
    if held.started() != Some(final_step) {
        held.start(trainer.as_mut(), &mut log)?;
    }
    held.collect(trainer.as_mut(), &mut log, Some(u64::MAX))?;
    let after = held.result(final_step)?;
    if opts.print {
        println!(
            "held-out after {} steps: reward {:.4} (before {:.4}) | hit {:.4} (before {:.4})",
            trainer.state().step,
            after.reward_mean,
            before.reward_mean,
            after.hit_rate,
            before.hit_rate
        );
    }
    Ok(RlSummary {
        reward_before: before.reward_mean,
        reward_after: after.reward_mean,
        hit_rate_before: before.hit_rate,
        hit_rate_after: after.hit_rate,
        steps: trainer.state().step,
        seconds: t0.elapsed().as_secs_f64(),
        mean_step_seconds: if step_secs.is_empty() {
            0.0
        } else {
            step_secs.iter().sum::<f64>() / step_secs.len() as f64
        },
        totals: trainer.state().totals,
    })
}
