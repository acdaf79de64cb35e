//! Global-norm gradient clipping and AdamW over every parameter, all on the GPU: the clip
//! coefficient stays in a 1-element buffer that AdamW reads, so a step needs no readback.

use serde::{Deserialize, Serialize};

use crate::gpu::{Recorder, Result};
use crate::kernels::adamw::{adamw_step, AdamWConfig, AdamWState};
use crate::kernels::grad_norm::{clip_grad_norm, GradNorm};

use super::params::Params;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Global gradient-norm clip; `f32::INFINITY` disables clipping.
    pub max_grad_norm: f32,
}

impl Default for OptimizerConfig {
    /// SPEC.md's SRPO run: weight decay 0.1, clip 1.0; PyTorch's betas and eps.
    fn default() -> Self {
        OptimizerConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
            max_grad_norm: 1.0,
        }
    }
}

pub struct Optimizer {
    pub cfg: OptimizerConfig,
    pub m: Params,
    pub v: Params,
    /// Steps taken so far (PyTorch's `step`, 1-based when used for bias correction).
    pub step: u64,
    pub norm: GradNorm,
}

impl Optimizer {
    pub fn new(params: &Params, cfg: OptimizerConfig) -> Result<Self> {
        Ok(Optimizer {
            cfg,
            m: params.zeros_like()?,
            v: params.zeros_like()?,
            step: 0,
            norm: GradNorm::new(params.embed_tokens.ctx())?,
        })
    }

    /// Records: the global gradient norm and clip coefficient, then one AdamW update of every
    /// parameter at learning rate `lr`.
    pub fn step(
        &mut self,
        rec: &mut Recorder,
        params: &Params,
        grads: &Params,
        lr: f32,
    ) -> Result<()> {
        self.step += 1;
        clip_grad_norm(rec, &grads.tensors(), self.cfg.max_grad_norm, &self.norm)?;
        let cfg = AdamWConfig {
            lr,
            beta1: self.cfg.beta1,
            beta2: self.cfg.beta2,
            eps: self.cfg.eps,
            weight_decay: self.cfg.weight_decay,
        };
        let (p, g, m, v) = (
            params.tensors(),
            grads.tensors(),
            self.m.tensors(),
            self.v.tensors(),
        );
        for i in 0..p.len() {
            let state = AdamWState {
                m: m[i].clone(),
                v: v[i].clone(),
            };
            adamw_step(
                rec,
                &cfg,
                self.step,
                p[i],
                g[i],
                &state,
                Some(&self.norm.clip),
            )?;
        }
        Ok(())
    }

    /// The last step's gradient norm before clipping (reads back; for logging).
    pub fn last_grad_norm(&self) -> Result<f32> {
        self.norm.read_norm()
    }
}
