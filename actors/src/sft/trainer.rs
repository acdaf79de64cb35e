//! The SFT trainer: the model, its gradients and AdamW on the GPU, the encoded data and the step
//! plan. One optimizer step = zero the gradients, forward/backward every micro-batch with
//! `coef = 1 / (target tokens of the whole step)` (a token-mean over the accumulated batch,
//! assistant tokens only), then global-norm clipping and AdamW at the scheduled learning rate.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use grrm_model::hf::{
    save_pretrained, Checkpoint, ModelConfig, SaveOptions, StorageDType, Weights,
};
use grrm_model::tokenizer::Tokenizer;
use grrm_model::transformer::{MemoryPlan, Optimizer, OptimizerConfig, Params, Transformer};
use grrm_model::{GpuContext, Recorder, Tensor};

use super::config::SftConfig;
use super::data::StepPlan;
use super::data::{encode_all, plan_steps, read_samples, DataFingerprint, EncodedData, MicroBatch};
use super::schedule::LrSchedule;
use super::state::{read_moments, write_moments, TrainerState};

/// What one optimizer step did.
#[derive(Clone, Debug, PartialEq)]
pub struct StepStats {
    /// 1-based number of the step just taken.
    pub step: u64,
    /// Token-mean loss over the step's target tokens, before the update.
    pub loss: f64,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    pub samples: usize,
    /// Real tokens and padded slots computed.
    pub tokens: usize,
    pub padded_tokens: usize,
    pub target_tokens: usize,
    pub seconds: f64,
}

/// The gradients of one step, accumulated and not yet applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Accumulated {
    pub loss: f64,
    pub samples: usize,
    pub tokens: usize,
    pub padded_tokens: usize,
    pub target_tokens: usize,
}

/// Memory needed by the largest micro-batch of the plan, and the limits it was checked against.
#[derive(Clone, Debug)]
pub struct MemoryReport {
    pub plan: MemoryPlan,
    /// Tokens (rows x padded length) of the largest micro-batch.
    pub micro_batch_tokens: usize,
    /// The same at the worst case the config allows (micro-batch size x cut-off).
    pub worst_case: MemoryPlan,
    pub max_buffer_bytes: u64,
    pub max_binding_bytes: u64,
}

impl std::fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        write!(
            f,
            "{} (largest micro-batch {} tokens; at micro_batch_size x cutoff_len: total {:.1} MiB); \
             adapter limits: buffer {:.0} MiB, storage binding {:.0} MiB",
            self.plan,
            self.micro_batch_tokens,
            mib(self.worst_case.total()),
            mib(self.max_buffer_bytes),
            mib(self.max_binding_bytes)
        )
    }
}

pub struct SftTrainer {
    pub cfg: SftConfig,
    pub model_cfg: ModelConfig,
    pub tokenizer: Tokenizer,
    pub model: Transformer,
    pub grads: Params,
    pub opt: Optimizer,
    pub data: EncodedData,
    pub plan: Vec<StepPlan>,
    pub schedule: LrSchedule,
    pub state: TrainerState,
    pub memory: MemoryReport,
    pad_id: u32,
    /// Host copy of the weights' structure (names, shapes) for downloads.
    like: Weights,
}

/// Rows per LM-head chunk as the transformer plans them (see `lm_head.rs`).
fn head_chunk_rows(ctx: &GpuContext, vocab: usize, n: usize) -> usize {
    let budget = ctx.max_binding_bytes().min(256 << 20);
    let rows = (budget / (vocab.max(1) as u64 * 4)) as usize;
    if rows >= n {
        n
    } else {
        (rows / 64 * 64).max(64)
    }
}

/// The memory plan for micro-batches of up to `tokens` tokens, refused when a tensor cannot
/// exist on this adapter: any buffer above `max_buffer_size`, or an activation (bound whole
/// by the attention, norm and SwiGLU kernels) above the storage-binding limit.
pub fn memory_report(
    ctx: &GpuContext,
    mc: &ModelConfig,
    micro_batch_tokens: usize,
    worst_tokens: usize,
    recompute: bool,
) -> Result<MemoryReport> {
    let n = micro_batch_tokens;
    let plan = MemoryPlan::for_training(mc, n, head_chunk_rows(ctx, mc.vocab_size, n), recompute);
    let worst = MemoryPlan::for_training(
        mc,
        worst_tokens,
        head_chunk_rows(ctx, mc.vocab_size, worst_tokens),
        recompute,
    );
    let report = MemoryReport {
        plan,
        micro_batch_tokens: n,
        worst_case: worst,
        max_buffer_bytes: ctx.limits().max_buffer_size,
        max_binding_bytes: ctx.max_binding_bytes(),
    };
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let widest = mc
        .hidden_size
        .max(mc.q_dim())
        .max(mc.kv_dim())
        .max(mc.intermediate_size) as u64;
    let act = n as u64 * widest * 4;
    if act > report.max_binding_bytes {
        bail!(
            "a micro-batch of {n} tokens needs activations of [{n}, {widest}] f32 = {:.1} MiB, \
             above this adapter's storage-binding limit of {:.1} MiB; lower sft.micro_batch_size \
             or sft.cutoff_len ({report})",
            mib(act),
            mib(report.max_binding_bytes)
        );
    }
    let embed = (mc.vocab_size * mc.hidden_size) as u64 * 4;
    let largest = embed
        .max(act)
        .max((mc.intermediate_size * mc.hidden_size) as u64 * 4);
    if largest > report.max_buffer_bytes {
        bail!(
            "a tensor of {:.1} MiB does not fit this adapter's largest buffer ({:.1} MiB) ({report})",
            mib(largest),
            mib(report.max_buffer_bytes)
        );
    }
    Ok(report)
}

impl SftTrainer {
    /// Loads the model (from `cfg.model`, or from the checkpoint `resume` with its optimizer
    /// state and progress), the tokenizer, and the data; plans the steps and the memory.
    pub fn new(cfg: &SftConfig, ctx: &GpuContext, resume: Option<&Path>) -> Result<Self> {
        let source = resume.unwrap_or(&cfg.model);
        let ckpt = Checkpoint::load(source)
            .with_context(|| format!("loading the model from {}", source.display()))?;
        let tokenizer = ckpt.tokenizer.clone().with_context(|| {
            format!(
                "{}: no tokenizer.json (SFT needs the model's tokenizer and chat template)",
                source.display()
            )
        })?;
        let mc = ckpt.config.clone();
        let pad_id = tokenizer
            .pad_token_id()
            .or(mc.pad_token_id)
            .or_else(|| tokenizer.eos_token_id())
            .unwrap_or(0);

        let samples = read_samples(&cfg.data, cfg.data_format)?;
        let fingerprint = DataFingerprint::of_file(&cfg.data, samples.len())?;
        let data = encode_all(&tokenizer, &samples, cfg.cutoff_len, &cfg.data)?;
        let lengths: Vec<usize> = data.samples.iter().map(|s| s.ids.len()).collect();
        let plan = plan_steps(cfg, &lengths);
        if plan.is_empty() {
            bail!("{}: the plan has no steps", cfg.data.display());
        }
        if data.max_len > mc.max_position_embeddings {
            bail!(
                "{}: a sample of {} tokens exceeds the model's max_position_embeddings {}; lower \
                 sft.cutoff_len",
                cfg.data.display(),
                data.max_len,
                mc.max_position_embeddings
            );
        }
        let micro_batch_tokens = plan
            .iter()
            .flat_map(|s| &s.micro_batches)
            .map(|mb| mb.len() * mb.iter().map(|&i| lengths[i]).max().unwrap_or(1))
            .max()
            .unwrap_or(1);
        let worst = cfg.micro_batch_size * cfg.cutoff_len.min(mc.max_position_embeddings);
        let memory = memory_report(
            ctx,
            &mc,
            micro_batch_tokens,
            worst,
            cfg.recompute_activations,
        )?;

        let model = Transformer::new(ctx, &mc, &ckpt.weights, data.max_len)?
            .with_recompute(cfg.recompute_activations);
        let grads = model.params.zeros_like()?;
        let mut opt = Optimizer::new(&model.params, OptimizerConfig::from(&cfg.optimizer))?;
        let schedule = LrSchedule::new(cfg.lr, cfg.warmup_ratio, plan.len(), cfg.schedule);
        let mut state = TrainerState {
            total_steps: plan.len() as u64,
            data: Some(fingerprint.clone()),
            ..Default::default()
        };
        if let Some(dir) = resume {
            let saved = TrainerState::read(dir)?;
            if saved.data.as_ref() != Some(&fingerprint) {
                bail!(
                    "{}: the data file changed since checkpoint {} ({:?} then, {:?} now)",
                    cfg.data.display(),
                    dir.display(),
                    saved.data,
                    fingerprint
                );
            }
            if saved.total_steps != plan.len() as u64 {
                bail!(
                    "checkpoint {} was made for a plan of {} steps, this config plans {}",
                    dir.display(),
                    saved.total_steps,
                    plan.len()
                );
            }
            let (m, v) = read_moments(dir, &mc)?;
            upload_into(&opt.m, &m)?;
            upload_into(&opt.v, &v)?;
            opt.step = saved.optimizer_step;
            state = saved;
        }
        Ok(SftTrainer {
            cfg: cfg.clone(),
            model_cfg: mc,
            tokenizer,
            model,
            grads,
            opt,
            data,
            plan,
            schedule,
            state,
            memory,
            pad_id,
            like: ckpt.weights,
        })
    }

    pub fn total_steps(&self) -> usize {
        self.plan.len()
    }

    pub fn finished(&self) -> bool {
        self.state.step as usize >= self.plan.len()
    }

    pub fn ctx(&self) -> &GpuContext {
        self.model.ctx()
    }

    /// Zeroes the gradients and accumulates those of step `step` (0-based) of the plan.
    pub fn accumulate(&self, step: usize) -> Result<Accumulated> {
        let plan = self
            .plan
            .get(step)
            .with_context(|| format!("step {step} is beyond the plan's {}", self.plan.len()))?;
        let micro: Vec<MicroBatch> = plan
            .micro_batches
            .iter()
            .map(|idx| MicroBatch::build(&self.data.samples, idx, self.pad_id))
            .collect();
        let target_tokens: usize = micro.iter().map(|m| m.target_tokens).sum();
        let coef = 1.0 / target_tokens.max(1) as f32;
        let ctx = self.ctx();
        let mut rec = Recorder::new(ctx, "sft-step");
        self.model.zero_grads(&mut rec, &self.grads)?;
        let mut losses: Vec<Tensor> = Vec::with_capacity(micro.len());
        for mb in &micro {
            let loss = self.model.record_loss_backward(
                &mut rec,
                &mb.batch,
                &mb.targets,
                coef,
                &self.grads,
            )?;
            // One submit per micro-batch: its activations are freed before the next one.
            rec.submit()?;
            losses.push(loss);
        }
        let mut sum = 0f64;
        for l in &losses {
            sum += l.to_f32_vec()?.iter().map(|&x| x as f64).sum::<f64>();
        }
        Ok(Accumulated {
            loss: sum / target_tokens.max(1) as f64,
            samples: plan.samples(),
            tokens: micro.iter().map(|m| m.tokens).sum(),
            padded_tokens: micro.iter().map(|m| m.batch.tokens()).sum(),
            target_tokens,
        })
    }

    /// Clips and applies the accumulated gradients at `lr`; returns the norm before clipping.
    pub fn apply(&mut self, lr: f64) -> Result<f64> {
        let mut rec = Recorder::new(self.model.ctx(), "sft-optimizer");
        self.opt
            .step(&mut rec, &self.model.params, &self.grads, lr as f32)?;
        rec.submit()?;
        Ok(self.opt.last_grad_norm()? as f64)
    }

    /// Runs the next step of the plan and advances the state.
    pub fn train_step(&mut self) -> Result<StepStats> {
        if self.finished() {
            bail!("all {} steps of the plan are done", self.plan.len());
        }
        let start = Instant::now();
        let step = self.state.step as usize;
        let acc = self.accumulate(step)?;
        if !acc.loss.is_finite() {
            bail!("step {}: the loss is {}", step + 1, acc.loss);
        }
        let lr = self.schedule.lr(step);
        let grad_norm = self.apply(lr)?;
        let seconds = start.elapsed().as_secs_f64();
        let s = &mut self.state;
        s.step += 1;
        s.optimizer_step = self.opt.step;
        s.samples_consumed += acc.samples as u64;
        s.tokens += acc.tokens as u64;
        s.target_tokens += acc.target_tokens as u64;
        s.first_loss.get_or_insert(acc.loss);
        s.last_loss = Some(acc.loss);
        s.train_seconds += seconds;
        Ok(StepStats {
            step: s.step,
            loss: acc.loss,
            lr,
            grad_norm,
            samples: acc.samples,
            tokens: acc.tokens,
            padded_tokens: acc.padded_tokens,
            target_tokens: acc.target_tokens,
            seconds,
        })
    }

    /// The current weights on the host.
    pub fn weights(&self) -> Result<Weights> {
        Ok(self.model.params.download(&self.like)?)
    }

    /// The accumulated gradients on the host (named like the weights).
    pub fn gradients(&self) -> Result<Weights> {
        Ok(self.grads.download(&self.like)?)
    }

    /// Saves the model (Hugging Face layout) to `dir`, atomically.
    pub fn save_model(&self, dir: &Path, dtype: StorageDType) -> Result<()> {
        let opts = SaveOptions {
            dtype,
            ..Default::default()
        };
        save_pretrained(
            dir,
            &self.model_cfg,
            &self.weights()?,
            Some(&self.tokenizer),
            &opts,
        )
        .with_context(|| format!("saving the model to {}", dir.display()))
    }

    /// Fills a checkpoint folder: the model in f32 (loadable by transformers), the AdamW
    /// moments and the trainer state.
    pub fn write_checkpoint(&self, dir: &Path) -> Result<()> {
        self.save_model(dir, StorageDType::F32)?;
        let m = self.opt.m.download(&self.like)?;
        let v = self.opt.v.download(&self.like)?;
        write_moments(dir, &m, &v)?;
        self.state.write(dir)
    }
}

/// Writes host tensors into GPU tensors of the same structure.
fn upload_into(dst: &Params, src: &Weights) -> Result<()> {
    let named = src.named_tensors();
    let tensors = dst.tensors();
    if named.len() != tensors.len() {
        bail!(
            "optimizer state has {} tensors, the model {}",
            named.len(),
            tensors.len()
        );
    }
    for ((name, h), t) in named.into_iter().zip(tensors) {
        if h.shape != t.shape() {
            bail!(
                "optimizer state {name}: shape {:?}, the model's {:?}",
                h.shape,
                t.shape()
            );
        }
        t.write_f32(&h.data)?;
    }
    Ok(())
}
