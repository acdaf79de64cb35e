//! Memory planned up front from the config and batch shape, so a run that cannot fit the
//! adapter is refused with numbers instead of failing mid-step.

use std::fmt;

use serde::Serialize;

use crate::hf::ModelConfig;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemoryPlan {
    pub params: u64,
    pub grads: u64,
    pub optimizer: u64,
    pub activations: u64,
    pub head_chunk: u64,
}

impl MemoryPlan {
    /// Bytes for training `tokens` tokens per micro-batch of sequences of length `seq`
    /// (f32 everywhere; the attention saves only a logsumexp per query row and head).
    pub fn training(c: &ModelConfig, tokens: usize, head_chunk_rows: usize) -> Self {
        let f = 4u64;
        let n = tokens as u64;
        let params = c.num_parameters() as u64 * f;
        let (h, qd, kvd, ff) = (
            c.hidden_size as u64,
            c.q_dim() as u64,
            c.kv_dim() as u64,
            c.intermediate_size as u64,
        );
        let qk_norm = if c.qk_norm() { qd + kvd } else { 0 };
        // Per layer: x_in, h1, x_mid, h2 (4H); q_lin, q, attn (3 qd); k_lin, k, v (3 kvd);
        // gate, up, act (3F); per-head norm outputs; rstd and lse rows.
        let per_token =
            4 * h + 3 * qd + 3 * kvd + 3 * ff + qk_norm + 2 + c.num_attention_heads as u64;
        let activations = n * per_token * f * c.num_hidden_layers as u64 + n * 2 * h * f;
        MemoryPlan {
            params,
            grads: params,
            optimizer: 2 * params,
            activations,
            head_chunk: head_chunk_rows as u64 * c.vocab_size as u64 * f,
        }
    }

    pub fn total(&self) -> u64 {
        self.params + self.grads + self.optimizer + self.activations + self.head_chunk
    }
}

impl fmt::Display for MemoryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        write!(
            f,
            "memory plan: params {:.1} MiB, grads {:.1} MiB, AdamW {:.1} MiB, activations {:.1} MiB, \
             LM-head chunk {:.1} MiB, total {:.1} MiB",
            mib(self.params),
            mib(self.grads),
            mib(self.optimizer),
            mib(self.activations),
            mib(self.head_chunk),
            mib(self.total())
        )
    }
}
