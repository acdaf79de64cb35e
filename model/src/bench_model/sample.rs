//! Sampled generation throughput: a batch of equal-length random prompts, a fixed number of new
//! tokens each (no stop token, so every sequence runs to the limit), through
//! `generate::generate` with temperature, top-p and a seed. Only generated tokens count; the
//! prefill is inside the timed call, as it is for transformers' `generate`.

use std::time::Instant;

use serde::Serialize;

use crate::generate::{generate, SamplingParams};
use crate::gpu::Result;
use crate::transformer::Transformer;

use super::workload::{token_rows, SAMPLE_STREAM};
use super::Progress;

#[derive(Clone, Debug)]
pub struct SampleOpts {
    pub prompts: usize,
    pub prompt_len: usize,
    pub new_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
}

#[derive(Clone, Debug, Serialize)]
pub struct SampleResult {
    pub prompts: usize,
    pub prompt_len: usize,
    pub new_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub seconds: f64,
    pub generated_tokens: usize,
    pub tokens_per_s: f64,
    pub peak_bytes: u64,
}

pub fn run(
    model: &Transformer,
    o: &SampleOpts,
    seed: u64,
    progress: &mut Progress<'_>,
) -> Result<SampleResult> {
    let ctx = model.ctx();
    let prompts = token_rows(
        seed + SAMPLE_STREAM,
        o.prompts,
        o.prompt_len,
        model.cfg.vocab_size,
    );
    let params = SamplingParams {
        temperature: o.temperature,
        top_k: 0,
        top_p: o.top_p,
        max_new_tokens: o.new_tokens,
        seed,
    };
    // Warm-up: compiles the prefill and decode pipelines on every prompt and two tokens (the
    // kernels, split-K slices and f16-or-f32 choice depend on the row count, so a smaller
    // batch would leave the timed run compiling: 1,655 vs 2,893 new tok/s on an H100).
    let warm = SamplingParams {
        max_new_tokens: 2.min(o.new_tokens),
        ..params.clone()
    };
    let start = Instant::now();
    generate(model, &prompts, &warm, &[], None)?;
    progress(&format!(
        "generate: warm-up {:.2} s; timing {} prompts x {} tokens + {} new (temperature {}, top-p {})",
        start.elapsed().as_secs_f64(),
        o.prompts,
        o.prompt_len,
        o.new_tokens,
        o.temperature,
        o.top_p
    ));
    ctx.wait_idle()?;
    ctx.reset_memory_peak();
    let start = Instant::now();
    let samples = generate(model, &prompts, &params, &[], None)?;
    ctx.wait_idle()?;
    let seconds = start.elapsed().as_secs_f64();
    let generated: usize = samples.iter().map(|s| s.tokens.len()).sum();
    let tokens_per_s = generated as f64 / seconds.max(1e-12);
    progress(&format!(
        "generate: {generated} tokens in {seconds:.2} s = {tokens_per_s:.1} tok/s"
    ));
    Ok(SampleResult {
        prompts: o.prompts,
        prompt_len: o.prompt_len,
        new_tokens: o.new_tokens,
        temperature: o.temperature,
        top_p: o.top_p,
        seconds,
        generated_tokens: generated,
        tokens_per_s,
        peak_bytes: ctx.memory_stats().peak_bytes,
    })
}
