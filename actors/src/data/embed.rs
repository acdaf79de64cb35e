//! The backbone as an item embedder (SPEC.md section 2): the attention-masked mean of the
//! model's last hidden states (after the final norm, as HF's `hidden_states[-1]`) over each
//! item's fused text. For untrained or tiny backbones prefer recsys' TF-IDF embedder, whose
//! vectors carry meaning without training.

use grrm_model::gpu::Recorder;
use grrm_model::tokenizer::Tokenizer;
use grrm_model::transformer::{TokenBatch, Transformer};
use grrm_recsys::index::{EmbedError, ItemEmbedder};

pub struct LlmEmbedder<'a> {
    pub model: &'a Transformer,
    pub tokenizer: &'a Tokenizer,
    /// Texts are cut to this many tokens.
    pub max_tokens: usize,
    pub batch_size: usize,
}

impl ItemEmbedder for LlmEmbedder<'_> {
    fn name(&self) -> String {
        format!(
            "backbone mean-pooled last hidden state ({:?}, hidden {}, {} layers, max {} tokens)",
            self.model.cfg.arch,
            self.model.cfg.hidden_size,
            self.model.cfg.num_hidden_layers,
            self.max_tokens
        )
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let h = self.model.cfg.hidden_size;
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.batch_size.max(1)) {
            let ids: Vec<Vec<u32>> = chunk
                .iter()
                .map(|t| {
                    let mut ids = self.tokenizer.encode(t, false)?;
                    ids.truncate(self.max_tokens.max(1));
                    if ids.is_empty() {
                        ids.extend(self.tokenizer.pad_token_id());
                    }
                    Ok(ids)
                })
                .collect::<Result<_, grrm_model::hf::HfError>>()?;
            let refs: Vec<&[u32]> = ids.iter().map(|s| s.as_slice()).collect();
            let batch = TokenBatch::right_padded(&refs, self.tokenizer.pad_token_id().unwrap_or(0));
            let mut rec = Recorder::new(self.model.ctx(), "embed");
            let acts = self.model.forward(&mut rec, &batch)?;
            rec.submit()?;
            let hidden = acts.hidden.to_f32_vec()?;
            for (b, len) in batch.lengths().into_iter().enumerate() {
                let mut v = vec![0f32; h];
                for t in 0..len {
                    let row = &hidden[(b * batch.seq + t) * h..(b * batch.seq + t + 1) * h];
                    for (a, x) in v.iter_mut().zip(row) {
                        *a += x / len as f32;
                    }
                }
                out.push(v);
            }
        }
        Ok(out)
    }
}
