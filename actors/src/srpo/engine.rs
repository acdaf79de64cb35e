//! The synchronous SRPO engine: one process, one policy, the step pieces called in order. The
//! actor system (`crate::system`) runs the same pieces spread over actors.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use grrm_model::hf::{load_weights, write_weights, Checkpoint, SaveOptions, StorageDType};
use grrm_model::tokenizer::Tokenizer;
use grrm_model::transformer::Transformer;
use grrm_model::GpuContext;
use grrm_rewards::{Registry, RewardSet};
use serde::{Deserialize, Serialize};

use super::config::RlConfig;
use super::data::PromptPools;
use super::pieces::{
    eval_seed, group_seed, ppo_update, response_logprobs, sample_groups, score_group, upload_into,
    Draw, GroupSampling, Learner, TrainSample, UpdateMetrics,
};
use super::step::{Counts, GroupResult, StepBuilder};
use crate::checkpoints::CheckpointDir;

/// Files of an RL checkpoint folder.
pub const MODEL_DIR: &str = "model";
pub const OPTIM_M_DIR: &str = "optimizer/m";
pub const OPTIM_V_DIR: &str = "optimizer/v";
pub const STATE_FILE: &str = "state.json";

/// What a checkpoint holds besides tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub step: u64,
    /// Next global prompt draw.
    pub cursor: u64,
    pub optimizer_step: u64,
    pub seed: u64,
    pub version: u64,
    pub totals: Counts,
    /// Held-out mean reward before training (for the run summary).
    pub initial_eval: Option<EvalReport>,
}

/// Held-out evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub reward_mean: f64,
    pub hit_rate: f64,
    pub prompts: usize,
    pub samples: usize,
}

/// One finished step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    pub step: u64,
    pub metrics: BTreeMap<String, f64>,
    pub counts: Counts,
    pub seconds: f64,
}

/// Everything a run shares between the engine and the actors: config, device, tokenizer,
/// prompts, rewards, the starting checkpoint.
pub struct RunContext {
    pub cfg: RlConfig,
    pub ctx: GpuContext,
    pub tok: Tokenizer,
    pub pools: PromptPools,
    pub rewards_registry: std::sync::Arc<Registry>,
    pub base: Checkpoint,
    pub stop: Vec<u32>,
}

impl RunContext {
    /// Loads the model folder, the dataset and the prompts.
    pub fn load(cfg: &RlConfig, ctx: &GpuContext, registry: Registry) -> Result<Self> {
        cfg.validate()?;
        let base = Checkpoint::load(&cfg.model)
            .with_context(|| format!("loading model {}", cfg.model.display()))?;
        let tok = base
            .tokenizer
            .clone()
            .with_context(|| format!("{} has no tokenizer.json", cfg.model.display()))?;
        let ds = grrm_recsys::io::load(&cfg.data)
            .with_context(|| format!("loading dataset {}", cfg.data.display()))?;
        let pools = PromptPools::build(&ds, &tok, cfg)?;
        let stop = tok.stop_token_ids();
        if stop.is_empty() {
            bail!(
                "the tokenizer of {} names no stop token",
                cfg.model.display()
            );
        }
        Ok(RunContext {
            cfg: cfg.clone(),
            ctx: ctx.clone(),
            tok,
            pools,
            rewards_registry: std::sync::Arc::new(registry),
            base,
            stop,
        })
    }

    pub fn build_rewards(&self) -> Result<RewardSet> {
        let rc = self.cfg.rewards_config(self.pools.levels);
        self.rewards_registry
            .build(&rc)
            .map_err(|e| anyhow::anyhow!("rl config: key `rewards`: {e}"))
    }

    /// A fresh copy of the starting model (published versions, the frozen reference).
    pub fn model_copy(&self) -> Result<Transformer> {
        self.model_copy_on(&self.ctx)
    }

    /// A fresh copy of the starting model on `ctx` (rollouts on another adapter).
    pub fn model_copy_on(&self, ctx: &GpuContext) -> Result<Transformer> {
        Ok(Transformer::new(
            ctx,
            &self.base.config,
            &self.base.weights,
            self.cfg.max_positions(),
        )?)
    }

    /// The prompt ids and group seeds of `draws` at `step`: everything a rollout samples from
    /// besides the weights and the run's sampling settings (local actors and remote tasks alike).
    pub fn rollout_inputs(&self, step: u64, draws: &[Draw]) -> (Vec<&[u32]>, Vec<u64>) {
        draws
            .iter()
            .map(|d| {
                (
                    self.pools.rl[d.prompt].ids.as_slice(),
                    group_seed(self.cfg.seed, step, d.draw),
                )
            })
            .unzip()
    }

    /// The draws of the next `k` prompts from `cursor`.
    pub fn draws(&self, cursor: &mut u64, k: usize) -> Vec<Draw> {
        (0..k)
            .map(|_| {
                let d = *cursor;
                *cursor += 1;
                Draw {
                    draw: d,
                    prompt: self.pools.rl_index(self.cfg.seed, d),
                }
            })
            .collect()
    }

    /// Samples the groups of `draws` (one batched call) with `model`.
    pub fn rollout(
        &self,
        model: &Transformer,
        step: u64,
        draws: &[Draw],
    ) -> Result<Vec<Vec<grrm_model::generate::Sample>>> {
        let (prompts, seeds) = self.rollout_inputs(step, draws);
        sample_groups(
            model,
            &prompts,
            &seeds,
            &GroupSampling::of_run(&self.cfg, self.cfg.n),
            &self.stop,
        )
        .with_context(|| {
            format!(
                "sampling prompt draws {}..={}",
                draws.first().map_or(0, |d| d.draw),
                draws.last().map_or(0, |d| d.draw)
            )
        })
    }

    /// Scores a group; a reward error under `on_error = stop` is an error.
    pub fn score(
        &self,
        rewards: &RewardSet,
        d: Draw,
        samples: &[grrm_model::generate::Sample],
    ) -> Result<Option<Vec<super::pieces::Scored>>> {
        let responses: Vec<Vec<u32>> = samples.iter().map(|s| s.tokens.clone()).collect();
        let p = &self.pools.rl[d.prompt];
        score_group(rewards, &self.tok, p, d.draw, &responses, &self.cfg)?
            .map_err(|e| anyhow::anyhow!("scoring prompt draw {}: {e}", d.draw))
    }

    /// Mean reward and exact-hit rate of `model` on the first `eval_prompts` validation prompts.
    pub fn evaluate(&self, model: &Transformer, rewards: &RewardSet) -> Result<EvalReport> {
        let k = self.cfg.eval_prompts.min(self.pools.valid.len());
        if k == 0 {
            bail!("no validation prompts to evaluate on");
        }
        let (mut sum, mut hits, mut count) = (0.0, 0usize, 0usize);
        let valid = &self.pools.valid[..k];
        for (c, chunk) in valid.chunks(self.cfg.rollout_batch).enumerate() {
            let i0 = c * self.cfg.rollout_batch;
            let prompts: Vec<&[u32]> = chunk.iter().map(|p| p.ids.as_slice()).collect();
            let seeds: Vec<u64> = (i0..i0 + chunk.len())
                .map(|i| eval_seed(self.cfg.seed, i))
                .collect();
            let groups = sample_groups(
                model,
                &prompts,
                &seeds,
                &GroupSampling::of_run(&self.cfg, self.cfg.eval_samples),
                &self.stop,
            )?;
            for (j, (p, samples)) in chunk.iter().zip(groups).enumerate() {
                let i = i0 + j;
                let responses: Vec<Vec<u32>> = samples.into_iter().map(|s| s.tokens).collect();
                let scored = score_group(rewards, &self.tok, p, i as u64, &responses, &self.cfg)?
                    .map_err(|e| anyhow::anyhow!("scoring validation prompt {i}: {e}"))?;
                for s in scored.into_iter().flatten() {
                    sum += s.reward;
                    hits += s.exact as usize;
                    count += 1;
                }
            }
        }
        let c = count.max(1) as f64;
        Ok(EvalReport {
            reward_mean: sum / c,
            hit_rate: hits as f64 / c,
            prompts: k,
            samples: count,
        })
    }
}

/// The synchronous engine.
pub struct RlEngine {
    pub run: RunContext,
    pub rewards: RewardSet,
    pub learner: Learner,
    pub reference: Transformer,
    pub state: TrainState,
}

impl RlEngine {
    /// A fresh run from `cfg.model`.
    pub fn new(run: RunContext) -> Result<Self> {
        let rewards = run.build_rewards()?;
        let learner = Learner::new(&run.ctx, &run.cfg, &run.base)?;
        let reference = run.model_copy()?;
        let state = TrainState {
            step: 0,
            cursor: 0,
            optimizer_step: 0,
            seed: run.cfg.seed,
            version: 0,
            totals: Counts::default(),
            initial_eval: None,
        };
        Ok(RlEngine {
            run,
            rewards,
            learner,
            reference,
            state,
        })
    }

    /// Continues from checkpoint folder `dir` (made by `save_checkpoint`).
    pub fn resume(run: RunContext, dir: &Path) -> Result<Self> {
        let mut e = Self::new(run)?;
        let (state, weights) = load_checkpoint(dir, &e.run, &e.learner)?;
        upload_into(&e.learner.model.params, &weights)?;
        e.learner.opt.step = state.optimizer_step;
        if state.seed != e.run.cfg.seed {
            bail!(
                "{}: checkpoint was made with seed {}, the config says {}",
                dir.display(),
                state.seed,
                e.run.cfg.seed
            );
        }
        e.state = state;
        Ok(e)
    }

    /// One SRPO step.
    pub fn step(&mut self) -> Result<StepReport> {
        let t0 = Instant::now();
        let step = self.state.step;
        let run = &self.run;
        let mut b = StepBuilder::new(&run.cfg);
        let mut timing = [0.0f64; 3];
        loop {
            let need = b.need(&run.cfg);
            if need == 0 {
                break;
            }
            let draws = run.draws(&mut self.state.cursor, need);
            let t = Instant::now();
            let mut round = Vec::with_capacity(draws.len());
            for chunk in draws.chunks(run.cfg.rollout_batch) {
                let samples = run.rollout(&self.learner.model, step, chunk)?;
                for (&d, samples) in chunk.iter().zip(samples) {
                    let scores = run.score(&self.rewards, d, &samples)?;
                    round.push(GroupResult {
                        draw: d,
                        samples,
                        scores,
                        version: self.state.version,
                    });
                }
            }
            timing[0] += t.elapsed().as_secs_f64();
            b.add_round(&run.ctx, &run.cfg, round, self.state.version)?;
        }
        let mut groups = b.train_groups(&run.pools);
        let t = Instant::now();
        fill_reference(&self.reference, &mut groups, &run.cfg)?;
        timing[1] = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let up = if groups.is_empty() {
            tracing::warn!("step {}: no informative group; no update", step + 1);
            UpdateMetrics::default()
        } else {
            ppo_update(&mut self.learner, &groups, &run.cfg)?
        };
        timing[2] = t.elapsed().as_secs_f64();
        tracing::info!(
            "step {}: rollout+score {:.2}s, reference {:.2}s, update {:.2}s",
            step + 1,
            timing[0],
            timing[1],
            timing[2]
        );
        self.finish_step(b, up, t0.elapsed().as_secs_f64())
    }

    /// Counts, step and version bookkeeping after an update.
    pub fn finish_step(
        &mut self,
        b: StepBuilder,
        up: UpdateMetrics,
        seconds: f64,
    ) -> Result<StepReport> {
        finish_step(&mut self.state, b, &up, seconds, self.run.cfg.n)
    }

    pub fn evaluate(&self) -> Result<EvalReport> {
        self.run.evaluate(&self.learner.model, &self.rewards)
    }

    /// Writes `step-N/` (N = steps done) atomically into `dir`.
    pub fn save_checkpoint(&self, dir: &CheckpointDir, keep_last: Option<usize>) -> Result<()> {
        save_checkpoint(dir, keep_last, &self.run, &self.learner, &self.state)
    }
}

/// After an update: checks the accounting, adds it to the totals, advances step and version
/// (shared by the engine and the coordinator).
pub fn finish_step(
    state: &mut TrainState,
    b: StepBuilder,
    up: &UpdateMetrics,
    seconds: f64,
    n: usize,
) -> Result<StepReport> {
    b.counts.check(n as u64)?;
    state.totals.add(&b.counts);
    state.step += 1;
    if up.optimizer_steps > 0 {
        state.version += 1;
        state.optimizer_step = up.optimizer_step_after;
    }
    Ok(StepReport {
        step: state.step,
        metrics: b.metrics(up, seconds),
        counts: b.counts,
        seconds,
    })
}

/// Reference log-probs for every kept group, one batch per PPO mini-batch.
pub fn fill_reference(
    reference: &Transformer,
    groups: &mut [Vec<TrainSample>],
    cfg: &RlConfig,
) -> Result<()> {
    for mb in groups.chunks_mut(cfg.mini_batch_prompts) {
        let lp = {
            let refs: Vec<&TrainSample> = mb.iter().flatten().collect();
            response_logprobs(reference, &refs, cfg.temperature)?
        };
        for (s, l) in mb.iter_mut().flatten().zip(lp) {
            s.ref_logp = l;
        }
    }
    Ok(())
}

/// Saves policy weights (HF folder, f32, with tokenizer: loadable by transformers), the AdamW
/// moments and the train state as checkpoint `state.step`.
pub fn save_checkpoint(
    dir: &CheckpointDir,
    keep_last: Option<usize>,
    run: &RunContext,
    learner: &Learner,
    state: &TrainState,
) -> Result<()> {
    let f32_opts = SaveOptions {
        dtype: StorageDType::F32,
        ..SaveOptions::default()
    };
    let weights = learner.weights()?;
    let m = learner.opt.m.download(&learner.layout)?;
    let v = learner.opt.v.download(&learner.layout)?;
    dir.save(state.step, keep_last, |p| {
        grrm_model::hf::save_pretrained(
            p.join(MODEL_DIR),
            &run.base.config,
            &weights,
            Some(&run.tok),
            &f32_opts,
        )?;
        for (sub, w) in [(OPTIM_M_DIR, &m), (OPTIM_V_DIR, &v)] {
            std::fs::create_dir_all(p.join(sub))?;
            write_weights(&p.join(sub), w, &f32_opts)?;
        }
        crate::atomic::write_json_atomic(&p.join(STATE_FILE), state)?;
        Ok(())
    })?;
    Ok(())
}

/// Reads a checkpoint: the state and policy weights, and writes the AdamW moments into
/// `learner`'s optimizer.
pub fn load_checkpoint(
    dir: &Path,
    run: &RunContext,
    learner: &Learner,
) -> Result<(TrainState, grrm_model::hf::Weights)> {
    let state: TrainState = serde_json::from_str(
        &std::fs::read_to_string(dir.join(STATE_FILE))
            .with_context(|| format!("reading {}", dir.join(STATE_FILE).display()))?,
    )
    .with_context(|| format!("parsing {}", dir.join(STATE_FILE).display()))?;
    let cfg = &run.base.config;
    let weights = load_weights(&dir.join(MODEL_DIR), cfg)
        .with_context(|| format!("loading {}", dir.join(MODEL_DIR).display()))?;
    for (sub, params) in [(OPTIM_M_DIR, &learner.opt.m), (OPTIM_V_DIR, &learner.opt.v)] {
        let w = load_weights(&dir.join(sub), cfg)
            .with_context(|| format!("loading {}", dir.join(sub).display()))?;
        upload_into(params, &w)?;
    }
    Ok((state, weights))
}
