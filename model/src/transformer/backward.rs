//! Backward through the decoder: from d_hidden (the LM head's gradient w.r.t. the final-norm
//! output) to every parameter's gradient, accumulated into `grads` (zero them per step; leave
//! them to accumulate over micro-batches).

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
        for ((layer, la), g) in self
            .params
            .layers
            .iter()
            .zip(&acts.layers)
            .zip(&grads.layers)
            .rev()
        {
            self.layer_backward(rec, layer, la, acts, &dx, g, &ones)?;
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
        la: &LayerActs,
        acts: &Activations,
        dx: &Tensor,
        g: &Layer,
        ones: &Tensor,
    ) -> Result<()> {
        let c = &self.cfg;
        let n = acts.batch.tokens();
        let (h, qd, kvd, f, d) = (
            c.hidden_size,
            c.q_dim(),
            c.kv_dim(),
            c.intermediate_size,
            c.head_dim,
        );

        // MLP: out = x_mid + down(swiglu(gate(h2), up(h2))), h2 = norm(x_mid).
        let d_act = f32_zeros(self, &[n, f])?;
        linear_backward(
            rec,
            &la.act,
            &l.mlp.down_proj,
            dx,
            &d_act,
            &g.mlp.down_proj,
            ones,
            false,
        )?;
        let d_gate = f32_zeros(self, &[n, f])?;
        let d_up = f32_zeros(self, &[n, f])?;
        swiglu_backward(rec, &la.gate, &la.up, &d_act, &d_gate, &d_up)?;
        let dh2 = f32_zeros(self, &[n, h])?;
        linear_backward(
            rec,
            &la.h2,
            &l.mlp.gate_proj,
            &d_gate,
            &dh2,
            &g.mlp.gate_proj,
            ones,
            false,
        )?;
        linear_backward(
            rec,
            &la.h2,
            &l.mlp.up_proj,
            &d_up,
            &dh2,
            &g.mlp.up_proj,
            ones,
            true,
        )?;
        let dxn = f32_zeros(self, &[n, h])?;
        rmsnorm_backward(
            rec,
            &la.x_mid,
            &l.post_attention_layernorm,
            &la.rstd2,
            &dh2,
            &dxn,
            &g.post_attention_layernorm,
            true,
        )?;
        axpy(rec, 1.0, &dxn, dx)?; // dx is now d(x_mid)

        // Attention: x_mid = x_in + o_proj(attn(rope(norm_qk(q(h1))), ...)), h1 = norm(x_in).
        let a = &l.self_attn;
        let ga = &g.self_attn;
        let d_attn = f32_zeros(self, &[n, qd])?;
        linear_backward(
            rec, &la.attn, &a.o_proj, dx, &d_attn, &ga.o_proj, ones, false,
        )?;
        let dq = f32_zeros(self, &[n, qd])?;
        let dk = f32_zeros(self, &[n, kvd])?;
        let dv = f32_zeros(self, &[n, kvd])?;
        let inputs = AttentionInputs {
            batch: acts.batch.batch,
            q: &la.q,
            k: &la.k,
            v: &la.v,
            mask: Some(&acts.tensors.mask),
        };
        let ag = AttentionGrads {
            dq: &dq,
            dk: &dk,
            dv: &dv,
        };
        attention_backward(rec, &self.heads, &inputs, &la.attn, &la.lse, &d_attn, &ag)?;
        // RoPE is a rotation: its backward rotates the gradient back.
        rope(rec, &self.rope, &dq, &acts.tensors.positions, None, true)?;
        rope(rec, &self.rope, &dk, &acts.tensors.positions, None, true)?;
        let (dq_lin, dk_lin) = match (&la.qk_norm, &a.q_norm, &a.k_norm) {
            (Some(qa), Some(qw), Some(kw)) => {
                let (hq, hkv) = (c.num_attention_heads, c.num_key_value_heads);
                let dq_lin = f32_zeros(self, &[n, qd])?;
                let dk_lin = f32_zeros(self, &[n, kvd])?;
                rmsnorm_backward(
                    rec,
                    &la.q_lin.reshape(&[n * hq, d])?,
                    qw,
                    &qa.rstd_q,
                    &dq.reshape(&[n * hq, d])?,
                    &dq_lin.reshape(&[n * hq, d])?,
                    ga.q_norm.as_ref().expect("grads mirror params"),
                    true,
                )?;
                rmsnorm_backward(
                    rec,
                    &la.k_lin.reshape(&[n * hkv, d])?,
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
        let dh1 = f32_zeros(self, &[n, h])?;
        linear_backward(
            rec, &la.h1, &a.q_proj, &dq_lin, &dh1, &ga.q_proj, ones, false,
        )?;
        linear_backward(
            rec, &la.h1, &a.k_proj, &dk_lin, &dh1, &ga.k_proj, ones, true,
        )?;
        linear_backward(rec, &la.h1, &a.v_proj, &dv, &dh1, &ga.v_proj, ones, true)?;
        let dxn = f32_zeros(self, &[n, h])?;
        rmsnorm_backward(
            rec,
            &la.x_in,
            &l.input_layernorm,
            &la.rstd1,
            &dh1,
            &dxn,
            &g.input_layernorm,
            true,
        )?;
        axpy(rec, 1.0, &dxn, dx) // dx is now d(x_in)
    }
}

/// Backward of `y = x @ W^T + b`: dx (= or +=) dy @ W, dW += dy^T @ x, db += colsum(dy)
/// (as `ones[1, N] @ dy`, which keeps the sum deterministic).
#[allow(clippy::too_many_arguments)]
fn linear_backward(
    rec: &mut Recorder,
    x: &Tensor,
    l: &Linear,
    dy: &Tensor,
    dx: &Tensor,
    g: &Linear,
    ones: &Tensor,
    accumulate_dx: bool,
) -> Result<()> {
    matmul(
        rec,
        dy,
        &l.weight,
        None,
        dx,
        MatmulOpts::default().accumulate(accumulate_dx),
    )?;
    matmul(
        rec,
        dy,
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
