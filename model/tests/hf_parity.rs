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
use grrm_model::transformer::{TokenBatch, Transformer};

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
    let model = Transformer::new(&ctx(), &ck.config, &ck.weights, 128).unwrap();
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
