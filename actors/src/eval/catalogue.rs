//! The item catalogue as the model sees it: each item's semantic ID as token ids of the model's
//! tokenizer (one id per ID token), the prefix trie over them, and the lookup from an ID string
//! back to its item. Reasoning answers are parsed with the rewards crate's format gate.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use grrm_model::generate::PrefixTrie;
use grrm_model::tokenizer::Tokenizer;
use grrm_recsys::Dataset;
use grrm_rewards::{extract_answer, FormatOptions};

use super::config::Aggregate;
use super::records::{RankedItem, SampleRecord};

pub struct Catalogue {
    /// `ids[i]`: item i's ID string (its tokens concatenated).
    pub ids: Vec<String>,
    /// `tokens[i]`: item i's ID as token ids.
    pub tokens: Vec<Vec<u32>>,
    pub trie: PrefixTrie,
    /// Code levels L (the shortest ID's length; IDs have L or L + 1 tokens).
    pub levels: usize,
    by_id: HashMap<String, u32>,
}

impl Catalogue {
    /// Maps every ID token of the dataset's index to its single id in `tok`; an ID token the
    /// tokenizer lacks (or splits) is an error naming it and its item.
    pub fn new(ds: &Dataset, tok: &Tokenizer) -> Result<Self> {
        let index = ds.index.as_ref().with_context(|| {
            format!(
                "dataset {:?} has no semantic IDs ({}.index.json); index it first",
                ds.name, ds.name
            )
        })?;
        if index.len() != ds.n_items() {
            bail!(
                "dataset {:?}: the index has {} IDs for {} items",
                ds.name,
                index.len(),
                ds.n_items()
            );
        }
        let mut tokens = Vec::with_capacity(index.len());
        for (item, id) in index.iter().enumerate() {
            let mut seq = Vec::with_capacity(id.len());
            for t in id {
                let enc = tok
                    .encode(t, false)
                    .with_context(|| format!("tokenizing item {item}'s ID token {t}"))?;
                match (enc.as_slice(), tok.token_to_id(t)) {
                    ([one], Some(direct)) if *one == direct => seq.push(direct),
                    _ => bail!(
                        "the model's tokenizer has no single token for {t} (item {item}'s ID \
                         {}): add the index tokens as special tokens (Tokenizer::add_special_tokens \
                         and hf::extend_vocab) before training",
                        id.concat()
                    ),
                }
            }
            tokens.push(seq);
        }
        let trie = PrefixTrie::new(&tokens)
            .map_err(|e| anyhow::anyhow!("dataset {:?}: item IDs: {e}", ds.name))?;
        let ids: Vec<String> = index.iter().map(|t| t.concat()).collect();
        let by_id = ids
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        let levels = index.iter().map(Vec::len).min().unwrap_or(0);
        Ok(Catalogue {
            ids,
            tokens,
            trie,
            levels,
            by_id,
        })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The item an ID string names.
    pub fn item_of(&self, id: &str) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    /// Longest ID in tokens.
    pub fn max_id_len(&self) -> usize {
        self.tokens.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Reads one completion's answer: the rewards crate's reasoning-mode gate (one
    /// `</think>`, one `<answer>` holding only index tokens), without its requirement of a
    /// non-empty think block (evaluation judges the answer), then the catalogue lookup.
    /// Returns (answer, item, failure).
    pub fn parse_answer(
        &self,
        prompt_text: &str,
        response: &str,
    ) -> (Option<String>, Option<u32>, Option<String>) {
        let opts = FormatOptions {
            require_think_content: false,
            ..FormatOptions::reasoning(self.levels)
        };
        match extract_answer(prompt_text, response, &opts) {
            Err(f) => (None, None, Some(f.to_string())),
            Ok(tokens) => {
                let id = tokens.concat();
                match self.item_of(&id) {
                    Some(item) => (Some(id), Some(item), None),
                    None => (Some(id), None, Some("UnknownId".into())),
                }
            }
        }
    }
}

/// One completion before parsing.
#[derive(Clone, Debug)]
pub struct Completion {
    pub response: String,
    pub logprob: f64,
    pub tokens: usize,
    pub stopped: bool,
}

/// Parses every completion of one user and ranks the distinct items they name by `agg` of
/// their sequence log-probs (ties: the item seen first wins, then the lower index).
pub fn rank_completions(
    cat: &Catalogue,
    prompt_text: &str,
    completions: &[Completion],
    agg: Aggregate,
) -> (Vec<RankedItem>, Vec<SampleRecord>) {
    let samples: Vec<SampleRecord> = completions
        .iter()
        .map(|c| {
            let (answer, item, failure) = cat.parse_answer(prompt_text, &c.response);
            SampleRecord {
                response: c.response.clone(),
                logprob: finite(c.logprob),
                tokens: c.tokens,
                stopped: c.stopped,
                answer,
                item,
                failure,
            }
        })
        .collect();
    // item -> (score, count, first sample index)
    let mut by_item: Vec<(u32, f64, usize, usize)> = Vec::new();
    for (k, s) in samples.iter().enumerate() {
        let Some(item) = s.item else { continue };
        match by_item.iter_mut().find(|e| e.0 == item) {
            Some(e) => {
                e.1 = match agg {
                    Aggregate::Max => e.1.max(s.logprob),
                    Aggregate::LogSumExp => log_add_exp(e.1, s.logprob),
                };
                e.2 += 1;
            }
            None => by_item.push((item, s.logprob, 1, k)),
        }
    }
    by_item.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.3.cmp(&b.3)).then(a.0.cmp(&b.0)));
    let ranked = by_item
        .into_iter()
        .map(|(item, score, count, _)| RankedItem {
            item,
            id: cat.ids[item as usize].clone(),
            score,
            count: Some(count),
        })
        .collect();
    (ranked, samples)
}

fn log_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// JSON has no infinities: a non-finite log-prob is stored as the lowest finite value.
pub(crate) fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        f64::MIN
    }
}
