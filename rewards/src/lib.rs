//! grrm-rewards: verifiable rewards for LLM recommenders that answer with semantic item IDs.
//!
//! - [`Reward`]: the trait (prompt, response text and token ids, sample metadata in; score and
//!   named components out). `Send + Sync`, so one instance serves every scoring thread.
//! - Built-ins ([`builtin`]): `semantic_id` (the residual-sensitive reward of SPEC.md section 4,
//!   `format * match`), `exact_match`, `format_only`; the gate and match are pure functions in
//!   [`semantic_id`].
//! - Plug-ins without recompiling: `process` (a program speaking JSON lines, [`plugin_process`])
//!   and `http` (an endpoint taking POSTed JSON, [`plugin_http`]); wire format in [`protocol`].
//! - [`Registry`]: rewards by name; users add their own Rust rewards with
//!   [`Registry::register_with`]. [`Registry::build`] turns a [`RewardsConfig`] into a
//!   [`RewardSet`]: a [`WeightedSum`] of [`Checked`] terms plus the [`OnError`] policy.
//! - [`score_batch`]: scores a batch, returning per-sample outputs and the dropped samples with
//!   their [`RewardError`]s (each names the reward and the sample id), or stopping at the first.

pub mod batch;
pub mod builtin;
pub mod checked;
pub mod combine;
pub mod config;
pub mod error;
pub mod index_tokens;
pub mod plugin_http;
pub mod plugin_process;
pub mod protocol;
pub mod registry;
pub mod reward;
pub mod semantic_id;

pub use batch::{score_batch, BatchScores, Dropped, RewardSet};
pub use builtin::{ExactMatchReward, FormatOnlyReward, SemanticIdReward};
pub use checked::{validate_output, Checked};
pub use combine::WeightedSum;
pub use config::{OnError, RewardsConfig, TermConfig};
pub use error::{ConfigError, RewardError, RewardErrorKind};
pub use plugin_http::{HttpOptions, HttpReward};
pub use plugin_process::{ProcessOptions, ProcessReward};
pub use registry::{Factory, Registry, TOTAL};
pub use reward::{Reward, RewardInput, RewardOutput, SampleMeta};
pub use semantic_id::{
    extract_answer, match_id, prefix_credit, FormatFailure, FormatOptions, MatchResult, Mode,
};
