//! Parity with Hugging Face transformers: small random Qwen3 (tied, q/k norm), Qwen2 (q/k/v
//! bias, untied) and Llama (untied) models built and run by transformers 5.17 / torch 2.11 on
//! the GPU machine (scripts/parity/make_hf_fixtures.py) are loaded from their safetensors and
//! run by grrm on this machine's adapter. Logits at every real position of a right-padded
//! batch must match within 2e-4 absolute (f32 end to end; logits are O(10)); greedy
//! continuations of 8 tokens must match exactly, through the KV-cache generation engine.

mod common;

use std::path::PathBuf;

use common::*;
use grrm_model::generate::{generate, SamplingParams};
use grrm_model::hf::Checkpoint;
use grrm_model::transformer::{MatmulPrecision, TokenBatch, Transformer};

#[derive(serde::Deserialize)]
struct Expected {
    sequences: Vec<Vec<u32>>,
    logits: Vec<Vec<Vec<f32>>>,
    greedy: Vec<Vec<u32>>,
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(name)
}

fn check(name: &str) {
    let dir = fixture(name);
    let ck = Checkpoint::load(&dir).unwrap();
    let exp: Expected =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let model = Transformer::new(&ctx(), &ck.config, &ck.weights, 128)
        .unwrap()
        .with_matmul_precision(MatmulPrecision::F32);
    let v = ck.config.vocab_size;

    let refs: Vec<&[u32]> = exp.sequences.iter().map(|s| s.as_slice()).collect();
    let batch = TokenBatch::right_padded(&refs, 0);
    let logits = model.logits(&batch).unwrap();
    let mut worst = 0f32;
    for (b, (seq, want)) in exp.sequences.iter().zip(&exp.logits).enumerate() {
        for (t, row) in want.iter().enumerate().take(seq.len()) {
            let got = &logits[(b * batch.seq + t) * v..(b * batch.seq + t + 1) * v];
            for (g, w) in got.iter().zip(row) {
                let e = (g - w).abs();
                assert!(
                    e <= 2e-4,
                    "{name}: seq {b} pos {t}: logit {g} vs transformers {w}"
                );
                worst = worst.max(e);
            }
        }
    }
    eprintln!("{name}: max |logit - transformers| = {worst:e}");

    let greedy = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 8,
        ..Default::default()
    };
    let out = generate(&model, &exp.sequences, &greedy, &[], None).unwrap();
    for (b, (o, want)) in out.iter().zip(&exp.greedy).enumerate() {
        assert_eq!(
            &o.tokens, want,
            "{name}: greedy continuation of sequence {b}"
        );
    }
}

#[test]
fn qwen3_matches_transformers() {
    check("qwen3");
}

#[test]
fn qwen2_matches_transformers() {
    check("qwen2");
}

#[test]
fn llama_matches_transformers() {
    check("llama");
}

/// A checkpoint grrm trained and saved (one AdamW step away from the fixture, so it is not the
/// file transformers wrote) reloads with the same logits. With `GRRM_EXPORT_DIR` set, it is
/// also written there with `grrm_expected.json` for scripts/parity/check_grrm_saved.py, which
/// loads it with transformers on the GPU machine.
#[test]
fn trained_checkpoints_save_in_hf_layout() {
    use grrm_model::hf::{save_pretrained, SaveOptions, StorageDType};
    use grrm_model::transformer::{next_token_targets, Optimizer, OptimizerConfig};
    for name in ["qwen3", "qwen2", "llama"] {
        let ck = Checkpoint::load(fixture(name)).unwrap();
        let exp: Expected = serde_json::from_str(
            &std::fs::read_to_string(fixture(name).join("expected.json")).unwrap(),
        )
        .unwrap();
        let model = Transformer::new(&ctx(), &ck.config, &ck.weights, 128)
            .unwrap()
            .with_matmul_precision(MatmulPrecision::F32);
        let refs: Vec<&[u32]> = exp.sequences.iter().map(|s| s.as_slice()).collect();
        let batch = TokenBatch::right_padded(&refs, 0);
        let targets = next_token_targets(&batch, &vec![1; batch.tokens()]);
        let grads = model.params.zeros_like().unwrap();
        let mut opt = Optimizer::new(&model.params, OptimizerConfig::default()).unwrap();
        let mut rec = grrm_model::Recorder::new(&ctx(), "step");
        model
            .record_loss_backward(&mut rec, &batch, &targets, 0.05, &grads)
            .unwrap();
        opt.step(&mut rec, &model.params, &grads, 1e-2).unwrap();
        rec.submit().unwrap();
        let trained = model.params.download(&ck.weights).unwrap();
        assert_ne!(trained.embed_tokens.data, ck.weights.embed_tokens.data);

        let dir = match std::env::var_os("GRRM_EXPORT_DIR") {
            Some(d) => PathBuf::from(d).join(name),
            None => tempfile::tempdir().unwrap().keep().join(name),
        };
        let opts = SaveOptions {
            dtype: StorageDType::F32,
            ..Default::default()
        };
        save_pretrained(&dir, &ck.config, &trained, None, &opts).unwrap();
        let back = Checkpoint::load(&dir).unwrap();
        assert_eq!(back.weights, trained, "{name}: f32 save/load must be exact");
        let reloaded = Transformer::new(&ctx(), &back.config, &back.weights, 128)
            .unwrap()
            .with_matmul_precision(MatmulPrecision::F32);
        let v = ck.config.vocab_size;
        let mut logits = Vec::new();
        for s in &exp.sequences {
            let l = reloaded.logits(&TokenBatch::right_padded(&[s], 0)).unwrap();
            logits.push(l.chunks(v).map(|r| r.to_vec()).collect::<Vec<_>>());
        }
        let out = serde_json::json!({ "sequences": exp.sequences, "logits": logits });
        std::fs::write(dir.join("grrm_expected.json"), out.to_string()).unwrap();
    }
}
