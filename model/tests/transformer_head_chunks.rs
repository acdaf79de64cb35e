//! The LM head over several row chunks (one logits buffer reused chunk after chunk) gives the
//! same per-token losses and gradients as over one chunk: a binding limit of 64 rows of logits
//! splits 150 tokens into chunks of 64, 64 and 22 rows.
//!
//! Tolerance: 1e-5 relative to each tensor's largest value; the chunking changes which rows
//! one dispatch covers, not the order of any sum, so agreement is expected to be exact.

mod common;

use common::*;
use grrm_model::hf::{init_random, Arch, ConfigBuilder};
use grrm_model::transformer::{next_token_targets, MatmulPrecision, TokenBatch, Transformer};
use grrm_model::{GpuContext, Recorder};
use rand::Rng;

const VOCAB: usize = 1000;

fn run(ctx: &GpuContext, batch: &TokenBatch) -> (usize, Vec<f32>, Vec<Vec<f32>>) {
    let mut cfg = ConfigBuilder::new(Arch::Qwen3)
        .layers(1)
        .hidden(32)
        .heads(4)
        .kv_heads(2)
        .head_dim(8)
        .ffn(48)
        .vocab(VOCAB)
        .max_positions(64)
        .build()
        .unwrap();
    cfg.initializer_range = 0.3;
    let model = Transformer::new(ctx, &cfg, &init_random(&cfg, 3), 64)
        .unwrap()
        .with_matmul_precision(MatmulPrecision::F32);
    let n = batch.tokens();
    let targets = next_token_targets(batch, &vec![1; n]);
    let grads = model.params.zeros_like().unwrap();
    let mut rec = Recorder::new(ctx, "head-chunks");
    let loss = model
        .record_loss_backward(&mut rec, batch, &targets, 0.01, &grads)
        .unwrap();
    rec.submit().unwrap();
    let grads = grads
        .tensors()
        .iter()
        .map(|t| t.to_f32_vec().unwrap())
        .collect();
    (model.head_chunk_rows(n), loss.to_f32_vec().unwrap(), grads)
}

fn assert_near(what: &str, a: &[f32], b: &[f32]) {
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-5 * scale, "{what}: {worst} vs scale {scale}");
}

#[test]
fn chunked_lm_head_matches_one_chunk() {
    let ctx = ctx();
    let mut r = rng(9);
    let seqs: Vec<Vec<u32>> = [50, 31, 50]
        .iter()
        .map(|&len| (0..len).map(|_| r.random_range(0..VOCAB as u32)).collect())
        .collect();
    let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
    let batch = TokenBatch::right_padded(&refs, 0);
    let (rows_one, loss_one, grads_one) = run(&ctx, &batch);
    let limited = ctx.with_binding_limit(64 * VOCAB as u64 * 4);
    let (rows_many, loss_many, grads_many) = run(&limited, &batch);
    assert_eq!(rows_one, 150);
    assert_eq!(rows_many, 64);
    assert_near("per-token loss", &loss_one, &loss_many);
    for (i, (a, b)) in grads_one.iter().zip(&grads_many).enumerate() {
        assert_near(&format!("gradient tensor {i}"), a, b);
    }
}
