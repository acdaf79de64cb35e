//! The pieces of one SRPO step, as functions of explicit state so the synchronous engine and the
//! actors run the same code: sampling a group, scoring it, group advantages and the
//! zero-variance filter (GPU), reference log-probs, and the PPO update.

use anyhow::{bail, Context, Result};
use grrm_model::generate::{generate_groups, Sample, SamplingParams, SeedStreams};
use grrm_model::hf::Weights;
use grrm_model::kernels::cross_entropy::IGNORE_INDEX;
use grrm_model::kernels::elementwise::scale;
use grrm_model::kernels::srpo::{
    group_advantages, policy_loss, AdvantageOutputs, LossMetrics, PolicyLossInputs,
    PolicyLossOutputs, SrpoConfig, TokenAdvantages,
};
use grrm_model::tokenizer::Tokenizer;
use grrm_model::transformer::{next_token_targets, Optimizer, Params, TokenBatch, Transformer};
use grrm_model::{GpuContext, Recorder, Tensor};
use grrm_rewards::{RewardError, RewardInput, RewardOutput, RewardSet, SampleMeta};

use super::config::RlConfig;
use super::data::{mix, EncodedPrompt};

/// Seed of the sampling call for global prompt draw `draw` at `step`; sample j of the group
/// uses stream j of it (`generate::sequence_rng`), so every response is a function of
/// (seed, step, draw, j) alone.
pub fn group_seed(seed: u64, step: u64, draw: u64) -> u64 {
    mix(seed, &[0x524f_4c4c, step, draw])
}

/// Seed of validation prompt `i`'s samples (the same at every evaluation).
pub fn eval_seed(seed: u64, i: usize) -> u64 {
    mix(seed, &[0x4556_414c, i as u64])
}

/// A prompt drawn for a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Draw {
    /// Global draw number (the cursor value it was drawn at).
    pub draw: u64,
    /// Index into the RL pool.
    pub prompt: usize,
}

/// How a group is sampled: everything besides the prompt, its seed and the weights. Rollout
/// tasks for remote workers carry it, so a worker samples exactly what a local actor would.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroupSampling {
    /// Responses per prompt.
    pub n: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub max_new_tokens: usize,
}

impl GroupSampling {
    /// `n` responses per prompt with the run's sampling settings.
    pub fn of_run(cfg: &RlConfig, n: usize) -> Self {
        GroupSampling {
            n,
            temperature: cfg.temperature,
            top_p: cfg.top_p,
            max_new_tokens: cfg.max_response_tokens,
        }
    }
}

/// `s.n` responses to each of `prompts` in one batch (`generate::generate_groups`: each prompt
/// is prefilled once and its KV cache fanned out to its n samples); sample j of prompt i draws
/// from stream j of `seeds[i]` (`generate::sequence_rng`), so a response depends on its prompt
/// and seed only.
pub fn sample_groups(
    model: &Transformer,
    prompts: &[&[u32]],
    seeds: &[u64],
    s: &GroupSampling,
    stop: &[u32],
) -> Result<Vec<Vec<Sample>>> {
    if seeds.len() != prompts.len() || prompts.iter().any(|p| p.is_empty()) {
        let g = prompts.len();
        bail!("sample_groups: {g} prompts (none empty) need {g} seeds");
    }
    let params = SamplingParams {
        temperature: s.temperature,
        top_k: 0,
        top_p: s.top_p,
        max_new_tokens: s.max_new_tokens,
        seed: 0,
    };
    Ok(generate_groups(
        model,
        prompts,
        s.n,
        SeedStreams::PerPrompt(seeds),
        &params,
        stop,
        None,
    )?)
}

/// Scores of one response.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    pub reward: f64,
    /// The zero-variance filter's score (the match component).
    pub filter: f64,
    pub exact: bool,
}

fn component(out: &RewardOutput, key: &str) -> Option<f64> {
    out.components
        .iter()
        .find(|(k, _)| *k == key || k.ends_with(&format!("/{key}")))
        .map(|(_, v)| *v)
}

/// Scores a group's responses. `Ok(None)` when the reward dropped a sample (`on_error = drop`):
/// the whole group leaves the step.
pub fn score_group(
    rewards: &RewardSet,
    tok: &Tokenizer,
    prompt: &EncodedPrompt,
    draw: u64,
    responses: &[Vec<u32>],
    cfg: &RlConfig,
) -> Result<std::result::Result<Option<Vec<Scored>>, RewardError>> {
    let mut inputs = Vec::with_capacity(responses.len());
    for (j, r) in responses.iter().enumerate() {
        let response = tok
            .decode(r, false)
            .with_context(|| format!("decoding response p{draw}/r{j}"))?;
        inputs.push(RewardInput {
            prompt: prompt.text.clone(),
            response,
            token_ids: r.clone(),
            meta: SampleMeta {
                sample_id: format!("p{draw}/r{j}"),
                target: prompt.target.clone(),
                fields: serde_json::Map::from_iter([
                    ("user".to_string(), prompt.user.into()),
                    ("target_item".to_string(), prompt.target_item.into()),
                ]),
            },
        });
    }
    let scores = match rewards.score_batch(&inputs) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    if !scores.dropped.is_empty() {
        return Ok(Ok(None));
    }
    let out = scores
        .outputs
        .iter()
        .map(|o| {
            let o = o.as_ref().expect("no sample dropped");
            Scored {
                reward: o.score,
                filter: component(o, &cfg.match_component).unwrap_or(o.score),
                exact: component(o, &cfg.exact_component).map_or(o.score == 1.0, |v| v != 0.0),
            }
        })
        .collect();
    Ok(Ok(Some(out)))
}

/// Group advantages (bonus-calibrated by default) and keep-flags of G groups of n, on the GPU.
pub fn advantages(
    ctx: &GpuContext,
    groups: &[&[Scored]],
    n: usize,
    srpo: &SrpoConfig,
) -> Result<(Vec<Vec<f32>>, Vec<bool>)> {
    if groups.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let flat: Vec<&Scored> = groups.iter().flat_map(|g| g.iter()).collect();
    if flat.len() != groups.len() * n {
        bail!("advantages: every group needs {n} scored responses");
    }
    let len = [flat.len()];
    let rewards = Tensor::from_f32(
        ctx,
        &len,
        &flat.iter().map(|s| s.reward as f32).collect::<Vec<_>>(),
    )?;
    let exact = Tensor::from_u32(
        ctx,
        &len,
        &flat.iter().map(|s| s.exact as u32).collect::<Vec<_>>(),
    )?;
    let filter = Tensor::from_f32(
        ctx,
        &len,
        &flat.iter().map(|s| s.filter as f32).collect::<Vec<_>>(),
    )?;
    let out = AdvantageOutputs::new(ctx, groups.len(), n)?;
    let mut rec = Recorder::new(ctx, "srpo_advantages");
    group_advantages(
        &mut rec,
        &rewards,
        Some(&exact),
        Some(&filter),
        n,
        srpo.estimator(),
        &out,
    )?;
    rec.submit()?;
    let adv = out.advantages.to_f32_vec()?;
    let keep = out.keep.to_u32_vec()?;
    Ok((
        adv.chunks(n).map(<[f32]>::to_vec).collect(),
        keep.iter().map(|&k| k != 0).collect(),
    ))
}

/// One response ready for the update.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSample {
    pub prompt: Vec<u32>,
    pub response: Vec<u32>,
    /// Behaviour-policy log-probs of `response` (from sampling).
    pub old_logp: Vec<f32>,
    /// Frozen-reference log-probs of `response` (empty until the reference filled them).
    pub ref_logp: Vec<f32>,
    pub advantage: f32,
}

/// Prompt + response rows, right-padded, with next-token targets on the response tokens only.
fn response_batch(samples: &[&TrainSample], pad: u32) -> (TokenBatch, Vec<u32>, Vec<usize>) {
    let seqs: Vec<Vec<u32>> = samples
        .iter()
        .map(|s| [s.prompt.as_slice(), s.response.as_slice()].concat())
        .collect();
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let batch = TokenBatch::right_padded(&refs, pad);
    let mut loss_mask = vec![0u32; batch.tokens()];
    for (b, s) in samples.iter().enumerate() {
        let row = b * batch.seq;
        for t in s.prompt.len()..s.prompt.len() + s.response.len() {
            loss_mask[row + t] = 1;
        }
    }
    let targets = next_token_targets(&batch, &loss_mask);
    let starts = samples.iter().map(|s| s.prompt.len() - 1).collect();
    (batch, targets, starts)
}

/// Per-token log-probs of each sample's response under `model` at `temperature`.
pub fn response_logprobs(
    model: &Transformer,
    samples: &[&TrainSample],
    temperature: f32,
) -> Result<Vec<Vec<f32>>> {
    if samples.is_empty() {
        return Ok(Vec::new());
    }
    let pad = model.cfg.pad_token_id.unwrap_or(0);
    let (batch, targets, starts) = response_batch(samples, pad);
    let ctx = model.ctx();
    let mut rec = Recorder::new(ctx, "srpo_reference");
    let acts = model.forward(&mut rec, &batch)?;
    let tgt = Tensor::from_u32(ctx, &[batch.tokens()], &targets)?;
    let out = model.head_stats(&mut rec, &acts, &tgt, temperature)?;
    rec.submit()?;
    let lp = out.logprob().to_f32_vec()?;
    Ok(samples
        .iter()
        .zip(starts)
        .enumerate()
        .map(|(b, (s, start))| {
            let row = b * batch.seq + start;
            lp[row..row + s.response.len()].to_vec()
        })
        .collect())
}

/// The policy being trained: model, gradients, AdamW state, and host weights as a layout
/// template for downloads.
pub struct Learner {
    pub model: Transformer,
    pub grads: Params,
    pub opt: Optimizer,
    pub layout: Weights,
}

impl Learner {
    pub fn new(
        ctx: &GpuContext,
        cfg: &RlConfig,
        ckpt: &grrm_model::hf::Checkpoint,
    ) -> Result<Self> {
        let model = Transformer::new(ctx, &ckpt.config, &ckpt.weights, cfg.max_positions())?;
        let grads = model.params.zeros_like()?;
        let opt = Optimizer::new(&model.params, cfg.optimizer())?;
        Ok(Learner {
            model,
            grads,
            opt,
            layout: ckpt.weights.clone(),
        })
    }

    /// Current weights on the host.
    pub fn weights(&self) -> Result<Weights> {
        Ok(self.model.params.download(&self.layout)?)
    }
}

/// Writes host weights into GPU parameters of the same layout.
pub fn upload_into(params: &Params, w: &Weights) -> Result<()> {
    let src = w.named_tensors();
    let dst = params.tensors();
    if src.len() != dst.len() {
        bail!(
            "weights have {} tensors, the model {}",
            src.len(),
            dst.len()
        );
    }
    for ((name, h), t) in src.into_iter().zip(dst) {
        if h.shape != t.shape() {
            bail!(
                "tensor {name}: shape {:?} vs model {:?}",
                h.shape,
                t.shape()
            );
        }
        t.write_f32(&h.data)?;
    }
    Ok(())
}

/// Metrics of one update, token-weighted over its mini-batches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpdateMetrics {
    pub loss: f64,
    pub pg_loss: f64,
    pub kl: f64,
    pub clip_frac_low: f64,
    pub clip_frac_high: f64,
    pub clip_frac_dual: f64,
    pub approx_kl_old: f64,
    pub entropy: f64,
    pub response_length: f64,
    pub response_length_max: f64,
    pub grad_norm: f64,
    pub lr: f64,
    pub tokens: u64,
    pub optimizer_steps: u64,
    /// The optimizer's step count after the update.
    pub optimizer_step_after: u64,
}

/// PPO epochs over mini-batches of `groups` (each a group's kept responses): forward, head
/// stats, SRPO loss, backward, AdamW step per mini-batch.
pub fn ppo_update(
    learner: &mut Learner,
    groups: &[Vec<TrainSample>],
    cfg: &RlConfig,
) -> Result<UpdateMetrics> {
    let mut m = UpdateMetrics::default();
    let (mut w_tok, mut w_mb) = (0.0f64, 0.0f64);
    let ctx = learner.model.ctx().clone();
    let pad = learner.model.cfg.pad_token_id.unwrap_or(0);
    for _epoch in 0..cfg.ppo_epochs {
        for mb in groups.chunks(cfg.mini_batch_prompts) {
            let samples: Vec<&TrainSample> = mb.iter().flatten().collect();
            if samples.is_empty() {
                continue;
            }
            let (batch, targets, starts) = response_batch(&samples, pad);
            let n_tok = batch.tokens();
            let (mut old, mut refl, mut mask) =
                (vec![0f32; n_tok], vec![0f32; n_tok], vec![0u32; n_tok]);
            for (b, (s, start)) in samples.iter().zip(&starts).enumerate() {
                if s.ref_logp.len() != s.response.len() || s.old_logp.len() != s.response.len() {
                    bail!("ppo_update: sample {b} lacks reference or behaviour log-probs");
                }
                for j in 0..s.response.len() {
                    let i = b * batch.seq + start + j;
                    old[i] = s.old_logp[j];
                    refl[i] = s.ref_logp[j];
                    mask[i] = 1;
                }
            }
            debug_assert!(targets
                .iter()
                .zip(&mask)
                .all(|(&t, &k)| (t != IGNORE_INDEX) == (k == 1)));
            let offsets: Vec<u32> = (0..=samples.len())
                .map(|b| (b * batch.seq) as u32)
                .collect();
            let adv: Vec<f32> = samples.iter().map(|s| s.advantage).collect();
            let t = |d: &[f32]| Tensor::from_f32(&ctx, &[n_tok], d);
            let (old_t, ref_t) = (t(&old)?, t(&refl)?);
            let mask_t = Tensor::from_u32(&ctx, &[n_tok], &mask)?;
            let off_t = Tensor::from_u32(&ctx, &[offsets.len()], &offsets)?;
            let adv_t = Tensor::from_f32(&ctx, &[adv.len()], &adv)?;
            let tgt = Tensor::from_u32(&ctx, &[n_tok], &targets)?;
            let out = PolicyLossOutputs::new(&ctx, n_tok)?;
            let lr = cfg.lr_at(learner.opt.step + 1);

            let model = &learner.model;
            let mut rec = Recorder::new(&ctx, "srpo_update");
            model.zero_grads(&mut rec, &learner.grads)?;
            let acts = model.forward(&mut rec, &batch)?;
            let head = model.head_stats(&mut rec, &acts, &tgt, cfg.temperature)?;
            let inputs = PolicyLossInputs {
                new_logp: head.logprob(),
                old_logp: &old_t,
                ref_logp: (cfg.srpo.kl_coef > 0.0).then_some(&ref_t),
                advantages: TokenAdvantages::PerSequence(&adv_t),
                mask: &mask_t,
                seq_offsets: &off_t,
                entropy: Some(head.entropy()),
            };
            policy_loss(&mut rec, &inputs, &cfg.srpo, 1.0, &out)?;
            // head_backward takes coef = -dL/dlogprob.
            scale(&mut rec, -1.0, &out.grad)?;
            let d_hidden = model.head_backward(
                &mut rec,
                &acts,
                &tgt,
                &out.grad,
                &head,
                cfg.temperature,
                &learner.grads,
            )?;
            model.backward(&mut rec, &acts, &d_hidden, &learner.grads)?;
            learner
                .opt
                .step(&mut rec, &model.params, &learner.grads, lr)?;
            rec.submit()?;

            let lm: LossMetrics = out.read_metrics()?;
            let loss = out.loss.to_f32_vec()?[0] as f64;
            let gn = learner.opt.last_grad_norm()? as f64;
            let w = lm.tokens;
            w_tok += w;
            w_mb += 1.0;
            m.loss += loss;
            m.grad_norm += gn;
            m.pg_loss += lm.pg_loss * w;
            m.kl += lm.kl_loss * w;
            m.clip_frac_low += lm.clip_frac_low * w;
            m.clip_frac_high += lm.clip_frac_high * w;
            m.clip_frac_dual += lm.clip_frac_dual * w;
            m.approx_kl_old += lm.approx_kl_old * w;
            m.entropy += lm.entropy * w;
            m.response_length += lm.response_length_mean * lm.sequences;
            m.response_length_max = m.response_length_max.max(lm.response_length_max);
            m.tokens += lm.tokens as u64;
            m.optimizer_steps += 1;
            m.lr = lr as f64;
        }
    }
    if w_mb > 0.0 {
        m.loss /= w_mb;
        m.grad_norm /= w_mb;
    }
    if w_tok > 0.0 {
        for v in [
            &mut m.pg_loss,
            &mut m.kl,
            &mut m.clip_frac_low,
            &mut m.clip_frac_high,
            &mut m.clip_frac_dual,
            &mut m.approx_kl_old,
            &mut m.entropy,
        ] {
            *v /= w_tok;
        }
    }
    m.optimizer_step_after = learner.opt.step;
    let seqs = groups.iter().map(Vec::len).sum::<usize>() * cfg.ppo_epochs;
    if seqs > 0 {
        m.response_length /= seqs as f64;
    }
    Ok(m)
}
