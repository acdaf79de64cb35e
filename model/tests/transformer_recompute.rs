//! Activation recomputation: the gradients of every parameter tensor equal those of the
//! backward over stored activations (padded batch; Qwen3 with q/k norm, Qwen2 with biases), and
//! the memory one step allocates (matmul operands included where `Auto` picks f16), as grrm's counter sees it, is what `MemoryPlan` predicts in
//! both modes, smaller with recomputation.
//!
//! Tolerance: 1e-6 relative to each tensor's largest gradient. The recomputed forward runs the
//! same kernels on the same inputs, so the activations (and gradients) are expected to agree
//! bit for bit; the bound only leaves room for a driver that reassociates differently.

mod common;

use common::*;
use grrm_model::hf::{init_random, Arch, ConfigBuilder, ModelConfig};
use grrm_model::transformer::{next_token_targets, MemoryPlan, TokenBatch, Transformer};
use grrm_model::{GpuContext, Recorder};
use rand::Rng;

fn tiny(arch: Arch) -> ModelConfig {
    let mut cfg = ConfigBuilder::new(arch)
        .layers(3)
        .hidden(32)
        .heads(4)
        .kv_heads(2)
        .head_dim(8)
        .ffn(48)
        .vocab(61)
        .max_positions(64)
        .build()
        .expect("valid tiny config");
    cfg.initializer_range = 0.3;
    cfg
}

struct Step {
    loss: Vec<f32>,
    grads: Vec<Vec<f32>>,
    /// Bytes the step allocated on top of what was live before it (weights, gradients).
    step_bytes: u64,
    plan: MemoryPlan,
}

fn step(ctx: &GpuContext, arch: Arch, recompute: bool) -> Step {
    let cfg = tiny(arch);
    let weights = init_random(&cfg, 11);
    let model = Transformer::new(ctx, &cfg, &weights, 64)
        .unwrap()
        .with_recompute(recompute);
    let mut r = rng(5);
    // 3 rows padded to 12: 36 tokens, a multiple of 4 so no tensor is rounded up.
    let seqs: Vec<Vec<u32>> = [12, 7, 10]
        .iter()
        .map(|&len| (0..len).map(|_| r.random_range(0..61)).collect())
        .collect();
    let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
    let batch = TokenBatch::right_padded(&refs, 0);
    let n = batch.tokens();
    let targets = next_token_targets(&batch, &vec![1; n]);
    let count = targets.iter().filter(|&&t| t != u32::MAX).count();
    let grads = model.params.zeros_like().unwrap();
    ctx.wait_idle().unwrap();
    let live = ctx.memory_stats().live_bytes;
    ctx.reset_memory_peak();
    let mut rec = Recorder::new(ctx, "recompute-test");
    model.zero_grads(&mut rec, &grads).unwrap();
    let loss = model
        .record_loss_backward(&mut rec, &batch, &targets, 1.0 / count as f32, &grads)
        .unwrap();
    rec.submit().unwrap();
    ctx.wait_idle().unwrap();
    let step_bytes = ctx.memory_stats().peak_bytes - live;
    Step {
        loss: loss.to_f32_vec().unwrap(),
        grads: grads
            .tensors()
            .iter()
            .map(|t| t.to_f32_vec().unwrap())
            .collect(),
        step_bytes,
        plan: MemoryPlan::for_training(&cfg, n, model.head_chunk_rows(n), recompute)
            .with_matmul_precision(
                &cfg,
                n,
                model.head_chunk_rows(n),
                model.matmul_precision().unwrap(),
            ),
    }
}

fn check(arch: Arch) {
    // A device of its own, so no other test's allocations enter the counts.
    let ctx = GpuContext::from_env().unwrap();
    let kept = step(&ctx, arch, false);
    let redone = step(&ctx, arch, true);
    assert_eq!(kept.loss, redone.loss, "{arch:?}: per-token losses");
    assert_eq!(kept.grads.len(), redone.grads.len());
    for (i, (a, b)) in kept.grads.iter().zip(&redone.grads).enumerate() {
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{arch:?}: tensor {i} has no gradient");
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= 1e-6 * scale,
            "{arch:?}: tensor {i}: max |diff| {worst} vs max |grad| {scale}"
        );
    }
    for (s, mode) in [(&kept, "stored"), (&redone, "recomputed")] {
        let planned =
            s.plan.activations + s.plan.temporaries + s.plan.head_chunk + s.plan.matmul_operands;
        // The plan leaves out the kernels' small reduction buffers (a few KiB here).
        assert!(
            s.step_bytes >= planned && s.step_bytes <= planned + planned / 20,
            "{arch:?} {mode}: counted {} bytes, planned {planned} ({})",
            s.step_bytes,
            s.plan
        );
    }
    assert!(
        redone.step_bytes < kept.step_bytes && redone.plan.total() < kept.plan.total(),
        "{arch:?}: recomputation saves nothing: {} vs {} bytes",
        redone.step_bytes,
        kept.step_bytes
    );
}

#[test]
fn qwen3_recomputed_gradients_equal_stored() {
    check(Arch::Qwen3);
}

#[test]
fn qwen2_recomputed_gradients_equal_stored() {
    check(Arch::Qwen2);
}
