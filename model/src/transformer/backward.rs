//! Backward through the decoder: from d_hidden (the LM head's gradient w.r.t. the final-norm
//! output) to every parameter's gradient, accumulated into `grads` (zero them per step; leave
//! them to accumulate over micro-batches). With recomputed activations each layer below the
//! top one is first run forward again from its saved input.
//!
//! The per-layer gradient temporaries are one set reused by every layer (each is fully
//! rewritten before it is read), so they cost one layer's worth of memory, not the model's.

use super::precision::{Mm, Operand, Proj};
use crate::gpu::{Recorder, Result, Tensor};
use crate::kernels::attention::{attention_backward, AttentionGrads, AttentionInputs};
use crate::kernels::elementwise::axpy;
use crate::kernels::embedding::embedding_backward;
use crate::kernels::matmul::{matmul, MatmulOpts};
use crate::kernels::rmsnorm::rmsnorm_backward;
use crate::kernels::rope::rope;
use crate::kernels::swiglu::swiglu_backward;

use super::forward::{f32_zeros, Activations, LayerActs};
use super::params::{Layer, Linear, Params};
use super::Transformer;
use crate::hf::ModelConfig;

impl Transformer {
    /// Accumulates parameter gradients of the loss whose gradient w.r.t. the final hidden
    /// states is `d_hidden` `[N, H]`.
    pub fn backward(
        &self,
        rec: &mut Recorder,
        acts: &Activations,
        d_hidden: &Tensor,
        grads: &Params,
    ) -> Result<()> {
        let n = acts.batch.tokens();
        let ones = crate::Tensor::from_f32(&self.ctx, &[1, n], &vec![1.0; n])?;
        let scratch = BackwardScratch::alloc(self, n)?;
        // dx: gradient w.r.t. the residual stream, flowing from the top layer down.
        let dx = f32_zeros(self, acts.x_final.shape())?;
        rmsnorm_backward(
            rec,
            &acts.x_final,
            &self.params.norm,
            &acts.rstd_final,
            d_hidden,
            &dx,
            &grads.norm,
            true,
        )?;
        let top = self.params.layers.len().saturating_sub(1);
        for (i, ((layer, la), g)) in self
            .params
            .layers
            .iter()
            .zip(&acts.layers)
            .zip(&grads.layers)
            .enumerate()
            .rev()
        {
            // The shared workspace still holds the top layer from the forward.
            if acts.recomputed && i != top {
                self.recompute_layer(rec, layer, i, acts, la)?;
            }
            self.layer_backward(rec, layer, i, la, acts, &dx, g, &ones, &scratch)?;
        }
        embedding_backward(rec, &acts.batch.ids, &dx, &grads.embed_tokens, true)
    }

    /// Turns `dx` (gradient w.r.t. the layer's output) into the gradient w.r.t. its input, in
    /// place, accumulating the layer's parameter gradients into `g`.
    #[allow(clippy::too_many_arguments)]
    fn layer_backward(
        &self,
        rec: &mut Recorder,
        l: &Layer,
        li: usize,
        la: &LayerActs,
        acts: &Activations,
        dx: &Tensor,
        g: &Layer,
        ones: &Tensor,
        s: &BackwardScratch,
    ) -> Result<()> {
        let c = &self.cfg;
        let n = acts.batch.tokens();
        let d = c.head_dim;
        let (q, m) = (&la.qkv, &la.mlp);
        let mm = &acts.mm;
        // One linear's backward: its input operand, projection, output gradient, dx.
        let lin = |rec: &mut Recorder,
                   x: &Operand,
                   p: Proj,
                   (l, gl): (&Linear, &Linear),
                   dy: &Tensor,
                   dx: &Tensor,
                   acc: bool| {
            let w = mm.weight(li, p, l);
            linear_backward(rec, mm, x, &w, dy, dx, gl, ones, acc)
        };

        // MLP: out = x_mid + down(swiglu(gate(h2), up(h2))), h2 = norm(x_mid).
        let d_act = &s.d_act;
        let (lm, gm) = (&l.mlp, &g.mlp);
        let act = mm.act(rec, &m.act)?;
        let down = (&lm.down_proj, &gm.down_proj);
        lin(rec, &act, Proj::Down, down, dx, d_act, false)?;
        let (d_gate, d_up, dh2) = (&s.d_gate, &s.d_up, &s.dh);
        swiglu_backward(rec, &m.gate, &m.up, d_act, d_gate, d_up)?;
        let h2 = mm.act(rec, &m.h2)?;
        let gate = (&lm.gate_proj, &gm.gate_proj);
        lin(rec, &h2, Proj::Gate, gate, d_gate, dh2, false)?;
        let up = (&lm.up_proj, &gm.up_proj);
        lin(rec, &h2, Proj::Up, up, d_up, dh2, true)?;
        let dxn = &s.dxn;
        rmsnorm_backward(
            rec,
            &la.x_mid,
            &l.post_attention_layernorm,
            &m.rstd2,
            dh2,
            dxn,
            &g.post_attention_layernorm,
            true,
        )?;
        axpy(rec, 1.0, dxn, dx)?; // dx is now d(x_mid)

        // Attention: x_mid = x_in + o_proj(attn(rope(norm_qk(q(h1))), ...)), h1 = norm(x_in).
        let a = &l.self_attn;
        let ga = &g.self_attn;
        let d_attn = &s.d_attn;
        let attn = mm.act(rec, &la.attn)?;
        lin(
            rec,
            &attn,
            Proj::O,
            (&a.o_proj, &ga.o_proj),
            dx,
            d_attn,
            false,
        )?;
        let (dq, dk, dv) = (&s.dq, &s.dk, &s.dv);
        let inputs = AttentionInputs {
            batch: acts.batch.batch,
            q: &la.q,
            k: &la.k,
            v: &q.v,
            mask: Some(&acts.tensors.mask),
        };
        let ag = AttentionGrads { dq, dk, dv };
        let heads = self.attention_heads()?;
        attention_backward(rec, &heads, &inputs, &la.attn, &la.lse, d_attn, &ag)?;
        // RoPE is a rotation: its backward rotates the gradient back.
        rope(rec, &self.rope, dq, &acts.tensors.positions, None, true)?;
        rope(rec, &self.rope, dk, &acts.tensors.positions, None, true)?;
        let (dq_lin, dk_lin) = match (&q.qk_norm, &a.q_norm, &a.k_norm, &s.qk) {
            (Some(qa), Some(qw), Some(kw), Some((dq_lin, dk_lin))) => {
                let (hq, hkv) = (c.num_attention_heads, c.num_key_value_heads);
                rmsnorm_backward(
                    rec,
                    &q.q_lin.reshape(&[n * hq, d])?,
                    qw,
                    &qa.rstd_q,
                    &dq.reshape(&[n * hq, d])?,
                    &dq_lin.reshape(&[n * hq, d])?,
                    ga.q_norm.as_ref().expect("grads mirror params"),
                    true,
                )?;
                rmsnorm_backward(
                    rec,
                    &q.k_lin.reshape(&[n * hkv, d])?,
                    kw,
                    &qa.rstd_k,
                    &dk.reshape(&[n * hkv, d])?,
                    &dk_lin.reshape(&[n * hkv, d])?,
                    ga.k_norm.as_ref().expect("grads mirror params"),
                    true,
                )?;
                (dq_lin, dk_lin)
            }
            _ => (dq, dk),
        };
        // dh2's buffer is free again: reuse it for dh1.
        let dh1 = &s.dh;
        let h1 = mm.act(rec, &q.h1)?;
        lin(
            rec,
            &h1,
            Proj::Q,
            (&a.q_proj, &ga.q_proj),
            dq_lin,
            dh1,
            false,
        )?;
        lin(
            rec,
            &h1,
            Proj::K,
            (&a.k_proj, &ga.k_proj),
            dk_lin,
            dh1,
            true,
        )?;
        lin(rec, &h1, Proj::V, (&a.v_proj, &ga.v_proj), dv, dh1, true)?;
        rmsnorm_backward(
            rec,
            &la.x_in,
            &l.input_layernorm,
            &q.rstd1,
            dh1,
            dxn,
            &g.input_layernorm,
            true,
        )?;
        axpy(rec, 1.0, dxn, dx) // dx is now d(x_in)
    }
}

/// The gradient temporaries of one layer, reused by every layer.
struct BackwardScratch {
    d_act: Tensor,
    d_gate: Tensor,
    d_up: Tensor,
    /// d(h2) in the MLP half, then d(h1) in the attention half.
    dh: Tensor,
    dxn: Tensor,
    d_attn: Tensor,
    dq: Tensor,
    dk: Tensor,
    dv: Tensor,
    /// Gradients before the per-head q/k norm (Qwen3).
    qk: Option<(Tensor, Tensor)>,
}

impl BackwardScratch {
    fn alloc(t: &Transformer, n: usize) -> Result<Self> {
        let c: &ModelConfig = &t.cfg;
        let (h, qd, kvd, f) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
        let z = |cols: usize| f32_zeros(t, &[n, cols]);
        Ok(BackwardScratch {
            d_act: z(f)?,
            d_gate: z(f)?,
            d_up: z(f)?,
            dh: z(h)?,
            dxn: z(h)?,
            d_attn: z(qd)?,
            dq: z(qd)?,
            dk: z(kvd)?,
            dv: z(kvd)?,
            qk: if c.qk_norm() {
                Some((z(qd)?, z(kvd)?))
            } else {
                None
            },
        })
    }
}

/// Backward of `y = x @ W^T + b` on operands `x` and `w` (see `Mm`): dx (= or +=) dy @ W,
/// dW += dy^T @ x, db += colsum(dy) (as `ones[1, N] @ dy` in f32, which keeps the sum
/// deterministic). `dy` is cast once for both matmuls.
#[allow(clippy::too_many_arguments)]
fn linear_backward(
    rec: &mut Recorder,
    mm: &Mm,
    x: &Operand,
    w: &Operand,
    dy: &Tensor,
    dx: &Tensor,
    g: &Linear,
    ones: &Tensor,
    accumulate_dx: bool,
) -> Result<()> {
    let dyo = mm.grad(rec, dy)?;
    let o = MatmulOpts::default().accumulate(accumulate_dx);
    mm.mm(rec, &dyo, w, None, dx, o)?;
    mm.mm(
        rec,
        &dyo,
        x,
        None,
        &g.weight,
        MatmulOpts::tn().accumulate(true),
    )?;
    if let Some(db) = &g.bias {
        let out = db.shape()[0];
        matmul(
            rec,
            ones,
            dy,
            None,
            &db.reshape(&[1, out])?,
            MatmulOpts::default().accumulate(true),
        )?;
    }
    Ok(())
}
