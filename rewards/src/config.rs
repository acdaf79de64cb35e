//! Serde config of the rewards section of a run config.
//!
//! ```toml
//! on_error = "drop"          # or "stop" (default): what a failed sample does to the step
//! threads = 4                # samples scored in parallel
//!
//! [[terms]]
//! name = "semantic_id"       # registry name
//! weight = 1.0
//! options = { mode = "reasoning", levels = 4 }
//!
//! [[terms]]
//! name = "process"
//! label = "grounding"        # instance name in logs and errors (defaults to `name`)
//! weight = 0.2
//! range = [0.0, 1.0]         # scores outside fail the sample
//! options = { program = "python3", args = ["rewards/examples/python_reward.py"], timeout_ms = 5000 }
//! ```

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// What a reward failure does to the training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Leave the sample out of the step and report it in [`crate::BatchScores::dropped`].
    Drop,
    /// Fail the whole batch with the error.
    #[default]
    Stop,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardsConfig {
    #[serde(default)]
    pub on_error: OnError,
    #[serde(default = "default_threads")]
    pub threads: usize,
    pub terms: Vec<TermConfig>,
}

/// One weighted reward of the sum.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermConfig {
    pub name: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// `[min, max]`; overrides the reward's own range for the validity check.
    #[serde(default)]
    pub range: Option<[f64; 2]>,
    /// Reward-specific options, checked by the reward's factory.
    #[serde(default)]
    pub options: serde_json::Value,
}

fn default_threads() -> usize {
    1
}
fn default_weight() -> f64 {
    1.0
}

impl TermConfig {
    pub fn new(name: impl Into<String>, weight: f64, options: serde_json::Value) -> Self {
        Self {
            name: name.into(),
            label: None,
            weight,
            range: None,
            options,
        }
    }

    /// The instance name: `label`, else the registry name.
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }
}

impl RewardsConfig {
    /// Parses and validates a TOML document holding this section at its top level.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot: at least one term, distinct labels, finite weights and ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.terms.is_empty() {
            return Err(ConfigError::NoTerms);
        }
        if self.threads == 0 {
            return Err(ConfigError::Threads);
        }
        let mut seen = BTreeSet::new();
        for t in &self.terms {
            let invalid = |field, message: String| ConfigError::Invalid {
                reward: t.label().to_string(),
                field,
                message,
            };
            if !seen.insert(t.label()) {
                return Err(ConfigError::DuplicateLabel(t.label().to_string()));
            }
            if !t.weight.is_finite() {
                return Err(invalid("weight", format!("{} is not finite", t.weight)));
            }
            if let Some([lo, hi]) = t.range {
                if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                    return Err(invalid(
                        "range",
                        format!("[{lo}, {hi}] is not a finite interval"),
                    ));
                }
            }
        }
        Ok(())
    }
}
