//! Supervised fine-tuning (`grrm sft`, issue 6 item 3): the curriculum in its order, loss on
//! assistant tokens only, token-mean over each optimizer step's accumulated micro-batches,
//! AdamW with global-norm clipping, linear warm-up then cosine decay, checkpoints that resume
//! exactly, the final model in the Hugging Face layout.
//!
//! ```text
//! config.rs    [sft] config (SftConfig, SftFile) with SPEC.md defaults
//! schedule.rs  learning rate per step (transformers' warm-up + cosine)
//! data.rs      reading, encoding (assistant-only mask, cut-off), step plan, micro-batches
//! trainer.rs   SftTrainer: model, gradients, AdamW; one step; memory plan and limits
//! state.rs     trainer_state.json and the AdamW moments of a checkpoint
//! mod.rs       run_sft: the loop with metrics, progress, summary lines, checkpoints
//! ```
//!
//! A checkpoint `checkpoints/step-N/` holds config.json, model.safetensors (f32), the tokenizer
//! files (so `AutoModelForCausalLM.from_pretrained` loads it), `optimizer/exp_avg*/` and
//! `trainer_state.json`. Resuming loads the newest one, drops `metrics.jsonl` records of later
//! steps (they are recomputed identically) and continues with step N+1.

pub mod config;
pub mod data;
pub mod schedule;
pub mod state;
pub mod trainer;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use grrm_model::gpu::AdapterSelector;
use grrm_model::GpuContext;
use serde::{Deserialize, Serialize};

pub use config::{Batching, DataFormat, SaveDtype, Schedule, SftConfig, SftFile, SftOptimizer};
pub use data::{plan_steps, DataFingerprint, EncodedData, MicroBatch, StepPlan};
pub use schedule::LrSchedule;
pub use state::TrainerState;
pub use trainer::{memory_report, Accumulated, MemoryReport, SftTrainer, StepStats};

use crate::atomic::{write_atomic, write_json_atomic};
use crate::metrics_log::phases;
use crate::progress::{Progress, ProgressMode};
use crate::run_dir::RunDir;
use crate::summary::StepSummary;

/// Metric names of the SFT loop in `metrics.jsonl`.
pub mod names {
    pub use crate::metrics_log::names::{LOSS, STEP_SECONDS};
    pub const LR: &str = "lr";
    pub const GRAD_NORM: &str = "grad_norm";
    pub const TOKENS_PER_S: &str = "tokens_per_s";
    /// Real tokens of the step.
    pub const TOKENS: &str = "tokens";
    pub const TARGET_TOKENS: &str = "target_tokens";
    /// Share of the computed token slots that were padding.
    pub const PAD_FRAC: &str = "pad_frac";
    /// Samples consumed / samples per epoch.
    pub const EPOCH: &str = "epoch";
}

/// The run's final report, also written to `sft_summary.json` in the run folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SftSummary {
    pub first_loss: f64,
    pub last_loss: f64,
    /// Mean loss of the last 5% of the steps (at least one) taken by this process: one step's
    /// loss is one micro-batch's and swings with the curriculum's task mix.
    #[serde(default)]
    pub final_loss_mean: f64,
    /// Steps done (over every process of the run) and planned.
    pub steps: u64,
    pub total_steps: u64,
    pub samples: u64,
    pub tokens: u64,
    pub target_tokens: u64,
    /// Training seconds over every process of the run.
    pub seconds: f64,
    pub tokens_per_s: f64,
    /// The final model, once every step is done.
    pub output: Option<PathBuf>,
    pub finished: bool,
}

pub const SUMMARY_FILE: &str = "sft_summary.json";

/// How `run_sft` runs (not part of the config).
#[derive(Clone)]
pub struct SftOptions {
    /// The device; `None` opens `cfg.adapter` (or `GRRM_ADAPTER`, or the best adapter).
    pub ctx: Option<GpuContext>,
    pub progress: ProgressMode,
    /// Continue from the run folder's newest checkpoint (from scratch when it has none).
    pub resume: bool,
    /// Stop once this many steps are done, as an interruption would (the final model is not
    /// saved); `None` runs the whole plan.
    pub stop_after: Option<u64>,
}

impl Default for SftOptions {
    fn default() -> Self {
        SftOptions {
            ctx: None,
            progress: ProgressMode::detect(),
            resume: false,
            stop_after: None,
        }
    }
}

/// The final model's folder: `cfg.output_dir`, or `<run>/model`.
pub fn output_dir(cfg: &SftConfig, run: &RunDir) -> PathBuf {
    if cfg.output_dir.as_os_str().is_empty() {
        run.path().join("model")
    } else {
        cfg.output_dir.clone()
    }
}

/// Opens the adapter the config names (empty: `GRRM_ADAPTER`, else the best one).
pub fn open_adapter(cfg: &SftConfig) -> Result<GpuContext> {
    let arg = (!cfg.adapter.is_empty()).then_some(cfg.adapter.as_str());
    GpuContext::open(&AdapterSelector::from_arg_or_env(arg))
        .with_context(|| format!("opening adapter {:?}", cfg.adapter))
}

/// Supervised fine-tuning of `cfg.model` on `cfg.data` into the run folder `run`.
pub fn run_sft(cfg: &SftConfig, run: &RunDir, opts: &SftOptions) -> Result<SftSummary> {
    let span = tracing::info_span!("sft", run = %run.path().display());
    let _enter = span.enter();
    cfg.validate()?;
    let ctx = match &opts.ctx {
        Some(c) => c.clone(),
        None => open_adapter(cfg)?,
    };
    let resume_from = if opts.resume {
        run.checkpoints().latest()?
    } else {
        None
    };
    let mut trainer = SftTrainer::new(cfg, &ctx, resume_from.as_ref().map(|c| c.path.as_path()))?;
    let total = trainer.total_steps() as u64;
    let progress = Progress::with_mode("sft", total, opts.progress);
    progress.println(format!(
        "sft: {} samples ({} tokens, {} targets, {} truncated at {}), {} steps of {} x {} \
         samples on {}",
        trainer.data.samples.len(),
        trainer.data.tokens,
        trainer.data.target_tokens,
        trainer.data.truncated,
        cfg.cutoff_len,
        total,
        cfg.micro_batch_size,
        cfg.grad_accum_steps,
        ctx.info().name
    ));
    progress.println(format!("sft: {}", trainer.memory));
    tracing::info!(memory = %trainer.memory, steps = total, "sft plan");
    if let Some(c) = &resume_from {
        let dropped = drop_metrics_after(&run.metrics_path(), phases::SFT, c.step)?;
        progress.println(format!(
            "sft: resuming from {} (step {}); {dropped} later metrics records dropped",
            c.path.display(),
            c.step
        ));
        progress.set_position(c.step);
    }
    let (mut metrics, _) = run.metrics_writer()?;
    let n_samples = trainer.data.samples.len().max(1) as f64;
    let process_start = Instant::now();
    let tail_len = (total as usize).div_ceil(20).max(1);
    let mut tail: std::collections::VecDeque<f64> = std::collections::VecDeque::new();
    while !trainer.finished() {
        if opts.stop_after.is_some_and(|s| trainer.state.step >= s) {
            break;
        }
        let step_span = tracing::debug_span!("sft_step", step = trainer.state.step + 1);
        let s = step_span.in_scope(|| trainer.train_step())?;
        let tokens_per_s = s.tokens as f64 / s.seconds.max(1e-9);
        if tail.len() == tail_len {
            tail.pop_front();
        }
        tail.push_back(s.loss);
        if s.step % cfg.log_every as u64 == 0 || s.step == total {
            let pad_frac = 1.0 - s.tokens as f64 / s.padded_tokens.max(1) as f64;
            metrics.log(
                s.step,
                phases::SFT,
                &[
                    (names::LOSS, s.loss),
                    (names::LR, s.lr),
                    (names::GRAD_NORM, s.grad_norm),
                    (names::TOKENS_PER_S, tokens_per_s),
                    (names::STEP_SECONDS, s.seconds),
                    (names::TOKENS, s.tokens as f64),
                    (names::TARGET_TOKENS, s.target_tokens as f64),
                    (names::PAD_FRAC, pad_frac),
                    (
                        names::EPOCH,
                        trainer.state.samples_consumed as f64 / n_samples,
                    ),
                ],
            )?;
            let line = StepSummary::new(s.step, Some(total))
                .field("loss", s.loss)
                .field("lr", s.lr)
                .field("gnorm", s.grad_norm)
                .field("tok/s", tokens_per_s)
                .seconds(s.seconds);
            progress.println(line.to_string());
            tracing::info!(
                step = s.step,
                loss = s.loss,
                lr = s.lr,
                grad_norm = s.grad_norm,
                tokens_per_s,
                "sft step"
            );
        }
        progress.set_position(s.step);
        progress.set_message(format!("loss {:.4}", s.loss));
        if cfg.checkpoint_every > 0 && s.step % cfg.checkpoint_every as u64 == 0 {
            let c = run.checkpoints().save(s.step, Some(cfg.keep_last), |dir| {
                trainer.write_checkpoint(dir)
            })?;
            tracing::info!(path = %c.path.display(), "sft checkpoint");
        }
    }
    progress.finish();
    let finished = trainer.finished();
    let output = if finished {
        let out = output_dir(cfg, run);
        trainer.save_model(&out, cfg.save_dtype.storage())?;
        progress.println(format!("sft: final model saved to {}", out.display()));
        Some(out)
    } else {
        None
    };
    let st = &trainer.state;
    let summary = SftSummary {
        first_loss: st.first_loss.unwrap_or(f64::NAN),
        last_loss: st.last_loss.unwrap_or(f64::NAN),
        final_loss_mean: if tail.is_empty() {
            f64::NAN
        } else {
            tail.iter().sum::<f64>() / tail.len() as f64
        },
        steps: st.step,
        total_steps: total,
        samples: st.samples_consumed,
        tokens: st.tokens,
        target_tokens: st.target_tokens,
        seconds: st.train_seconds,
        tokens_per_s: st.tokens as f64 / st.train_seconds.max(1e-9),
        output,
        finished,
    };
    write_json_atomic(&run.path().join(SUMMARY_FILE), &summary)?;
    tracing::info!(
        wall_seconds = process_start.elapsed().as_secs_f64(),
        ?summary,
        "sft done"
    );
    Ok(summary)
}

/// Removes `phase` records with a step after `step` from a metrics file (atomically); returns
/// how many. Unreadable lines are kept as they are.
pub fn drop_metrics_after(path: &Path, phase: &str, step: u64) -> Result<usize> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut kept = String::with_capacity(text.len());
    let mut dropped = 0;
    for line in text.split_inclusive('\n') {
        let later = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .is_some_and(|v| {
                v.get("phase").and_then(|p| p.as_str()) == Some(phase)
                    && v.get("step")
                        .and_then(|s| s.as_u64())
                        .is_some_and(|s| s > step)
            });
        if later {
            dropped += 1;
        } else {
            kept.push_str(line);
        }
    }
    if dropped > 0 {
        write_atomic(path, kept.as_bytes())?;
    }
    Ok(dropped)
}
