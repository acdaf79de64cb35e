//! The demo's inputs, all made by grrm itself (nothing third-party): the synthetic dataset, its
//! semantic-ID index, the SFT curriculum, a byte-level BPE tokenizer trained on the dataset's own
//! text with the ID tokens added as special tokens, and a small randomly initialised Qwen3.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use grrm_model::hf::{
    init_random, save_pretrained, Arch, ConfigBuilder, SaveOptions, StorageDType,
};
use grrm_model::tokenizer::{build_tiny_tokenizer, TINY_CORPUS};
use grrm_recsys::index::{all_index_tokens, index_folder, IndexConfig, IndexReport, TfidfEmbedder};
use grrm_recsys::tasks::align::Task;
use grrm_recsys::tasks::sft::{
    build_sft, write_jsonl, RationaleStyle, SftConfig as CurriculumSettings,
};
use grrm_recsys::{io, synth, SynthConfig};
use serde::{Deserialize, Serialize};

/// The `[prepare]` section of the demo config.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PrepareConfig {
    pub seed: u64,
    pub users: usize,
    pub items: usize,
    pub index_levels: usize,
    pub index_codes: usize,
    /// BPE vocabulary before the ID tokens.
    pub tokenizer_vocab: usize,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub max_positions: usize,
    /// Cap on examples per interaction task (seqrec, fusionseqrec) and round.
    pub max_per_task: usize,
    /// Per-task caps overriding `max_per_task`, e.g. `{ seqrec = 800 }`.
    pub task_caps: BTreeMap<Task, usize>,
    /// The alignment tasks in the curriculum.
    pub tasks: Vec<Task>,
    /// Times every alignment task is rendered (fresh templates each round).
    pub align_rounds: usize,
    /// Reasoning (chain-of-thought) samples in the curriculum.
    pub reasoning_examples: usize,
    /// Length of the offline rationales in the reasoning samples.
    pub rationale: RationaleStyle,
    /// Items of history shown in every prompt (SPEC's 20 makes prompts too long for a CPU demo);
    /// the demo applies it to the curriculum, the RL prompts and the evaluation alike.
    pub history_cap: usize,
}

impl Default for PrepareConfig {
    fn default() -> Self {
        PrepareConfig {
            seed: 42,
            users: 1500,
            items: 600,
            index_levels: 4,
            index_codes: 32,
            tokenizer_vocab: 1024,
            layers: 4,
            hidden: 128,
            heads: 4,
            kv_heads: 2,
            head_dim: 32,
            ffn: 384,
            max_positions: 1024,
            max_per_task: 400,
            task_caps: BTreeMap::new(),
            tasks: CurriculumSettings::default().tasks,
            align_rounds: CurriculumSettings::default().align_rounds,
            reasoning_examples: 256,
            rationale: RationaleStyle::Full,
            history_cap: 20,
        }
    }
}

pub struct Prepared {
    pub data_dir: PathBuf,
    pub model_dir: PathBuf,
    pub curriculum: PathBuf,
    pub index: IndexReport,
    pub samples: usize,
}

pub fn prepare(cfg: &PrepareConfig, out: &Path) -> Result<Prepared> {
    let data_dir = out.join("data");
    let model_dir = out.join("model-init");
    let curriculum = out.join("sft.jsonl");

    let synth_cfg = SynthConfig {
        seed: cfg.seed,
        users: cfg.users,
        items: cfg.items,
        ..Default::default()
    };
    let ds = synth(&synth_cfg)?;
    io::save(&ds, &data_dir)?;
    let icfg = IndexConfig {
        levels: cfg.index_levels,
        codes: cfg.index_codes,
        seed: cfg.seed,
        ..Default::default()
    };
    let index = index_folder(&data_dir, &icfg, &TfidfEmbedder::default())?;
    let ds = io::load(&data_dir)?;

    let mut scfg = CurriculumSettings {
        seed: cfg.seed,
        max_examples_per_task: Some(cfg.max_per_task),
        task_caps: cfg.task_caps.clone(),
        tasks: cfg.tasks.clone(),
        align_rounds: cfg.align_rounds,
        ..Default::default()
    };
    scfg.reasoning.examples = cfg.reasoning_examples;
    scfg.reasoning.style = cfg.rationale;
    scfg.history_cap = cfg.history_cap;
    let (samples, _report) = build_sft(&ds, &scfg)?;
    write_jsonl(&curriculum, &samples)?;

    // The tokenizer learns the dataset's words; ID tokens are special tokens (one id each).
    let mut corpus: Vec<String> = TINY_CORPUS.iter().map(|s| s.to_string()).collect();
    for s in &samples {
        for m in &s.messages {
            corpus.push(strip_index_tokens(&m.content));
        }
    }
    let refs: Vec<&str> = corpus.iter().map(String::as_str).collect();
    let mut tok =
        build_tiny_tokenizer(&refs, cfg.tokenizer_vocab).context("training the demo tokenizer")?;
    let max_collision = index.max_collision.max(1);
    tok.add_special_tokens(&all_index_tokens(
        cfg.index_levels,
        cfg.index_codes,
        max_collision,
    ))?;

    let mut mcfg = ConfigBuilder::new(Arch::Qwen3)
        .layers(cfg.layers)
        .hidden(cfg.hidden)
        .heads(cfg.heads)
        .kv_heads(cfg.kv_heads)
        .head_dim(cfg.head_dim)
        .ffn(cfg.ffn)
        .vocab(tok.len().div_ceil(64) * 64)
        .tied(true)
        .max_positions(cfg.max_positions)
        .build()?;
    mcfg.eos_token_ids = tok.stop_token_ids();
    mcfg.pad_token_id = tok.pad_token_id();
    let weights = init_random(&mcfg, cfg.seed);
    let opts = SaveOptions {
        dtype: StorageDType::F32,
        ..Default::default()
    };
    save_pretrained(&model_dir, &mcfg, &weights, Some(&tok), &opts)?;
    Ok(Prepared {
        data_dir,
        model_dir,
        curriculum,
        index,
        samples: samples.len(),
    })
}

/// Removes `<|x_n|>` tokens from text (they are added to the tokenizer whole, not learned).
fn strip_index_tokens(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("<|") {
        out.push_str(&rest[..i]);
        match rest[i..].find("|>") {
            Some(j) => rest = &rest[i + j + 2..],
            None => {
                rest = &rest[i..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}
