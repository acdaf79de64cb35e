//! The benchmarked model's shape (Qwen3-0.6B by default) and a random-weight model of it.

use serde::Serialize;

use crate::gpu::{GpuContext, GpuError, Result};
use crate::hf::{init_random, Arch, ConfigBuilder, ModelConfig};
use crate::transformer::Transformer;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModelShape {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub vocab: usize,
}

impl ModelShape {
    /// Qwen3-0.6B: hidden 1024, 28 layers, 16 query / 8 key-value heads of 128, MLP 3072,
    /// tied embeddings, vocabulary 151,936 + 1,280 semantic-ID tokens = 153,216 rows.
    pub fn qwen3_0_6b() -> Self {
        ModelShape {
            layers: 28,
            hidden: 1024,
            heads: 16,
            kv_heads: 8,
            head_dim: 128,
            ffn: 3072,
            vocab: 153_216,
        }
    }

    /// A tiny model for lavapipe (`--quick`): the same structure (GQA, q/k norm, tied head).
    pub fn quick() -> Self {
        ModelShape {
            layers: 2,
            hidden: 64,
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
            ffn: 192,
            vocab: 2048,
        }
    }

    /// A Qwen3 config of this shape whose RoPE table covers `max_positions`.
    pub fn config(&self, max_positions: usize) -> Result<ModelConfig> {
        ConfigBuilder::new(Arch::Qwen3)
            .layers(self.layers)
            .hidden(self.hidden)
            .heads(self.heads)
            .kv_heads(self.kv_heads)
            .head_dim(self.head_dim)
            .ffn(self.ffn)
            .vocab(self.vocab)
            .tied(true)
            .max_positions(max_positions.max(1))
            .build()
            .map_err(|e| GpuError::shape("bench model", e.to_string()))
    }

    /// Draws the weights on the host (transformers' initialisation, seeded) and uploads them.
    pub fn build(&self, ctx: &GpuContext, seed: u64, max_positions: usize) -> Result<Transformer> {
        let cfg = self.config(max_positions)?;
        let weights = init_random(&cfg, seed);
        Transformer::new(ctx, &cfg, &weights, max_positions)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} layers, hidden {}, heads {}/{} x {}, MLP {}, vocabulary {}, tied",
            self.layers,
            self.hidden,
            self.heads,
            self.kv_heads,
            self.head_dim,
            self.ffn,
            self.vocab
        )
    }
}
