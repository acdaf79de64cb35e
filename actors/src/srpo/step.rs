//! Assembling one step from sampling rounds: advantages and the zero-variance filter per round,
//! resampling until enough informative groups (or the round bound), the sample accounting, and
//! the step's metrics. The engine and the coordinator actor both drive a `StepBuilder`.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use grrm_model::generate::Sample;
use grrm_model::GpuContext;
use serde::{Deserialize, Serialize};

use super::config::RlConfig;
use super::data::PromptPools;
use super::pieces::{advantages, Draw, Scored, TrainSample, UpdateMetrics};

/// Every sample from prompt to loss. Invariants (checked by `check`):
/// prompts_issued = groups_reward_dropped + groups_filtered + groups_trained, and the same for
/// responses: responses_generated = responses_scored + responses_reward_dropped,
/// responses_scored = responses_filtered + responses_trained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub prompts_issued: u64,
    pub responses_generated: u64,
    pub responses_scored: u64,
    pub groups_reward_dropped: u64,
    pub responses_reward_dropped: u64,
    pub groups_filtered: u64,
    pub responses_filtered: u64,
    pub groups_trained: u64,
    pub responses_trained: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.prompts_issued += o.prompts_issued;
        self.responses_generated += o.responses_generated;
        self.responses_scored += o.responses_scored;
        self.groups_reward_dropped += o.groups_reward_dropped;
        self.responses_reward_dropped += o.responses_reward_dropped;
        self.groups_filtered += o.groups_filtered;
        self.responses_filtered += o.responses_filtered;
        self.groups_trained += o.groups_trained;
        self.responses_trained += o.responses_trained;
    }

    /// Checks that every issued prompt and generated response ended somewhere exactly once.
    pub fn check(&self, n: u64) -> Result<()> {
        let c = self;
        let ok = c.prompts_issued == c.groups_reward_dropped + c.groups_filtered + c.groups_trained
            && c.responses_generated == c.prompts_issued * n
            && c.responses_generated == c.responses_scored + c.responses_reward_dropped
            && c.responses_scored == c.responses_filtered + c.responses_trained
            && c.responses_trained == c.groups_trained * n
            && c.responses_filtered == c.groups_filtered * n;
        if !ok {
            bail!("sample accounting does not add up: {c:?}");
        }
        Ok(())
    }

    pub fn as_pairs(&self) -> [(&'static str, u64); 9] {
        [
            ("prompts_issued", self.prompts_issued),
            ("responses_generated", self.responses_generated),
            ("responses_scored", self.responses_scored),
            ("groups_reward_dropped", self.groups_reward_dropped),
            ("responses_reward_dropped", self.responses_reward_dropped),
            ("groups_filtered", self.groups_filtered),
            ("responses_filtered", self.responses_filtered),
            ("groups_trained", self.groups_trained),
            ("responses_trained", self.responses_trained),
        ]
    }
}

/// A sampled and scored group.
#[derive(Clone, Debug)]
pub struct GroupResult {
    pub draw: Draw,
    pub samples: Vec<Sample>,
    /// `None` when the reward dropped a sample of the group.
    pub scores: Option<Vec<Scored>>,
    /// Policy version the samples came from.
    pub version: u64,
}

/// A kept (informative) group with its advantages.
#[derive(Clone, Debug)]
pub struct KeptGroup {
    pub group: GroupResult,
    pub advantages: Vec<f32>,
}

pub struct StepBuilder {
    pub wanted: usize,
    pub n: usize,
    pub rounds: usize,
    pub kept: Vec<KeptGroup>,
    pub counts: Counts,
    rewards: Vec<f64>,
    exact: u64,
    groups_scored: u64,
    /// Staleness (learner version minus sampling version) summed and maxed over the groups.
    staleness_sum: u64,
    staleness_max: u64,
}

impl StepBuilder {
    pub fn new(cfg: &RlConfig) -> Self {
        StepBuilder {
            wanted: cfg.prompts_per_step,
            n: cfg.n,
            rounds: 0,
            kept: Vec::new(),
            counts: Counts::default(),
            rewards: Vec::new(),
            exact: 0,
            groups_scored: 0,
            staleness_sum: 0,
            staleness_max: 0,
        }
    }

    /// Groups still missing, or 0 when the step has enough or ran out of rounds.
    pub fn need(&self, cfg: &RlConfig) -> usize {
        if self.rounds >= cfg.max_sample_rounds {
            0
        } else {
            self.wanted.saturating_sub(self.kept.len())
        }
    }

    /// Takes one round's groups (in draw order): counts them, computes advantages and the
    /// filter on the GPU, keeps the informative groups. `learner_version` bounds staleness.
    pub fn add_round(
        &mut self,
        ctx: &GpuContext,
        cfg: &RlConfig,
        round: Vec<GroupResult>,
        learner_version: u64,
    ) -> Result<()> {
        self.rounds += 1;
        let n = self.n as u64;
        let mut scored = Vec::new();
        for g in round {
            if g.samples.len() != self.n {
                bail!(
                    "prompt draw {} came back with {} responses",
                    g.draw.draw,
                    g.samples.len()
                );
            }
            let stale = learner_version.saturating_sub(g.version);
            if stale > cfg.system.max_staleness {
                bail!(
                    "prompt draw {}: sampled by policy version {}, {stale} behind the learner \
                     (system.max_staleness = {})",
                    g.draw.draw,
                    g.version,
                    cfg.system.max_staleness
                );
            }
            self.staleness_sum += stale;
            self.staleness_max = self.staleness_max.max(stale);
            self.counts.prompts_issued += 1;
            self.counts.responses_generated += n;
            match &g.scores {
                None => {
                    self.counts.groups_reward_dropped += 1;
                    self.counts.responses_reward_dropped += n;
                }
                Some(s) => {
                    self.counts.responses_scored += n;
                    self.groups_scored += 1;
                    self.rewards.extend(s.iter().map(|x| x.reward));
                    self.exact += s.iter().filter(|x| x.exact).count() as u64;
                    scored.push(g);
                }
            }
        }
        let score_refs: Vec<&[Scored]> = scored
            .iter()
            .map(|g| g.scores.as_deref().expect("scored"))
            .collect();
        let (adv, keep) = advantages(ctx, &score_refs, self.n, &cfg.srpo)?;
        for ((g, a), k) in scored.into_iter().zip(adv).zip(keep) {
            if k && self.kept.len() < self.wanted {
                self.counts.groups_trained += 1;
                self.counts.responses_trained += n;
                self.kept.push(KeptGroup {
                    group: g,
                    advantages: a,
                });
            } else {
                self.counts.groups_filtered += 1;
                self.counts.responses_filtered += n;
            }
        }
        Ok(())
    }

    /// The kept groups as training samples (reference log-probs still empty).
    pub fn train_groups(&self, pools: &PromptPools) -> Vec<Vec<TrainSample>> {
        self.kept
            .iter()
            .map(|k| {
                let prompt = &pools.rl[k.group.draw.prompt].ids;
                k.group
                    .samples
                    .iter()
                    .zip(&k.advantages)
                    .map(|(s, &a)| TrainSample {
                        prompt: prompt.clone(),
                        response: s.tokens.clone(),
                        old_logp: s.logprobs.clone(),
                        ref_logp: Vec::new(),
                        advantage: a,
                    })
                    .collect()
            })
            .collect()
    }

    /// The step's metrics (update metrics default when nothing was trained).
    pub fn metrics(&self, up: &UpdateMetrics, seconds: f64) -> BTreeMap<String, f64> {
        use crate::metrics_log::names;
        let total = self.rewards.len().max(1) as f64;
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: f64| {
            m.insert(k.to_string(), v);
        };
        put(names::REWARD_MEAN, self.rewards.iter().sum::<f64>() / total);
        put(
            "reward_max",
            self.rewards.iter().cloned().fold(0.0f64, f64::max),
        );
        put(names::HIT_RATE, self.exact as f64 / total);
        let sampled = (self.counts.groups_filtered + self.counts.groups_trained).max(1) as f64;
        // Groups beyond the wanted number are informative but unused: count only the filter.
        let zero_var = self.counts.groups_filtered as f64 / sampled;
        put(names::ZERO_VAR_FRAC, zero_var);
        put(names::KL, up.kl);
        put(names::CLIP_FRAC, up.clip_frac_low + up.clip_frac_high);
        put("clip_frac_low", up.clip_frac_low);
        put("clip_frac_high", up.clip_frac_high);
        put("clip_frac_dual", up.clip_frac_dual);
        put("approx_kl_old", up.approx_kl_old);
        put("entropy", up.entropy);
        put("response_length", up.response_length);
        put("response_length_max", up.response_length_max);
        put(names::LOSS, up.loss);
        put("pg_loss", up.pg_loss);
        put("grad_norm", up.grad_norm);
        put("lr", up.lr);
        put("optimizer_steps", up.optimizer_steps as f64);
        put("sample_rounds", self.rounds as f64);
        // Over every group the step consumed (filtered or trained).
        let groups = self.counts.prompts_issued.max(1) as f64;
        put("staleness_mean", self.staleness_sum as f64 / groups);
        put("staleness_max", self.staleness_max as f64);
        put(names::STEP_SECONDS, seconds);
        for (k, v) in self.counts.as_pairs() {
            put(k, v as f64);
        }
        m
    }
}
