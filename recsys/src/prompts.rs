//! RL and evaluation prompt sets (SPEC.md sections 4-5, the reference's `transform_rl.py`):
//! - rl: one prompt per training-split position t >= `min_history` of each user (target =
//!   train[t], history = the capped items before it): only training targets;
//! - valid: the validation targets, a seeded sample of at most `valid_pool` users;
//! - test: every user's test target.
//!
//! Direct mode: the chat's user turn is SPEC.md's "Here is the item interaction history ...".
//! Reasoning mode: the think/answer system prompt, the same user turn, and the assistant turn
//! prefilled with `<think>\n`. RL prompts may instead draw the user turn from the seqrec
//! templates (seeded), as the reference does. The ground-truth ID travels with every prompt.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::split::{Example, Split, HISTORY_CAP};
use crate::tasks::templates::{render, DIRECT_USER, SEQREC};
use crate::tasks::{history_ids, item_ids, Message, ALIGN_SYSTEM_PROMPT, REASONING_SYSTEM_PROMPT};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptMode {
    Direct,
    Reasoning,
}

impl PromptMode {
    /// What the assistant turn starts with.
    pub fn assistant_prefix(self) -> &'static str {
        match self {
            PromptMode::Direct => "",
            PromptMode::Reasoning => "<think>\n",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptConfig {
    pub seed: u64,
    pub history_cap: usize,
    /// RL targets need at least this many earlier training items (reference: 4).
    pub min_history: usize,
    /// Validation prompts: a seeded sample of at most this many users (reference: 1000).
    pub valid_pool: Option<usize>,
    pub rl_modes: Vec<PromptMode>,
    pub eval_modes: Vec<PromptMode>,
    /// RL user turns from the seqrec templates at random (else SPEC's direct text).
    pub rl_random_templates: bool,
}

impl Default for PromptConfig {
    fn default() -> Self {
        PromptConfig {
            seed: 42,
            history_cap: HISTORY_CAP,
            min_history: 4,
            valid_pool: Some(1000),
            rl_modes: vec![PromptMode::Reasoning],
            eval_modes: vec![PromptMode::Direct, PromptMode::Reasoning],
            rl_random_templates: true,
        }
    }
}

/// One prompt: the chat turns before the assistant's, the assistant prefix, the ground truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    pub messages: Vec<Message>,
    pub mode: PromptMode,
    pub assistant_prefix: String,
    pub user: u32,
    pub history: Vec<u32>,
    pub target: u32,
    pub target_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptSets {
    pub rl: Vec<Prompt>,
    pub valid: Vec<Prompt>,
    pub test: Vec<Prompt>,
}

fn prompt(e: &Example, ids: &[String], mode: PromptMode, user_tpl: &str) -> Prompt {
    let h = history_ids(ids, &e.history);
    let system = match mode {
        PromptMode::Direct => ALIGN_SYSTEM_PROMPT,
        PromptMode::Reasoning => REASONING_SYSTEM_PROMPT,
    };
    Prompt {
        messages: vec![
            Message::new("system", system),
            Message::new("user", render(user_tpl, &[("history", &h)])),
        ],
        mode,
        assistant_prefix: mode.assistant_prefix().into(),
        user: e.user,
        history: e.history.clone(),
        target: e.target,
        target_id: ids[e.target as usize].clone(),
    }
}

pub fn build_prompts(ds: &Dataset, cfg: &PromptConfig) -> Result<PromptSets> {
    if cfg.rl_modes.is_empty() && cfg.eval_modes.is_empty() {
        return Err(DataError::Config {
            msg: "prompts: no mode selected".into(),
        });
    }
    if cfg.history_cap < cfg.min_history {
        return Err(DataError::Config {
            msg: "prompts: history_cap must be at least min_history".into(),
        });
    }
    let ids = item_ids(ds)?;
    let split = Split::with_cap(ds, cfg.history_cap)?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut sets = PromptSets::default();
    // history.len() = min(t, cap) >= min_history  <=>  t >= min_history (cap >= min_history).
    for e in split
        .train_examples()
        .into_iter()
        .filter(|e| e.history.len() >= cfg.min_history.max(1))
    {
        for &mode in &cfg.rl_modes {
            let tpl = if cfg.rl_random_templates {
                SEQREC[rng.random_range(0..SEQREC.len())].0
            } else {
                DIRECT_USER
            };
            sets.rl.push(prompt(&e, &ids, mode, tpl));
        }
    }
    let mut valid: Vec<&Example> = split.valid().collect();
    if let Some(pool) = cfg.valid_pool {
        valid.shuffle(&mut rng);
        valid.truncate(pool);
    }
    for e in valid {
        for &mode in &cfg.eval_modes {
            sets.valid.push(prompt(e, &ids, mode, DIRECT_USER));
        }
    }
    for e in split.test() {
        for &mode in &cfg.eval_modes {
            sets.test.push(prompt(e, &ids, mode, DIRECT_USER));
        }
    }
    Ok(sets)
}
