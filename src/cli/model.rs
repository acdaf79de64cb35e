//! `grrm init-model` and `grrm generate`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use grrm_model::generate::{generate, SamplingParams};
use grrm_model::gpu::AdapterSelector;
use grrm_model::hf::{
    init_random, save_pretrained, Arch, Checkpoint, ConfigBuilder, SaveOptions, StorageDType,
};
use grrm_model::tokenizer::{build_tiny_tokenizer, ChatOptions, Message, Tokenizer, TINY_CORPUS};
use grrm_model::transformer::Transformer;
use grrm_model::GpuContext;

#[derive(Args, Debug)]
pub struct InitModelArgs {
    /// qwen3, qwen2 or llama.
    #[arg(long, default_value = "qwen3")]
    pub arch: String,
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    #[arg(long, default_value_t = 2)]
    pub kv_heads: usize,
    /// Default hidden / heads.
    #[arg(long)]
    pub head_dim: Option<usize>,
    #[arg(long, default_value_t = 384)]
    pub ffn: usize,
    /// Default: the tokenizer's size.
    #[arg(long)]
    pub vocab: Option<usize>,
    #[arg(long, default_value_t = 1024)]
    pub max_positions: usize,
    /// Tie the LM head to the input embedding.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub tied: bool,
    /// tokenizer.json (tokenizer_config.json beside it is used when present), or a folder with
    /// both. Without it, a small byte-level BPE tokenizer is built from grrm's own corpus.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// f32, bf16 or f16 on disk.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A Hugging Face model folder (config.json, safetensors, tokenizer files).
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub prompt: String,
    /// Render the prompt as a user turn with the chat template (and a generation prompt).
    #[arg(long)]
    pub chat: bool,
    /// Text that starts the assistant turn, e.g. "<think>\n" (with --chat).
    #[arg(long)]
    pub assistant_prefix: Option<String>,
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub adapter: Option<String>,
}

pub fn load_tokenizer(path: &Path) -> anyhow::Result<Tokenizer> {
    let tok = if path.is_dir() {
        Tokenizer::from_dir(path)?
    } else {
        let cfg = path.with_file_name("tokenizer_config.json");
        Tokenizer::from_files(path, cfg.is_file().then_some(cfg))?
    };
    Ok(tok)
}

fn storage_dtype(s: &str) -> anyhow::Result<StorageDType> {
    Ok(match s {
        "f32" => StorageDType::F32,
        "bf16" => StorageDType::BF16,
        "f16" => StorageDType::F16,
        other => bail!("--dtype {other}: expected f32, bf16 or f16"),
    })
}

pub fn init_model(a: InitModelArgs) -> anyhow::Result<()> {
    let arch = Arch::parse(&a.arch)
        .with_context(|| format!("--arch {}: expected qwen3, qwen2 or llama", a.arch))?;
    let tok = match &a.tokenizer {
        Some(p) => load_tokenizer(p)?,
        None => build_tiny_tokenizer(TINY_CORPUS, 512)?,
    };
    let vocab = a.vocab.unwrap_or(tok.len());
    if vocab < tok.len() {
        bail!(
            "--vocab {vocab} is smaller than the tokenizer's {} tokens",
            tok.len()
        );
    }
    let mut b = ConfigBuilder::new(arch)
        .layers(a.layers)
        .hidden(a.hidden)
        .heads(a.heads)
        .kv_heads(a.kv_heads)
        .ffn(a.ffn)
        .vocab(vocab)
        .tied(a.tied)
        .max_positions(a.max_positions);
    if let Some(d) = a.head_dim {
        b = b.head_dim(d);
    }
    let mut cfg = b.build()?;
    cfg.eos_token_ids = tok.stop_token_ids();
    cfg.pad_token_id = tok.pad_token_id();
    let weights = init_random(&cfg, a.seed);
    let opts = SaveOptions {
        dtype: storage_dtype(&a.dtype)?,
        ..Default::default()
    };
    save_pretrained(&a.out, &cfg, &weights, Some(&tok), &opts)?;
    println!(
        "wrote {:?} model with {} parameters ({} layers, hidden {}, vocab {}) to {}",
        arch,
        cfg.num_parameters(),
        cfg.num_hidden_layers,
        cfg.hidden_size,
        cfg.vocab_size,
        a.out.display()
    );
    Ok(())
}

pub fn generate_cmd(a: GenerateArgs) -> anyhow::Result<()> {
    let ck = Checkpoint::load(&a.model)?;
    let tok = ck
        .tokenizer
        .as_ref()
        .with_context(|| format!("{} has no tokenizer.json", a.model.display()))?;
    let ctx = GpuContext::open(&AdapterSelector::from_arg_or_env(a.adapter.as_deref()))?;
    let prompt_ids = if a.chat {
        let opts = ChatOptions::generation(a.assistant_prefix.as_deref());
        tok.encode_chat(&[Message::user(a.prompt.clone())], &opts)?
    } else {
        tok.encode(&a.prompt, false)?
    };
    let max_positions = prompt_ids.len() + a.max_new_tokens + 1;
    let model = Transformer::new(&ctx, &ck.config, &ck.weights, max_positions)?;
    let params = SamplingParams {
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        max_new_tokens: a.max_new_tokens,
        seed: a.seed,
    };
    let t0 = std::time::Instant::now();
    let out = generate(&model, &[prompt_ids], &params, &tok.stop_token_ids(), None)?;
    let s = &out[0];
    println!("{}", tok.decode(&s.tokens, false)?);
    eprintln!(
        "[{} tokens, {:?}, mean log-prob {:.3}, {:.1} tok/s on {}]",
        s.tokens.len(),
        s.finish,
        s.logprobs.iter().sum::<f32>() / s.logprobs.len().max(1) as f32,
        s.tokens.len() as f64 / t0.elapsed().as_secs_f64(),
        ctx.info().name
    );
    Ok(())
}
