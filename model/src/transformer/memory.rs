//! Memory planned up front from the config and batch shape, so a run that cannot fit the
//! adapter is refused with numbers instead of failing mid-step.
//!
//! The plan counts the tensors one training step allocates (f32 and u32, 4 bytes each), as
//! `forward.rs`, `lm_head.rs` and `backward.rs` allocate them; everything a step records stays
//! alive until its submission, so these all coexist at the peak. Left out: kernels' small
//! reduction buffers (RMSNorm weight-gradient partials, grad-norm partials, the embedding
//! backward's index), well under 1% at real sizes.

use std::fmt;

use serde::Serialize;

use super::precision::{scratch_elems, MatmulPrecision};
use crate::hf::ModelConfig;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemoryPlan {
    pub params: u64,
    pub grads: u64,
    pub optimizer: u64,
    /// What the forward keeps for the backward: every layer's activations, or with
    /// recomputation each layer's input plus one shared layer's worth.
    pub activations: u64,
    /// Alive until the step's submission: the layers' shared forward scratch, one layer's
    /// gradient temporaries (reused by every layer), the residual-stream gradient, d_hidden,
    /// per-token loss buffers and each layer's attention statistics.
    pub temporaries: u64,
    /// The LM head's logits buffer: one chunk of rows x vocabulary.
    pub head_chunk: u64,
    /// Mixed-precision matmuls (`MatmulPrecision`): the cast copy of every matmul weight (the
    /// layers' projections and the output embedding) and the activation and gradient operand
    /// scratch, 2 bytes an element with f16 operands (4 when emulated), 0 with f32 matmuls.
    pub matmul_operands: u64,
    pub recompute_activations: bool,
}

impl MemoryPlan {
    /// Bytes for training on `tokens` tokens per micro-batch with every activation kept.
    pub fn training(c: &ModelConfig, tokens: usize, head_chunk_rows: usize) -> Self {
        Self::for_training(c, tokens, head_chunk_rows, false)
    }

    /// The same, with or without activation recomputation.
    pub fn for_training(
        c: &ModelConfig,
        tokens: usize,
        head_chunk_rows: usize,
        recompute: bool,
    ) -> Self {
        let f = 4u64;
        let n = tokens as u64;
        let layers = c.num_hidden_layers as u64;
        let params = c.num_parameters() as u64 * f;
        let (h, qd, kvd, ff) = (
            c.hidden_size as u64,
            c.q_dim() as u64,
            c.kv_dim() as u64,
            c.intermediate_size as u64,
        );
        let (hq, hkv) = (c.num_attention_heads as u64, c.num_key_value_heads as u64);
        let qk = c.qk_norm() as u64;
        // One layer's saved tensors besides its input, per token: h1, rstd1, q_lin, k_lin, v,
        // (per-head normed q, k and their rstd), rotated q, k, attention output, lse, x_mid,
        // h2, rstd2, gate, up, act.
        let layer = h
            + 1
            + qd
            + 2 * kvd
            + qk * (qd + kvd + hq + hkv)
            + qd
            + kvd
            + qd
            + hq
            + h
            + h
            + 1
            + 3 * ff;
        // Each layer's output (the next one's input; the last is x_final) is always kept.
        let per_token_saved = if recompute {
            layers * h + layer
        } else {
            layers * (h + layer)
        };
        // Batch ids, mask, positions; the embedding output; final-norm output and rstd.
        let activations = n * (per_token_saved + 3 + h + h + 1) * f;
        // Forward scratch (o, down, recomputed output); backward scratch (d_act, d_gate,
        // d_up, dh, dxn, d_attn, dq, dk, dv, and pre-q/k-norm dq, dk); dx; d_hidden; the
        // backward's ones row; targets, coefficients and four loss statistics; attention
        // statistics (lse and delta per head) for every layer.
        let scratch = 3 * h;
        let backward = 3 * ff + 2 * h + 2 * qd + 2 * kvd + qk * (qd + kvd);
        let temporaries = n * (scratch + backward + h + h + 1 + 2 + 4 + layers * 2 * hq) * f;
        MemoryPlan {
            params,
            grads: params,
            optimizer: 2 * params,
            activations,
            temporaries,
            head_chunk: head_chunk_rows.min(tokens).max(1) as u64 * c.vocab_size as u64 * f,
            matmul_operands: 0,
            recompute_activations: recompute,
        }
    }

    /// The same plan with the matmul operands of `precision` (already resolved for the
    /// adapter, see `Transformer::matmul_precision`).
    pub fn with_matmul_precision(
        mut self,
        c: &ModelConfig,
        tokens: usize,
        head_chunk_rows: usize,
        precision: MatmulPrecision,
    ) -> Self {
        let Some(dtype) = precision.operand_dtype() else {
            self.matmul_operands = 0;
            return self;
        };
        let es = dtype.size_bytes() as u64;
        let (h, qd, kvd, ff) = (
            c.hidden_size as u64,
            c.q_dim() as u64,
            c.kv_dim() as u64,
            c.intermediate_size as u64,
        );
        let layers = c.num_hidden_layers as u64;
        let per_layer = h * (2 * qd + 2 * kvd + 3 * ff);
        let weights = layers * per_layer + c.vocab_size as u64 * h;
        let (x, dy) = scratch_elems(c, tokens, head_chunk_rows);
        // Scale words: one 256-byte slot per weight and two for the scratch operands.
        let stats = (layers * 7 + 1 + 2) * 256;
        self.matmul_operands = (weights + x as u64 + dy as u64) * es + stats;
        self
    }

    pub fn total(&self) -> u64 {
        self.params
            + self.grads
            + self.optimizer
            + self.activations
            + self.temporaries
            + self.head_chunk
            + self.matmul_operands
    }
}

impl fmt::Display for MemoryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        write!(
            f,
            "memory plan: params {:.1} MiB, grads {:.1} MiB, AdamW {:.1} MiB, activations {:.1} MiB{}, \
             temporaries {:.1} MiB, LM-head chunk {:.1} MiB, matmul operands {:.1} MiB, \
             total {:.1} MiB",
            mib(self.params),
            mib(self.grads),
            mib(self.optimizer),
            mib(self.activations),
            if self.recompute_activations {
                " (recomputed)"
            } else {
                ""
            },
            mib(self.temporaries),
            mib(self.head_chunk),
            mib(self.matmul_operands),
            mib(self.total())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hf::{Arch, ConfigBuilder};

    /// Qwen3-0.6B at batch 8 x 1024 with NVIDIA's 384-row LM-head chunks (256 MiB / 153,216
    /// columns, rounded down to 64 rows) must fit an 80 GB card with room for the driver.
    #[test]
    fn qwen3_0_6b_training_fits_an_80gb_card() {
        let c = ConfigBuilder::new(Arch::Qwen3)
            .layers(28)
            .hidden(1024)
            .heads(16)
            .kv_heads(8)
            .head_dim(128)
            .ffn(3072)
            .vocab(153_216)
            .build()
            .unwrap();
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        let full = MemoryPlan::training(&c, 8 * 1024, 384);
        let recompute = MemoryPlan::for_training(&c, 8 * 1024, 384, true);
        // f32 weights, gradients and two moments: 4 x 596M x 4 bytes.
        assert_eq!(c.num_parameters(), 597_360_640);
        assert!((gib(full.params + full.grads + full.optimizer) - 8.90).abs() < 0.01);
        assert!(gib(full.total()) < 40.0, "{full}");
        assert!(gib(recompute.total()) < 14.0, "{recompute}");
        assert!(
            recompute.activations * 10 < full.activations,
            "{recompute} vs {full}"
        );
        assert_eq!(recompute.temporaries, full.temporaries);
        eprintln!("{full}\n{recompute}");
    }
}
