//! Whole-model gradient check: for every parameter tensor of tiny Qwen3, Qwen2 and Llama
//! models, the directional derivative of the GPU loss along a random direction (central
//! finite difference, h = 1e-2 in f32) matches <grad, direction> from the GPU backward.
//! Tolerance: |fd - analytic| <= 3e-3 * ||grad|| + 2e-4, which covers the f32 rounding of two
//! loss evaluations (~1e-7 * loss / h) and the O(h^2) truncation at these weight scales.
//! Qwen3 runs once more with each attention kernel family forced (`Auto` is `Rows` on lavapipe).

mod common;

use common::*;
use grrm_model::hf::{init_random, Arch, ConfigBuilder, ModelConfig};
use grrm_model::kernels::attention::AttentionKernel;
use grrm_model::transformer::{next_token_targets, MatmulPrecision, TokenBatch, Transformer};
use grrm_model::Recorder;
use rand::Rng;

fn tiny(arch: Arch) -> ModelConfig {
    let mut cfg = ConfigBuilder::new(arch)
        .layers(2)
        .hidden(32)
        .heads(4)
        .kv_heads(2)
        .head_dim(8)
        .ffn(24)
        .vocab(37)
        .max_positions(64)
        .build()
        .expect("valid tiny config");
    // Larger weights than HF's 0.02 so every gradient is well above f32 noise.
    cfg.initializer_range = 0.35;
    if arch == Arch::Llama {
        cfg.tie_word_embeddings = false;
    }
    cfg
}

fn check_arch(arch: Arch, seed: u64, kernel: AttentionKernel) {
    let ctx = ctx();
    let cfg = tiny(arch);
    let mut weights = init_random(&cfg, seed);
    // Norm weights and biases away from their init values so their gradients are generic.
    let mut r = rng(seed + 1);
    for (name, t) in weights.named_tensors_mut() {
        if name.contains("norm") || name.ends_with("bias") {
            for v in t.data.iter_mut() {
                *v = if name.ends_with("bias") {
                    r.random_range(-0.3..0.3)
                } else {
                    1.0 + r.random_range(-0.3..0.3)
                };
            }
        }
    }
    let model = Transformer::new(&ctx, &cfg, &weights, 64)
        .unwrap()
        .with_attention_kernel(kernel)
        // Finite differences need f32 matmuls (transformer_precision covers f16).
        .with_matmul_precision(MatmulPrecision::F32);
    let seqs: Vec<Vec<u32>> = vec![
        (0..9).map(|_| r.random_range(0..37)).collect(),
        (0..5).map(|_| r.random_range(0..37)).collect(),
    ];
    let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
    let batch = TokenBatch::right_padded(&refs, 0);
    let targets = next_token_targets(&batch, &vec![1; batch.tokens()]);
    let count = targets.iter().filter(|&&t| t != u32::MAX).count();

    let grads = model.params.zeros_like().unwrap();
    let mut rec = Recorder::new(&ctx, "grad");
    model
        .record_loss_backward(&mut rec, &batch, &targets, 1.0 / count as f32, &grads)
        .unwrap();
    rec.submit().unwrap();

    let names: Vec<String> = weights
        .named_tensors()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let params = model.params.tensors();
    let gts = grads.tensors();
    assert_eq!(names.len(), params.len());
    let h = 1e-2f32;
    for (i, name) in names.iter().enumerate() {
        let w0 = params[i].to_f32_vec().unwrap();
        let g = gts[i].to_f32_vec().unwrap();
        let u: Vec<f32> = randn(&mut r, w0.len());
        let un = (u.iter().map(|x| (x * x) as f64).sum::<f64>()).sqrt() as f32;
        let u: Vec<f32> = u.iter().map(|x| x / un).collect();
        let at = |s: f32| -> f64 {
            let w: Vec<f32> = w0.iter().zip(&u).map(|(w, d)| w + s * d).collect();
            params[i].write_f32(&w).unwrap();
            model.loss(&batch, &targets).unwrap()
        };
        let fd = (at(h) - at(-h)) / (2.0 * h as f64);
        params[i].write_f32(&w0).unwrap();
        let analytic: f64 = g.iter().zip(&u).map(|(a, b)| *a as f64 * *b as f64).sum();
        let gnorm = (g.iter().map(|x| (x * x) as f64).sum::<f64>()).sqrt();
        let tol = 3e-3 * gnorm + 2e-4;
        eprintln!(
            "{arch:?} {kernel:?} {name}: fd {fd:.6e} analytic {analytic:.6e} |g| {gnorm:.3e}"
        );
        assert!(
            gnorm > 0.0 && g.iter().all(|x| x.is_finite()),
            "{arch:?} {name}: gradient is zero or not finite"
        );
        assert!(
            (fd - analytic).abs() <= tol,
            "{arch:?} {name}: fd {fd} vs analytic {analytic} (tol {tol})"
        );
    }
}

#[test]
fn qwen3_gradients_match_finite_differences() {
    check_arch(Arch::Qwen3, 11, AttentionKernel::Auto);
}

#[test]
fn qwen3_gradients_match_finite_differences_with_each_attention_kernel() {
    for kernel in [AttentionKernel::Workgroup, AttentionKernel::Tiled] {
        check_arch(Arch::Qwen3, 14, kernel);
    }
}

#[test]
fn qwen2_gradients_match_finite_differences() {
    check_arch(Arch::Qwen2, 12, AttentionKernel::Auto);
}

#[test]
fn llama_gradients_match_finite_differences() {
    check_arch(Arch::Llama, 13, AttentionKernel::Auto);
}
