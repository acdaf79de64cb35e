//! Named views of the small metric tensors the SRPO kernels write (read back once per step).

/// Written by `group_advantages` into an f32 tensor of `AdvantageMetrics::LEN` values.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct AdvantageMetrics {
    /// Fraction of groups whose filter score has variance <= 1e-12 (dropped by the filter).
    pub zero_variance_fraction: f64,
    pub reward_mean: f64,
    pub reward_max: f64,
    /// Exact hits / samples.
    pub exact_hit_rate: f64,
}

impl AdvantageMetrics {
    pub const LEN: usize = 4;

    pub fn from_values(v: &[f32]) -> Self {
        assert_eq!(v.len(), Self::LEN, "advantage metrics length");
        AdvantageMetrics {
            zero_variance_fraction: v[0] as f64,
            reward_mean: v[1] as f64,
            reward_max: v[2] as f64,
            exact_hit_rate: v[3] as f64,
        }
    }
}

/// Written by `policy_loss` into an f32 tensor of `LossMetrics::LEN` values. Token fractions and
/// means are over the unmasked tokens of the call, whatever the aggregation.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct LossMetrics {
    /// Surrogate part of the loss, aggregated like the loss (unscaled).
    pub pg_loss: f64,
    /// KL-to-reference part before kl_coef, aggregated like the loss (0 without a reference).
    pub kl_loss: f64,
    /// A < 0 and ratio < 1 - eps_low.
    pub clip_frac_low: f64,
    /// A > 0 and ratio > 1 + eps_high.
    pub clip_frac_high: f64,
    /// A < 0 and the dual clip -A * c is the loss.
    pub clip_frac_dual: f64,
    /// KL(old || new) by k3: mean of ratio - 1 - log ratio (log ratio clamped as in the loss).
    pub approx_kl_old: f64,
    /// Mean of the per-token entropy input (0 when none is given).
    pub entropy: f64,
    /// Unmasked tokens per sequence, mean over all sequences and max.
    pub response_length_mean: f64,
    pub response_length_max: f64,
    /// Unmasked tokens in the call.
    pub tokens: f64,
    /// Sequences with at least one unmasked token.
    pub sequences: f64,
}

impl LossMetrics {
    pub const LEN: usize = 11;

    pub fn from_values(v: &[f32]) -> Self {
        assert_eq!(v.len(), Self::LEN, "loss metrics length");
        let f = |i: usize| v[i] as f64;
        LossMetrics {
            pg_loss: f(0),
            kl_loss: f(1),
            clip_frac_low: f(2),
            clip_frac_high: f(3),
            clip_frac_dual: f(4),
            approx_kl_old: f(5),
            entropy: f(6),
            response_length_mean: f(7),
            response_length_max: f(8),
            tokens: f(9),
            sequences: f(10),
        }
    }
}
