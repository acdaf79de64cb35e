//! A tiny Qwen3 model memorises a small corpus on this machine's adapter: the token-mean
//! next-token loss must fall from ~ln(V) = 4.2 to below 0.05 within 80 AdamW steps (the corpus
//! is deterministic, so this is memorisation, which a correct forward/backward/optimizer does
//! quickly and a subtly wrong gradient does not).

mod common;

use common::*;
use grrm_model::hf::{init_random, Arch, ConfigBuilder};
use grrm_model::transformer::{
    next_token_targets, Optimizer, OptimizerConfig, TokenBatch, Transformer,
};
use grrm_model::Recorder;
use rand::Rng;

#[test]
fn tiny_model_overfits_a_small_corpus() {
    let ctx = ctx();
    let cfg = ConfigBuilder::new(Arch::Qwen3)
        .layers(2)
        .hidden(32)
        .heads(4)
        .kv_heads(2)
        .head_dim(8)
        .ffn(64)
        .vocab(64)
        .max_positions(64)
        .build()
        .unwrap();
    let model = Transformer::new(&ctx, &cfg, &init_random(&cfg, 3), 64).unwrap();
    let mut r = rng(5);
    let corpus: Vec<Vec<u32>> = (0..4)
        .map(|i| (0..12 + 3 * i).map(|_| r.random_range(3..64)).collect())
        .collect();
    let refs: Vec<&[u32]> = corpus.iter().map(|s| s.as_slice()).collect();
    let batch = TokenBatch::right_padded(&refs, 0);
    let targets = next_token_targets(&batch, &vec![1; batch.tokens()]);
    let count = targets.iter().filter(|&&t| t != u32::MAX).count() as f32;

    let grads = model.params.zeros_like().unwrap();
    let opt_cfg = OptimizerConfig {
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = Optimizer::new(&model.params, opt_cfg).unwrap();
    let first = model.loss(&batch, &targets).unwrap();
    let mut last = first;
    for step in 0..80 {
        let mut rec = Recorder::new(&ctx, "step");
        model.zero_grads(&mut rec, &grads).unwrap();
        model
            .record_loss_backward(&mut rec, &batch, &targets, 1.0 / count, &grads)
            .unwrap();
        opt.step(&mut rec, &model.params, &grads, 1e-2).unwrap();
        rec.submit().unwrap();
        if step % 20 == 19 {
            last = model.loss(&batch, &targets).unwrap();
            eprintln!(
                "step {}: loss {last:.4}, grad norm {:.3}",
                step + 1,
                opt.last_grad_norm().unwrap()
            );
        }
    }
    eprintln!("loss {first:.4} -> {last:.4}");
    assert!(first > 3.5, "initial loss {first} should be near ln(64)");
    assert!(last < 0.05, "loss only fell to {last}");
}
