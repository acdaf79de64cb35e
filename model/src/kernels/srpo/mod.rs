//! The SRPO objective on the GPU (SPEC.md section 4): group advantages with the pass@k bonus and
//! the zero-variance filter, the clipped-surrogate + KL token loss with its gradient with respect
//! to the new log-probs, and the step metrics, plus an f64 CPU reference of all of it.
//!
//! Per step: `group_advantages` once over all G x n rollouts (read back `keep` to assemble the
//! batch of informative groups), then per mini-batch `policy_loss` on the packed response tokens;
//! its `grad` feeds the fused cross-entropy backward (dlogits = -grad * (onehot - softmax)).
//! Metric tensors are read back once per step. Pipelines: 1 + 3 (one per entry point).

pub mod advantage;
pub mod config;
pub mod metrics;
pub mod policy_loss;
pub mod reference;

pub use advantage::{group_advantages, AdvantageOutputs};
pub use config::{Aggregation, Estimator, EstimatorKind, KlEstimator, SrpoConfig};
pub use metrics::{AdvantageMetrics, LossMetrics};
pub use policy_loss::{policy_loss, PolicyLossInputs, PolicyLossOutputs, TokenAdvantages};
