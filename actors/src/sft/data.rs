//! The training data of an SFT run: samples read in file order, encoded with the assistant-turn
//! loss mask and cut off, and the step plan (which samples make which micro-batch of which
//! optimizer step). The plan is a pure function of the data and the config, so a resumed run
//! finds its place from the step number alone.

use std::path::Path;

use anyhow::{bail, Context, Result};
use grrm_model::tokenizer::Tokenizer;
use grrm_model::transformer::{next_token_targets, TokenBatch};
use grrm_recsys::tasks::ChatSample;
use grrm_recsys::{read_byo, read_chat_jsonl, ByoFormat};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::{Batching, DataFormat, SftConfig};
use crate::data::encode::{encode_chat_sample, EncodedSample};

/// Reads the data file in its format.
pub fn read_samples(path: &Path, format: DataFormat) -> Result<Vec<ChatSample>> {
    let samples = match format {
        DataFormat::Chat => read_chat_jsonl(path)?,
        DataFormat::Sharegpt => read_byo(path, ByoFormat::Sharegpt)?,
        DataFormat::Alpaca => read_byo(path, ByoFormat::Alpaca)?,
    };
    if samples.is_empty() {
        bail!("{}: no training samples", path.display());
    }
    Ok(samples)
}

/// Identifies the data a run was trained on, so a resume against changed data is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFingerprint {
    pub samples: usize,
    /// FNV-1a 64 of the file's bytes, hex.
    pub fnv1a64: String,
}

impl DataFingerprint {
    pub fn of_file(path: &Path, samples: usize) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(DataFingerprint {
            samples,
            fnv1a64: format!("{h:016x}"),
        })
    }
}

/// Encoded samples and what the encoding found.
#[derive(Clone, Debug)]
pub struct EncodedData {
    pub samples: Vec<EncodedSample>,
    pub tokens: usize,
    pub target_tokens: usize,
    /// Samples longer than the cut-off (truncated).
    pub truncated: usize,
    pub max_len: usize,
}

/// Encodes every sample (chat template, assistant-only loss mask, cut-off). An error names the
/// sample's line in the data file and its task.
pub fn encode_all(
    tok: &Tokenizer,
    samples: &[ChatSample],
    cutoff_len: usize,
    data: &Path,
) -> Result<EncodedData> {
    let mut out = Vec::with_capacity(samples.len());
    let (mut tokens, mut target_tokens, mut truncated, mut max_len) = (0, 0, 0, 0);
    for (i, s) in samples.iter().enumerate() {
        let full = encode_chat_sample(tok, s, usize::MAX)
            .with_context(|| format!("{}: line {}", data.display(), i + 1))?;
        let mut e = full;
        if e.ids.len() > cutoff_len {
            truncated += 1;
            let len = e.ids.len();
            e.ids.truncate(cutoff_len);
            e.loss_mask.truncate(cutoff_len);
            if !e.loss_mask[1..].contains(&1) {
                bail!(
                    "{}: line {} (task {}): {len} tokens, and no assistant token within the \
                     cut-off of {cutoff_len}",
                    data.display(),
                    i + 1,
                    s.task
                );
            }
        }
        tokens += e.ids.len();
        // The first token has no prediction; a masked first token is never a target.
        target_tokens += e.loss_mask.iter().skip(1).filter(|&&m| m == 1).count();
        max_len = max_len.max(e.ids.len());
        out.push(e);
    }
    Ok(EncodedData {
        samples: out,
        tokens,
        target_tokens,
        truncated,
        max_len,
    })
}

/// One optimizer step: its micro-batches as indices into the encoded samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepPlan {
    pub micro_batches: Vec<Vec<usize>>,
}

impl StepPlan {
    pub fn samples(&self) -> usize {
        self.micro_batches.iter().map(Vec::len).sum()
    }
}

/// The sample stream (epochs concatenated; file order unless `shuffle`) cut into optimizer
/// steps of `micro_batch_size * grad_accum_steps` samples (the last step may be short), each cut
/// into micro-batches; `max_steps` (when > 0) truncates the plan.
pub fn plan_steps(cfg: &SftConfig, lengths: &[usize]) -> Vec<StepPlan> {
    let n = lengths.len();
    let mut stream = Vec::with_capacity(n * cfg.epochs);
    for epoch in 0..cfg.epochs {
        let mut order: Vec<usize> = (0..n).collect();
        if cfg.shuffle {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(epoch as u64));
            order.shuffle(&mut rng);
        }
        stream.extend(order);
    }
    let mut steps: Vec<StepPlan> = stream
        .chunks(cfg.samples_per_step())
        .map(|chunk| {
            let mut idx = chunk.to_vec();
            if cfg.batching == Batching::LengthGrouped {
                // Longest first: the biggest micro-batch runs first, so an out-of-memory shows
                // at once; stable, so equal lengths keep the curriculum order.
                idx.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
            }
            StepPlan {
                micro_batches: idx
                    .chunks(cfg.micro_batch_size)
                    .map(<[usize]>::to_vec)
                    .collect(),
            }
        })
        .collect();
    if cfg.max_steps > 0 {
        steps.truncate(cfg.max_steps);
    }
    steps
}

/// A micro-batch ready for the model: right-padded ids and the next-token targets of its
/// assistant tokens.
pub struct MicroBatch {
    pub batch: TokenBatch,
    pub targets: Vec<u32>,
    /// Tokens that are targets (count toward the loss).
    pub target_tokens: usize,
    /// Real (non-padding) tokens.
    pub tokens: usize,
}

impl MicroBatch {
    pub fn build(samples: &[EncodedSample], idx: &[usize], pad_id: u32) -> Self {
        let seqs: Vec<&[u32]> = idx.iter().map(|&i| samples[i].ids.as_slice()).collect();
        let batch = TokenBatch::right_padded(&seqs, pad_id);
        let mut loss_mask = vec![0u32; batch.tokens()];
        for (row, &i) in idx.iter().enumerate() {
            let m = &samples[i].loss_mask;
            loss_mask[row * batch.seq..row * batch.seq + m.len()].copy_from_slice(m);
        }
        let targets = next_token_targets(&batch, &loss_mask);
        let target_tokens = targets
            .iter()
            .filter(|&&t| t != grrm_model::kernels::cross_entropy::IGNORE_INDEX)
            .count();
        let tokens = seqs.iter().map(|s| s.len()).sum();
        MicroBatch {
            batch,
            targets,
            target_tokens,
            tokens,
        }
    }
}
