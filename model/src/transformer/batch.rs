//! A batch of token sequences laid out as the kernels expect: `B` rows of `T` tokens flattened
//! batch-major, a key-padding mask (1 = real token) and explicit RoPE positions (so left- and
//! right-padded batches both work).

use crate::gpu::{GpuContext, Result, Tensor};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    pub batch: usize,
    pub seq: usize,
    /// `[B*T]` token ids; padding slots hold `pad_id`.
    pub ids: Vec<u32>,
    /// `[B*T]` 1 for a real token, 0 for padding.
    pub mask: Vec<u32>,
    /// `[B*T]` position of each token within its sequence (0 for padding).
    pub positions: Vec<u32>,
}

impl TokenBatch {
    /// Right-padded to the longest sequence (at least one token per row).
    pub fn right_padded(seqs: &[&[u32]], pad_id: u32) -> Self {
        let seq = seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        let batch = seqs.len();
        let mut ids = vec![pad_id; batch * seq];
        let mut mask = vec![0u32; batch * seq];
        let mut positions = vec![0u32; batch * seq];
        for (b, s) in seqs.iter().enumerate() {
            for (t, &id) in s.iter().enumerate() {
                ids[b * seq + t] = id;
                mask[b * seq + t] = 1;
                positions[b * seq + t] = t as u32;
            }
        }
        TokenBatch {
            batch,
            seq,
            ids,
            mask,
            positions,
        }
    }

    pub fn tokens(&self) -> usize {
        self.batch * self.seq
    }

    /// Length of each sequence (number of real tokens).
    pub fn lengths(&self) -> Vec<usize> {
        self.mask
            .chunks(self.seq.max(1))
            .map(|r| r.iter().filter(|&&m| m == 1).count())
            .collect()
    }
}

/// The batch uploaded once per step.
pub struct BatchTensors {
    pub ids: Tensor,
    pub mask: Tensor,
    pub positions: Tensor,
}

impl BatchTensors {
    pub fn upload(ctx: &GpuContext, b: &TokenBatch) -> Result<Self> {
        let n = [b.tokens()];
        Ok(BatchTensors {
            ids: Tensor::from_u32(ctx, &n, &b.ids)?,
            mask: Tensor::from_u32(ctx, &n, &b.mask)?,
            positions: Tensor::from_u32(ctx, &n, &b.positions)?,
        })
    }
}
