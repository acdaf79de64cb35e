//! f64 CPU reference of the SRPO objective: the formulas the shaders implement, written plainly.
//! Tests compare the kernels against it; the learner may use it directly for small batches.

use super::config::{Aggregation, Estimator, KlEstimator, SrpoConfig};
use super::metrics::{AdvantageMetrics, LossMetrics};

/// Groups whose score variance is at most this are uninformative (zero-variance filter) and get
/// zero advantages from every estimator.
pub const ZERO_VARIANCE: f64 = 1e-12;
/// Added to the std (and to the bonus's sigma) before dividing.
pub const STD_EPS: f64 = 1e-6;

/// C(a, t) / C(b, t) for a <= b, as a product of factors in [0, 1].
fn binom_ratio(a: usize, b: usize, t: usize) -> f64 {
    (0..t)
        .map(|i| {
            if i >= a {
                0.0
            } else {
                (a - i) as f64 / (b - i) as f64
            }
        })
        .product()
}

/// The pass@k bonus (SPEC.md section 4) for c exact hits among n responses: (bonus of a hit,
/// bonus of a miss). Zero when c = 0 or n - c < k.
pub fn pass_at_k_bonus(n: usize, c: usize, k: usize) -> (f64, f64) {
    assert!(k >= 1 && c <= n, "pass_at_k_bonus: n {n}, c {c}, k {k}");
    if c == 0 || n - c < k {
        return (0.0, 0.0);
    }
    let rho = 1.0 - binom_ratio(n - c, n, k);
    let sigma = (rho * (1.0 - rho)).sqrt();
    let miss = binom_ratio(n - c - 1, n - 1, k - 1);
    (
        (1.0 - rho) / (sigma + STD_EPS),
        (1.0 - rho - miss) / (sigma + STD_EPS),
    )
}

/// Mean and unbiased variance.
fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

pub struct GroupAdvantages {
    pub advantages: Vec<f64>,
    pub keep: Vec<bool>,
    pub metrics: AdvantageMetrics,
}

/// Same contract as `kernels::srpo::group_advantages`: rewards [G*n] in contiguous groups,
/// hits from `exact` (nonzero) or reward == 1, the filter on `filter_score` or the rewards.
pub fn group_advantages(
    rewards: &[f32],
    exact: Option<&[u32]>,
    filter_score: Option<&[f32]>,
    n: usize,
    estimator: Estimator,
) -> GroupAdvantages {
    assert!(n >= 2 && !rewards.is_empty() && rewards.len().is_multiple_of(n));
    let groups = rewards.len() / n;
    let hit = |i: usize| exact.map_or(rewards[i] == 1.0, |e| e[i] != 0);
    let mut advantages = vec![0.0; rewards.len()];
    let mut keep = vec![false; groups];
    let (mut hits, mut rmax) = (0usize, f64::NEG_INFINITY);
    for (g, kept) in keep.iter_mut().enumerate() {
        let idx = g * n..(g + 1) * n;
        let r: Vec<f64> = rewards[idx.clone()].iter().map(|&v| v as f64).collect();
        let (mean, var) = mean_var(&r);
        let score_var = match filter_score {
            Some(s) => mean_var(&s[idx.clone()].iter().map(|&v| v as f64).collect::<Vec<_>>()).1,
            None => var,
        };
        *kept = score_var > ZERO_VARIANCE;
        let c = idx.clone().filter(|&i| hit(i)).count();
        hits += c;
        rmax = r.iter().copied().fold(rmax, f64::max);
        let bonus = match estimator {
            Estimator::BonusCalibrated { k } => pass_at_k_bonus(n, c, k as usize),
            _ => (0.0, 0.0),
        };
        for (j, i) in idx.enumerate() {
            let d = r[j] - mean;
            let base = if var <= ZERO_VARIANCE {
                0.0
            } else {
                match estimator {
                    Estimator::BonusCalibrated { .. } | Estimator::Grpo => {
                        d / (var.sqrt() + STD_EPS)
                    }
                    Estimator::DrGrpo => d,
                    // r_i - (sum - r_i) / (n - 1)
                    Estimator::Rloo => r[j] - (r.iter().sum::<f64>() - r[j]) / (n as f64 - 1.0),
                }
            };
            advantages[i] = base + if hit(i) { bonus.0 } else { bonus.1 };
        }
    }
    let samples = rewards.len() as f64;
    let metrics = AdvantageMetrics {
        zero_variance_fraction: keep.iter().filter(|k| !**k).count() as f64 / groups as f64,
        reward_mean: rewards.iter().map(|&v| v as f64).sum::<f64>() / samples,
        reward_max: rmax,
        exact_hit_rate: hits as f64 / samples,
    };
    GroupAdvantages {
        advantages,
        keep,
        metrics,
    }
}

/// Host-side inputs of the policy loss (see `kernels::srpo::PolicyLossInputs`).
#[derive(Clone, Copy, Debug)]
pub struct LossInputs<'a> {
    pub new_logp: &'a [f32],
    pub old_logp: &'a [f32],
    pub ref_logp: Option<&'a [f32]>,
    /// Per token ([Ntok]) or per sequence ([S]), as `per_sequence_advantages` says.
    pub advantages: &'a [f32],
    pub per_sequence_advantages: bool,
    pub mask: &'a [u32],
    pub seq_offsets: &'a [u32],
    pub entropy: Option<&'a [f32]>,
}

pub struct PolicyLoss {
    pub loss: f64,
    /// d loss / d new_logp, [Ntok].
    pub grad: Vec<f64>,
    pub metrics: LossMetrics,
}

/// One token's surrogate, KL and their derivatives with respect to new_logp.
struct TokenTerms {
    pg: f64,
    dpg: f64,
    kl: f64,
    dkl: f64,
    ratio: f64,
    log_ratio: f64,
    dual: bool,
}

/// d/dx clamp(x, -lim, lim) as autograd gives it: 1 inside the closed interval, 0 outside.
fn clamp_grad(x: f64, lim: f64) -> f64 {
    if x.abs() <= lim {
        1.0
    } else {
        0.0
    }
}

fn token_terms(new: f64, old: f64, reference: Option<f64>, a: f64, cfg: &SrpoConfig) -> TokenTerms {
    let lim = cfg.log_ratio_clamp as f64;
    let raw = new - old;
    let log_ratio = raw.clamp(-lim, lim);
    let ratio = log_ratio.exp();
    // pg = max(-A ratio, -A clip(ratio)); the derivative follows the branch that wins.
    let unclipped = -a * ratio;
    let clipped = -a * ratio.clamp(1.0 - cfg.eps_low as f64, 1.0 + cfg.eps_high as f64);
    let (mut pg, mut dpg) = if clipped > unclipped {
        (clipped, 0.0)
    } else {
        (unclipped, -a * ratio * clamp_grad(raw, lim))
    };
    // Dual clip: negative advantages lose at most -A c.
    let cap = -a * cfg.dual_clip as f64;
    let dual = a < 0.0 && pg > cap;
    if dual {
        (pg, dpg) = (cap, 0.0);
    }
    let (kl, dkl) = match reference {
        None => (0.0, 0.0),
        Some(r) => {
            let d = new - r;
            let (kl, dkl) = match cfg.kl_estimator {
                KlEstimator::K1 => (d, 1.0),
                KlEstimator::K2 => (0.5 * d * d, d),
                KlEstimator::K3 => {
                    let x = (-d).clamp(-lim, lim);
                    (x.exp() - x - 1.0, (1.0 - x.exp()) * clamp_grad(-d, lim))
                }
            };
            let kc = cfg.kl_clamp as f64;
            (kl.clamp(-kc, kc), dkl * clamp_grad(kl, kc))
        }
    };
    TokenTerms {
        pg,
        dpg,
        kl,
        dkl,
        ratio,
        log_ratio,
        dual,
    }
}

/// The loss `scale * (pg + kl_coef * kl)` under `cfg.agg`, its gradient and the metrics, with
/// the same definitions as `kernels::srpo::policy_loss` (kl_coef is ignored without a reference).
pub fn policy_loss(x: &LossInputs, cfg: &SrpoConfig, scale: f64) -> PolicyLoss {
    let n_tok = x.new_logp.len();
    let offs = x.seq_offsets;
    assert!(offs.len() >= 2 && offs[0] == 0 && offs[offs.len() - 1] as usize == n_tok);
    assert!(
        offs.windows(2).all(|w| w[0] <= w[1]),
        "seq_offsets must not decrease"
    );
    let n_seq = offs.len() - 1;
    let seq_tokens = |s: usize| offs[s] as usize..offs[s + 1] as usize;
    let counts: Vec<usize> = (0..n_seq)
        .map(|s| seq_tokens(s).filter(|&t| x.mask[t] != 0).count())
        .collect();
    let tokens: usize = counts.iter().sum();
    let nonempty = counts.iter().filter(|&&c| c > 0).count();
    let beta = if x.ref_logp.is_some() {
        cfg.kl_coef as f64
    } else {
        0.0
    };
    let mut grad = vec![0.0; n_tok];
    let (mut pg_loss, mut kl_loss) = (0.0, 0.0);
    let (mut low, mut high, mut dual, mut approx_kl, mut entropy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (s, &count) in counts.iter().enumerate() {
        for t in seq_tokens(s).filter(|&t| x.mask[t] != 0) {
            let a = if x.per_sequence_advantages {
                x.advantages[s]
            } else {
                x.advantages[t]
            } as f64;
            let w = match cfg.agg {
                Aggregation::TokenMean => 1.0 / tokens as f64,
                Aggregation::SeqMeanTokenMean => 1.0 / (nonempty * count) as f64,
                Aggregation::SeqMeanTokenSum => 1.0 / nonempty as f64,
            };
            let tt = token_terms(
                x.new_logp[t] as f64,
                x.old_logp[t] as f64,
                x.ref_logp.map(|r| r[t] as f64),
                a,
                cfg,
            );
            pg_loss += w * tt.pg;
            kl_loss += w * tt.kl;
            grad[t] = scale * w * (tt.dpg + beta * tt.dkl);
            low += f64::from(u8::from(a < 0.0 && tt.ratio < 1.0 - cfg.eps_low as f64));
            high += f64::from(u8::from(a > 0.0 && tt.ratio > 1.0 + cfg.eps_high as f64));
            dual += f64::from(u8::from(tt.dual));
            approx_kl += tt.ratio - 1.0 - tt.log_ratio;
            entropy += x.entropy.map_or(0.0, |e| e[t] as f64);
        }
    }
    let per_tok = 1.0 / tokens.max(1) as f64;
    PolicyLoss {
        loss: scale * (pg_loss + beta * kl_loss),
        grad,
        metrics: LossMetrics {
            pg_loss,
            kl_loss,
            clip_frac_low: low * per_tok,
            clip_frac_high: high * per_tok,
            clip_frac_dual: dual * per_tok,
            approx_kl_old: approx_kl * per_tok,
            entropy: entropy * per_tok,
            response_length_mean: tokens as f64 / n_seq as f64,
            response_length_max: counts.iter().copied().max().unwrap_or(0) as f64,
            tokens: tokens as f64,
            sequences: nonempty as f64,
        },
    }
}
