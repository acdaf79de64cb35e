//! Decoding one batch of users: trie-constrained beam search (direct) or sampled reasoning
//! completions (reasoning), turned into per-user records.

use anyhow::{Context, Result};
use grrm_model::generate::{
    beam_search_in, generate_groups, AnswerConstraint, BeamWorkspace, FinishReason, SamplingParams,
    SeedStreams,
};
use grrm_model::tokenizer::Tokenizer;
use grrm_model::transformer::Transformer;

use super::catalogue::{finite, rank_completions, Catalogue, Completion};
use super::config::EvalConfig;
use super::records::{RankedItem, UserRecord};
use super::EncodedPrompt;

/// Direct mode: the top `beam.num_results` distinct items per user.
pub fn decode_direct(
    ws: &mut BeamWorkspace,
    cfg: &EvalConfig,
    model: &Transformer,
    cat: &Catalogue,
    batch: &[&EncodedPrompt],
) -> Result<Vec<UserRecord>> {
    let prompts: Vec<Vec<u32>> = batch.iter().map(|p| p.ids.clone()).collect();
    let hits = beam_search_in(ws, model, &prompts, &cat.trie, &cfg.beam).context("beam search")?;
    Ok(batch
        .iter()
        .zip(hits)
        .map(|(p, h)| UserRecord {
            user: p.prompt.user,
            target: p.prompt.target,
            target_id: p.prompt.target_id.clone(),
            ranked: h
                .into_iter()
                .map(|x| RankedItem {
                    item: x.item as u32,
                    id: cat.ids[x.item].clone(),
                    score: finite(x.score as f64),
                    count: None,
                })
                .collect(),
            samples: None,
        })
        .collect())
}

/// A seed per batch: batches are fixed chunks of the selected users, so a rerun of a batch
/// (resume) draws exactly the same completions.
pub fn batch_seed(seed: u64, batch_index: usize) -> u64 {
    // splitmix64 of (seed, batch index)
    let mut z = seed ^ (batch_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Reasoning mode: `num_samples` completions per user, parsed and ranked.
pub fn decode_reasoning(
    cfg: &EvalConfig,
    model: &Transformer,
    tok: &Tokenizer,
    cat: &Catalogue,
    batch: &[&EncodedPrompt],
    batch_index: usize,
) -> Result<Vec<UserRecord>> {
    let r = &cfg.reasoning;
    let n = r.num_samples;
    let prompts: Vec<&[u32]> = batch.iter().map(|p| p.ids.as_slice()).collect();
    let params = SamplingParams {
        temperature: r.temperature,
        top_k: r.top_k,
        top_p: r.top_p,
        max_new_tokens: r.max_new_tokens,
        seed: batch_seed(r.seed, batch_index),
    };
    let stop = tok.stop_token_ids();
    let constraint = if r.constrain_answer {
        Some(AnswerConstraint {
            open: marker_ids(tok, "<answer>")?,
            close: marker_ids(tok, "</answer>")?,
            trie: &cat.trie,
        })
    } else {
        None
    };
    // Each prompt prefilled once for its n samples; sample j of user i draws from stream
    // i * n + j of the batch seed.
    let groups = generate_groups(
        model,
        &prompts,
        n,
        SeedStreams::Flat,
        &params,
        &stop,
        constraint.as_ref(),
    )
    .context("sampling")?;
    let mut out = Vec::with_capacity(batch.len());
    for (p, group) in batch.iter().zip(&groups) {
        let completions = group
            .iter()
            .map(|s| {
                Ok(Completion {
                    response: tok
                        .decode(&s.tokens, false)
                        .context("decoding a completion")?,
                    logprob: s.logprobs.iter().map(|&x| x as f64).sum(),
                    tokens: s.tokens.len(),
                    stopped: s.finish == FinishReason::Stop,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (ranked, records) = rank_completions(cat, &p.text, &completions, r.aggregate);
        out.push(UserRecord {
            user: p.prompt.user,
            target: p.prompt.target,
            target_id: p.prompt.target_id.clone(),
            ranked,
            samples: Some(records),
        });
    }
    Ok(out)
}

/// Token ids of an answer tag as the tokenizer writes it on its own.
fn marker_ids(tok: &Tokenizer, tag: &str) -> Result<Vec<u32>> {
    let ids = tok
        .encode(tag, false)
        .with_context(|| format!("tokenizing {tag}"))?;
    anyhow::ensure!(!ids.is_empty(), "the tokenizer encodes {tag} as nothing");
    Ok(ids)
}
