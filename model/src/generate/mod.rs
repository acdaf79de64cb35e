//! The generation engine: batched prefill and decode with a KV cache, sampling (temperature,
//! top-k, top-p, seed) with per-token log-probs, stop tokens and length limits, sequences of
//! different lengths in one batch; beam search constrained by a prefix trie of item IDs; and
//! trie-constrained answers that switch on in the middle of a sampled sequence.
//!
//! Sampling reads each step's log-softmax rows back to the host (the candidates' bookkeeping —
//! tries, stop tokens, top-p — is host logic); the transformer itself runs on the GPU.

mod beam;
mod infer;
mod sampling;
mod trie;

pub use beam::{beam_search, BeamHit, BeamParams};
pub use infer::DecodeState;
pub use sampling::{choose, sequence_rng, SamplingParams};
pub use trie::{PrefixTrie, TrieNode};

use crate::gpu::Result;
use crate::transformer::Transformer;

/// Switches sampling to the item trie after the `open` token sequence (e.g. `<answer>`), and
/// forces `close` once a whole ID has been generated.
pub struct AnswerConstraint<'a> {
    pub open: Vec<u32>,
    pub close: Vec<u32>,
    pub trie: &'a PrefixTrie,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token was generated (it is included in `tokens`).
    Stop,
    /// `max_new_tokens` reached.
    Length,
}

#[derive(Clone, Debug)]
pub struct Sample {
    pub tokens: Vec<u32>,
    /// log p(token) under softmax(logits / temperature) of the unconstrained model (temperature
    /// 1 when greedy), one per generated token.
    pub logprobs: Vec<f32>,
    pub finish: FinishReason,
}

/// Where a sequence is in the answer constraint.
#[derive(Clone, Copy)]
enum AnswerState {
    Free,
    InTrie(TrieNode),
    /// Forcing `close[i..]`.
    Closing(usize),
    Done,
}

/// Samples a continuation of every prompt (token ids, any lengths) in one batch.
pub fn generate(
    model: &Transformer,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    stop_tokens: &[u32],
    constraint: Option<&AnswerConstraint>,
) -> Result<Vec<Sample>> {
    let b = prompts.len();
    if b == 0 {
        return Ok(Vec::new());
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut state = DecodeState::new(model, b, longest + params.max_new_tokens)?;
    let chunk: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            let mut c = p.clone();
            c.resize(longest, 0);
            c
        })
        .collect();
    let real: Vec<usize> = prompts.iter().map(|p| p.len().max(1)).collect();
    if prompts.iter().any(Vec::is_empty) {
        return Err(crate::GpuError::shape(
            "generate",
            "every prompt needs at least one token",
        ));
    }
    let mut logp = model.infer(&mut state, &chunk, &real, params.temperature)?;
    let v = model.cfg.vocab_size;
    let mut rngs: Vec<_> = (0..b).map(|i| sequence_rng(params.seed, i)).collect();
    let mut out: Vec<Sample> = (0..b)
        .map(|_| Sample {
            tokens: Vec::new(),
            logprobs: Vec::new(),
            finish: FinishReason::Length,
        })
        .collect();
    let mut done = vec![false; b];
    // A prompt may already end inside the trigger (e.g. a prefilled `<answer>`).
    let mut answer: Vec<AnswerState> = prompts
        .iter()
        .map(|p| match constraint {
            Some(c) if !c.open.is_empty() && p.ends_with(&c.open) => {
                AnswerState::InTrie(PrefixTrie::ROOT)
            }
            _ => AnswerState::Free,
        })
        .collect();
    for _ in 0..params.max_new_tokens {
        let mut next = vec![0u32; b];
        for i in 0..b {
            if done[i] {
                continue;
            }
            let row = &logp[i * v..(i + 1) * v];
            let tok = match (answer[i], constraint) {
                (AnswerState::InTrie(node), Some(c)) => {
                    let allowed: Vec<u32> = c.trie.allowed(node).collect();
                    choose(row, Some(&allowed), params, &mut rngs[i])
                }
                (AnswerState::Closing(k), Some(c)) => c.close[k],
                _ => choose(row, None, params, &mut rngs[i]),
            };
            out[i].tokens.push(tok);
            out[i].logprobs.push(row[tok as usize]);
            next[i] = tok;
            if let Some(c) = constraint {
                answer[i] = advance(answer[i], c, &out[i].tokens, tok);
            }
            if stop_tokens.contains(&tok) {
                done[i] = true;
                out[i].finish = FinishReason::Stop;
            }
        }
        if done.iter().all(|&d| d) || out[0].tokens.len() >= params.max_new_tokens {
            break;
        }
        let chunk: Vec<Vec<u32>> = next.iter().map(|&t| vec![t]).collect();
        logp = model.infer(&mut state, &chunk, &vec![1; b], params.temperature)?;
    }
    Ok(out)
}

fn advance(s: AnswerState, c: &AnswerConstraint, tokens: &[u32], tok: u32) -> AnswerState {
    match s {
        AnswerState::Free if !c.open.is_empty() && tokens.ends_with(&c.open) => {
            AnswerState::InTrie(PrefixTrie::ROOT)
        }
        AnswerState::InTrie(node) => match c.trie.next(node, tok) {
            Some(n) if c.trie.item(n).is_some() => {
                if c.close.is_empty() {
                    AnswerState::Done
                } else {
                    AnswerState::Closing(0)
                }
            }
            Some(n) => AnswerState::InTrie(n),
            None => AnswerState::Done,
        },
        AnswerState::Closing(k) if k + 1 < c.close.len() => AnswerState::Closing(k + 1),
        AnswerState::Closing(_) => AnswerState::Done,
        other => other,
    }
}
