//! The SRPO objective kernels against SPEC.md section 4's worked values and the f64 reference
//! (`kernels::srpo::reference`), a finite-difference check of the loss gradient, hand-built clip
//! fractions, config defaults and shape errors.
//!
//! Tolerances (f32 kernels vs f64 reference):
//! - advantages: |err| <= 1e-4 * (1 + |want|). Group sums of n <= 17 values of size <= 1 in f32
//!   (~1e-6 relative), divided by a std >= 0.02 for the reward sets used here.
//! - loss and metrics: |err| <= 1e-5 + 1e-4 * |want|. Sums of up to 66k weighted terms each
//!   bounded by |A| * dual_clip in a tree reduction, and exp of clamped log-ratios (f32 exp is
//!   accurate to a few ulp; ratios up to e^20 appear in approx_kl_old).
//! - gradient: |err| <= 1e-7 + 1e-5 * |want|: one f32 exp and a few products per token.
//! - SPEC values are quoted to 3 decimals: |err| <= 5e-4 (+ f32 rounding on the GPU).

mod common;

use common::*;
use grrm_model::kernels::srpo::reference::{self, LossInputs};
use grrm_model::kernels::srpo::*;
use grrm_model::{GpuContext, Recorder, Tensor};
use rand::Rng;

const SPEC_BONUS: [(usize, f64, f64); 4] = [
    (1, 1.225, -0.136),
    (2, 0.707, -0.177),
    (3, 0.447, -0.192),
    (5, 0.156, -0.156),
];

#[test]
fn pass_at_k_bonus_reference_matches_spec_values() {
    for (c, hit, miss) in SPEC_BONUS {
        let (h, m) = reference::pass_at_k_bonus(10, c, 4);
        assert!((h - hit).abs() < 5e-4, "c={c}: hit bonus {h}, SPEC {hit}");
        assert!(
            (m - miss).abs() < 5e-4,
            "c={c}: miss bonus {m}, SPEC {miss}"
        );
    }
    for c in [0, 7, 8, 9, 10] {
        assert_eq!(reference::pass_at_k_bonus(10, c, 4), (0.0, 0.0), "c={c}");
    }
}

fn run_advantages(
    ctx: &GpuContext,
    rewards: &[f32],
    exact: Option<&[u32]>,
    score: Option<&[f32]>,
    n: usize,
    est: Estimator,
) -> (Vec<f32>, Vec<u32>, AdvantageMetrics) {
    let t = |v: &[f32]| Tensor::from_f32(ctx, &[v.len()], v).unwrap();
    let r = t(rewards);
    let e = exact.map(|v| Tensor::from_u32(ctx, &[v.len()], v).unwrap());
    let s = score.map(t);
    let out = AdvantageOutputs::poisoned(ctx, rewards.len() / n, n).unwrap();
    let mut rec = Recorder::new(ctx, "srpo test");
    group_advantages(&mut rec, &r, e.as_ref(), s.as_ref(), n, est, &out).unwrap();
    rec.submit().unwrap();
    (
        out.advantages.to_f32_vec().unwrap(),
        out.keep.to_u32_vec().unwrap(),
        out.read_metrics().unwrap(),
    )
}

/// Equal rewards make the z-score zero, so the advantage is the bonus alone.
#[test]
fn pass_at_k_bonus_gpu_matches_spec_values() {
    let ctx = ctx();
    let n = 10;
    let hits_per_group = [1usize, 2, 3, 5, 0, 7, 8, 10];
    let rewards = vec![0.5f32; n * hits_per_group.len()];
    let exact: Vec<u32> = hits_per_group
        .iter()
        .flat_map(|&c| (0..n).map(move |i| u32::from(i < c)))
        .collect();
    let est = Estimator::BonusCalibrated { k: 4 };
    let (adv, keep, m) = run_advantages(&ctx, &rewards, Some(&exact), None, n, est);
    for (g, &c) in hits_per_group.iter().enumerate() {
        let (hit, miss) = SPEC_BONUS
            .iter()
            .find(|s| s.0 == c)
            .map_or((0.0, 0.0), |s| (s.1, s.2));
        for i in 0..n {
            let want = if i < c { hit } else { miss };
            let got = adv[g * n + i] as f64;
            assert!(
                (got - want).abs() < 6e-4,
                "c={c} sample {i}: {got} vs SPEC {want}"
            );
        }
    }
    assert!(
        keep.iter().all(|&k| k == 0),
        "equal rewards are zero-variance groups"
    );
    assert_eq!(m.zero_variance_fraction, 1.0);
    let hits: usize = hits_per_group.iter().sum();
    assert!((m.exact_hit_rate - hits as f64 / rewards.len() as f64).abs() < 1e-6);
}

/// SPEC.md's reward levels, so groups repeat values and some are all equal.
const REWARD_LEVELS: [f32; 6] = [0.0, 0.5, 0.707, 0.866, 0.95, 1.0];

fn random_groups(rng: &mut impl Rng, groups: usize, n: usize) -> Vec<f32> {
    let mut r = Vec::with_capacity(groups * n);
    for g in 0..groups {
        if g % 4 == 1 {
            // An all-equal group (zero variance), including all-exact and all-zero ones.
            let v = REWARD_LEVELS[g / 4 % REWARD_LEVELS.len()];
            r.extend(std::iter::repeat_n(v, n));
        } else {
            r.extend((0..n).map(|_| REWARD_LEVELS[rng.random_range(0..REWARD_LEVELS.len())]));
        }
    }
    r
}

#[test]
fn advantages_match_reference_for_every_estimator() {
    let ctx = ctx();
    let mut rng = rng(5);
    let estimators = [
        Estimator::BonusCalibrated { k: 4 },
        Estimator::BonusCalibrated { k: 1 },
        Estimator::Grpo,
        Estimator::DrGrpo,
        Estimator::Rloo,
    ];
    for (case, (groups, n)) in [(1, 2), (7, 3), (33, 10), (129, 17), (5, 4)]
        .into_iter()
        .enumerate()
    {
        let rewards = random_groups(&mut rng, groups, n);
        // Hits given as flags on odd cases (here: reward 1 or a random extra), else reward == 1.
        let exact: Option<Vec<u32>> = (case % 2 == 1).then(|| {
            rewards
                .iter()
                .map(|&r| u32::from(r == 1.0 || rng.random_range(0..10) == 0))
                .collect()
        });
        // A separate filter score on some cases: the format-gated match level, coarser here.
        let score: Option<Vec<f32>> =
            (case % 3 == 0).then(|| rewards.iter().map(|&r| (r >= 0.9) as u32 as f32).collect());
        for est in estimators {
            let (adv, keep, m) =
                run_advantages(&ctx, &rewards, exact.as_deref(), score.as_deref(), n, est);
            let want =
                reference::group_advantages(&rewards, exact.as_deref(), score.as_deref(), n, est);
            let what = format!("{est:?} G={groups} n={n}");
            let scale: Vec<f64> = want.advantages.iter().map(|a| 1.0 + a.abs()).collect();
            assert_close(&what, &adv, &want.advantages, 0.0, 1e-4, Some(&scale));
            let keep_want: Vec<u32> = want.keep.iter().map(|&k| u32::from(k)).collect();
            assert_eq!(keep, keep_want, "{what}: keep flags");
            let mv = |m: &AdvantageMetrics| {
                [
                    m.zero_variance_fraction,
                    m.reward_mean,
                    m.reward_max,
                    m.exact_hit_rate,
                ]
            };
            let got: Vec<f32> = mv(&m).iter().map(|&v| v as f32).collect();
            assert_close(
                &format!("{what} metrics"),
                &got,
                &mv(&want.metrics),
                1e-6,
                1e-5,
                None,
            );
        }
    }
}

#[test]
fn zero_variance_groups_give_zero_advantages_and_follow_the_filter_score() {
    let ctx = ctx();
    let n = 4;
    // Group 0: rewards vary, score constant -> dropped. Group 1: rewards constant (0.707, not
    // exactly representable: the mean must still equal it), score varies -> kept, zero advantages.
    let rewards = [0.0, 0.5, 0.5, 0.866, 0.707, 0.707, 0.707, 0.707];
    let score = [0.5, 0.5, 0.5, 0.5, 0.0, 1.0, 0.0, 0.0];
    for est in [Estimator::Grpo, Estimator::DrGrpo, Estimator::Rloo] {
        let (adv, keep, m) = run_advantages(&ctx, &rewards, None, Some(&score), n, est);
        assert_eq!(keep, [0, 1], "{est:?}");
        assert_eq!(
            &adv[4..],
            &[0.0; 4],
            "{est:?}: equal rewards give exactly zero"
        );
        assert!(
            adv[..4].iter().all(|a| a.is_finite() && *a != 0.0),
            "{est:?}: {adv:?}"
        );
        assert_eq!(m.zero_variance_fraction, 0.5);
    }
}

/// A random packed batch: sequences of mixed lengths (including empty and fully masked ones).
struct Batch {
    new: Vec<f32>,
    old: Vec<f32>,
    reference: Vec<f32>,
    adv_tok: Vec<f32>,
    adv_seq: Vec<f32>,
    mask: Vec<u32>,
    offsets: Vec<u32>,
    entropy: Vec<f32>,
}

fn random_batch(rng: &mut impl Rng, lens: &[usize]) -> Batch {
    let mut offsets = vec![0u32];
    for &l in lens {
        offsets.push(offsets.last().unwrap() + l as u32);
    }
    let n = *offsets.last().unwrap() as usize;
    let new: Vec<f32> = (0..n).map(|_| rng.random_range(-6.0f32..0.0)).collect();
    let old: Vec<f32> = new
        .iter()
        .map(|&x| match rng.random_range(0..20) {
            // Far-off behaviour log-probs exercise the +-20 clamp and the dual clip.
            0 => x - 25.0,
            1 => x + 25.0,
            2..=5 => x + rng.random_range(-3.0f32..3.0),
            _ => x + rng.random_range(-0.4f32..0.4),
        })
        .collect();
    let reference: Vec<f32> = new
        .iter()
        .map(|&x| match rng.random_range(0..10) {
            // Large gaps push k3 and k2 past the +-10 KL clamp.
            0 => x + rng.random_range(-30.0f32..30.0),
            _ => x + rng.random_range(-1.0f32..1.0),
        })
        .collect();
    let adv_seq: Vec<f32> = lens
        .iter()
        .map(|_| rng.random_range(-2.0f32..2.0))
        .collect();
    let adv_tok: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect();
    let mut mask: Vec<u32> = (0..n)
        .map(|_| u32::from(rng.random_range(0..5) != 0))
        .collect();
    // The third sequence is fully masked (a prompt-only row).
    if lens.len() > 2 {
        mask[offsets[2] as usize..offsets[3] as usize].fill(0);
    }
    let entropy: Vec<f32> = (0..n).map(|_| rng.random_range(0.0f32..3.0)).collect();
    Batch {
        new,
        old,
        reference,
        adv_tok,
        adv_seq,
        mask,
        offsets,
        entropy,
    }
}

struct GpuLoss {
    loss: f32,
    grad: Vec<f32>,
    metrics: LossMetrics,
}

fn run_loss(
    ctx: &GpuContext,
    b: &Batch,
    per_seq: bool,
    with_ref: bool,
    with_entropy: bool,
    cfg: &SrpoConfig,
    scale: f32,
) -> GpuLoss {
    let f = |v: &[f32]| Tensor::from_f32(ctx, &[v.len()], v).unwrap();
    let u = |v: &[u32]| Tensor::from_u32(ctx, &[v.len()], v).unwrap();
    let (new, old, rf, ent) = (f(&b.new), f(&b.old), f(&b.reference), f(&b.entropy));
    let adv = f(if per_seq { &b.adv_seq } else { &b.adv_tok });
    let (mask, offs) = (u(&b.mask), u(&b.offsets));
    let x = PolicyLossInputs {
        new_logp: &new,
        old_logp: &old,
        ref_logp: with_ref.then_some(&rf),
        advantages: if per_seq {
            TokenAdvantages::PerSequence(&adv)
        } else {
            TokenAdvantages::PerToken(&adv)
        },
        mask: &mask,
        seq_offsets: &offs,
        entropy: with_entropy.then_some(&ent),
    };
    let out = PolicyLossOutputs::poisoned(ctx, b.new.len()).unwrap();
    let mut rec = Recorder::new(ctx, "srpo test");
    policy_loss(&mut rec, &x, cfg, scale, &out).unwrap();
    rec.submit().unwrap();
    GpuLoss {
        loss: out.loss.to_f32_vec().unwrap()[0],
        grad: out.grad.to_f32_vec().unwrap(),
        metrics: out.read_metrics().unwrap(),
    }
}

fn reference_loss(
    b: &Batch,
    per_seq: bool,
    with_ref: bool,
    with_entropy: bool,
    cfg: &SrpoConfig,
    scale: f64,
) -> reference::PolicyLoss {
    reference::policy_loss(
        &LossInputs {
            new_logp: &b.new,
            old_logp: &b.old,
            ref_logp: with_ref.then_some(&b.reference[..]),
            advantages: if per_seq { &b.adv_seq } else { &b.adv_tok },
            per_sequence_advantages: per_seq,
            mask: &b.mask,
            seq_offsets: &b.offsets,
            entropy: with_entropy.then_some(&b.entropy[..]),
        },
        cfg,
        scale,
    )
}

fn metric_values(m: &LossMetrics) -> Vec<f64> {
    vec![
        m.pg_loss,
        m.kl_loss,
        m.clip_frac_low,
        m.clip_frac_high,
        m.clip_frac_dual,
        m.approx_kl_old,
        m.entropy,
        m.response_length_mean,
        m.response_length_max,
        m.tokens,
        m.sequences,
    ]
}

fn check_loss(what: &str, got: &GpuLoss, want: &reference::PolicyLoss) {
    assert_close(
        &format!("{what} loss"),
        &[got.loss],
        &[want.loss],
        1e-5,
        1e-4,
        None,
    );
    assert_close(
        &format!("{what} grad"),
        &got.grad,
        &want.grad,
        1e-7,
        1e-5,
        None,
    );
    let gm: Vec<f32> = metric_values(&got.metrics)
        .iter()
        .map(|&v| v as f32)
        .collect();
    assert_close(
        &format!("{what} metrics"),
        &gm,
        &metric_values(&want.metrics),
        1e-5,
        1e-4,
        None,
    );
}

#[test]
fn policy_loss_matches_reference_for_every_aggregation_and_kl_estimator() {
    let ctx = ctx();
    let mut rng = rng(11);
    let lens = [7, 1, 5, 0, 33, 129, 2, 64];
    let b = random_batch(&mut rng, &lens);
    let aggs = [
        Aggregation::TokenMean,
        Aggregation::SeqMeanTokenMean,
        Aggregation::SeqMeanTokenSum,
    ];
    let kls = [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3];
    for (i, agg) in aggs.into_iter().enumerate() {
        for (j, kl) in kls.into_iter().enumerate() {
            let cfg = SrpoConfig {
                agg,
                kl_estimator: kl,
                kl_coef: 0.05,
                eps_high: 0.28,
                ..Default::default()
            };
            let per_seq = (i + j) % 2 == 0;
            let with_entropy = j != 1;
            let scale = if i == 2 { 0.25 } else { 1.0 };
            let got = run_loss(&ctx, &b, per_seq, true, with_entropy, &cfg, scale);
            let want = reference_loss(&b, per_seq, true, with_entropy, &cfg, scale as f64);
            check_loss(&format!("{agg:?} {kl:?} per_seq={per_seq}"), &got, &want);
        }
    }
    // Without a reference policy (kl_coef 0): the KL part and its metric are zero.
    let cfg = SrpoConfig {
        kl_coef: 0.0,
        ..Default::default()
    };
    let got = run_loss(&ctx, &b, true, false, false, &cfg, 1.0);
    let want = reference_loss(&b, true, false, false, &cfg, 1.0);
    check_loss("no reference", &got, &want);
    assert_eq!(got.metrics.kl_loss, 0.0);
}

/// More than 256 workgroups of tokens and 256 sequences: every reduction strides.
#[test]
fn policy_loss_matches_reference_on_a_large_batch() {
    let ctx = ctx();
    let mut rng = rng(12);
    let lens: Vec<usize> = (0..300).map(|_| rng.random_range(120..450)).collect();
    let b = random_batch(&mut rng, &lens);
    assert!(b.new.len() > 256 * 256, "{} tokens", b.new.len());
    for agg in [Aggregation::TokenMean, Aggregation::SeqMeanTokenMean] {
        let cfg = SrpoConfig {
            agg,
            ..Default::default()
        };
        let got = run_loss(&ctx, &b, true, true, true, &cfg, 1.0);
        let want = reference_loss(&b, true, true, true, &cfg, 1.0);
        check_loss(&format!("large {agg:?}"), &got, &want);
    }
}

/// Central differences of the GPU loss against the GPU gradient, on tokens placed inside each
/// branch (unclipped, clipped low/high, dual clip, KL clamp) at least 5% away from every
/// boundary, so a step of h = 1e-2 in log space never crosses one. With f32 losses of size ~1
/// the difference quotient carries ~1e-5 of rounding and ~h^2 of truncation error.
#[test]
fn loss_gradient_matches_finite_differences() {
    let ctx = ctx();
    // (advantage, new - old, new - ref)
    let tokens: [(f32, f32, f32); 10] = [
        (1.0, 0.05, 0.3),   // inside the trust region
        (-1.5, -0.1, -0.5), // inside, negative advantage
        (1.0, 0.5, 2.0),    // ratio 1.65 > 1.2: clipped high, zero pg grad
        (1.0, -0.5, -2.0),  // ratio 0.61 < 0.8 with A > 0: unclipped
        (-1.0, -0.5, 1.0),  // ratio 0.61 < 0.8 with A < 0: clipped low
        (-1.0, 0.5, -1.0),  // ratio 1.65 with A < 0: unclipped
        (-0.5, 2.7, 0.1),   // ratio 14.9 > 10: dual clip
        (0.7, 0.0, -3.0),   // k3 = e^3 - 4 = 16 > 10: KL clamped
        (-0.3, 0.02, -1.5), // k3 below the clamp
        (2.0, -22.0, 0.4),  // log-ratio clamped at -20
    ];
    let n = tokens.len();
    let new: Vec<f32> = (0..n).map(|i| -1.0 - 0.3 * i as f32).collect();
    let b = Batch {
        old: new.iter().zip(&tokens).map(|(x, t)| x - t.1).collect(),
        reference: new.iter().zip(&tokens).map(|(x, t)| x - t.2).collect(),
        adv_tok: tokens.iter().map(|t| t.0).collect(),
        adv_seq: vec![],
        mask: vec![1; n],
        offsets: vec![0, 4, 10],
        entropy: vec![0.0; n],
        new,
    };
    for kl in [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3] {
        for agg in [Aggregation::TokenMean, Aggregation::SeqMeanTokenMean] {
            let cfg = SrpoConfig {
                kl_estimator: kl,
                kl_coef: 0.5,
                agg,
                ..Default::default()
            };
            let g = run_loss(&ctx, &b, false, true, false, &cfg, 1.0).grad;
            let h = 1e-2f32;
            #[allow(clippy::needless_range_loop)] // t indexes several parallel arrays
            for t in 0..n {
                let mut bp = Batch {
                    new: b.new.clone(),
                    ..clone_batch(&b)
                };
                bp.new[t] += h;
                let lp = run_loss(&ctx, &bp, false, true, false, &cfg, 1.0).loss;
                bp.new[t] -= 2.0 * h;
                let lm = run_loss(&ctx, &bp, false, true, false, &cfg, 1.0).loss;
                let fd = (lp - lm) as f64 / (2.0 * h as f64);
                let err = (fd - g[t] as f64).abs();
                assert!(
                    err <= 2e-4 + 2e-3 * fd.abs(),
                    "{kl:?} {agg:?} token {t}: finite difference {fd}, gradient {}",
                    g[t]
                );
            }
        }
    }
}

fn clone_batch(b: &Batch) -> Batch {
    Batch {
        new: b.new.clone(),
        old: b.old.clone(),
        reference: b.reference.clone(),
        adv_tok: b.adv_tok.clone(),
        adv_seq: b.adv_seq.clone(),
        mask: b.mask.clone(),
        offsets: b.offsets.clone(),
        entropy: b.entropy.clone(),
    }
}

/// Hand-computed clip fractions, loss and gradient (eps 0.2, dual clip 10, token-mean, no KL).
#[test]
fn clip_fractions_on_a_hand_built_batch() {
    let ctx = ctx();
    // (advantage, ratio, mask): expected pg and d pg / d new per unmasked token.
    let rows: [(f32, f32, u32); 8] = [
        (1.0, 1.5, 1),   // high clip: pg -1.2, grad 0
        (1.0, 0.5, 1),   // A > 0 below 1 - eps: not clipped, pg -0.5, grad -0.5
        (-1.0, 0.5, 1),  // low clip: pg 0.8, grad 0
        (-1.0, 1.5, 1),  // A < 0 above 1 + eps: not clipped, pg 1.5, grad 1.5
        (-1.0, 20.0, 1), // dual clip: pg 10, grad 0
        (1.0, 1.0, 1),   // on-policy: pg -1, grad -1
        (-1.0, 0.5, 0),  // masked: would be a low clip
        (-1.0, 0.7, 1),  // low clip: pg 0.8, grad 0
    ];
    let new: Vec<f32> = vec![-2.0; 8];
    let b = Batch {
        old: rows.iter().map(|r| -2.0 - r.1.ln()).collect(),
        reference: new.clone(),
        adv_tok: rows.iter().map(|r| r.0).collect(),
        adv_seq: vec![],
        mask: rows.iter().map(|r| r.2).collect(),
        offsets: vec![0, 4, 8],
        entropy: (0..8).map(|i| i as f32).collect(),
        new,
    };
    let cfg = SrpoConfig {
        kl_coef: 0.0,
        ..Default::default()
    };
    let got = run_loss(&ctx, &b, false, false, true, &cfg, 1.0);
    let m = got.metrics;
    let close = |a: f64, b: f64| (a - b).abs() < 1e-5;
    assert!(close(m.clip_frac_low, 2.0 / 7.0), "{m:?}");
    assert!(close(m.clip_frac_high, 1.0 / 7.0), "{m:?}");
    assert!(close(m.clip_frac_dual, 1.0 / 7.0), "{m:?}");
    assert!(
        close(m.entropy, 22.0 / 7.0), // entropies 0+1+2+3+4+5+7 over 7 tokens
        "{m:?}"
    );
    assert_eq!(
        (m.tokens, m.sequences, m.response_length_max),
        (7.0, 2.0, 4.0)
    );
    assert!(close(m.response_length_mean, 3.5));
    assert!(close(got.loss as f64, 10.4 / 7.0), "loss {}", got.loss);
    let want_grad = [0.0, -0.5, 0.0, 1.5, 0.0, -1.0, 0.0, 0.0].map(|g| g / 7.0);
    assert_close("hand-built grad", &got.grad, &want_grad, 1e-6, 1e-5, None);
}

#[test]
fn config_defaults_follow_spec_and_reject_unknown_fields() {
    let d = SrpoConfig::default();
    assert_eq!(d.estimator(), Estimator::BonusCalibrated { k: 4 });
    assert_eq!((d.eps_low, d.eps_high, d.dual_clip), (0.2, 0.2, 10.0));
    assert_eq!(
        (d.kl_coef, d.kl_estimator, d.kl_clamp),
        (0.001, KlEstimator::K3, 10.0)
    );
    assert_eq!((d.log_ratio_clamp, d.agg), (20.0, Aggregation::TokenMean));
    d.validate().unwrap();
    let c: SrpoConfig = serde_json::from_str(
        r#"{"estimator": "rloo", "agg": "seq_mean_token_sum", "kl_estimator": "k2"}"#,
    )
    .unwrap();
    assert_eq!(c.estimator(), Estimator::Rloo);
    assert_eq!(
        (c.agg, c.kl_estimator, c.k),
        (Aggregation::SeqMeanTokenSum, KlEstimator::K2, 4)
    );
    let e = serde_json::from_str::<SrpoConfig>(r#"{"eps": 0.2}"#).unwrap_err();
    assert!(e.to_string().contains("unknown field"), "{e}");
    let bad = SrpoConfig {
        dual_clip: 1.0,
        ..Default::default()
    };
    assert!(bad.validate().unwrap_err().contains("dual_clip"));
}

#[test]
fn shape_errors_name_the_op_and_shapes() {
    let ctx = ctx();
    let mut rec = Recorder::new(&ctx, "srpo test");
    let f = |n: usize| Tensor::from_f32(&ctx, &[n], &vec![0.0; n]).unwrap();
    let u = |v: &[u32]| Tensor::from_u32(&ctx, &[v.len()], v).unwrap();

    let out = AdvantageOutputs::new(&ctx, 3, 4).unwrap();
    let e = group_advantages(&mut rec, &f(11), None, None, 4, Estimator::Grpo, &out).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("srpo_group_advantages") && msg.contains("[11]"),
        "{msg}"
    );
    let e = group_advantages(&mut rec, &f(12), None, None, 1, Estimator::Grpo, &out).unwrap_err();
    assert!(e.to_string().contains("n must be >= 2"), "{e}");
    let e = group_advantages(
        &mut rec,
        &f(12),
        Some(&f(12)),
        None,
        4,
        Estimator::Grpo,
        &out,
    )
    .unwrap_err();
    assert!(e.to_string().contains("exact must be u32"), "{e}");

    let (new, old_short, mask, offs) = (f(6), f(5), u(&[1; 6]), u(&[0, 2, 6]));
    let adv = f(2);
    let out = PolicyLossOutputs::new(&ctx, 6).unwrap();
    let x = PolicyLossInputs {
        new_logp: &new,
        old_logp: &old_short,
        ref_logp: None,
        advantages: TokenAdvantages::PerSequence(&adv),
        mask: &mask,
        seq_offsets: &offs,
        entropy: None,
    };
    let cfg = SrpoConfig {
        kl_coef: 0.0,
        ..Default::default()
    };
    let e = policy_loss(&mut rec, &x, &cfg, 1.0, &out)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("srpo_policy_loss") && e.contains("old_logp F32 [5]"),
        "{e}"
    );
    let old = f(6);
    let x = PolicyLossInputs {
        old_logp: &old,
        advantages: TokenAdvantages::PerToken(&adv),
        ..x
    };
    let e = policy_loss(&mut rec, &x, &cfg, 1.0, &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("advantages") && e.contains("per-token"), "{e}");
    let x = PolicyLossInputs {
        advantages: TokenAdvantages::PerSequence(&adv),
        ..x
    };
    let e = policy_loss(&mut rec, &x, &SrpoConfig::default(), 1.0, &out).unwrap_err();
    assert!(e.to_string().contains("needs reference log-probs"), "{e}");
    assert!(rec.is_empty(), "nothing recorded on errors");
}
