//! The `[eval]` config: what to evaluate, on which users, how to decode, where to write.
//!
//! Defaults follow SPEC.md section 5: direct mode with 10 beams returning the top 10 items;
//! reasoning mode with 10 completions per user at temperature 0.7 and top-p 0.9, ranked by the
//! sum of token log-probabilities. Paths are taken as given (relative to the working folder).

use std::path::PathBuf;

use grrm_model::generate::BeamParams;
use grrm_recsys::split::HISTORY_CAP;
use grrm_recsys::PromptMode;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, ConfigSource, ResolvedToml};

/// Which leave-one-out target is predicted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalSplit {
    /// The last item of each user (history: everything before it, capped).
    #[default]
    Test,
    /// The second-to-last item.
    Valid,
}

impl EvalSplit {
    pub fn as_str(self) -> &'static str {
        match self {
            EvalSplit::Test => "test",
            EvalSplit::Valid => "valid",
        }
    }
}

/// How the sampled completions of one user are merged into a ranking of distinct items.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// An item's score is the best sequence log-prob among the completions that name it (the
    /// reference's ranking of completions by summed token log-probs, with repeats folded into
    /// their best occurrence).
    #[default]
    Max,
    /// log of the summed sequence probabilities of the completions that name it: an item
    /// sampled several times gains mass.
    LogSumExp,
}

/// Reasoning-mode sampling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReasoningEvalConfig {
    /// Completions per user (reference: 10).
    pub num_samples: usize,
    /// Reference: 0.7. 0 = greedy (every completion the same).
    pub temperature: f32,
    /// Reference: 0.9.
    pub top_p: f32,
    /// 0 = no top-k cut.
    pub top_k: usize,
    /// Response cap in tokens (SPEC.md section 4's response length, 1560).
    pub max_new_tokens: usize,
    pub seed: u64,
    /// Decode inside `<answer>` through the item trie, so every answered ID names an item and
    /// `</answer>` follows it (the project's option; the reference samples freely).
    pub constrain_answer: bool,
    pub aggregate: Aggregate,
}

impl Default for ReasoningEvalConfig {
    fn default() -> Self {
        ReasoningEvalConfig {
            num_samples: 10,
            temperature: 0.7,
            top_p: 0.9,
            top_k: 0,
            max_new_tokens: 1560,
            seed: 42,
            constrain_answer: false,
            aggregate: Aggregate::Max,
        }
    }
}

fn default_mode() -> PromptMode {
    PromptMode::Direct
}
fn default_batch_size() -> usize {
    8
}
fn default_history_cap() -> usize {
    HISTORY_CAP
}
fn default_true() -> bool {
    true
}

/// One evaluation run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Hugging Face model folder (config.json, safetensors, tokenizer.json with the ID tokens).
    pub model: PathBuf,
    /// Dataset folder with `D.inter.json`, `D.item.json` and `D.index.json`.
    pub dataset: PathBuf,
    /// Where `results.json`, `users.jsonl` and `eval_config.json` go.
    pub output: PathBuf,
    #[serde(default)]
    pub split: EvalSplit,
    /// Evaluate the first `max_users` users of the split (user order); 0 = all.
    #[serde(default)]
    pub max_users: usize,
    #[serde(default = "default_mode")]
    pub mode: PromptMode,
    /// Users per generation batch (reasoning mode decodes `batch_size * num_samples`
    /// sequences at once).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// History items in the prompt (SPEC.md: the last 20).
    #[serde(default = "default_history_cap")]
    pub history_cap: usize,
    /// GPU adapter (name substring or index); unset = `GRRM_ADAPTER` or the best one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Also evaluate the popularity and first-order-transition baselines on the same users.
    #[serde(default = "default_true")]
    pub baselines: bool,
    /// Direct mode: trie-constrained beam search.
    #[serde(default)]
    pub beam: BeamParams,
    /// Reasoning mode: sampling and ranking.
    #[serde(default)]
    pub reasoning: ReasoningEvalConfig,
}

impl EvalConfig {
    /// A config with every default and the three required paths.
    pub fn new(
        model: impl Into<PathBuf>,
        dataset: impl Into<PathBuf>,
        output: impl Into<PathBuf>,
    ) -> Self {
        EvalConfig {
            model: model.into(),
            dataset: dataset.into(),
            output: output.into(),
            split: EvalSplit::Test,
            max_users: 0,
            mode: default_mode(),
            batch_size: default_batch_size(),
            history_cap: default_history_cap(),
            adapter: None,
            baselines: true,
            beam: BeamParams::default(),
            reasoning: ReasoningEvalConfig::default(),
        }
    }

    /// Checks values serde cannot: on failure, the key path and what is wrong with it.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, msg: String| Err((key.to_string(), msg));
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1".into());
        }
        if self.history_cap == 0 {
            return bad("history_cap", "must be at least 1".into());
        }
        let b = &self.beam;
        if b.num_beams == 0 {
            return bad("beam.num_beams", "must be at least 1".into());
        }
        if b.num_results == 0 {
            return bad("beam.num_results", "must be at least 1".into());
        }
        if b.num_results > b.num_beams {
            return bad(
                "beam.num_results",
                format!(
                    "{} results need at least as many beams (beam.num_beams = {})",
                    b.num_results, b.num_beams
                ),
            );
        }
        if let Some(a) = b.length_penalty {
            if !a.is_finite() {
                return bad("beam.length_penalty", format!("{a} is not finite"));
            }
        }
        let r = &self.reasoning;
        if r.num_samples == 0 {
            return bad("reasoning.num_samples", "must be at least 1".into());
        }
        if !(r.temperature.is_finite() && r.temperature >= 0.0) {
            return bad(
                "reasoning.temperature",
                format!("{} must be finite and >= 0", r.temperature),
            );
        }
        if !(r.top_p > 0.0 && r.top_p <= 1.0) {
            return bad("reasoning.top_p", format!("{} must be in (0, 1]", r.top_p));
        }
        if r.max_new_tokens == 0 {
            return bad("reasoning.max_new_tokens", "must be at least 1".into());
        }
        for (key, p) in [
            ("model", &self.model),
            ("dataset", &self.dataset),
            ("output", &self.output),
        ] {
            if p.as_os_str().is_empty() {
                return bad(key, "is empty".into());
            }
        }
        Ok(())
    }
}

/// Loads an eval config file (the whole file is the eval section), applies `--set` overrides,
/// rejects unknown keys and checks values; every error names the file and the key.
pub fn load_eval_config<S: AsRef<str>>(
    source: &ConfigSource,
    overrides: &[S],
) -> Result<EvalConfig, ConfigError> {
    let doc = ResolvedToml::load(source, overrides)?;
    let cfg: EvalConfig = doc.deserialize()?;
    cfg.validate()
        .map_err(|(path, message)| ConfigError::Schema {
            origin: doc.origin().to_string(),
            path,
            message,
        })?;
    Ok(cfg)
}
