//! The generation engine: batched prefill and decode with a KV cache, sampling (temperature,
//! top-k, top-p, seed) with per-token log-probs, stop tokens and length limits, sequences of
//! different lengths in one batch, n samples per prompt from one prefill; beam search
//! constrained by a prefix trie of item IDs; and trie-constrained answers that switch on in the
//! middle of a sampled sequence.
//!
//! Sampling chooses tokens on the GPU (`kernels::sample`: only token ids and log-probs are read
//! back each step); the host keeps the bookkeeping (stop tokens, trie states, which become
//! per-row allowed-id lists). `choose` is the host reference of the same rule. Beam search
//! still reads log-softmax rows back.

mod answer;
mod beam;
mod groups;
mod infer;
mod sampling;
mod trie;

pub use answer::AnswerConstraint;
pub use beam::{beam_search, beam_search_in, BeamHit, BeamParams, BeamWorkspace};
pub use groups::{generate_groups, generate_groups_on, Sampler, SeedStreams};
pub use infer::DecodeState;
pub use sampling::{choose, choose_with, draws_uniform, sequence_rng, SamplingParams};
pub use trie::{PrefixTrie, TrieNode};

use crate::gpu::Result;
use crate::transformer::Transformer;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FinishReason {
    /// A stop token was generated (it is included in `tokens`).
    Stop,
    /// `max_new_tokens` reached.
    Length,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    pub tokens: Vec<u32>,
    /// log p(token) under softmax(logits / temperature) of the unconstrained model (temperature
    /// 1 when greedy), one per generated token.
    pub logprobs: Vec<f32>,
    pub finish: FinishReason,
}

/// Samples a continuation of every prompt (token ids, any lengths) in one batch; sequence i
/// draws from stream i of `params.seed`.
pub fn generate(
    model: &Transformer,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    stop_tokens: &[u32],
    constraint: Option<&AnswerConstraint>,
) -> Result<Vec<Sample>> {
    generate_on(
        Sampler::auto(model),
        model,
        prompts,
        params,
        stop_tokens,
        constraint,
    )
}

/// `generate` with the token choice on `sampler` (`Sampler::Host` is the reference path).
pub fn generate_on(
    sampler: Sampler,
    model: &Transformer,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    stop_tokens: &[u32],
    constraint: Option<&AnswerConstraint>,
) -> Result<Vec<Sample>> {
    let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
    let groups = generate_groups_on(
        sampler,
        model,
        &refs,
        1,
        SeedStreams::Flat,
        params,
        stop_tokens,
        constraint,
    )?;
    Ok(groups.into_iter().flatten().collect())
}
