//! Growing the embedding (and an untied LM head) for tokens added to the tokenizer, such as the
//! semantic-ID tokens `<|a_1|>` ... `<|e_k|>`.
//!
//! Initialisation: every row of a newly added token, and every padding row created by the
//! growth, is set to the mean of the *reference rows* — the rows of the tokens the tokenizer had
//! before the extension (ids below `reference_rows`, capped at the old row count). This is
//! transformers' `mean_resizing` without its noise term. A covariance-shaped variant (new rows
//! drawn from N(mean, Sigma) of the reference rows, as transformers does when `mean_resizing`
//! is on) is not implemented: with a few thousand new rows and d in the thousands it needs a
//! Cholesky factor of the d x d covariance; the plain mean keeps the initial logits of the new
//! tokens equal and the old tokens' distribution unchanged, which is what SFT starts from.
//!
//! Rows of new ids that fall *inside* the old matrix (Qwen pads its embedding beyond the
//! tokenizer, so the first added tokens reuse untrained padding rows) are overwritten with the
//! mean too, so every added token starts from the same point.

use super::config::ModelConfig;
use super::weights::{HostTensor, Weights};

/// What to grow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VocabExtension {
    /// Ids of the added tokens (from `Tokenizer::add_special_tokens`).
    pub new_ids: Vec<u32>,
    /// Rows `0..reference_rows` are the existing tokens whose mean seeds the new rows; usually
    /// the tokenizer's size before the extension.
    pub reference_rows: usize,
    /// Round the new row count up to a multiple of this (1 = no padding; 64 or 128 suit GPUs).
    pub pad_to_multiple_of: usize,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VocabGrowth {
    pub old_rows: usize,
    pub new_rows: usize,
    /// Rows set to the mean (the new ids and the padding rows added by the growth).
    pub initialised_rows: usize,
}

/// Grows `embed_tokens` (and `lm_head` when untied) and sets `config.vocab_size`.
/// The matrix never shrinks: the new row count is the largest of the old count and every new
/// id + 1, rounded up to `pad_to_multiple_of`.
pub fn extend_vocab(
    config: &mut ModelConfig,
    weights: &mut Weights,
    ext: &VocabExtension,
) -> Result<VocabGrowth, String> {
    let old_rows = weights.embed_tokens.shape[0];
    if old_rows != config.vocab_size {
        return Err(format!(
            "embed_tokens has {old_rows} rows but config.vocab_size is {}",
            config.vocab_size
        ));
    }
    let reference = ext.reference_rows.min(old_rows);
    if reference == 0 {
        return Err("no reference rows to take the mean of".into());
    }
    if let Some(id) = ext.new_ids.iter().find(|&&id| (id as usize) < reference) {
        return Err(format!(
            "new token id {id} lies among the reference rows 0..{reference}"
        ));
    }
    let needed = ext
        .new_ids
        .iter()
        .map(|&id| id as usize + 1)
        .max()
        .unwrap_or(0)
        .max(old_rows);
    let multiple = ext.pad_to_multiple_of.max(1);
    let new_rows = needed.div_ceil(multiple) * multiple;

    let mut rows: Vec<usize> = ext.new_ids.iter().map(|&id| id as usize).collect();
    rows.extend(old_rows..new_rows);
    rows.sort_unstable();
    rows.dedup();

    grow(&mut weights.embed_tokens, new_rows, reference, &rows);
    if let Some(head) = weights.lm_head.as_mut() {
        grow(head, new_rows, reference, &rows);
    }
    config.vocab_size = new_rows;
    Ok(VocabGrowth {
        old_rows,
        new_rows,
        initialised_rows: rows.len(),
    })
}

/// Mean of rows `0..reference` of a `[rows, d]` matrix, accumulated in f64.
pub fn row_mean(t: &HostTensor, reference: usize) -> Vec<f32> {
    let d = t.shape[1];
    let mut acc = vec![0f64; d];
    for r in 0..reference {
        for (a, &x) in acc.iter_mut().zip(t.row(r)) {
            *a += x as f64;
        }
    }
    acc.iter().map(|&a| (a / reference as f64) as f32).collect()
}

fn grow(t: &mut HostTensor, new_rows: usize, reference: usize, rows: &[usize]) {
    let d = t.shape[1];
    let mean = row_mean(t, reference);
    t.data.resize(new_rows * d, 0.0);
    t.shape[0] = new_rows;
    for &r in rows {
        t.data[r * d..(r + 1) * d].copy_from_slice(&mean);
    }
}
