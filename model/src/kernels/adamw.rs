//! AdamW (decoupled weight decay, PyTorch semantics) over one parameter tensor and its moments;
//! the step-dependent bias corrections are computed on the host in f64. The gradient may be
//! scaled by a 1-element GPU tensor (the clip coefficient from `clip_grad_norm`), so clipping
//! needs no readback. Tensors larger than one binding are updated in aligned windows.

use bytemuck::{Pod, Zeroable};

use super::window_plan::{fits_u32, flat_windows};
use crate::gpu::{
    grid_1d, Access, DType, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor,
};

static SRC: ShaderSource = crate::shader!("adamw.wgsl");
static ADAMW: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "main",
    bindings: &[
        Access::ReadWrite, // param
        Access::Read,      // grad
        Access::ReadWrite, // first moment
        Access::ReadWrite, // second moment
        Access::Read,      // gradient scale [1]
    ],
};

/// Hyper-parameters; `weight_decay` 0 for tensors that take none (norms, biases).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    /// PyTorch's defaults.
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    n: u32,
    has_scale: u32,
    b1: f32,
    b2: f32,
    lr: f32,
    decay: f32,
    eps: f32,
    inv_bc1: f32,
    inv_sqrt_bc2: f32,
    _p: [u32; 3],
}

/// The optimizer's moments of one parameter tensor.
#[derive(Clone, Debug)]
pub struct AdamWState {
    /// First moment (m), same shape as the parameter.
    pub m: Tensor,
    /// Second moment (v), same shape as the parameter.
    pub v: Tensor,
}

impl AdamWState {
    /// Zero moments for `param` (PyTorch's initial state).
    pub fn zeros_like(param: &Tensor) -> Result<Self> {
        Ok(AdamWState {
            m: Tensor::zeros(param.ctx(), param.shape(), DType::F32)?,
            v: Tensor::zeros(param.ctx(), param.shape(), DType::F32)?,
        })
    }
}

/// One AdamW update of `param` in place with `grad` (times `grad_scale[0]` when given) at step
/// `step` (1-based, as PyTorch counts). `param`, `grad` and the moments in `state`: f32 of
/// the same shape, moments updated in place; `grad_scale`: f32 with one element.
pub fn adamw_step(
    rec: &mut Recorder,
    cfg: &AdamWConfig,
    step: u64,
    param: &Tensor,
    grad: &Tensor,
    state: &AdamWState,
    grad_scale: Option<&Tensor>,
) -> Result<()> {
    const OP: &str = "adamw";
    let (m, v) = (&state.m, &state.v);
    let err = |why: &str| {
        GpuError::shape(
            OP,
            format!(
                "{why}: param {:?} {:?}, grad {:?} {:?}, m {:?} {:?}, v {:?} {:?}{}",
                param.shape(),
                param.dtype(),
                grad.shape(),
                grad.dtype(),
                m.shape(),
                m.dtype(),
                v.shape(),
                v.dtype(),
                grad_scale
                    .map(|s| format!(", grad_scale {:?} {:?}", s.shape(), s.dtype()))
                    .unwrap_or_default()
            ),
        )
    };
    let all = [param, grad, m, v];
    if all.iter().any(|t| t.dtype() != DType::F32) {
        return Err(err("all tensors must be f32"));
    }
    if all.iter().any(|t| t.shape() != param.shape()) {
        return Err(err("param, grad, m and v must have the same shape"));
    }
    if let Some(s) = grad_scale {
        if s.dtype() != DType::F32 || s.numel() != 1 {
            return Err(err("grad_scale must be one f32 element"));
        }
    }
    for i in 0..all.len() {
        for j in i + 1..all.len() {
            if all[i].buffer() == all[j].buffer() {
                return Err(err("param, grad, m and v must be distinct buffers"));
            }
        }
    }
    if step == 0 {
        return Err(err("step counts from 1"));
    }
    let (b1, b2, lr) = (cfg.beta1 as f64, cfg.beta2 as f64, cfg.lr as f64);
    let t = step.min(i32::MAX as u64) as i32;
    let p = Params {
        n: 0,
        has_scale: u32::from(grad_scale.is_some()),
        b1: cfg.beta1,
        b2: cfg.beta2,
        lr: cfg.lr,
        decay: (1.0 - lr * cfg.weight_decay as f64) as f32,
        eps: cfg.eps,
        inv_bc1: (1.0 / (1.0 - b1.powi(t))) as f32,
        inv_sqrt_bc2: (1.0 / (1.0 - b2.powi(t)).sqrt()) as f32,
        _p: [0; 3],
    };
    let ctx = rec.ctx().clone();
    let scale_b = match grad_scale {
        Some(s) => s.binding(OP)?,
        None => ctx.unused_binding(),
    };
    for w in flat_windows(&ctx, param.numel()) {
        let p = Params {
            n: fits_u32(OP, "window", w.len)?,
            ..p
        };
        let binds = vec![
            param.binding_range(OP, w.start, w.len)?,
            grad.binding_range(OP, w.start, w.len)?,
            m.binding_range(OP, w.start, w.len)?,
            v.binding_range(OP, w.start, w.len)?,
            scale_b.clone(),
        ];
        let groups = (w.len.div_ceil(256)) as u32;
        rec.dispatch(&ADAMW, &[], &p, binds, grid_1d(groups, rec.max_groups()))?;
    }
    Ok(())
}
