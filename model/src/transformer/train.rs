//! One supervised step on a batch: next-token targets from the batch itself, loss on the
//! tokens the caller marks, token-mean over the whole (possibly accumulated) batch.

use crate::gpu::{Recorder, Result, Tensor};
use crate::kernels::cross_entropy::IGNORE_INDEX;
use crate::kernels::elementwise::fill;

use super::batch::TokenBatch;
use super::params::Params;
use super::Transformer;

/// Next-token targets: position t predicts token t+1 of the same sequence where
/// `loss_mask[t+1]` is 1 (e.g. assistant tokens only); every other position is ignored.
pub fn next_token_targets(batch: &TokenBatch, loss_mask: &[u32]) -> Vec<u32> {
    let (b, t) = (batch.batch, batch.seq);
    let mut targets = vec![IGNORE_INDEX; b * t];
    for row in 0..b {
        for i in 0..t.saturating_sub(1) {
            let (cur, next) = (row * t + i, row * t + i + 1);
            if batch.mask[cur] == 1 && batch.mask[next] == 1 && loss_mask[next] == 1 {
                targets[cur] = batch.ids[next];
            }
        }
    }
    targets
}

impl Transformer {
    /// Forward, loss and backward of `sum_t coef * CE(t)` over `targets` (u32 per token,
    /// `IGNORE_INDEX` skips): gradients accumulate into `grads`. Records only; returns the
    /// per-token loss tensor. Use `coef = 1 / (target tokens in the whole accumulated batch)`
    /// for a token-mean loss.
    pub fn record_loss_backward(
        &self,
        rec: &mut Recorder,
        batch: &TokenBatch,
        targets: &[u32],
        coef: f32,
        grads: &Params,
    ) -> Result<Tensor> {
        let n = batch.tokens();
        let acts = self.forward(rec, batch)?;
        let tgt = Tensor::from_u32(&self.ctx, &[n], targets)?;
        let coef_t = Tensor::from_f32(&self.ctx, &[n], &vec![coef; n])?;
        let (out, d_hidden) = self.head_loss_backward(rec, &acts, &tgt, &coef_t, 1.0, grads)?;
        self.backward(rec, &acts, &d_hidden, grads)?;
        Ok(out.stats.loss)
    }

    /// Token-mean loss of `targets` without gradients (evaluation, finite differences).
    pub fn loss(&self, batch: &TokenBatch, targets: &[u32]) -> Result<f64> {
        let mut rec = Recorder::new(&self.ctx, "loss");
        let acts = self.forward(&mut rec, batch)?;
        let tgt = Tensor::from_u32(&self.ctx, &[batch.tokens()], targets)?;
        let out = self.head_stats(&mut rec, &acts, &tgt, 1.0)?;
        rec.submit()?;
        let counted = targets
            .iter()
            .filter(|&&t| t != IGNORE_INDEX)
            .count()
            .max(1);
        Ok(out
            .loss()
            .to_f32_vec()?
            .iter()
            .map(|&l| l as f64)
            .sum::<f64>()
            / counted as f64)
    }

    /// Zeroes every gradient (before the first micro-batch of a step).
    pub fn zero_grads(&self, rec: &mut Recorder, grads: &Params) -> Result<()> {
        grads
            .tensors()
            .into_iter()
            .try_for_each(|g| fill(rec, g, 0.0))
    }
}
