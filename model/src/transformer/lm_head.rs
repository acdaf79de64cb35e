//! The LM head and the token loss, in row chunks so the `[N, V]` logits never exist whole
//! (8k tokens x 153k vocabulary is 5 GB in f32): per chunk, logits = hidden @ W_out^T, then the
//! fused cross-entropy gives per-token log-prob, loss and entropy and, for training, the
//! gradient in place of the logits, from which d_hidden and dW_out follow.

use crate::gpu::{Recorder, Result, Tensor};
use crate::kernels::cross_entropy::{
    cross_entropy_backward, cross_entropy_forward, cross_entropy_fused, CeStats,
};
use crate::kernels::matmul::{matmul, MatmulOpts};

use super::forward::{f32_zeros, Activations};
use super::params::Params;
use super::Transformer;

/// Per-token values of the model's distribution at each position, `[N]` each.
pub struct HeadOutputs {
    pub stats: CeStats,
}

impl HeadOutputs {
    /// log p(target) per token (0 for ignored tokens).
    pub fn logprob(&self) -> &Tensor {
        &self.stats.logprob
    }
    pub fn loss(&self) -> &Tensor {
        &self.stats.loss
    }
    pub fn entropy(&self) -> &Tensor {
        &self.stats.entropy
    }
}

/// What the chunk loop does with each chunk's logits.
enum HeadMode<'a> {
    /// Per-token stats only.
    Stats,
    /// Stats and the gradient with `coef` in one pass (SFT).
    Fused { coef: &'a Tensor },
    /// The gradient from stats computed earlier (RL: coef depends on every token's log-prob).
    Backward { coef: &'a Tensor, lse: &'a Tensor },
}

impl Transformer {
    /// Rows per LM-head chunk: the chunk's logits must fit one binding and stay under 256 MiB;
    /// a multiple of 64 rows keeps every row window 256-byte aligned.
    pub fn head_chunk_rows(&self, n: usize) -> usize {
        let v = self.cfg.vocab_size.max(1) as u64;
        let budget = self.ctx.max_binding_bytes().min(256 << 20);
        let rows = (budget / (v * 4)) as usize;
        if rows >= n {
            n
        } else {
            (rows / 64 * 64).max(64)
        }
    }

    /// Per-token log-prob of `targets` (u32 `[N]`, `IGNORE_INDEX` skips), loss and entropy
    /// under `softmax(logits / temperature)`.
    pub fn head_stats(
        &self,
        rec: &mut Recorder,
        acts: &Activations,
        targets: &Tensor,
        temperature: f32,
    ) -> Result<HeadOutputs> {
        let stats = CeStats::zeros(&self.ctx, acts.batch.tokens())?;
        self.head_loop(
            rec,
            acts,
            targets,
            temperature,
            &stats,
            HeadMode::Stats,
            None,
        )?;
        Ok(HeadOutputs { stats })
    }

    /// Stats and the backward of `sum_t coef[t] * loss[t]` through the head in one pass:
    /// accumulates dW_out into `grads` and returns d_hidden `[N, H]`.
    pub fn head_loss_backward(
        &self,
        rec: &mut Recorder,
        acts: &Activations,
        targets: &Tensor,
        coef: &Tensor,
        temperature: f32,
        grads: &Params,
    ) -> Result<(HeadOutputs, Tensor)> {
        let stats = CeStats::zeros(&self.ctx, acts.batch.tokens())?;
        let d_hidden = f32_zeros(self, acts.hidden.shape())?;
        let mode = HeadMode::Fused { coef };
        self.head_loop(
            rec,
            acts,
            targets,
            temperature,
            &stats,
            mode,
            Some((grads, &d_hidden)),
        )?;
        Ok((HeadOutputs { stats }, d_hidden))
    }

    /// Backward through the head given per-token `coef` (for RL, coef = -dL/dlogprob) and the
    /// `lse` of an earlier `head_stats` at the same temperature. Returns d_hidden.
    #[allow(clippy::too_many_arguments)]
    pub fn head_backward(
        &self,
        rec: &mut Recorder,
        acts: &Activations,
        targets: &Tensor,
        coef: &Tensor,
        earlier: &HeadOutputs,
        temperature: f32,
        grads: &Params,
    ) -> Result<Tensor> {
        let d_hidden = f32_zeros(self, acts.hidden.shape())?;
        let mode = HeadMode::Backward {
            coef,
            lse: &earlier.stats.lse,
        };
        self.head_loop(
            rec,
            acts,
            targets,
            temperature,
            &earlier.stats,
            mode,
            Some((grads, &d_hidden)),
        )?;
        Ok(d_hidden)
    }

    #[allow(clippy::too_many_arguments)]
    fn head_loop(
        &self,
        rec: &mut Recorder,
        acts: &Activations,
        targets: &Tensor,
        temperature: f32,
        stats: &CeStats,
        mode: HeadMode,
        grads: Option<(&Params, &Tensor)>,
    ) -> Result<()> {
        let n = acts.batch.tokens();
        let v = self.cfg.vocab_size;
        let w_out = self.params.output_embedding();
        let rows = self.head_chunk_rows(n);
        // One logits buffer for every chunk: the recorder would keep a buffer per chunk alive
        // until submit, i.e. the whole [N, V] logits this loop exists to avoid.
        let chunk_logits = f32_zeros(self, &[rows.min(n).max(1), v])?;
        for r0 in (0..n).step_by(rows.max(1)) {
            let rc = rows.min(n - r0);
            let hidden = acts.hidden.rows(r0, rc)?;
            let tgt = targets.rows(r0, rc)?;
            let st = CeStats {
                lse: stats.lse.rows(r0, rc)?,
                logprob: stats.logprob.rows(r0, rc)?,
                loss: stats.loss.rows(r0, rc)?,
                entropy: stats.entropy.rows(r0, rc)?,
            };
            let logits = chunk_logits.rows(0, rc)?;
            let mm = &acts.mm;
            let w_op = mm.out_weight(w_out);
            let hidden_op = mm.act(rec, &hidden)?;
            mm.mm(rec, &hidden_op, &w_op, None, &logits, MatmulOpts::nt())?;
            match &mode {
                HeadMode::Stats => {
                    cross_entropy_forward(rec, &logits, &tgt, &st, temperature)?;
                    continue;
                }
                HeadMode::Fused { coef } => {
                    cross_entropy_fused(rec, &logits, &tgt, &coef.rows(r0, rc)?, &st, temperature)?
                }
                HeadMode::Backward { coef, lse } => cross_entropy_backward(
                    rec,
                    &logits,
                    &tgt,
                    &coef.rows(r0, rc)?,
                    &lse.rows(r0, rc)?,
                    temperature,
                )?,
            }
            // `logits` now holds dloss/dlogits for this chunk.
            let (g, d_hidden) = grads.expect("training modes carry gradients");
            let dw = g.output_embedding();
            let dlogits = mm.grad(rec, &logits)?;
            let d_h = d_hidden.rows(r0, rc)?;
            mm.mm(rec, &dlogits, &w_op, None, &d_h, MatmulOpts::default())?;
            let o = MatmulOpts::tn().accumulate(true);
            mm.mm(rec, &dlogits, &hidden_op, None, dw, o)?;
        }
        Ok(())
    }
}

impl Transformer {
    /// Logits `[N, V]` at every position of `batch`, read back to the host (parity checks,
    /// small vocabularies; training and generation never materialise them whole).
    pub fn logits(&self, batch: &super::TokenBatch) -> Result<Vec<f32>> {
        let mut rec = Recorder::new(&self.ctx, "logits");
        let acts = self.forward(&mut rec, batch)?;
        let logits = f32_zeros(self, &[batch.tokens(), self.cfg.vocab_size])?;
        matmul(
            &mut rec,
            &acts.hidden,
            self.params.output_embedding(),
            None,
            &logits,
            MatmulOpts::nt(),
        )?;
        rec.submit()?;
        logits.to_f32_vec()
    }
}
