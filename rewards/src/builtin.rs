//! Built-in verifiable rewards: `semantic_id` (r = f * m), `exact_match` and `format_only`.

use crate::error::{RewardError, RewardErrorKind};
use crate::index_tokens::is_index_token;
use crate::reward::{Reward, RewardInput, RewardOutput};
use crate::semantic_id::{extract_answer, match_id, FormatOptions, MatchResult};

/// Gate + match for one input; the target is checked first since a bad target is a data error,
/// not a bad response.
fn gate_and_match(
    name: &str,
    opts: &FormatOptions,
    input: &RewardInput,
) -> Result<Option<MatchResult>, RewardError> {
    let target = &input.meta.target;
    let bad = |detail: String| input.error(name, RewardErrorKind::InvalidInput { detail });
    if target.is_empty() {
        return Err(bad("ground-truth ID is empty".into()));
    }
    if let Some(t) = target.iter().find(|t| !is_index_token(t)) {
        return Err(bad(format!(
            "ground-truth token {t:?} is not an index token"
        )));
    }
    if target.len() != opts.levels && target.len() != opts.levels + 1 {
        return Err(bad(format!(
            "ground-truth ID has {} tokens but `levels` = {} allows {} or {}",
            target.len(),
            opts.levels,
            opts.levels,
            opts.levels + 1
        )));
    }
    Ok(extract_answer(&input.prompt, &input.response, opts)
        .ok()
        .map(|answer| match_id(&answer, target)))
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Residual-sensitive semantic-ID reward: `format * match`, with components `format`, `match`,
/// `prefix_len` and `exact`.
#[derive(Debug, Clone)]
pub struct SemanticIdReward {
    name: String,
    opts: FormatOptions,
}

impl SemanticIdReward {
    pub fn new(name: impl Into<String>, opts: FormatOptions) -> Self {
        Self {
            name: name.into(),
            opts,
        }
    }
}

impl Reward for SemanticIdReward {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, input: &RewardInput) -> Result<RewardOutput, RewardError> {
        let m = gate_and_match(&self.name, &self.opts, input)?;
        let (format, mat) = match m {
            Some(m) => (1.0, m),
            None => (
                0.0,
                MatchResult {
                    prefix_len: 0,
                    exact: false,
                    score: 0.0,
                },
            ),
        };
        Ok(RewardOutput::new(format * mat.score)
            .with("format", format)
            .with("match", mat.score)
            .with("prefix_len", mat.prefix_len as f64)
            .with("exact", flag(mat.exact)))
    }

    fn range(&self) -> Option<(f64, f64)> {
        Some((0.0, 1.0))
    }
}

/// 1 when the gated answer equals the ground-truth ID, else 0.
#[derive(Debug, Clone)]
pub struct ExactMatchReward {
    name: String,
    opts: FormatOptions,
}

impl ExactMatchReward {
    pub fn new(name: impl Into<String>, opts: FormatOptions) -> Self {
        Self {
            name: name.into(),
            opts,
        }
    }
}

impl Reward for ExactMatchReward {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, input: &RewardInput) -> Result<RewardOutput, RewardError> {
        let m = gate_and_match(&self.name, &self.opts, input)?;
        let exact = m.is_some_and(|m| m.exact);
        Ok(RewardOutput::new(flag(exact))
            .with("format", flag(m.is_some()))
            .with("exact", flag(exact)))
    }

    fn range(&self) -> Option<(f64, f64)> {
        Some((0.0, 1.0))
    }
}

/// 1 when the response passes the format gate, else 0; ignores the ground truth.
#[derive(Debug, Clone)]
pub struct FormatOnlyReward {
    name: String,
    opts: FormatOptions,
}

impl FormatOnlyReward {
    pub fn new(name: impl Into<String>, opts: FormatOptions) -> Self {
        Self {
            name: name.into(),
            opts,
        }
    }
}

impl Reward for FormatOnlyReward {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, input: &RewardInput) -> Result<RewardOutput, RewardError> {
        let ok = extract_answer(&input.prompt, &input.response, &self.opts).is_ok();
        Ok(RewardOutput::new(flag(ok)).with("format", flag(ok)))
    }

    fn range(&self) -> Option<(f64, f64)> {
        Some((0.0, 1.0))
    }
}
