//! The prompt pools of a run: RL prompts (training targets) and validation prompts, rendered with
//! the tokenizer's chat template plus the assistant prefix, and the deterministic draw order.

use anyhow::{bail, Context, Result};
use grrm_model::tokenizer::{ChatOptions, Tokenizer};
use grrm_recsys::{build_prompts, Dataset, Prompt};
use grrm_rewards::index_tokens::parse_index_run;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::config::RlConfig;
use crate::data::encode::chat_messages;

/// A prompt ready for sampling and scoring.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedPrompt {
    /// Rendered text (chat template + assistant prefix), what rewards see as `prompt`.
    pub text: String,
    pub ids: Vec<u32>,
    /// Ground-truth ID as index tokens.
    pub target: Vec<String>,
    pub user: u32,
    pub target_item: u32,
}

#[derive(Clone, Debug)]
pub struct PromptPools {
    pub rl: Vec<EncodedPrompt>,
    pub valid: Vec<EncodedPrompt>,
    /// Prompts left out for exceeding `max_prompt_tokens`.
    pub too_long: usize,
    /// Code levels of the index (an ID has `levels` or `levels + 1` tokens).
    pub levels: usize,
}

fn encode(tok: &Tokenizer, p: &Prompt) -> Result<EncodedPrompt> {
    let msgs = chat_messages(&p.messages)?;
    let text = tok.render_chat(&msgs, &ChatOptions::generation(Some(&p.assistant_prefix)));
    let ids = tok
        .encode(&text, false)
        .with_context(|| format!("encoding the prompt of user {}", p.user))?;
    let target = parse_index_run(&p.target_id)
        .with_context(|| {
            format!(
                "user {}: target ID {:?} is not a run of index tokens",
                p.user, p.target_id
            )
        })?
        .into_iter()
        .map(str::to_string)
        .collect();
    Ok(EncodedPrompt {
        text,
        ids,
        target,
        user: p.user,
        target_item: p.target,
    })
}

impl PromptPools {
    pub fn build(ds: &Dataset, tok: &Tokenizer, cfg: &RlConfig) -> Result<Self> {
        let sets = build_prompts(ds, &cfg.prompt_config())
            .with_context(|| format!("building prompts from {}", cfg.data.display()))?;
        let levels = ds
            .index
            .as_ref()
            .and_then(|ix| ix.iter().map(Vec::len).min())
            .context("dataset has no index")?;
        let mut too_long = 0;
        let mut keep = |ps: &[Prompt]| -> Result<Vec<EncodedPrompt>> {
            let mut out = Vec::with_capacity(ps.len());
            for p in ps {
                let e = encode(tok, p)?;
                if e.ids.len() > cfg.max_prompt_tokens {
                    too_long += 1;
                } else {
                    out.push(e);
                }
            }
            Ok(out)
        };
        let rl = keep(&sets.rl)?;
        let valid = keep(&sets.valid)?;
        if too_long > 0 {
            tracing::warn!(
                "{too_long} prompts exceed max_prompt_tokens = {} and are left out",
                cfg.max_prompt_tokens
            );
        }
        if rl.is_empty() {
            bail!(
                "no RL prompt of {} fits max_prompt_tokens = {}",
                cfg.data.display(),
                cfg.max_prompt_tokens
            );
        }
        Ok(PromptPools {
            rl,
            valid,
            too_long,
            levels,
        })
    }

    /// The RL prompt of global draw number `draw`: epochs of seeded permutations of the pool.
    pub fn rl_index(&self, seed: u64, draw: u64) -> usize {
        let len = self.rl.len() as u64;
        let (epoch, pos) = (draw / len, draw % len);
        epoch_order(seed, epoch, self.rl.len())[pos as usize]
    }
}

/// The pool order of one epoch.
pub fn epoch_order(seed: u64, epoch: u64, len: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, &[0x5052_4f4d_5054, epoch]));
    order.shuffle(&mut rng);
    order
}

/// A stable 64-bit mix of a seed and a key path (SplitMix64 steps).
pub fn mix(seed: u64, keys: &[u64]) -> u64 {
    let mut z = seed ^ 0x9e37_79b9_7f4a_7c15;
    for &k in keys {
        z = z
            .wrapping_add(k.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_add(0x632b_e59b_d9b4_e019);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
    }
    z
}
