//! The model's tensors on the GPU, mirroring `hf::Weights` field by field (so names match the
//! checkpoint). Gradients and optimizer moments use the same structure (`zeros_like`), and
//! `tensors()` lists every tensor in checkpoint order for the optimizer and the grad norm.

use crate::gpu::{GpuContext, Result, Tensor};
use crate::hf::{self, HostTensor};
use crate::DType;

pub struct Linear {
    /// `[out, in]`, as PyTorch stores it: `y = x @ weight^T (+ bias)`.
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub q_norm: Option<Tensor>,
    pub k_norm: Option<Tensor>,
}

pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

pub struct Layer {
    pub self_attn: Attention,
    pub mlp: Mlp,
    pub input_layernorm: Tensor,
    pub post_attention_layernorm: Tensor,
}

pub struct Params {
    pub embed_tokens: Tensor,
    pub layers: Vec<Layer>,
    pub norm: Tensor,
    /// `None` when tied to `embed_tokens`.
    pub lm_head: Option<Tensor>,
}

fn up(ctx: &GpuContext, t: &HostTensor) -> Result<Tensor> {
    Tensor::from_f32(ctx, &t.shape, &t.data)
}

fn up_linear(ctx: &GpuContext, l: &hf::Linear) -> Result<Linear> {
    Ok(Linear {
        weight: up(ctx, &l.weight)?,
        bias: l.bias.as_ref().map(|b| up(ctx, b)).transpose()?,
    })
}

impl Params {
    pub fn upload(ctx: &GpuContext, w: &hf::Weights) -> Result<Self> {
        let layers = w
            .layers
            .iter()
            .map(|l| {
                let a = &l.self_attn;
                Ok(Layer {
                    self_attn: Attention {
                        q_proj: up_linear(ctx, &a.q_proj)?,
                        k_proj: up_linear(ctx, &a.k_proj)?,
                        v_proj: up_linear(ctx, &a.v_proj)?,
                        o_proj: up_linear(ctx, &a.o_proj)?,
                        q_norm: a.q_norm.as_ref().map(|t| up(ctx, t)).transpose()?,
                        k_norm: a.k_norm.as_ref().map(|t| up(ctx, t)).transpose()?,
                    },
                    mlp: Mlp {
                        gate_proj: up_linear(ctx, &l.mlp.gate_proj)?,
                        up_proj: up_linear(ctx, &l.mlp.up_proj)?,
                        down_proj: up_linear(ctx, &l.mlp.down_proj)?,
                    },
                    input_layernorm: up(ctx, &l.input_layernorm)?,
                    post_attention_layernorm: up(ctx, &l.post_attention_layernorm)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Params {
            embed_tokens: up(ctx, &w.embed_tokens)?,
            layers,
            norm: up(ctx, &w.norm)?,
            lm_head: w.lm_head.as_ref().map(|t| up(ctx, t)).transpose()?,
        })
    }

    /// The output projection `[V, H]`: `lm_head`, or `embed_tokens` when tied.
    pub fn output_embedding(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// Every tensor in checkpoint order (the order of `hf::Weights::named_tensors`).
    pub fn tensors(&self) -> Vec<&Tensor> {
        let mut out = vec![&self.embed_tokens];
        for l in &self.layers {
            let a = &l.self_attn;
            for lin in [&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj] {
                out.push(&lin.weight);
                out.extend(lin.bias.as_ref());
            }
            out.extend(a.q_norm.as_ref());
            out.extend(a.k_norm.as_ref());
            for lin in [&l.mlp.gate_proj, &l.mlp.up_proj, &l.mlp.down_proj] {
                out.push(&lin.weight);
            }
            out.push(&l.input_layernorm);
            out.push(&l.post_attention_layernorm);
        }
        out.push(&self.norm);
        out.extend(self.lm_head.as_ref());
        out
    }

    /// A structure of the same shapes filled with zeros (gradients, Adam moments).
    pub fn zeros_like(&self) -> Result<Self> {
        let z = |t: &Tensor| Tensor::zeros(t.ctx(), t.shape(), DType::F32);
        let zl = |l: &Linear| -> Result<Linear> {
            Ok(Linear {
                weight: z(&l.weight)?,
                bias: l.bias.as_ref().map(z).transpose()?,
            })
        };
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let a = &l.self_attn;
                Ok(Layer {
                    self_attn: Attention {
                        q_proj: zl(&a.q_proj)?,
                        k_proj: zl(&a.k_proj)?,
                        v_proj: zl(&a.v_proj)?,
                        o_proj: zl(&a.o_proj)?,
                        q_norm: a.q_norm.as_ref().map(z).transpose()?,
                        k_norm: a.k_norm.as_ref().map(z).transpose()?,
                    },
                    mlp: Mlp {
                        gate_proj: zl(&l.mlp.gate_proj)?,
                        up_proj: zl(&l.mlp.up_proj)?,
                        down_proj: zl(&l.mlp.down_proj)?,
                    },
                    input_layernorm: z(&l.input_layernorm)?,
                    post_attention_layernorm: z(&l.post_attention_layernorm)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Params {
            embed_tokens: z(&self.embed_tokens)?,
            layers,
            norm: z(&self.norm)?,
            lm_head: self.lm_head.as_ref().map(z).transpose()?,
        })
    }

    /// Downloads every tensor into host weights with checkpoint names (for saving).
    pub fn download(&self, like: &hf::Weights) -> Result<hf::Weights> {
        let mut host = like.clone();
        let dst: Vec<&mut HostTensor> = host.tensors_mut();
        for (d, t) in dst.into_iter().zip(self.tensors()) {
            d.data = t.to_f32_vec()?;
            d.shape = t.shape().to_vec();
        }
        Ok(host)
    }

    pub fn num_parameters(&self) -> usize {
        self.tensors().iter().map(|t| t.numel()).sum()
    }
}
