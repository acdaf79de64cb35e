//! `grrm index`: semantic IDs for every item of a dataset (residual balanced K-means over fused
//! item text and, optionally, collaborative factors), written to `D.index.json`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use grrm_actors::data::LlmEmbedder;
use grrm_model::gpu::AdapterSelector;
use grrm_model::hf::Checkpoint;
use grrm_model::transformer::Transformer;
use grrm_model::GpuContext;
use grrm_recsys::index::{index_folder, IndexConfig, TfidfEmbedder};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Embedder {
    /// TF-IDF of the fused text reduced by a truncated SVD: meaningful without a trained model.
    Tfidf,
    /// The backbone's mean-pooled last hidden states (needs --model).
    Model,
}

#[derive(Args, Debug)]
pub struct IndexArgs {
    /// Dataset folder.
    #[arg(long)]
    pub data: PathBuf,
    /// Backbone model folder (for --embedder model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Default: model when --model is given, else tfidf.
    #[arg(long, value_enum)]
    pub embedder: Option<Embedder>,
    #[arg(long, default_value_t = 4)]
    pub levels: usize,
    #[arg(long, default_value_t = 256)]
    pub codes: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Leave out the co-occurrence factors of the training interactions.
    #[arg(long)]
    pub no_collab: bool,
    #[arg(long)]
    pub adapter: Option<String>,
}

pub fn run(a: IndexArgs) -> anyhow::Result<()> {
    let mut cfg = IndexConfig {
        levels: a.levels,
        codes: a.codes,
        seed: a.seed,
        ..Default::default()
    };
    if a.no_collab {
        cfg.collab = None;
    }
    let kind = a.embedder.unwrap_or(if a.model.is_some() {
        Embedder::Model
    } else {
        Embedder::Tfidf
    });
    let report = match kind {
        Embedder::Tfidf => index_folder(&a.data, &cfg, &TfidfEmbedder::default())?,
        Embedder::Model => {
            let Some(dir) = &a.model else {
                bail!("--embedder model needs --model DIR")
            };
            let ck = Checkpoint::load(dir)?;
            let tok = ck
                .tokenizer
                .as_ref()
                .with_context(|| format!("{} has no tokenizer", dir.display()))?;
            let ctx = GpuContext::open(&AdapterSelector::from_arg_or_env(a.adapter.as_deref()))?;
            let model = Transformer::new(&ctx, &ck.config, &ck.weights, 512)?;
            let emb = LlmEmbedder {
                model: &model,
                tokenizer: tok,
                max_tokens: 256,
                batch_size: 16,
            };
            index_folder(&a.data, &cfg, &emb)?
        }
    };
    print!("{report}");
    Ok(())
}
