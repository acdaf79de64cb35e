//! Training forward: embeddings, decoder layers, final norm. Every activation the backward
//! needs is kept in `Activations` (`MemoryPlan::training` sizes them up front). Activation
//! recomputation is not implemented yet.

use crate::gpu::{Recorder, Result, Tensor};
use crate::kernels::attention::{attention_forward, AttentionInputs};
use crate::kernels::elementwise::add;
use crate::kernels::embedding::embedding;
use crate::kernels::matmul::{matmul, MatmulOpts};
use crate::kernels::rmsnorm::rmsnorm;
use crate::kernels::rope::rope;
use crate::kernels::swiglu::swiglu;
use crate::DType;

use super::batch::{BatchTensors, TokenBatch};
use super::params::{Layer, Linear};
use super::Transformer;

/// What one decoder layer keeps for its backward.
pub struct LayerActs {
    /// Residual stream entering the layer `[N, H]`.
    pub x_in: Tensor,
    pub h1: Tensor,
    pub rstd1: Tensor,
    /// q/k projections before the per-head norm (Qwen3) `[N, Hq*D]`, `[N, Hkv*D]`.
    pub q_lin: Tensor,
    pub k_lin: Tensor,
    /// Per-head RMSNorm outputs and their rstd `[N*H]` (Qwen3 only).
    pub qk_norm: Option<QkNormActs>,
    /// Rotated q, k and v: the attention inputs.
    pub q: Tensor,
    pub k: Tensor,
    pub v: Tensor,
    pub attn: Tensor,
    pub lse: Tensor,
    pub x_mid: Tensor,
    pub h2: Tensor,
    pub rstd2: Tensor,
    pub gate: Tensor,
    pub up: Tensor,
    pub act: Tensor,
}

pub struct QkNormActs {
    pub q: Tensor,
    pub rstd_q: Tensor,
    pub k: Tensor,
    pub rstd_k: Tensor,
}

pub struct Activations {
    pub batch: TokenBatch,
    pub tensors: BatchTensors,
    pub layers: Vec<LayerActs>,
    /// Residual stream after the last layer, and the final-norm output fed to the LM head.
    pub x_final: Tensor,
    pub hidden: Tensor,
    pub rstd_final: Tensor,
}

pub(crate) fn f32_zeros(t: &Transformer, shape: &[usize]) -> Result<Tensor> {
    Tensor::zeros(&t.ctx, shape, DType::F32)
}

/// `y = x @ W^T (+ b)`.
pub(crate) fn linear(rec: &mut Recorder, x: &Tensor, l: &Linear, y: &Tensor) -> Result<()> {
    matmul(rec, x, &l.weight, l.bias.as_ref(), y, MatmulOpts::nt())
}

impl Transformer {
    /// Runs the decoder over `batch`, recording into `rec` (nothing is submitted here).
    pub fn forward(&self, rec: &mut Recorder, batch: &TokenBatch) -> Result<Activations> {
        let n = batch.tokens();
        let h = self.cfg.hidden_size;
        let tensors = BatchTensors::upload(&self.ctx, batch)?;
        let mut x = f32_zeros(self, &[n, h])?;
        embedding(rec, &self.params.embed_tokens, &tensors.ids, &x)?;
        let mut layers = Vec::with_capacity(self.params.layers.len());
        for layer in &self.params.layers {
            let (acts, out) = self.layer_forward(rec, layer, batch.batch, &tensors, x)?;
            layers.push(acts);
            x = out;
        }
        let hidden = f32_zeros(self, &[n, h])?;
        let rstd_final = f32_zeros(self, &[n])?;
        rmsnorm(rec, &x, &self.params.norm, self.eps(), &hidden, &rstd_final)?;
        Ok(Activations {
            batch: batch.clone(),
            tensors,
            layers,
            x_final: x,
            hidden,
            rstd_final,
        })
    }

    /// One decoder layer: pre-norm attention and pre-norm SwiGLU MLP, each added to the
    /// residual stream. Returns what the backward needs and the layer's output.
    fn layer_forward(
        &self,
        rec: &mut Recorder,
        l: &Layer,
        batch: usize,
        bt: &BatchTensors,
        x_in: Tensor,
    ) -> Result<(LayerActs, Tensor)> {
        let c = &self.cfg;
        let n = x_in.shape()[0];
        let (h, qd, kvd) = (c.hidden_size, c.q_dim(), c.kv_dim());
        let a = &l.self_attn;

        let qkv = self.qkv(rec, l, &x_in)?;
        let (q_src, k_src) = qkv.q_k();
        let q = f32_zeros(self, &[n, qd])?;
        let k = f32_zeros(self, &[n, kvd])?;
        rope(rec, &self.rope, q_src, &bt.positions, Some(&q), false)?;
        rope(rec, &self.rope, k_src, &bt.positions, Some(&k), false)?;

        let attn = f32_zeros(self, &[n, qd])?;
        let lse = f32_zeros(self, &[batch, c.num_attention_heads, n / batch.max(1)])?;
        let inputs = AttentionInputs {
            batch,
            q: &q,
            k: &k,
            v: &qkv.v,
            mask: Some(&bt.mask),
        };
        attention_forward(rec, &self.heads, &inputs, &attn, &lse)?;
        let o = f32_zeros(self, &[n, h])?;
        linear(rec, &attn, &a.o_proj, &o)?;
        let x_mid = f32_zeros(self, &[n, h])?;
        add(rec, &x_in, &o, &x_mid)?;

        let (
            MlpActs {
                h2,
                rstd2,
                gate,
                up,
                act,
            },
            out,
        ) = self.mlp(rec, l, &x_mid)?;
        let QkvActs {
            h1,
            rstd1,
            q_lin,
            k_lin,
            v,
            qk_norm,
        } = qkv;
        let acts = LayerActs {
            x_in,
            h1,
            rstd1,
            q_lin,
            k_lin,
            qk_norm,
            q,
            k,
            v,
            attn,
            lse,
            x_mid,
            h2,
            rstd2,
            gate,
            up,
            act,
        };
        Ok((acts, out))
    }
}

/// The attention block's input side: pre-norm, q/k/v projections, and Qwen3's per-head q/k norm.
pub(crate) struct QkvActs {
    pub h1: Tensor,
    pub rstd1: Tensor,
    pub q_lin: Tensor,
    pub k_lin: Tensor,
    pub v: Tensor,
    pub qk_norm: Option<QkNormActs>,
}

impl QkvActs {
    /// q and k as they enter the rotation (normalised per head where the architecture does).
    pub fn q_k(&self) -> (&Tensor, &Tensor) {
        match &self.qk_norm {
            Some(qk) => (&qk.q, &qk.k),
            None => (&self.q_lin, &self.k_lin),
        }
    }
}

/// The MLP block's saved activations.
pub(crate) struct MlpActs {
    pub h2: Tensor,
    pub rstd2: Tensor,
    pub gate: Tensor,
    pub up: Tensor,
    pub act: Tensor,
}

impl Transformer {
    /// h1 = norm(x); q, k, v = h1 @ W^T (+ b); per-head q/k norm (Qwen3). Shared by training
    /// and inference.
    pub(crate) fn qkv(&self, rec: &mut Recorder, l: &Layer, x: &Tensor) -> Result<QkvActs> {
        let c = &self.cfg;
        let n = x.shape()[0];
        let (h, qd, kvd, d) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.head_dim);
        let (hq, hkv) = (c.num_attention_heads, c.num_key_value_heads);
        let eps = self.eps();
        let a = &l.self_attn;
        let h1 = f32_zeros(self, &[n, h])?;
        let rstd1 = f32_zeros(self, &[n])?;
        rmsnorm(rec, x, &l.input_layernorm, eps, &h1, &rstd1)?;
        let q_lin = f32_zeros(self, &[n, qd])?;
        let k_lin = f32_zeros(self, &[n, kvd])?;
        let v = f32_zeros(self, &[n, kvd])?;
        linear(rec, &h1, &a.q_proj, &q_lin)?;
        linear(rec, &h1, &a.k_proj, &k_lin)?;
        linear(rec, &h1, &a.v_proj, &v)?;
        let qk_norm = match (&a.q_norm, &a.k_norm) {
            (Some(qw), Some(kw)) => {
                let acts = QkNormActs {
                    q: f32_zeros(self, &[n, qd])?,
                    rstd_q: f32_zeros(self, &[n * hq])?,
                    k: f32_zeros(self, &[n, kvd])?,
                    rstd_k: f32_zeros(self, &[n * hkv])?,
                };
                let heads = |t: &Tensor, heads: usize| t.reshape(&[n * heads, d]);
                rmsnorm(
                    rec,
                    &heads(&q_lin, hq)?,
                    qw,
                    eps,
                    &heads(&acts.q, hq)?,
                    &acts.rstd_q,
                )?;
                rmsnorm(
                    rec,
                    &heads(&k_lin, hkv)?,
                    kw,
                    eps,
                    &heads(&acts.k, hkv)?,
                    &acts.rstd_k,
                )?;
                Some(acts)
            }
            _ => None,
        };
        Ok(QkvActs {
            h1,
            rstd1,
            q_lin,
            k_lin,
            v,
            qk_norm,
        })
    }

    /// out = x_mid + down(swiglu(gate(h2), up(h2))), h2 = norm(x_mid). Shared by training and
    /// inference.
    pub(crate) fn mlp(
        &self,
        rec: &mut Recorder,
        l: &Layer,
        x_mid: &Tensor,
    ) -> Result<(MlpActs, Tensor)> {
        let c = &self.cfg;
        let n = x_mid.shape()[0];
        let (h, f) = (c.hidden_size, c.intermediate_size);
        let h2 = f32_zeros(self, &[n, h])?;
        let rstd2 = f32_zeros(self, &[n])?;
        rmsnorm(
            rec,
            x_mid,
            &l.post_attention_layernorm,
            self.eps(),
            &h2,
            &rstd2,
        )?;
        let gate = f32_zeros(self, &[n, f])?;
        let up = f32_zeros(self, &[n, f])?;
        linear(rec, &h2, &l.mlp.gate_proj, &gate)?;
        linear(rec, &h2, &l.mlp.up_proj, &up)?;
        let act = f32_zeros(self, &[n, f])?;
        swiglu(rec, &gate, &up, &act)?;
        let down = f32_zeros(self, &[n, h])?;
        linear(rec, &act, &l.mlp.down_proj, &down)?;
        let out = f32_zeros(self, &[n, h])?;
        add(rec, x_mid, &down, &out)?;
        Ok((
            MlpActs {
                h2,
                rstd2,
                gate,
                up,
                act,
            },
            out,
        ))
    }
}
