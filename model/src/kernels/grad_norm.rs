//! Global L2 norm of many gradient tensors and the clip coefficient
//! `min(1, max_norm / (norm + 1e-6))`, both left on the GPU: AdamW reads the coefficient as its
//! gradient scale, so clipping costs no readback; the norm is read back only for logging.

use bytemuck::{Pod, Zeroable};

use super::window_plan::{fits_u32, flat_windows};
use crate::gpu::{
    grid_1d, Access, DType, GpuContext, GpuError, KernelEntry, Recorder, Result, ShaderSource,
    Tensor,
};

static SRC: ShaderSource = crate::shader!("grad_norm.wgsl");
static SUMSQ: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "sumsq",
    bindings: &[Access::Read, Access::ReadWrite],
};
static FINISH: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "finish",
    bindings: &[Access::Read, Access::ReadWrite, Access::ReadWrite],
};

/// Elements one workgroup of `sumsq` reduces (WG x PER_THREAD in the shader).
const BLOCK: usize = 256 * 16;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    n: u32,
    part_off: u32,
    max_norm: f32,
    _p: u32,
}

/// The two 1-element f32 results of `clip_grad_norm`.
#[derive(Clone, Debug)]
pub struct GradNorm {
    /// sqrt(sum over all tensors of sum(g^2)), before clipping.
    pub norm: Tensor,
    /// min(1, max_norm / (norm + 1e-6)): pass to `adamw_step` as its gradient scale.
    pub clip: Tensor,
}

impl GradNorm {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        Ok(GradNorm {
            norm: Tensor::zeros(ctx, &[1], DType::F32)?,
            clip: Tensor::zeros(ctx, &[1], DType::F32)?,
        })
    }

    /// Reads the norm back (waits for submitted work): for logging only.
    pub fn read_norm(&self) -> Result<f32> {
        Ok(self.norm.to_f32_vec()?[0])
    }
}

/// Records the global norm of `grads` (f32 tensors of any shapes and sizes) and the clip
/// coefficient for `max_norm` (> 0; `f32::INFINITY` never clips) into `out`.
pub fn clip_grad_norm(
    rec: &mut Recorder,
    grads: &[&Tensor],
    max_norm: f32,
    out: &GradNorm,
) -> Result<()> {
    const OP: &str = "clip_grad_norm";
    for (i, g) in grads.iter().enumerate() {
        if g.dtype() != DType::F32 {
            return Err(GpuError::shape(
                OP,
                format!(
                    "gradient {i} must be f32, got {:?} {:?}",
                    g.dtype(),
                    g.shape()
                ),
            ));
        }
    }
    for (name, t) in [("norm", &out.norm), ("clip", &out.clip)] {
        if t.dtype() != DType::F32 || t.numel() != 1 {
            return Err(GpuError::shape(
                OP,
                format!(
                    "{name} must be one f32 element, got {:?} {:?}",
                    t.dtype(),
                    t.shape()
                ),
            ));
        }
    }
    if max_norm.is_nan() || max_norm <= 0.0 {
        return Err(GpuError::shape(
            OP,
            format!("max_norm {max_norm} must be > 0"),
        ));
    }
    let ctx = rec.ctx().clone();
    let plan: Vec<_> = grads
        .iter()
        .flat_map(|g| {
            flat_windows(&ctx, g.numel())
                .into_iter()
                .map(move |w| (*g, w))
        })
        .collect();
    let total: usize = plan.iter().map(|(_, w)| w.len.div_ceil(BLOCK)).sum();
    let partials = Tensor::zeros(&ctx, &[total.max(1)], DType::F32)?;
    let mut part_off = 0;
    for (g, w) in plan {
        let groups = w.len.div_ceil(BLOCK);
        let p = Params {
            n: fits_u32(OP, "window", w.len)?,
            part_off: fits_u32(OP, "partials", part_off)?,
            max_norm,
            _p: 0,
        };
        let binds = vec![g.binding_range(OP, w.start, w.len)?, partials.binding(OP)?];
        rec.dispatch(
            &SUMSQ,
            &[],
            &p,
            binds,
            grid_1d(groups as u32, rec.max_groups()),
        )?;
        part_off += groups;
    }
    let p = Params {
        n: fits_u32(OP, "partials", total)?,
        part_off: 0,
        max_norm,
        _p: 0,
    };
    let binds = vec![
        partials.binding(OP)?,
        out.norm.binding(OP)?,
        out.clip.binding(OP)?,
    ];
    rec.dispatch(&FINISH, &[], &p, binds, [1, 1, 1])
}
