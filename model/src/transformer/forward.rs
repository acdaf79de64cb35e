//! Training forward: embeddings, decoder layers, final norm. Every activation the backward
//! needs is kept in `Activations` (`MemoryPlan::training` sizes them up front). With
//! `Transformer::recompute_activations` only each layer's input is kept: every layer writes its
//! activations into one shared workspace, and the backward recomputes a layer's forward there
//! from the saved input just before differentiating it.
//!
//! Tensors that live only until the step's submission (o and down projections) come from one
//! scratch set shared by all layers: the recorder keeps whatever a dispatch binds alive until
//! submit, so per-layer temporaries would add up over the whole model.

use crate::gpu::{Recorder, Result, Tensor};
use crate::kernels::attention::{attention_forward, AttentionInputs};
use crate::kernels::elementwise::add;
use crate::kernels::embedding::embedding;
use crate::kernels::rmsnorm::rmsnorm;
use crate::kernels::rope::rope;
use crate::kernels::swiglu::swiglu;
use crate::DType;

use super::batch::{BatchTensors, TokenBatch};
use super::params::Layer;
use super::precision::{Mm, Operand, Proj};
use super::Transformer;

/// What one decoder layer keeps for its backward.
pub struct LayerActs {
    /// Residual stream entering the layer `[N, H]`.
    pub x_in: Tensor,
    /// Pre-norm, q/k/v projections and per-head q/k norm.
    pub qkv: QkvActs,
    /// Rotated q and k: with `qkv.v`, the attention inputs.
    pub q: Tensor,
    pub k: Tensor,
    pub attn: Tensor,
    pub lse: Tensor,
    pub x_mid: Tensor,
    pub mlp: MlpActs,
}

#[derive(Clone)]
pub struct QkNormActs {
    pub q: Tensor,
    pub rstd_q: Tensor,
    pub k: Tensor,
    pub rstd_k: Tensor,
}

pub struct Activations {
    pub batch: TokenBatch,
    pub tensors: BatchTensors,
    /// One per layer. With recomputation every layer's tensors except `x_in` are the same
    /// shared workspace, holding the last layer computed.
    pub layers: Vec<LayerActs>,
    /// Residual stream after the last layer, and the final-norm output fed to the LM head.
    pub x_final: Tensor,
    pub hidden: Tensor,
    pub rstd_final: Tensor,
    /// Whether the backward must recompute each layer (below the top one) from its input.
    pub recomputed: bool,
    pub(crate) scratch: LayerScratch,
    /// How this recording's matmuls run (f32, or on cast operands).
    pub(crate) mm: Mm,
}

/// Per-layer temporaries shared by all layers (each is dead once its layer is done).
pub(crate) struct LayerScratch {
    pub o: Tensor,
    pub down: Tensor,
    /// Where a recomputed layer writes its (already saved) output.
    pub out: Tensor,
}

impl LayerScratch {
    fn alloc(t: &Transformer, n: usize) -> Result<Self> {
        let h = t.cfg.hidden_size;
        Ok(LayerScratch {
            o: f32_zeros(t, &[n, h])?,
            down: f32_zeros(t, &[n, h])?,
            out: f32_zeros(t, &[n, h])?,
        })
    }
}

impl LayerActs {
    /// Every saved tensor of one layer for `n` tokens in `batch` sequences.
    fn alloc(t: &Transformer, n: usize, batch: usize, x_in: Tensor) -> Result<Self> {
        let c = &t.cfg;
        let (qd, kvd) = (c.q_dim(), c.kv_dim());
        Ok(LayerActs {
            x_in,
            qkv: QkvActs::alloc(t, n)?,
            q: f32_zeros(t, &[n, qd])?,
            k: f32_zeros(t, &[n, kvd])?,
            attn: f32_zeros(t, &[n, qd])?,
            lse: f32_zeros(t, &[batch, c.num_attention_heads, n / batch.max(1)])?,
            x_mid: f32_zeros(t, &[n, c.hidden_size])?,
            mlp: MlpActs::alloc(t, n)?,
        })
    }

    /// The same tensors (shared buffers) with another input.
    fn with_input(&self, x_in: Tensor) -> Self {
        LayerActs {
            x_in,
            qkv: self.qkv.clone(),
            q: self.q.clone(),
            k: self.k.clone(),
            attn: self.attn.clone(),
            lse: self.lse.clone(),
            x_mid: self.x_mid.clone(),
            mlp: self.mlp.clone(),
        }
    }
}

#[track_caller]
pub(crate) fn f32_zeros(t: &Transformer, shape: &[usize]) -> Result<Tensor> {
    Tensor::zeros(&t.ctx, shape, DType::F32)
}

impl Transformer {
    /// Runs the decoder over `batch`, recording into `rec` (nothing is submitted here).
    pub fn forward(&self, rec: &mut Recorder, batch: &TokenBatch) -> Result<Activations> {
        let n = batch.tokens();
        let h = self.cfg.hidden_size;
        let tensors = BatchTensors::upload(&self.ctx, batch)?;
        let mm = Mm::for_forward(self, rec, n)?;
        let mut x = f32_zeros(self, &[n, h])?;
        embedding(rec, &self.params.embed_tokens, &tensors.ids, &x)?;
        let scratch = LayerScratch::alloc(self, n)?;
        let shared = if self.recompute_activations {
            Some(LayerActs::alloc(self, n, batch.batch, x.clone())?)
        } else {
            None
        };
        let mut layers = Vec::with_capacity(self.params.layers.len());
        for (li, layer) in self.params.layers.iter().enumerate() {
            let acts = match &shared {
                Some(work) => work.with_input(x.clone()),
                None => LayerActs::alloc(self, n, batch.batch, x.clone())?,
            };
            let out = f32_zeros(self, &[n, h])?;
            let lw = (&mm, li);
            self.layer_forward(rec, layer, lw, batch.batch, &tensors, &acts, &scratch, &out)?;
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
            recomputed: shared.is_some(),
            scratch,
            mm,
        })
    }

    /// One decoder layer from `acts.x_in`: pre-norm attention and pre-norm SwiGLU MLP, each
    /// added to the residual stream. Writes what the backward needs into `acts` and the
    /// layer's output into `out`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn layer_forward(
        &self,
        rec: &mut Recorder,
        l: &Layer,
        lw: (&Mm, usize),
        batch: usize,
        bt: &BatchTensors,
        acts: &LayerActs,
        scratch: &LayerScratch,
        out: &Tensor,
    ) -> Result<()> {
        self.qkv_into(rec, l, lw, &acts.x_in, &acts.qkv)?;
        let (q_src, k_src) = acts.qkv.q_k();
        rope(rec, &self.rope, q_src, &bt.positions, Some(&acts.q), false)?;
        rope(rec, &self.rope, k_src, &bt.positions, Some(&acts.k), false)?;
        let inputs = AttentionInputs {
            batch,
            q: &acts.q,
            k: &acts.k,
            v: &acts.qkv.v,
            mask: Some(&bt.mask),
        };
        attention_forward(
            rec,
            &self.attention_heads()?,
            &inputs,
            &acts.attn,
            &acts.lse,
        )?;
        let (mm, li) = lw;
        let o = &l.self_attn.o_proj;
        let attn = mm.act(rec, &acts.attn)?;
        mm.linear(rec, &attn, &mm.weight(li, Proj::O, o), o, &scratch.o)?;
        add(rec, &acts.x_in, &scratch.o, &acts.x_mid)?;
        self.mlp_into(rec, l, lw, &acts.x_mid, &acts.mlp, &scratch.down, out)
    }

    /// Recomputes the layer behind `acts` (recomputation mode) from its saved input; the
    /// output, already saved as the next layer's input, goes to scratch.
    pub(crate) fn recompute_layer(
        &self,
        rec: &mut Recorder,
        l: &Layer,
        li: usize,
        acts: &Activations,
        la: &LayerActs,
    ) -> Result<()> {
        let s = &acts.scratch;
        let lw = (&acts.mm, li);
        self.layer_forward(rec, l, lw, acts.batch.batch, &acts.tensors, la, s, &s.out)
    }
}

/// The attention block's input side: pre-norm, q/k/v projections, and Qwen3's per-head q/k norm.
#[derive(Clone)]
pub struct QkvActs {
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
#[derive(Clone)]
pub struct MlpActs {
    pub h2: Tensor,
    pub rstd2: Tensor,
    pub gate: Tensor,
    pub up: Tensor,
    pub act: Tensor,
}

impl QkvActs {
    pub(crate) fn alloc(t: &Transformer, n: usize) -> Result<Self> {
        let c = &t.cfg;
        let (qd, kvd) = (c.q_dim(), c.kv_dim());
        let (hq, hkv) = (c.num_attention_heads, c.num_key_value_heads);
        let qk_norm = if c.qk_norm() {
            Some(QkNormActs {
                q: f32_zeros(t, &[n, qd])?,
                rstd_q: f32_zeros(t, &[n * hq])?,
                k: f32_zeros(t, &[n, kvd])?,
                rstd_k: f32_zeros(t, &[n * hkv])?,
            })
        } else {
            None
        };
        Ok(QkvActs {
            qk_norm,
            ..Self::alloc_projections(t, n)?
        })
    }

    /// Without the per-head norm outputs (inference normalises q and k in place).
    pub(crate) fn alloc_projections(t: &Transformer, n: usize) -> Result<Self> {
        let c = &t.cfg;
        let (h, qd, kvd) = (c.hidden_size, c.q_dim(), c.kv_dim());
        Ok(QkvActs {
            h1: f32_zeros(t, &[n, h])?,
            rstd1: f32_zeros(t, &[n])?,
            q_lin: f32_zeros(t, &[n, qd])?,
            k_lin: f32_zeros(t, &[n, kvd])?,
            v: f32_zeros(t, &[n, kvd])?,
            qk_norm: None,
        })
    }
}

impl MlpActs {
    pub(crate) fn alloc(t: &Transformer, n: usize) -> Result<Self> {
        let (h, f) = (t.cfg.hidden_size, t.cfg.intermediate_size);
        Ok(MlpActs {
            h2: f32_zeros(t, &[n, h])?,
            rstd2: f32_zeros(t, &[n])?,
            gate: f32_zeros(t, &[n, f])?,
            up: f32_zeros(t, &[n, f])?,
            act: f32_zeros(t, &[n, f])?,
        })
    }
}

impl Transformer {
    /// h1 = norm(x); q, k, v = h1 @ W^T (+ b); per-head q/k norm (Qwen3), into `acts`
    /// (shared by training and inference; `lw` is the matmul setup and the layer's index).
    pub(crate) fn qkv_into(
        &self,
        rec: &mut Recorder,
        l: &Layer,
        lw: (&Mm, usize),
        x: &Tensor,
        acts: &QkvActs,
    ) -> Result<()> {
        self.qkv_proj(rec, l, lw, x, acts)?;
        let c = &self.cfg;
        let n = x.shape()[0];
        let d = c.head_dim;
        let (hq, hkv) = (c.num_attention_heads, c.num_key_value_heads);
        let eps = self.eps();
        let a = &l.self_attn;
        if let (Some(qw), Some(kw), Some(qk)) = (&a.q_norm, &a.k_norm, &acts.qk_norm) {
            let heads = |t: &Tensor, heads: usize| t.reshape(&[n * heads, d]);
            rmsnorm(
                rec,
                &heads(&acts.q_lin, hq)?,
                qw,
                eps,
                &heads(&qk.q, hq)?,
                &qk.rstd_q,
            )?;
            rmsnorm(
                rec,
                &heads(&acts.k_lin, hkv)?,
                kw,
                eps,
                &heads(&qk.k, hkv)?,
                &qk.rstd_k,
            )?;
        }
        Ok(())
    }

    /// The pre-norm and the q, k and v projections into `acts.q_lin`, `acts.k_lin`, `acts.v`
    /// (inference continues with `kernels::qk_norm_rope` where training runs `qkv_into`'s norms).
    pub(crate) fn qkv_proj(
        &self,
        rec: &mut Recorder,
        l: &Layer,
        lw: (&Mm, usize),
        x: &Tensor,
        acts: &QkvActs,
    ) -> Result<()> {
        let (mm, _) = lw;
        let h1 = mm.norm_act(
            rec,
            x,
            &l.input_layernorm,
            self.eps(),
            &acts.h1,
            &acts.rstd1,
        )?;
        self.qkv_from(rec, l, lw, &h1, acts)
    }

    /// The q, k and v projections of the normalised input operand `h1`.
    pub(crate) fn qkv_from(
        &self,
        rec: &mut Recorder,
        l: &Layer,
        lw: (&Mm, usize),
        h1: &Operand,
        acts: &QkvActs,
    ) -> Result<()> {
        let a = &l.self_attn;
        let (mm, li) = lw;
        let lins = [&a.q_proj, &a.k_proj, &a.v_proj];
        let outs = [&acts.q_lin, &acts.k_lin, &acts.v];
        if !mm.qkv_stacked(rec, h1, li, lins, outs)? {
            for ((lin, out), p) in lins.into_iter().zip(outs).zip([Proj::Q, Proj::K, Proj::V]) {
                mm.linear(rec, h1, &mm.weight(li, p, lin), lin, out)?;
            }
        }
        Ok(())
    }

    /// out = x_mid + down(swiglu(gate(h2), up(h2))), h2 = norm(x_mid), into `acts` with `down`
    /// as scratch (training keeps every activation).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mlp_into(
        &self,
        rec: &mut Recorder,
        l: &Layer,
        lw: (&Mm, usize),
        x_mid: &Tensor,
        acts: &MlpActs,
        down: &Tensor,
        out: &Tensor,
    ) -> Result<()> {
        let act = self.mlp_act(rec, l, lw, x_mid, acts)?;
        let (mm, li) = lw;
        let m = &l.mlp;
        let w = mm.weight(li, Proj::Down, &m.down_proj);
        mm.linear(rec, &act, &w, &m.down_proj, down)?;
        add(rec, x_mid, down, out)
    }

    /// swiglu(gate(h2), up(h2)) with h2 = norm(x_mid), as the down projection's operand.
    fn mlp_act(
        &self,
        rec: &mut Recorder,
        l: &Layer,
        lw: (&Mm, usize),
        x_mid: &Tensor,
        acts: &MlpActs,
    ) -> Result<Operand> {
        let (mm, _) = lw;
        let norm = &l.post_attention_layernorm;
        let h2 = mm.norm_act(rec, x_mid, norm, self.eps(), &acts.h2, &acts.rstd2)?;
        self.mlp_act_from(rec, l, lw, &h2, acts)
    }

    /// swiglu(gate(h2), up(h2)) of the normalised operand `h2`, as the down projection's
    /// operand (into `acts.act`, and cast where the down projection needs it).
    pub(crate) fn mlp_act_from(
        &self,
        rec: &mut Recorder,
        l: &Layer,
        lw: (&Mm, usize),
        h2: &Operand,
        acts: &MlpActs,
    ) -> Result<Operand> {
        let (mm, li) = lw;
        let m = &l.mlp;
        let lins = [&m.gate_proj, &m.up_proj];
        if let Some(act) = mm.swiglu_stacked(rec, h2, li, lins, &acts.act)? {
            return Ok(act);
        }
        let w_gate = mm.weight(li, Proj::Gate, &m.gate_proj);
        mm.linear(rec, h2, &w_gate, &m.gate_proj, &acts.gate)?;
        let w_up = mm.weight(li, Proj::Up, &m.up_proj);
        mm.linear(rec, h2, &w_up, &m.up_proj, &acts.up)?;
        swiglu(rec, &acts.gate, &acts.up, &acts.act)?;
        mm.act(rec, &acts.act)
    }
}
