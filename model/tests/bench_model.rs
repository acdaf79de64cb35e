//! `grrm bench model` on lavapipe at tiny shapes: the memory counter follows allocations, and
//! every phase runs and reports numbers that make sense for its workload.

mod common;

use grrm_model::bench_model::{run_model_bench, ModelBenchOpts};
use grrm_model::{DType, GpuContext, Tensor};

#[test]
fn memory_counter_tracks_live_and_peak_bytes() {
    // A device of its own: the other test allocates concurrently on the shared one.
    let ctx = GpuContext::from_env().unwrap();
    let before = ctx.memory_stats();
    let a = Tensor::zeros(&ctx, &[1000], DType::F32).unwrap();
    let b = Tensor::zeros(&ctx, &[7], DType::F32).unwrap();
    let view = a.reshape(&[10, 100]).unwrap();
    let s = ctx.memory_stats();
    // 4000 bytes, and 28 bytes rounded up to whole 16-byte words.
    assert_eq!(s.live_bytes - before.live_bytes, 4000 + 32);
    assert!(s.peak_bytes >= s.live_bytes);
    assert_eq!(s.buffers_created - before.buffers_created, 2);
    drop(a);
    assert_eq!(
        ctx.memory_stats().live_bytes - before.live_bytes,
        4032,
        "a view keeps its buffer alive"
    );
    drop(view);
    drop(b);
    let after = ctx.memory_stats();
    assert_eq!(after.live_bytes, before.live_bytes);
    assert!(after.peak_bytes >= before.live_bytes + 4032);
    ctx.reset_memory_peak();
    assert_eq!(ctx.memory_stats().peak_bytes, after.live_bytes);
}

#[test]
fn quick_model_bench_runs_every_phase() {
    let ctx = common::ctx();
    let opts = ModelBenchOpts::quick();
    let mut lines = Vec::new();
    let r = run_model_bench(&ctx, &opts, &mut |l: &str| lines.push(l.to_string())).unwrap();
    let weights = r.parameters as u64 * 4;

    let t = r.train.as_ref().expect("train phase");
    assert_eq!(t.step_seconds.len(), opts.train.steps);
    assert!(t.tokens_per_s > 0.0);
    // Random init with std 0.02 gives near-uniform predictions: loss about ln(vocab).
    let uniform = (opts.shape.vocab as f64).ln();
    assert!(
        (t.loss_first - uniform).abs() < 0.1,
        "loss {}",
        t.loss_first
    );
    assert!(t.grad_norm_last.is_finite() && t.grad_norm_last > 0.0);
    // Weights, gradients and both AdamW moments at least.
    assert!(
        t.peak_bytes >= 4 * weights,
        "{} < 4 x {weights}",
        t.peak_bytes
    );

    let g = r.generate.as_ref().expect("generate phase");
    assert_eq!(
        g.generated_tokens,
        opts.sample.prompts * opts.sample.new_tokens
    );
    assert!(g.peak_bytes > weights && g.tokens_per_s > 0.0);

    let b = r.beam.as_ref().expect("beam phase");
    assert_eq!(b.min_results, opts.beam.beams);
    assert!(b.peak_bytes > weights && b.users_per_s > 0.0);

    let table = r.markdown();
    assert!(table.contains("| training (f32, AdamW) |"), "{table}");
    let json: serde_json::Value = serde_json::to_value(&r).unwrap();
    assert_eq!(json["shape"]["vocab"], opts.shape.vocab);
    assert!(json["train"]["plan"]["activations"].as_u64().unwrap() > 0);
    assert!(
        lines.iter().any(|l| l.starts_with("train step")),
        "{lines:?}"
    );
}
