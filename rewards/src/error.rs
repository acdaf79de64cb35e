//! Typed errors. A reward failure always names the reward instance and the sample so a
//! dropped sample can be traced back in the logs; config errors name the offending field.

use std::time::Duration;

/// What went wrong while scoring one sample.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RewardErrorKind {
    #[error("score is not finite ({value})")]
    NonFiniteScore { value: f64 },
    #[error("component `{component}` is not finite ({value})")]
    NonFiniteComponent { component: String, value: f64 },
    #[error("score {score} outside the configured range [{min}, {max}]")]
    OutOfRange { score: f64, min: f64, max: f64 },
    #[error("malformed reply: {detail}")]
    MalformedReply { detail: String },
    #[error("no reply within {timeout:?}")]
    Timeout { timeout: Duration },
    #[error("plugin process died: {detail}{}", stderr_suffix(.stderr_tail))]
    ProcessDied { detail: String, stderr_tail: String },
    #[error("plugin could not be started: {detail}")]
    Spawn { detail: String },
    #[error("plugin reported an error: {message}")]
    Plugin { message: String },
    #[error("HTTP request failed: {detail}")]
    Http { detail: String },
    /// The sample itself cannot be scored (e.g. a ground-truth ID that is not an index-token run).
    #[error("invalid sample: {detail}")]
    InvalidInput { detail: String },
    /// Free-form failure of a user-written reward.
    #[error("{0}")]
    Custom(String),
}

fn stderr_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("; stderr tail:\n{}", tail.trim_end())
    }
}

/// A failure of reward `reward` on sample `sample_id`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("reward `{reward}` failed on sample `{sample_id}`: {kind}")]
pub struct RewardError {
    pub reward: String,
    pub sample_id: String,
    #[source]
    pub kind: RewardErrorKind,
}

impl RewardError {
    pub fn new(
        reward: impl Into<String>,
        sample_id: impl Into<String>,
        kind: RewardErrorKind,
    ) -> Self {
        Self {
            reward: reward.into(),
            sample_id: sample_id.into(),
            kind,
        }
    }
}

/// Errors while reading a rewards config or building rewards from it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("rewards config: {0}")]
    Parse(String),
    #[error("unknown reward `{name}` (registered: {})", .known.join(", "))]
    UnknownReward { name: String, known: Vec<String> },
    #[error("a reward named `{0}` is already registered")]
    DuplicateName(String),
    #[error("reward label `{0}` is used by more than one term; give each term a distinct `label`")]
    DuplicateLabel(String),
    #[error("options of reward `{reward}`: {message}")]
    Options { reward: String, message: String },
    #[error("field `{field}` of reward `{reward}`: {message}")]
    Invalid {
        reward: String,
        field: &'static str,
        message: String,
    },
    #[error("rewards config needs at least one term in `terms`")]
    NoTerms,
    #[error("field `threads`: must be at least 1")]
    Threads,
}
