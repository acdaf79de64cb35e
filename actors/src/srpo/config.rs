//! The `grrm rl` run config: SPEC.md section 4's reference run as defaults.
//!
//! ```toml
//! model = "runs/sft/final"      # HF folder: config.json, weights, tokenizer
//! data = "data/synth"           # dataset folder with D.index.json
//! mode = "reasoning"            # or "direct"
//! steps = 150
//! n = 10                        # responses per prompt
//! prompts_per_step = 256        # informative groups wanted per step
//! [srpo]                        # objective (grrm_model::kernels::srpo::SrpoConfig)
//! kl_coef = 0.001
//! [rewards]                     # grrm_rewards::RewardsConfig; default: semantic_id in `mode`
//! [[rewards.terms]]
//! name = "semantic_id"
//! [prompts]                     # grrm_recsys::PromptConfig (modes follow `mode`)
//! [system]                      # actor system: workers, queues, staleness, fault injection
//! ```

use std::path::PathBuf;

use anyhow::{bail, Result};
use grrm_model::kernels::srpo::SrpoConfig;
use grrm_model::transformer::OptimizerConfig;
use grrm_recsys::{PromptConfig, PromptMode};
use grrm_rewards::{RewardsConfig, TermConfig};
use serde::{Deserialize, Serialize, Serializer};

/// One SRPO run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RlConfig {
    /// Hugging Face model folder (weights, config.json, tokenizer files) to start from; the
    /// frozen reference policy is this model too.
    pub model: PathBuf,
    /// Dataset folder (`D.inter.json`, `D.item.json`, `D.index.json`).
    pub data: PathBuf,
    /// Response layout: `reasoning` (assistant turn prefilled with `<think>\n`) or `direct`.
    pub mode: PromptMode,
    /// Training steps (one optimizer pass over a batch of groups each).
    pub steps: u64,
    /// Responses sampled per prompt (the group size).
    pub n: usize,
    pub temperature: f32,
    pub top_p: f32,
    /// Informative groups (prompts) wanted per step.
    pub prompts_per_step: usize,
    /// Prompts sampled together in one batched generation call (one rollout job).
    pub rollout_batch: usize,
    /// PPO mini-batch size in prompts (groups); one optimizer step per mini-batch.
    pub mini_batch_prompts: usize,
    pub ppo_epochs: usize,
    /// Peak learning rate, reached linearly over `lr_warmup_steps` optimizer steps.
    pub lr: f32,
    pub lr_warmup_steps: u64,
    pub weight_decay: f32,
    /// Global gradient-norm clip.
    pub grad_clip: f32,
    pub adam_beta1: f32,
    pub adam_beta2: f32,
    pub adam_eps: f32,
    /// Prompts longer than this (tokens, after the chat template) are left out of the pools.
    pub max_prompt_tokens: usize,
    pub max_response_tokens: usize,
    /// Zero-variance filter: sampling rounds per step (each draws the groups still missing);
    /// a step trains on what it has after this many rounds.
    pub max_sample_rounds: usize,
    /// Checkpoint every N steps (0 = only at the end).
    pub checkpoint_every: u64,
    /// Checkpoints kept (the newest); 0 keeps all.
    pub keep_checkpoints: usize,
    pub seed: u64,
    /// Held-out evaluation (mean reward on validation prompts) every N steps (0 = only before
    /// and after training).
    pub rl_eval_every: u64,
    /// Validation prompts used by the held-out evaluation (the first N in the pool's order).
    pub eval_prompts: usize,
    /// Responses sampled per validation prompt (at `temperature`, fixed seeds).
    pub eval_samples: usize,
    /// Reward component used as the zero-variance filter's score (`match` matches the
    /// `semantic_id/match` component); falls back to the total reward when absent.
    pub match_component: String,
    /// Reward component marking exact hits for the pass@k bonus (nonzero = hit); falls back to
    /// reward == 1 when absent.
    pub exact_component: String,
    /// GPU adapter (name substring or index); default: `GRRM_ADAPTER` or the first.
    pub adapter: Option<String>,
    pub srpo: SrpoConfig,
    /// Default: the `semantic_id` reward in `mode` with the dataset index's level count.
    #[serde(
        serialize_with = "ser_rewards",
        skip_serializing_if = "Option::is_none"
    )]
    pub rewards: Option<RewardsConfig>,
    pub prompts: PromptConfig,
    pub system: SystemConfig,
}

impl Default for RlConfig {
    fn default() -> Self {
        RlConfig {
            model: PathBuf::new(),
            data: PathBuf::new(),
            mode: PromptMode::Reasoning,
            steps: 150,
            n: 10,
            temperature: 1.0,
            top_p: 1.0,
            prompts_per_step: 256,
            rollout_batch: 16,
            mini_batch_prompts: 64,
            ppo_epochs: 1,
            lr: 2e-6,
            lr_warmup_steps: 10,
            weight_decay: 0.1,
            grad_clip: 1.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_eps: 1e-8,
            max_prompt_tokens: 768,
            max_response_tokens: 1560,
            max_sample_rounds: 4,
            checkpoint_every: 10,
            keep_checkpoints: 3,
            seed: 42,
            rl_eval_every: 10,
            eval_prompts: 64,
            eval_samples: 2,
            match_component: "match".into(),
            exact_component: "exact".into(),
            adapter: None,
            srpo: SrpoConfig::default(),
            rewards: None,
            prompts: PromptConfig::default(),
            system: SystemConfig::default(),
        }
    }
}

/// The actor system around the engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SystemConfig {
    /// Run the step through the actors (else the synchronous engine; same numbers).
    pub actors: bool,
    /// Rollout actors per device pool (each reads the published policy in place on the
    /// learner's device, or keeps its own copy on another device).
    pub rollout_workers: usize,
    /// Reward actors.
    pub reward_workers: usize,
    /// Jobs in flight per stage (bounded queues: the coordinator waits when full).
    pub queue_capacity: usize,
    /// Policy versions a consumed group may lag behind the learner (0 = strictly on-policy,
    /// SPEC's setting). >= 1 lets step k+1's first sampling round run with version k's weights
    /// while the learner trains step k (the clipped PPO ratio against the recorded behaviour
    /// log-probs corrects it); staleness is logged per step.
    pub max_staleness: u64,
    /// Restarts of one job before the step fails.
    pub max_retries: usize,
    /// Held-out evaluations running at once beside training (the next waits).
    pub pending_evals: usize,
    /// GPU adapters of the rollout actors (name substring or index each), one pool of
    /// `rollout_workers` actors per entry; a job goes to the pool with the fewest jobs in
    /// flight. Empty: the learner's device, where new weights are published by on-device copies.
    /// Rollouts on another device (even another opening of the same adapter) receive each
    /// version through the host: read back once per version, uploaded once per device.
    pub rollout_adapters: Vec<String>,
    /// Rollouts on worker processes through NATS JetStream instead of local rollout actors.
    pub remote: Option<RemoteConfig>,
    /// Fault injection for tests: an actor kind panics on its k-th message.
    pub faults: Vec<FaultConfig>,
}

impl Default for SystemConfig {
    fn default() -> Self {
        SystemConfig {
            actors: true,
            rollout_workers: 1,
            reward_workers: 1,
            queue_capacity: 64,
            max_staleness: 0,
            max_retries: 3,
            pending_evals: 2,
            rollout_adapters: Vec::new(),
            remote: None,
            faults: Vec::new(),
        }
    }
}

/// Rollout worker processes (`grrm rollout-worker --nats URL --run NAME`) fed through NATS
/// JetStream: generation tasks on a work-queue stream, trajectories on a results stream, weights
/// as versioned objects in an object store. See `crate::remote`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteConfig {
    /// NATS server, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Names this run's streams, consumers and weight bucket (letters, digits, `-`, `_`);
    /// workers join with the same name.
    pub run: String,
    /// Seconds a worker may hold a task without a sign of life (workers send progress acks
    /// while generating) before JetStream hands it to another worker.
    pub ack_wait_s: f64,
    /// Tasks handed to workers and not yet acknowledged (JetStream `max_ack_pending`).
    pub max_in_flight: usize,
    /// Seconds to wait for one task's result before the step fails; 0 waits for ever (workers
    /// may join late).
    pub result_timeout_s: f64,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            url: "nats://127.0.0.1:4222".into(),
            run: "grrm".into(),
            ack_wait_s: 30.0,
            max_in_flight: 64,
            result_timeout_s: 0.0,
        }
    }
}

/// Panic in actor kind `actor` (`rollout`, `reward`, `reference`, `evaluator`) while handling
/// its `on_message`-th message (1-based, counted over all actors of that kind).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    pub actor: String,
    pub on_message: u64,
}

/// `RewardsConfig` is not `Serialize`; write the same TOML shape it reads.
fn ser_rewards<S: Serializer>(cfg: &Option<RewardsConfig>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Term<'a> {
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        label: Option<&'a str>,
        weight: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        range: Option<[f64; 2]>,
        #[serde(skip_serializing_if = "serde_json::Value::is_null")]
        options: &'a serde_json::Value,
    }
    #[derive(Serialize)]
    struct Rewards<'a> {
        on_error: grrm_rewards::OnError,
        threads: usize,
        terms: Vec<Term<'a>>,
    }
    let Some(c) = cfg else {
        return s.serialize_none();
    };
    Rewards {
        on_error: c.on_error,
        threads: c.threads,
        terms: c
            .terms
            .iter()
            .map(|t| Term {
                name: &t.name,
                label: t.label.as_deref(),
                weight: t.weight,
                range: t.range,
                options: &t.options,
            })
            .collect(),
    }
    .serialize(s)
}

impl RlConfig {
    /// Positions a policy's RoPE table must cover: a whole prompt and response.
    pub fn max_positions(&self) -> usize {
        self.max_prompt_tokens + self.max_response_tokens + 1
    }

    /// Checks what serde cannot; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| -> Result<()> { bail!("rl config: key `{key}`: {why}") };
        if self.model.as_os_str().is_empty() {
            return bad("model", "a model folder is required");
        }
        if self.data.as_os_str().is_empty() {
            return bad("data", "a dataset folder is required");
        }
        if self.n < 2 {
            return bad("n", "group size must be >= 2 (advantages need two samples)");
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad("temperature", "must be > 0 (log-probs are taken at it)");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", "must be in (0, 1]");
        }
        for (k, v) in [
            ("prompts_per_step", self.prompts_per_step),
            ("mini_batch_prompts", self.mini_batch_prompts),
            ("rollout_batch", self.rollout_batch),
            ("ppo_epochs", self.ppo_epochs),
            ("max_prompt_tokens", self.max_prompt_tokens),
            ("max_response_tokens", self.max_response_tokens),
            ("max_sample_rounds", self.max_sample_rounds),
            ("eval_samples", self.eval_samples),
            ("system.rollout_workers", self.system.rollout_workers),
            ("system.reward_workers", self.system.reward_workers),
            ("system.queue_capacity", self.system.queue_capacity),
            ("system.pending_evals", self.system.pending_evals),
        ] {
            if v == 0 {
                return bad(k, "must be >= 1");
            }
        }
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad("lr", "must be finite and >= 0");
        }
        if self.grad_clip.is_nan() || self.grad_clip <= 0.0 {
            return bad("grad_clip", "must be > 0 (use inf to disable)");
        }
        if !(0.0..1.0).contains(&self.adam_beta1) {
            return bad("adam_beta1", "must be in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.adam_beta2) {
            return bad("adam_beta2", "must be in [0, 1)");
        }
        if let Err(e) = self.srpo.validate() {
            bail!("rl config: key `{}`", e.replacen(": ", "`: ", 1));
        }
        if let Some(r) = &self.rewards {
            if let Err(e) = r.validate() {
                bail!("rl config: key `rewards`: {e}");
            }
        }
        if let Some(r) = &self.system.remote {
            if r.url.trim().is_empty() {
                return bad("system.remote.url", "a NATS server URL is required");
            }
            if !crate::remote::wire::valid_run_name(&r.run) {
                return bad(
                    "system.remote.run",
                    "letters, digits, `-` and `_` only (it names NATS streams)",
                );
            }
            if !(r.ack_wait_s >= 0.5 && r.ack_wait_s.is_finite()) {
                return bad("system.remote.ack_wait_s", "at least 0.5 seconds");
            }
            if r.max_in_flight == 0 {
                return bad("system.remote.max_in_flight", "must be at least 1");
            }
            if !(r.result_timeout_s >= 0.0 && r.result_timeout_s.is_finite()) {
                return bad(
                    "system.remote.result_timeout_s",
                    "0 (none) or a positive number",
                );
            }
            if !self.system.actors {
                return bad(
                    "system.remote",
                    "remote rollouts need `system.actors = true`",
                );
            }
            if !self.system.rollout_adapters.is_empty() {
                return bad(
                    "system.rollout_adapters",
                    "rollouts run either on local adapters or on remote workers, not both",
                );
            }
        }
        for (i, f) in self.system.faults.iter().enumerate() {
            if !["rollout", "reward", "reference", "evaluator"].contains(&f.actor.as_str()) {
                bail!(
                    "rl config: key `system.faults[{i}].actor`: {:?} is not rollout, reward, \
                     reference or evaluator",
                    f.actor
                );
            }
            if f.on_message == 0 {
                return bad("system.faults.on_message", "messages count from 1");
            }
        }
        Ok(())
    }

    pub fn optimizer(&self) -> OptimizerConfig {
        OptimizerConfig {
            beta1: self.adam_beta1,
            beta2: self.adam_beta2,
            eps: self.adam_eps,
            weight_decay: self.weight_decay,
            max_grad_norm: self.grad_clip,
        }
    }

    /// The rewards to build: the configured ones, else `semantic_id` in `mode` with `levels`.
    pub fn rewards_config(&self, levels: usize) -> RewardsConfig {
        self.rewards.clone().unwrap_or_else(|| {
            let mode = match self.mode {
                PromptMode::Direct => "direct",
                PromptMode::Reasoning => "reasoning",
            };
            RewardsConfig {
                on_error: Default::default(),
                threads: 1,
                terms: vec![TermConfig::new(
                    "semantic_id",
                    1.0,
                    serde_json::json!({ "mode": mode, "levels": levels }),
                )],
            }
        })
    }

    /// The prompt config with both mode lists set to `mode`.
    pub fn prompt_config(&self) -> PromptConfig {
        PromptConfig {
            rl_modes: vec![self.mode],
            eval_modes: vec![self.mode],
            ..self.prompts.clone()
        }
    }

    /// Learning rate of the `k`-th optimizer step (1-based): linear warm-up, then constant.
    pub fn lr_at(&self, k: u64) -> f32 {
        if self.lr_warmup_steps == 0 {
            return self.lr;
        }
        self.lr * (k as f32 / self.lr_warmup_steps as f32).min(1.0)
    }
}
