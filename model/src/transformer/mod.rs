//! The Qwen3-family decoder (Qwen3; Qwen2 = q/k/v bias and no q/k norm; Llama = neither) on
//! the GPU kernels: training forward with saved activations, backward through every
//! parameter, the chunked LM head with the fused cross-entropy, and AdamW.
//!
//! ```text
//! batch.rs     TokenBatch: flattened ids, key-padding mask, positions
//! params.rs    Params: GPU tensors named like the checkpoint's; grads/moments share the shape
//! forward.rs   embeddings -> layers (saved or recomputed activations) -> final norm
//! lm_head.rs   logits in row chunks, per-token log-probs / loss / entropy, head backward
//! backward.rs  layers in reverse, parameter gradients accumulated
//! optim.rs     global-norm clipping and AdamW
//! train.rs     next-token targets, loss + backward of a batch, zeroing gradients
//! memory.rs    memory plan from the config and batch shape
//! precision.rs f32 or mixed-precision (f16 tensor-core) training matmuls
//! ```

mod backward;
mod batch;
mod forward;
pub(crate) mod half_weights;
mod lm_head;
mod memory;
mod optim;
mod params;
pub(crate) mod precision;
mod train;

pub use batch::{BatchTensors, TokenBatch};
pub(crate) use forward::f32_zeros;
pub use forward::{Activations, LayerActs, MlpActs, QkNormActs, QkvActs};
pub use lm_head::HeadOutputs;
pub use memory::MemoryPlan;
pub use optim::{Optimizer, OptimizerConfig};
pub use params::{Attention, Layer, Linear, Mlp, Params};
pub use precision::{MatmulPrecision, PRECISION_ENV};
pub use train::next_token_targets;

use crate::gpu::{GpuContext, Result};
use crate::hf::{ModelConfig, Weights};
use crate::kernels::attention::{AttentionHeads, AttentionKernel};
use crate::kernels::rope::RopeTable;

pub struct Transformer {
    pub cfg: ModelConfig,
    pub params: Params,
    pub(crate) ctx: GpuContext,
    pub(crate) rope: RopeTable,
    pub(crate) heads: AttentionHeads,
    /// Training forwards keep only each layer's input and the backward recomputes the layer
    /// (less activation memory for about one more forward per step). Off by default.
    pub recompute_activations: bool,
    /// Arithmetic of the training matmuls (default `Auto`: tensor cores where offered).
    pub(crate) matmul_precision: MatmulPrecision,
    pub(crate) half_weights: half_weights::HalfWeightsCell,
}

impl Transformer {
    /// Uploads `weights` (shapes already checked against `cfg` by the loader). The RoPE table
    /// covers `max_positions` (at most the config's `max_position_embeddings`).
    pub fn new(
        ctx: &GpuContext,
        cfg: &ModelConfig,
        weights: &Weights,
        max_positions: usize,
    ) -> Result<Self> {
        let rope = RopeTable::new(
            ctx,
            cfg.head_dim,
            cfg.rope_theta,
            max_positions.min(cfg.max_position_embeddings).max(1),
        )?;
        Ok(Transformer {
            cfg: cfg.clone(),
            params: Params::upload(ctx, weights)?,
            ctx: ctx.clone(),
            rope,
            heads: AttentionHeads::new(
                cfg.num_attention_heads,
                cfg.num_key_value_heads,
                cfg.head_dim,
            ),
            recompute_activations: false,
            matmul_precision: MatmulPrecision::Auto,
            half_weights: Default::default(),
        })
    }

    /// Forces an attention kernel family (default `Auto`), e.g. to compare them end to end.
    pub fn with_attention_kernel(
        mut self,
        kernel: crate::kernels::attention::AttentionKernel,
    ) -> Self {
        self.heads = self.heads.with_kernel(kernel);
        self
    }

    /// Switches activation recomputation for later training forwards.
    pub fn with_recompute(mut self, on: bool) -> Self {
        self.recompute_activations = on;
        self
    }

    /// Chooses the arithmetic of later training forwards and backwards (see `precision.rs`).
    pub fn with_matmul_precision(mut self, p: MatmulPrecision) -> Self {
        if p != self.matmul_precision {
            self.half_weights = Default::default();
        }
        self.matmul_precision = p;
        self
    }

    /// The precision training matmuls run in on this adapter (`Auto` resolved); errors when
    /// `F16TensorCore` was asked for on an adapter without cooperative matrices.
    pub fn matmul_precision(&self) -> Result<MatmulPrecision> {
        self.matmul_precision.resolve(&self.ctx)
    }

    /// The heads that training and prefill attention run with: under `Auto`, f16
    /// tensor-core attention only when the matmuls run on the tensor cores too, so that
    /// `MatmulPrecision::F32` keeps every product in f32.
    pub(crate) fn attention_heads(&self) -> Result<AttentionHeads> {
        let h = self.heads;
        let tensor_core = h.kernel == AttentionKernel::Auto
            && h.resolved_kernel(&self.ctx) == AttentionKernel::TensorCore;
        if tensor_core && self.matmul_precision()? != MatmulPrecision::F16TensorCore {
            return Ok(h.with_kernel(AttentionKernel::Tiled));
        }
        Ok(h)
    }

    pub fn ctx(&self) -> &GpuContext {
        &self.ctx
    }

    pub fn max_positions(&self) -> usize {
        self.rope.max_positions
    }

    pub(crate) fn eps(&self) -> f32 {
        self.cfg.rms_norm_eps as f32
    }
}
