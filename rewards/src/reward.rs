//! The `Reward` trait and the data it consumes and produces.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::RewardError;

/// Per-sample metadata: who the sample is and what the right answer is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleMeta {
    /// Unique per scored response (e.g. `"user42/r3"` for the 4th rollout of user 42's prompt);
    /// echoed in every error so a dropped sample can be found again.
    pub sample_id: String,
    /// Ground-truth item ID as index tokens, e.g. `["<|a_12|>", "<|b_3|>", "<|c_77|>", "<|d_5|>"]`.
    pub target: Vec<String>,
    /// Any other dataset field (history, category, title...), passed through to rewards.
    #[serde(default)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// Everything a reward may look at for one response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RewardInput {
    pub prompt: String,
    pub response: String,
    pub token_ids: Vec<u32>,
    pub meta: SampleMeta,
}

impl RewardInput {
    /// Shorthand for building an error about this sample.
    pub fn error(&self, reward: &str, kind: crate::RewardErrorKind) -> RewardError {
        RewardError::new(reward, &self.meta.sample_id, kind)
    }
}

/// A score plus named parts for logging (`format`, `match`, ...). Components never enter the
/// loss; only `score` does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RewardOutput {
    pub score: f64,
    #[serde(default)]
    pub components: BTreeMap<String, f64>,
}

impl RewardOutput {
    pub fn new(score: f64) -> Self {
        Self {
            score,
            components: BTreeMap::new(),
        }
    }

    pub fn with(mut self, component: &str, value: f64) -> Self {
        self.components.insert(component.to_string(), value);
        self
    }
}

/// A verifiable reward. Implementations are shared across scoring threads, hence `Send + Sync`;
/// any interior state (a plugin process, a connection) must be synchronised by the implementation.
pub trait Reward: Send + Sync {
    /// The instance name used in logs and errors (the config term's label).
    fn name(&self) -> &str;

    /// Score one response. Return `Err` for anything that is not a trustworthy score; checking
    /// finiteness and range is done by [`crate::Checked`], so plain implementations may skip it.
    fn score(&self, input: &RewardInput) -> Result<RewardOutput, RewardError>;

    /// The interval every valid score lies in, if the reward knows it. Used as the default
    /// range check when the config gives none.
    fn range(&self) -> Option<(f64, f64)> {
        None
    }
}
