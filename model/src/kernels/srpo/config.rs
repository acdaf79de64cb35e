//! SRPO objective settings with SPEC.md section 4 defaults, read from the run config's TOML.

use serde::{Deserialize, Serialize};

/// How group advantages are formed from the rewards of one prompt's n responses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Estimator {
    /// GRPO z-score (unbiased std + 1e-6) plus the pass@k bonus of SPEC.md section 4.
    BonusCalibrated { k: u32 },
    /// z-score with the unbiased std + 1e-6.
    Grpo,
    /// r - mean, no std normalisation.
    DrGrpo,
    /// r_i - mean of the other n - 1 rewards.
    Rloo,
}

impl Estimator {
    pub(crate) fn code(self) -> u32 {
        match self {
            Estimator::BonusCalibrated { .. } => 0,
            Estimator::Grpo => 1,
            Estimator::DrGrpo => 2,
            Estimator::Rloo => 3,
        }
    }
    pub(crate) fn bonus_k(self) -> u32 {
        match self {
            Estimator::BonusCalibrated { k } => k,
            _ => 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EstimatorKind {
    BonusCalibrated,
    Grpo,
    DrGrpo,
    Rloo,
}

/// KL(new || ref) estimators (Schulman's k1, k2, k3), per token with d = new - ref.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlEstimator {
    /// d
    K1,
    /// 0.5 d^2
    K2,
    /// exp(-d) + d - 1 (the "low-variance" estimator; the inner -d is clamped to the log-ratio
    /// clamp before exp, as verl does)
    K3,
}

impl KlEstimator {
    pub(crate) fn code(self) -> u32 {
        match self {
            KlEstimator::K1 => 1,
            KlEstimator::K2 => 2,
            KlEstimator::K3 => 3,
        }
    }
}

/// How per-token losses become the scalar loss (masked tokens never count).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Sum over all unmasked tokens of the batch / their number.
    TokenMean,
    /// Per sequence the mean over its unmasked tokens, then the mean over sequences that have any.
    SeqMeanTokenMean,
    /// Per sequence the sum over its unmasked tokens, then the mean over sequences that have any.
    SeqMeanTokenSum,
}

impl Aggregation {
    pub(crate) fn code(self) -> u32 {
        match self {
            Aggregation::TokenMean => 0,
            Aggregation::SeqMeanTokenMean => 1,
            Aggregation::SeqMeanTokenSum => 2,
        }
    }
}

/// The SRPO objective's knobs. Defaults are SPEC.md section 4's reference run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SrpoConfig {
    pub estimator: EstimatorKind,
    /// k of the pass@k bonus (bonus_calibrated only).
    pub k: u32,
    pub eps_low: f32,
    pub eps_high: f32,
    /// Dual-clip constant c (> 1) bounding the loss of negative-advantage tokens at -A * c.
    pub dual_clip: f32,
    pub kl_coef: f32,
    pub kl_estimator: KlEstimator,
    /// Per-token KL values are clamped to +-kl_clamp.
    pub kl_clamp: f32,
    /// log(new/old) (and k3's log(ref/new)) is clamped to +-log_ratio_clamp before exp.
    pub log_ratio_clamp: f32,
    pub agg: Aggregation,
}

impl Default for SrpoConfig {
    fn default() -> Self {
        SrpoConfig {
            estimator: EstimatorKind::BonusCalibrated,
            k: 4,
            eps_low: 0.2,
            eps_high: 0.2,
            dual_clip: 10.0,
            kl_coef: 0.001,
            kl_estimator: KlEstimator::K3,
            kl_clamp: 10.0,
            log_ratio_clamp: 20.0,
            agg: Aggregation::TokenMean,
        }
    }
}

impl SrpoConfig {
    pub fn estimator(&self) -> Estimator {
        match self.estimator {
            EstimatorKind::BonusCalibrated => Estimator::BonusCalibrated { k: self.k },
            EstimatorKind::Grpo => Estimator::Grpo,
            EstimatorKind::DrGrpo => Estimator::DrGrpo,
            EstimatorKind::Rloo => Estimator::Rloo,
        }
    }

    /// Rejects settings the formulas are not defined for, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |f: &str, why: &str| Err(format!("srpo.{f}: {why}"));
        if self.estimator == EstimatorKind::BonusCalibrated && self.k == 0 {
            return bad("k", "must be >= 1");
        }
        if !(0.0..1.0).contains(&self.eps_low) {
            return bad("eps_low", "must be in [0, 1)");
        }
        if !self.eps_high.is_finite() || self.eps_high < 0.0 {
            return bad("eps_high", "must be finite and >= 0");
        }
        if self.dual_clip.is_nan() || self.dual_clip <= 1.0 {
            return bad("dual_clip", "must be > 1");
        }
        if !self.kl_coef.is_finite() || self.kl_coef < 0.0 {
            return bad("kl_coef", "must be finite and >= 0");
        }
        if self.kl_clamp.is_nan() || self.kl_clamp <= 0.0 {
            return bad("kl_clamp", "must be > 0");
        }
        if !(self.log_ratio_clamp > 0.0 && self.log_ratio_clamp <= 80.0) {
            return bad(
                "log_ratio_clamp",
                "must be in (0, 80] (exp overflows f32 beyond 88)",
            );
        }
        Ok(())
    }
}
