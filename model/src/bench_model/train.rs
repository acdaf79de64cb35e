//! Training throughput: full optimizer steps on one batch of random tokens (zero the
//! gradients; forward; the chunked LM head with the fused cross-entropy and its backward; the
//! decoder's backward; global-norm clipping and AdamW). The device is idle when the clock
//! starts and drained before it stops; warm-up steps (pipeline compilation) are not timed.

use std::time::Instant;

use serde::Serialize;

use crate::gpu::{Recorder, Result};
use crate::kernels::cross_entropy::IGNORE_INDEX;
use crate::transformer::{
    next_token_targets, MemoryPlan, Optimizer, OptimizerConfig, TokenBatch, Transformer,
};

use super::workload::{token_rows, TRAIN_STREAM};
use super::{median, Progress};

#[derive(Clone, Debug)]
pub struct TrainOpts {
    pub batch: usize,
    pub seq: usize,
    pub warmup_steps: usize,
    pub steps: usize,
    /// Activation recomputation (`Transformer::recompute_activations`).
    pub recompute: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct TrainResult {
    pub batch: usize,
    pub seq: usize,
    pub dtype: &'static str,
    pub recompute: bool,
    pub warmup_steps: usize,
    pub steps: usize,
    /// Wall time of each timed step.
    pub step_seconds: Vec<f64>,
    pub median_step_seconds: f64,
    /// Tokens of the batch (every position, as transformers counts them) per second of the
    /// timed steps.
    pub tokens_per_s: f64,
    pub loss_first: f64,
    pub loss_last: f64,
    pub grad_norm_last: f64,
    /// grrm's count of tensor bytes at the phase's peak (the weights included).
    pub peak_bytes: u64,
    /// What `MemoryPlan::training` predicts for this batch.
    pub plan: MemoryPlan,
    pub plan_bytes: u64,
}

pub fn run(
    model: &Transformer,
    o: &TrainOpts,
    seed: u64,
    progress: &mut Progress<'_>,
) -> Result<TrainResult> {
    let ctx = model.ctx();
    let vocab = model.cfg.vocab_size;
    let rows = token_rows(seed + TRAIN_STREAM, o.batch, o.seq, vocab);
    let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
    let batch = TokenBatch::right_padded(&refs, 0);
    let n = batch.tokens();
    let precision = model.matmul_precision()?;
    let plan = MemoryPlan::for_training(&model.cfg, n, model.head_chunk_rows(n), o.recompute)
        .with_matmul_precision(&model.cfg, n, model.head_chunk_rows(n), precision);
    if model.recompute_activations != o.recompute {
        return Err(crate::GpuError::shape(
            "bench model train",
            "the model was built without the requested recomputation setting",
        ));
    }
    progress(&format!("train: batch {} x {}; {plan}", o.batch, o.seq));
    let targets = next_token_targets(&batch, &vec![1; n]);
    let counted = targets
        .iter()
        .filter(|&&t| t != IGNORE_INDEX)
        .count()
        .max(1);
    let coef = 1.0 / counted as f32;

    ctx.wait_idle()?;
    ctx.reset_memory_peak();
    let grads = model.params.zeros_like()?;
    let mut opt = Optimizer::new(&model.params, OptimizerConfig::default())?;
    let mut step_seconds = Vec::new();
    let mut losses = Vec::new();
    for i in 0..o.warmup_steps + o.steps {
        ctx.wait_idle()?;
        let created = ctx.memory_stats();
        let start = Instant::now();
        let mut rec = Recorder::new(ctx, "bench-train");
        model.zero_grads(&mut rec, &grads)?;
        let loss = model.record_loss_backward(&mut rec, &batch, &targets, coef, &grads)?;
        let recorded = start.elapsed().as_secs_f64();
        rec.submit()?;
        let submitted = start.elapsed().as_secs_f64();
        opt.step(&mut rec, &model.params, &grads, 1e-5)?;
        rec.submit()?;
        ctx.wait_idle()?;
        let seconds = start.elapsed().as_secs_f64();
        let after = ctx.memory_stats();
        tracing::debug!(
            buffers_created = after.buffers_created - created.buffers_created,
            buffer_creation_s = after.create_seconds - created.create_seconds,
            record_s = recorded,
            submit_s = submitted - recorded,
            optimizer_and_wait_s = seconds - submitted,
            "train step host time"
        );
        let mean = loss.to_f32_vec()?.iter().map(|&l| l as f64).sum::<f64>() / counted as f64;
        if !mean.is_finite() {
            return Err(crate::GpuError::shape(
                "bench model train",
                format!("step {}: the loss is {mean}", i + 1),
            ));
        }
        losses.push(mean);
        let warm = i < o.warmup_steps;
        if !warm {
            step_seconds.push(seconds);
        }
        progress(&format!(
            "train step {}/{}{}: {seconds:.3} s, loss {mean:.4}",
            i + 1,
            o.warmup_steps + o.steps,
            if warm { " (warm-up, not timed)" } else { "" }
        ));
    }
    let timed: f64 = step_seconds.iter().sum();
    Ok(TrainResult {
        batch: o.batch,
        seq: o.seq,
        dtype: match precision {
            crate::transformer::MatmulPrecision::F16TensorCore => {
                "f32 master, f16 tensor-core matmuls"
            }
            crate::transformer::MatmulPrecision::F16Emulated => "f32 master, f16-emulated matmuls",
            _ => "f32",
        },
        recompute: o.recompute,
        warmup_steps: o.warmup_steps,
        steps: o.steps,
        median_step_seconds: median(&step_seconds),
        tokens_per_s: (n * step_seconds.len()) as f64 / timed.max(1e-12),
        step_seconds,
        loss_first: losses.first().copied().unwrap_or(f64::NAN),
        loss_last: losses.last().copied().unwrap_or(f64::NAN),
        grad_norm_last: opt.last_grad_norm()? as f64,
        peak_bytes: ctx.memory_stats().peak_bytes,
        plan_bytes: plan.total(),
        plan,
    })
}
