//! Mixed-precision training matmuls: the master weights, gradients and AdamW stay f32; with
//! `F16TensorCore` every projection, MLP and LM-head matmul of the training forward and
//! backward (forward, dgrad and wgrad) runs on the tensor cores with f16 operands, f32
//! accumulation and f32 outputs.
//!
//! Each operand is cast by `kernels::cast_scaled` with its own power-of-two scale (chosen on the
//! GPU, undone exactly in the matmul epilogue), because a token-mean loss makes most gradient
//! values smaller than f16's smallest subnormal. Weights are cast once per forward recording
//! into a persistent f16 copy (so a step with one micro-batch casts them once, after the last
//! optimizer update; a copy refreshed in every forward can never be stale, whoever wrote the
//! f32 weights). Activations and gradients are cast into two scratch buffers just before their
//! first matmul and reused by every matmul that reads them (h1 feeds q, k and v; a gradient
//! feeds its dgrad and wgrad): one extra read of 4 and write of 2 bytes per element against
//! K-fold reuse in the matmul, so a separate pass costs a few percent of the step and keeps
//! the producing kernels (norms, SwiGLU, attention, cross-entropy) unchanged.
//!
//! Inference uses the same weight copies. Steps of at least `HALF_INFERENCE_MIN_ROWS` rows
//! (prefill) take the training path; decode steps (`Mm::Rows`) cast each activation row with
//! its own scale, fused with the RMSNorm before it where there is one, and multiply on
//! `kernels::matmul_rows`, with q/k/v and gate/up as one product each over their stacked
//! weights (`half_weights`).
//!
//! `F16Emulated` runs the same casts and plumbing with f32 outputs holding the f16-rounded
//! values (`f16(x s) / s`) through the f32 kernels: the tensor-core numerics on adapters without
//! cooperative matrices (lavapipe), so the CPU tests cover everything but the tensor-core kernel.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::gpu::{GpuContext, GpuError, Recorder, Result, Tensor};
use crate::kernels::cast_scaled::cast_scaled;
use crate::kernels::matmul::{coop16_available, matmul_scaled, MatmulOpts};
use crate::kernels::matmul_rows::{
    matmul_rows, matmul_rows_cast, matmul_rows_shape_fits, matmul_rows_to, RowCast, RowsOperand,
    RowsOut,
};
use crate::kernels::quantize_rows::{padded_rows, quantize_rows, quantize_rows_normed};
use crate::kernels::rmsnorm::rmsnorm;
use crate::DType;

pub(crate) use super::half_weights::Proj;
use super::half_weights::{HalfWeights, SLOT};
use super::params::Linear;

/// Which arithmetic the transformer's training matmuls use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatmulPrecision {
    /// `F16TensorCore` where the adapter has 16x16x16 f16 -> f32 cooperative matrices, else
    /// `F32` (on an H100 the tensor-core step is faster since split K and the 16-byte-load
    /// kernel: bench/NOTES.md).
    #[default]
    Auto,
    F32,
    /// f16 operands (per-tensor power-of-two scales), f32 accumulation, on the tensor cores.
    F16TensorCore,
    /// `F16TensorCore`'s rounding through the f32 kernels (tests on any adapter).
    F16Emulated,
}

/// The environment variable benchmarks read (`auto`, `f32`, `f16`, `f16-emulated`).
pub const PRECISION_ENV: &str = "GRRM_MATMUL_PRECISION";

impl MatmulPrecision {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "" | "auto" => Self::Auto,
            "f32" => Self::F32,
            "f16" | "f16_tensor_core" | "f16tc" | "tensor_core" => Self::F16TensorCore,
            "f16_emulated" => Self::F16Emulated,
            _ => return None,
        })
    }

    /// `GRRM_MATMUL_PRECISION`, `Auto` when unset.
    pub fn from_env() -> Result<Self> {
        let v = std::env::var(PRECISION_ENV).unwrap_or_default();
        Self::parse(&v).ok_or_else(|| {
            GpuError::shape(
                "matmul precision",
                format!("{PRECISION_ENV} {v:?}: want auto, f32, f16 or f16-emulated"),
            )
        })
    }

    /// `Auto` made concrete for `ctx`; `F16TensorCore` where the adapter lacks it is an error.
    pub fn resolve(self, ctx: &GpuContext) -> Result<Self> {
        let coop = coop16_available(ctx);
        match self {
            // H100, Qwen3-0.6B shape, 8 x 1024: 3,921 tok/s against 3,152 for f32 with split
            // K, before the 16-byte-load kernel (bench/NOTES.md); 4% more peak memory.
            Self::Auto if coop => Ok(Self::F16TensorCore),
            Self::Auto => Ok(Self::F32),
            Self::F16TensorCore if !coop => Err(GpuError::MissingFeature {
                op: "matmul precision f16 tensor-core",
                feature: "cooperative matrix 16x16x16 f16->f32",
                adapter: ctx.info().name.clone(),
            }),
            p => Ok(p),
        }
    }

    /// Element type of the cast operands (`None`: the matmuls read the f32 tensors).
    pub fn operand_dtype(self) -> Option<DType> {
        match self {
            Self::F16TensorCore => Some(DType::F16),
            Self::F16Emulated => Some(DType::F32),
            _ => None,
        }
    }
}

/// A matmul operand: a tensor and, when it was cast, its scale words `[max |x| bits, 1/s]`;
/// or, for a decode step's activations (`rows` = `Some(m)`), f16 rows `[m_pad, K]` with one
/// inverse scale per row in `scale` (`[m_pad]`, `quantize_rows`).
#[derive(Clone)]
pub(crate) struct Operand {
    pub t: Tensor,
    pub scale: Option<Tensor>,
    pub rows: Option<usize>,
}

/// Elements of the two operand scratch buffers for `n` tokens and `head_rows` LM-head rows:
/// (activations: a layer's matmul inputs or a head chunk's hidden rows; gradients: a layer's
/// output gradients or a head chunk's logit gradients).
pub(crate) fn scratch_elems(
    c: &crate::hf::ModelConfig,
    n: usize,
    head_rows: usize,
) -> (usize, usize) {
    let widest = c
        .hidden_size
        .max(c.q_dim())
        .max(c.kv_dim())
        .max(c.intermediate_size);
    let head = head_rows.min(n).max(1);
    (
        (n * widest).max(head * c.hidden_size),
        (n * widest).max(head * c.vocab_size),
    )
}

/// The weights an inference forward multiplies with: the f32 masters, or the cast copies as
/// refreshed when a decode state was made (weights change between generate calls, not within
/// one).
#[derive(Clone)]
pub(crate) enum InferWeights {
    F32,
    Half(Arc<HalfWeights>, DType),
}

impl super::Transformer {
    /// The weights inference uses under this model's precision; with f16 operands, casts them
    /// from the f32 masters now (one submission) unless no master changed since the last cast.
    pub(crate) fn inference_weights(&self) -> Result<InferWeights> {
        let Some(dtype) = self.matmul_precision()?.operand_dtype() else {
            return Ok(InferWeights::F32);
        };
        let w = self.half_weights.get(&self.params, dtype)?;
        w.refresh_if_stale(&self.ctx, &self.params)?;
        Ok(InferWeights::Half(w, dtype))
    }
}

/// Fewest rows an inference step must have to multiply through the per-tensor casts and the
/// tiled tensor-core kernels. Decode steps have fewer and multiply through `matmul_rows`
/// instead (one cast dispatch per activation, a product and its split reduction): on an H100
/// (bench/NOTES.md) the per-tensor path at 64 rows ran 1,616 new tok/s against 1,993 in f32,
/// its three cast dispatches per activation and the direct kernel costing more than the f16
/// weights save.
pub(crate) const HALF_INFERENCE_MIN_ROWS: usize = 256;

/// Whether every decode product of this model has a shape `matmul_rows` takes (each K a
/// multiple of 32, each N at least 16). Decided on shapes alone, so `F16Emulated` takes the
/// row path exactly where `F16TensorCore` would.
fn rows_kernel_fits(t: &super::Transformer) -> bool {
    let c = &t.cfg;
    let (h, q, kv, i, v) = (
        c.hidden_size,
        c.q_dim(),
        c.kv_dim(),
        c.intermediate_size,
        c.vocab_size,
    );
    [(q, h), (kv, h), (h, q), (i, h), (h, i), (v, h)]
        .iter()
        .all(|&(n, k)| matmul_rows_shape_fits(n, k))
}

/// How one recording's matmuls run, kept in `Activations` so the head and the backward use
/// what the forward chose.
#[derive(Clone)]
pub(crate) enum Mm {
    F32,
    Half(Arc<HalfCtx>),
    /// Decode steps: activations cast per row (`quantize_rows`), products on `matmul_rows`
    /// (f16), or the same roundings through the f32 kernels (f32 scratch: `F16Emulated`).
    Rows(Arc<RowsCtx>),
}

pub(crate) struct RowsCtx {
    weights: Arc<HalfWeights>,
    /// Flat activation scratch (f16, or f32 holding the f16-rounded values) and two buffers of
    /// per-row inverse scales: `quantize_rows` writes the first; a product whose reduction
    /// casts its output for the next one reads its A's scales from one and writes the other.
    x: Tensor,
    inv: [Tensor; 2],
}

impl RowsCtx {
    /// `matmul_rows_cast` of `a` by the cast weight `w` into `out`, whose reduction casts the
    /// `k`-wide output rows (through `norm` when given) into the activation scratch with the
    /// scale buffer that `a`'s scales are not in: returns them as the next product's operand.
    fn product_cast(
        &self,
        rec: &mut Recorder,
        a: &RowsOperand,
        w: &Operand,
        out: &RowsOut,
        k: usize,
        norm: Option<(&Tensor, f32)>,
    ) -> Result<Operand> {
        let m_pad = padded_rows(a.m);
        let (t, inv) = (
            self.x.view(0, &[m_pad, k])?,
            self.other_inv(a.inv).view(0, &[m_pad])?,
        );
        let cast = RowCast {
            out: &t,
            inv: &inv,
            norm,
        };
        let w_scale = w.scale.as_ref().expect("cast weights have scales");
        matmul_rows_cast(rec, a, &w.t, w_scale, out, &cast, None)?;
        Ok(Operand {
            t,
            scale: Some(inv),
            rows: Some(a.m),
        })
    }

    /// The inverse-scale buffer that `a`'s scales are not in.
    fn other_inv(&self, a: &Tensor) -> &Tensor {
        if Arc::ptr_eq(&a.buffer, &self.inv[0].buffer) {
            &self.inv[1]
        } else {
            &self.inv[0]
        }
    }
}

pub(crate) struct HalfCtx {
    weights: Arc<HalfWeights>,
    /// Flat scratch for activation operands and for gradient operands.
    x: Tensor,
    dy: Tensor,
    /// Scale words of `x` and `dy`.
    x_scale: Tensor,
    dy_scale: Tensor,
}

impl Mm {
    /// The matmul setup for a training forward over `n` tokens: with f16 operands, casts the
    /// weights now (recorded before any matmul that reads them).
    pub(crate) fn for_forward(
        t: &super::Transformer,
        rec: &mut Recorder,
        n: usize,
    ) -> Result<Self> {
        let Some(dtype) = t.matmul_precision()?.operand_dtype() else {
            return Ok(Mm::F32);
        };
        let weights = t.half_weights.get(&t.params, dtype)?;
        weights.refresh(rec, &t.params)?;
        let (xn, dyn_) = scratch_elems(&t.cfg, n, t.head_chunk_rows(n));
        let stats = Tensor::zeros(&t.ctx, &[2 * SLOT], DType::F32)?;
        Ok(Mm::Half(Arc::new(HalfCtx {
            weights,
            x: Tensor::zeros(&t.ctx, &[xn], dtype)?,
            dy: Tensor::zeros(&t.ctx, &[dyn_], dtype)?,
            x_scale: stats.view(0, &[2])?,
            dy_scale: stats.view(SLOT, &[2])?,
        })))
    }

    /// The matmul setup of one inference step over at most `rows` rows (tokens, or LM-head
    /// rows) with the weights of its decode state: per-tensor f16 casts for prefill-sized
    /// steps, per-row casts and `matmul_rows` below `HALF_INFERENCE_MIN_ROWS` rows (f32 when
    /// the model's shapes do not fit that kernel).
    pub(crate) fn for_inference(
        t: &super::Transformer,
        w: &InferWeights,
        rows: usize,
    ) -> Result<Self> {
        let InferWeights::Half(weights, dtype) = w else {
            return Ok(Mm::F32);
        };
        if rows < HALF_INFERENCE_MIN_ROWS {
            if !rows_kernel_fits(t) {
                return Ok(Mm::F32);
            }
            let c = &t.cfg;
            let widest = c.hidden_size.max(c.q_dim()).max(c.intermediate_size);
            let m_pad = padded_rows(rows);
            let inv = || Tensor::zeros(&t.ctx, &[m_pad], DType::F32);
            return Ok(Mm::Rows(Arc::new(RowsCtx {
                weights: weights.clone(),
                x: Tensor::zeros(&t.ctx, &[m_pad * widest], *dtype)?,
                inv: [inv()?, inv()?],
            })));
        }
        let (xn, _) = scratch_elems(&t.cfg, rows, rows);
        let stats = Tensor::zeros(&t.ctx, &[2 * SLOT], DType::F32)?;
        Ok(Mm::Half(Arc::new(HalfCtx {
            weights: weights.clone(),
            x: Tensor::zeros(&t.ctx, &[xn], *dtype)?,
            // Inference has no gradients.
            dy: Tensor::zeros(&t.ctx, &[1], *dtype)?,
            x_scale: stats.view(0, &[2])?,
            dy_scale: stats.view(SLOT, &[2])?,
        })))
    }

    fn cast(rec: &mut Recorder, x: &Tensor, into: &Tensor, scale: &Tensor) -> Result<Operand> {
        let t = into.view(0, x.shape())?;
        cast_scaled(rec, x, scale, &t)?;
        Ok(Operand {
            t,
            scale: Some(scale.clone()),
            rows: None,
        })
    }

    /// `x` `[m, K]` (or `rmsnorm(x) * w` with `norm` = `(w, eps)`) cast per row into the
    /// decode scratch.
    fn cast_rows(
        rec: &mut Recorder,
        x: &Tensor,
        norm: Option<(&Tensor, f32)>,
        r: &RowsCtx,
    ) -> Result<Operand> {
        let (m, k) = (x.shape()[0], x.shape()[1]);
        let m_pad = padded_rows(m);
        let out = r.x.view(0, &[m_pad, k])?;
        let inv = r.inv[0].view(0, &[m_pad])?;
        match norm {
            Some((w, eps)) => quantize_rows_normed(rec, x, w, eps, &out, &inv)?,
            None => quantize_rows(rec, x, &out, &inv)?,
        }
        if out.dtype() == DType::F16 {
            return Ok(Operand {
                t: out,
                scale: Some(inv),
                rows: Some(m),
            });
        }
        // Emulated: the f32 kernels read the rounded values of the real rows.
        Ok(Operand {
            t: out.view(0, &[m, k])?,
            scale: None,
            rows: None,
        })
    }

    /// `x` as an activation operand: itself, or cast into the activation scratch (valid until
    /// the next `act`).
    pub(crate) fn act(&self, rec: &mut Recorder, x: &Tensor) -> Result<Operand> {
        match self {
            Mm::F32 => Ok(Operand {
                t: x.clone(),
                scale: None,
                rows: None,
            }),
            Mm::Half(h) => Self::cast(rec, x, &h.x, &h.x_scale),
            Mm::Rows(r) => Self::cast_rows(rec, x, None, r),
        }
    }

    /// `rmsnorm(x) * w` as an activation operand. Decode rows take one fused dispatch that
    /// writes only the operand (`h` and `rstd` stay unwritten: inference keeps neither);
    /// otherwise the norm goes into `h` and `rstd` (training keeps them), then `act`.
    pub(crate) fn norm_act(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        w: &Tensor,
        eps: f32,
        h: &Tensor,
        rstd: &Tensor,
    ) -> Result<Operand> {
        if let Mm::Rows(r) = self {
            return Self::cast_rows(rec, x, Some((w, eps)), r);
        }
        rmsnorm(rec, x, w, eps, h, rstd)?;
        self.act(rec, h)
    }

    /// `x` as a gradient operand (valid until the next `grad`).
    pub(crate) fn grad(&self, rec: &mut Recorder, x: &Tensor) -> Result<Operand> {
        match self {
            Mm::F32 | Mm::Rows(_) => Ok(Operand {
                t: x.clone(),
                scale: None,
                rows: None,
            }),
            Mm::Half(h) => Self::cast(rec, x, &h.dy, &h.dy_scale),
        }
    }

    /// Projection `p` of layer `li` (`l` is its f32 master).
    pub(crate) fn weight(&self, li: usize, p: Proj, l: &Linear) -> Operand {
        match self {
            Mm::F32 => Operand {
                t: l.weight.clone(),
                scale: None,
                rows: None,
            },
            Mm::Half(h) => h.weights.layers[li].proj[p as usize].clone(),
            Mm::Rows(r) => r.weights.layers[li].proj[p as usize].clone(),
        }
    }

    /// The output embedding `[V, H]`.
    pub(crate) fn out_weight(&self, w: &Tensor) -> Operand {
        match self {
            Mm::F32 => Operand {
                t: w.clone(),
                scale: None,
                rows: None,
            },
            Mm::Half(h) => h.weights.out.clone(),
            Mm::Rows(r) => r.weights.out.clone(),
        }
    }

    /// `C = alpha op(A) op(B) (+ bias) (+ C)` on the operands; f16 operands go to the tensor
    /// cores with their scales, f32 ones (plain or emulated) to the f32 kernels.
    pub(crate) fn mm(
        &self,
        rec: &mut Recorder,
        a: &Operand,
        b: &Operand,
        bias: Option<&Tensor>,
        c: &Tensor,
        o: MatmulOpts,
    ) -> Result<()> {
        if let (Some(m), Some(inv), Some(sb)) = (a.rows, &a.scale, &b.scale) {
            let plain_nt = o.trans_b && !o.trans_a && o.alpha == 1.0;
            if !plain_nt {
                return Err(GpuError::shape(
                    "matmul (decode rows)",
                    "row-scaled operands multiply only as x @ W^T",
                ));
            }
            let a = RowsOperand { t: &a.t, inv, m };
            return matmul_rows(rec, &a, &b.t, sb, bias, c, o.accumulate);
        }
        let scales = match (&a.scale, &b.scale) {
            (Some(sa), Some(sb)) if a.t.dtype() == DType::F16 => Some([sa, sb]),
            _ => None,
        };
        matmul_scaled(rec, &a.t, &b.t, scales, bias, c, o)
    }

    /// Layer `li`'s q/k/v (or, into SwiGLU's output, gate/up) group as one product into `out`, when
    /// this step multiplies row-cast f16 operands, `x` is one, and the group is stacked and
    /// bias-free; with `cast`, its reduction also casts the output rows into the activation
    /// scratch and returns them as the next operand. `None` when the caller must multiply the
    /// projections one by one.
    fn stacked_product(
        &self,
        rec: &mut Recorder,
        x: &Operand,
        li: usize,
        lins: &[&Linear],
        out: &RowsOut,
        cast: Option<usize>,
    ) -> Result<Option<Option<Operand>>> {
        let Mm::Rows(r) = self else { return Ok(None) };
        let l = &r.weights.layers[li];
        let w = match out {
            RowsOut::Swiglu(_) => &l.gate_up,
            _ => &l.qkv,
        };
        let (Some(w), Some(m), Some(inv)) = (w, x.rows, x.scale.as_ref()) else {
            return Ok(None);
        };
        if lins.iter().any(|l| l.bias.is_some()) {
            return Ok(None);
        }
        let a = RowsOperand { t: &x.t, inv, m };
        let Some(k) = cast else {
            let scale = w.scale.as_ref().expect("cast weights have scales");
            matmul_rows_to(rec, &a, &w.t, scale, out, None)?;
            return Ok(Some(None));
        };
        Ok(Some(Some(r.product_cast(rec, &a, w, out, k, None)?)))
    }

    /// q, k and v of layer `li` as one product into `outs` (`stacked_product`).
    pub(crate) fn qkv_stacked(
        &self,
        rec: &mut Recorder,
        x: &Operand,
        li: usize,
        lins: [&Linear; 3],
        outs: [&Tensor; 3],
    ) -> Result<bool> {
        let done = self.stacked_product(rec, x, li, &lins, &RowsOut::Split(&outs), None)?;
        Ok(done.is_some())
    }

    /// `silu(gate(x)) * up(x)` of layer `li` as one product into `act` whose reduction also
    /// casts the rows for the down projection (`stacked_product`): that operand, or `None`
    /// when the caller must run gate, up, SwiGLU and the cast separately.
    pub(crate) fn swiglu_stacked(
        &self,
        rec: &mut Recorder,
        x: &Operand,
        li: usize,
        lins: [&Linear; 2],
        act: &Tensor,
    ) -> Result<Option<Operand>> {
        let k = act.shape().get(1).copied().unwrap_or(0);
        let out = RowsOut::Swiglu(act);
        Ok(self
            .stacked_product(rec, x, li, &lins, &out, Some(k))?
            .flatten())
    }

    /// `y += x @ W^T (+ b)`, then `rmsnorm(y) * norm_w` as an activation operand (`norm_act`,
    /// with `h` and `rstd` its outputs where it writes them). Decode rows do both in the
    /// product's reduction (one dispatch fewer); the result is the same.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn linear_acc_norm_act(
        &self,
        rec: &mut Recorder,
        x: &Operand,
        w: &Operand,
        l: &Linear,
        y: &Tensor,
        norm: (&Tensor, f32),
        h: &Tensor,
        rstd: &Tensor,
    ) -> Result<Operand> {
        if let (Mm::Rows(r), Some(m), Some(inv), Some(_)) = (self, x.rows, &x.scale, &w.scale) {
            let k = y.shape().get(1).copied().unwrap_or(0);
            let a = RowsOperand { t: &x.t, inv, m };
            let out = RowsOut::One {
                c: y,
                bias: l.bias.as_ref(),
                accumulate: true,
            };
            return r.product_cast(rec, &a, w, &out, k, Some(norm));
        }
        self.linear_acc(rec, x, w, l, y)?;
        self.norm_act(rec, y, norm.0, norm.1, h, rstd)
    }

    /// `y += x @ W^T (+ b)` (a residual add in the product's epilogue).
    pub(crate) fn linear_acc(
        &self,
        rec: &mut Recorder,
        x: &Operand,
        w: &Operand,
        l: &Linear,
        y: &Tensor,
    ) -> Result<()> {
        let o = MatmulOpts {
            accumulate: true,
            ..MatmulOpts::nt()
        };
        self.mm(rec, x, w, l.bias.as_ref(), y, o)
    }

    /// `y = x @ W^T (+ b)`.
    pub(crate) fn linear(
        &self,
        rec: &mut Recorder,
        x: &Operand,
        w: &Operand,
        l: &Linear,
        y: &Tensor,
    ) -> Result<()> {
        self.mm(rec, x, w, l.bias.as_ref(), y, MatmulOpts::nt())
    }
}
