//! Example of a custom Rust reward: the semantic-ID reward scaled down for responses longer
//! than a token budget, registered by name so a config can use it like a built-in.
//!
//! Run: `cargo run -p grrm-rewards --example length_penalized`

use grrm_rewards::{
    ConfigError, FormatOptions, Registry, Reward, RewardError, RewardInput, RewardOutput,
    RewardsConfig, SampleMeta, SemanticIdReward,
};
use serde::Deserialize;

/// Options under `[terms.options]`; unknown keys are config errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LengthPenaltyOptions {
    /// Responses up to this many tokens keep their full reward.
    pub budget_tokens: usize,
    /// Fraction of the reward lost per token over the budget.
    pub penalty_per_token: f64,
    /// Gate options of the wrapped semantic-ID reward.
    #[serde(default)]
    pub format: FormatOptions,
}

pub struct LengthPenalized {
    name: String,
    opts: LengthPenaltyOptions,
    inner: SemanticIdReward,
}

impl LengthPenalized {
    pub fn new(name: &str, opts: LengthPenaltyOptions) -> Result<Self, ConfigError> {
        if !(opts.penalty_per_token >= 0.0 && opts.penalty_per_token.is_finite()) {
            return Err(ConfigError::Invalid {
                reward: name.into(),
                field: "penalty_per_token",
                message: format!(
                    "{} is not a finite non-negative number",
                    opts.penalty_per_token
                ),
            });
        }
        Ok(Self {
            name: name.into(),
            inner: SemanticIdReward::new(name, opts.format.clone()),
            opts,
        })
    }
}

impl Reward for LengthPenalized {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, input: &RewardInput) -> Result<RewardOutput, RewardError> {
        let base = self.inner.score(input)?;
        let over = input
            .token_ids
            .len()
            .saturating_sub(self.opts.budget_tokens);
        let factor = (1.0 - self.opts.penalty_per_token * over as f64).max(0.0);
        let mut out = RewardOutput::new(base.score * factor)
            .with("length_factor", factor)
            .with("response_tokens", input.token_ids.len() as f64);
        out.components.extend(base.components);
        Ok(out)
    }

    fn range(&self) -> Option<(f64, f64)> {
        Some((0.0, 1.0))
    }
}

/// Makes `length_penalized` available to configs.
pub fn register(registry: &mut Registry) -> Result<(), ConfigError> {
    registry.register_with("length_penalized", LengthPenalized::new)
}

pub const CONFIG: &str = r#"
on_error = "drop"

[[terms]]
name = "length_penalized"
weight = 1.0
options = { budget_tokens = 8, penalty_per_token = 0.05, format = { mode = "direct" } }

[[terms]]
name = "format_only"
weight = 0.1
options = { mode = "direct" }
"#;

fn main() -> anyhow::Result<()> {
    let mut registry = Registry::new();
    register(&mut registry)?;
    let set = registry.build(&RewardsConfig::from_toml_str(CONFIG)?)?;
    let id = ["<|a_12|>", "<|b_3|>", "<|c_77|>", "<|d_5|>"];
    let sample = |k: usize, n_tokens: u32, response: &str| RewardInput {
        prompt: "history ...".into(),
        response: response.into(),
        token_ids: (0..n_tokens).collect(),
        meta: SampleMeta {
            sample_id: format!("demo/{k}"),
            target: id.iter().map(|s| s.to_string()).collect(),
            fields: Default::default(),
        },
    };
    let batch = [
        sample(0, 5, &id.concat()),
        sample(1, 12, &id.concat()),
        sample(2, 5, "<|a_12|><|b_3|><|c_1|><|d_1|>"),
    ];
    for (input, out) in batch.iter().zip(set.score_batch(&batch)?.outputs) {
        println!("{}: {:?}", input.meta.sample_id, out);
    }
    Ok(())
}
