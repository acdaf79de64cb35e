//! A builder for small configurations (tests, demos, `grrm init-model --layers N --hidden H ...`).

use std::path::Path;

use serde_json::Map;

use super::arch::Arch;
use super::config::ModelConfig;
use super::dtype::StorageDType;
use super::error::HfError;

/// Builds a [`ModelConfig`] from the handful of sizes a command line gives.
/// Defaults: 2 layers, hidden 64, 4 heads, kv heads = heads, head_dim = hidden/heads,
/// ffn = 3 x hidden, tied embeddings, rope_theta 1e6; the vocabulary size must be set.
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    arch: Arch,
    layers: usize,
    hidden: usize,
    heads: usize,
    kv_heads: Option<usize>,
    head_dim: Option<usize>,
    ffn: Option<usize>,
    vocab: usize,
    tied: bool,
    attention_bias: bool,
    rope_theta: f64,
    rms_norm_eps: f64,
    max_positions: usize,
    bos: Option<u32>,
    eos: Vec<u32>,
    pad: Option<u32>,
}

impl ConfigBuilder {
    pub fn new(arch: Arch) -> Self {
        ConfigBuilder {
            arch,
            layers: 2,
            hidden: 64,
            heads: 4,
            kv_heads: None,
            head_dim: None,
            ffn: None,
            vocab: 0,
            tied: true,
            attention_bias: false,
            rope_theta: 1_000_000.0,
            rms_norm_eps: 1e-6,
            max_positions: 4096,
            bos: None,
            eos: Vec::new(),
            pad: None,
        }
    }

    pub fn layers(mut self, n: usize) -> Self {
        self.layers = n;
        self
    }
    pub fn hidden(mut self, n: usize) -> Self {
        self.hidden = n;
        self
    }
    pub fn heads(mut self, n: usize) -> Self {
        self.heads = n;
        self
    }
    /// Key/value heads (grouped-query attention); defaults to `heads`.
    pub fn kv_heads(mut self, n: usize) -> Self {
        self.kv_heads = Some(n);
        self
    }
    /// Defaults to hidden / heads.
    pub fn head_dim(mut self, n: usize) -> Self {
        self.head_dim = Some(n);
        self
    }
    /// MLP width; defaults to 3 x hidden (the Qwen3-0.6B ratio).
    pub fn ffn(mut self, n: usize) -> Self {
        self.ffn = Some(n);
        self
    }
    pub fn vocab(mut self, n: usize) -> Self {
        self.vocab = n;
        self
    }
    pub fn tied(mut self, tied: bool) -> Self {
        self.tied = tied;
        self
    }
    /// `attention_bias` (Qwen3/Llama; Qwen2 has q/k/v biases anyway).
    pub fn attention_bias(mut self, on: bool) -> Self {
        self.attention_bias = on;
        self
    }
    pub fn rope_theta(mut self, t: f64) -> Self {
        self.rope_theta = t;
        self
    }
    pub fn rms_norm_eps(mut self, e: f64) -> Self {
        self.rms_norm_eps = e;
        self
    }
    pub fn max_positions(mut self, n: usize) -> Self {
        self.max_positions = n;
        self
    }
    pub fn bos(mut self, id: Option<u32>) -> Self {
        self.bos = id;
        self
    }
    pub fn eos(mut self, ids: Vec<u32>) -> Self {
        self.eos = ids;
        self
    }
    pub fn pad(mut self, id: Option<u32>) -> Self {
        self.pad = id;
        self
    }

    /// Resolves defaults and validates; errors name the offending option.
    pub fn build(self) -> Result<ModelConfig, HfError> {
        let src = Path::new("<config builder>");
        if self.heads == 0 {
            return Err(HfError::config(
                src,
                "num_attention_heads",
                "must be positive",
            ));
        }
        let head_dim = match self.head_dim {
            Some(d) => d,
            None if self.hidden.is_multiple_of(self.heads) => self.hidden / self.heads,
            None => {
                return Err(HfError::config(
                    src,
                    "num_attention_heads",
                    format!(
                        "{} does not divide hidden_size {} (give head_dim explicitly)",
                        self.heads, self.hidden
                    ),
                ))
            }
        };
        let config = ModelConfig {
            arch: self.arch,
            hidden_size: self.hidden,
            intermediate_size: self.ffn.unwrap_or(3 * self.hidden),
            num_hidden_layers: self.layers,
            num_attention_heads: self.heads,
            num_key_value_heads: self.kv_heads.unwrap_or(self.heads),
            head_dim,
            vocab_size: self.vocab,
            max_position_embeddings: self.max_positions,
            rope_theta: self.rope_theta,
            rms_norm_eps: self.rms_norm_eps,
            initializer_range: 0.02,
            attention_bias: self.attention_bias,
            tie_word_embeddings: self.tied,
            dtype: Some(StorageDType::F32),
            bos_token_id: self.bos,
            eos_token_ids: self.eos,
            pad_token_id: self.pad,
            extra: Map::new(),
        };
        config.validate(src)?;
        Ok(config)
    }
}
