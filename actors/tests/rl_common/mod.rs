//! Fixtures for the SRPO tests: a tiny dataset in which, after two warm-up purchases, every user
//! keeps buying the same item (so the right answer is learnable quickly and holds for the
//! held-out prompts too), a tiny
//! tokenizer with the semantic-ID tokens, a tiny Qwen3 model briefly SFT-ed on the answer
//! format with random IDs (so it answers in format but mostly wrong), and an RL config.
#![allow(dead_code)]

use std::path::Path;
use std::sync::OnceLock;

use grrm_actors::srpo::RlConfig;
use grrm_model::hf::{
    init_random, save_pretrained, Arch, ConfigBuilder, SaveOptions, StorageDType,
};
use grrm_model::tokenizer::{build_tiny_tokenizer, semantic_id_tokens, Message, TINY_CORPUS};
use grrm_model::transformer::{
    next_token_targets, Optimizer, OptimizerConfig, TokenBatch, Transformer,
};
use grrm_model::{GpuContext, Recorder};
use grrm_recsys::{Dataset, ItemMeta, PromptConfig, PromptMode};
use rand::{Rng, SeedableRng};

pub const ITEMS: usize = 6;
pub const USERS: usize = 12;

pub fn ctx() -> GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::from_env().expect("a GPU adapter (lavapipe in CI)"))
        .clone()
}

fn item_id(i: usize) -> Vec<String> {
    vec![
        format!("<|a_{}|>", i / 3 + 1),
        format!("<|b_{}|>", i % 3 + 1),
    ]
}

pub fn dataset() -> Dataset {
    Dataset {
        name: "cyc".into(),
        sequences: (0..USERS)
            .map(|u| {
                (0..8)
                    .map(|t| {
                        if t < 2 {
                            ((u + t) % (ITEMS - 1)) as u32
                        } else {
                            (ITEMS - 1) as u32
                        }
                    })
                    .collect()
            })
            .collect(),
        items: (0..ITEMS)
            .map(|i| ItemMeta {
                title: Some(format!("Item number {i}")),
                ..Default::default()
            })
            .collect(),
        reviews: Default::default(),
        index: Some((0..ITEMS).map(item_id).collect()),
    }
}

pub fn prompt_config() -> PromptConfig {
    PromptConfig {
        seed: 7,
        history_cap: 3,
        min_history: 2,
        valid_pool: None,
        rl_random_templates: false,
        ..Default::default()
    }
}

/// Writes `dir/data` (dataset + index) and `dir/model` (tiny model, SFT-ed on the format with
/// random IDs), returns an RL config for them.
pub fn setup(dir: &Path, sft_steps: usize) -> RlConfig {
    let data = dir.join("data");
    let ds = dataset();
    grrm_recsys::io::save(&ds, &data).unwrap();
    grrm_recsys::io::write_index(&data, &ds.name, ds.index.as_ref().unwrap()).unwrap();

    // The prompt template's words in the corpus, and room for merges: short prompts.
    let mut corpus: Vec<&str> = TINY_CORPUS.to_vec();
    let template = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n\
                    Here is the item interaction history of the user: , , , what to recommend to \
                    the user next?<|im_end|>\n<|im_start|>assistant\n";
    corpus.extend(std::iter::repeat_n(template, 50));
    let mut tok = build_tiny_tokenizer(&corpus, 700).unwrap();
    tok.add_special_tokens(&semantic_id_tokens(2, 3)).unwrap();
    let eos = tok.eos_token_id().unwrap();
    let cfg = ConfigBuilder::new(Arch::Qwen3)
        .layers(2)
        .hidden(32)
        .heads(4)
        .kv_heads(2)
        .head_dim(8)
        .ffn(64)
        .vocab(tok.len())
        .max_positions(256)
        .eos(vec![eos])
        .pad(tok.pad_token_id())
        .build()
        .unwrap();
    let weights = init_random(&cfg, 11);

    // SFT on direct prompts answered by random item IDs: the format, not the mapping.
    let ctx = ctx();
    let model = Transformer::new(&ctx, &cfg, &weights, 256).unwrap();
    let sets = grrm_recsys::build_prompts(
        &ds,
        &PromptConfig {
            rl_modes: vec![PromptMode::Direct],
            eval_modes: vec![PromptMode::Direct],
            ..prompt_config()
        },
    )
    .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let grads = model.params.zeros_like().unwrap();
    let mut opt = Optimizer::new(
        &model.params,
        OptimizerConfig {
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    for _ in 0..sft_steps {
        let mut seqs = Vec::new();
        let mut masks = Vec::new();
        for p in sets.rl.iter().take(16) {
            let mut msgs: Vec<Message> =
                grrm_actors::data::encode::chat_messages(&p.messages).unwrap();
            msgs.push(Message::assistant(
                item_id(rng.random_range(0..ITEMS)).concat(),
            ));
            let e = grrm_actors::data::encode::encode_sample(&tok, &msgs, 256).unwrap();
            seqs.push(e.ids);
            masks.push(e.loss_mask);
        }
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let batch = TokenBatch::right_padded(&refs, 0);
        let mut mask = vec![0u32; batch.tokens()];
        for (b, m) in masks.iter().enumerate() {
            mask[b * batch.seq..b * batch.seq + m.len()].copy_from_slice(m);
        }
        let targets = next_token_targets(&batch, &mask);
        let count = targets.iter().filter(|&&t| t != u32::MAX).count() as f32;
        let mut rec = Recorder::new(&ctx, "sft");
        model.zero_grads(&mut rec, &grads).unwrap();
        model
            .record_loss_backward(&mut rec, &batch, &targets, 1.0 / count, &grads)
            .unwrap();
        opt.step(&mut rec, &model.params, &grads, 1e-2).unwrap();
        rec.submit().unwrap();
    }
    let trained = model.params.download(&weights).unwrap();
    save_pretrained(
        dir.join("model"),
        &cfg,
        &trained,
        Some(&tok),
        &SaveOptions {
            dtype: StorageDType::F32,
            ..Default::default()
        },
    )
    .unwrap();

    RlConfig {
        model: dir.join("model"),
        data,
        mode: PromptMode::Direct,
        steps: 3,
        n: 6,
        prompts_per_step: 4,
        mini_batch_prompts: 2,
        rollout_batch: 2,
        ppo_epochs: 1,
        lr: 3e-3,
        lr_warmup_steps: 0,
        weight_decay: 0.0,
        max_prompt_tokens: 200,
        max_response_tokens: 4,
        max_sample_rounds: 3,
        checkpoint_every: 1,
        keep_checkpoints: 0,
        seed: 5,
        rl_eval_every: 0,
        eval_prompts: 12,
        eval_samples: 4,
        prompts: prompt_config(),
        ..Default::default()
    }
}
