//! The backbone item embedder (mean-pooled last hidden states): one vector of the hidden size
//! per text, deterministic, equal to a by-hand mean over the model's final-norm outputs, and
//! independent of how texts are batched (padding never leaks into the mean).

use grrm_actors::data::LlmEmbedder;
use grrm_model::gpu::Recorder;
use grrm_model::hf::{init_random, Arch, ConfigBuilder};
use grrm_model::tokenizer::{build_tiny_tokenizer, TINY_CORPUS};
use grrm_model::transformer::{TokenBatch, Transformer};
use grrm_model::GpuContext;
use grrm_recsys::index::ItemEmbedder;

#[test]
fn mean_pooled_hidden_states_are_batch_independent() {
    let ctx = GpuContext::from_env().expect("an adapter (lavapipe in CI)");
    let tok = build_tiny_tokenizer(TINY_CORPUS, 300).unwrap();
    let mut cfg = ConfigBuilder::new(Arch::Qwen3)
        .layers(2)
        .hidden(32)
        .heads(4)
        .kv_heads(2)
        .head_dim(8)
        .ffn(48)
        .vocab(tok.len())
        .max_positions(128)
        .build()
        .unwrap();
    cfg.initializer_range = 0.2;
    let model = Transformer::new(&ctx, &cfg, &init_random(&cfg, 1), 128).unwrap();
    let texts: Vec<String> = vec![
        "a red running shoe".into(),
        "wireless earbuds with a charging case and long battery life".into(),
        "tent".into(),
    ];
    let batched = LlmEmbedder {
        model: &model,
        tokenizer: &tok,
        max_tokens: 64,
        batch_size: 3,
    };
    let single = LlmEmbedder {
        batch_size: 1,
        ..batched
    };
    let a = batched.embed(&texts).unwrap();
    let b = single.embed(&texts).unwrap();
    assert_eq!(a.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.len(), 32);
        for (u, v) in x.iter().zip(y) {
            assert!(
                (u - v).abs() < 1e-5,
                "batching changed an embedding: {u} vs {v}"
            );
        }
    }
    // By hand for the second text: mean over its tokens of the final hidden states.
    let ids = tok.encode(&texts[1], false).unwrap();
    let mut rec = Recorder::new(&ctx, "t");
    let acts = model
        .forward(&mut rec, &TokenBatch::right_padded(&[&ids], 0))
        .unwrap();
    rec.submit().unwrap();
    let h = acts.hidden.to_f32_vec().unwrap();
    for d in 0..32 {
        let want: f32 = (0..ids.len()).map(|t| h[t * 32 + d]).sum::<f32>() / ids.len() as f32;
        assert!((a[1][d] - want).abs() < 1e-5);
    }
    assert!(a[0] != a[2], "different texts must embed differently");
    assert!(batched.name().contains("mean-pooled"));
}
