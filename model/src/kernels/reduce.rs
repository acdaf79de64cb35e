//! Sum, mean and max of an f32 tensor of any length (optionally masked) into a 1-element tensor,
//! without a readback: one pass of per-workgroup partials over binding-sized windows, then one
//! workgroup folds the partials. Deterministic (no atomics, fixed reduction order).

use bytemuck::{Pod, Zeroable};

use super::window_plan::{fits_u32, flat_windows};
use crate::gpu::{
    grid_1d, Access, DType, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor,
};

static SRC: ShaderSource = crate::shader!("reduce.wgsl");
static PARTIAL: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "partial",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};
static FINISH: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "finish",
    bindings: &[Access::Read, Access::ReadWrite],
};

/// Elements one workgroup of `partial` reduces (WG x PER_THREAD in the shader).
const BLOCK: usize = 256 * 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    /// Sum over the included elements divided by their number (NaN when there are none).
    Mean,
    /// -inf when no element is included.
    Max,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    n: u32,
    part_off: u32,
    op: u32,
    masked: u32,
    _p: [u32; 4],
}

/// `out[0] = op(x[i] for i where mask[i] != 0)`. `x` f32 of any shape, `mask` u32 of x's
/// element count (absent: every element), `out` f32 with exactly one element.
pub fn reduce(
    rec: &mut Recorder,
    op: ReduceOp,
    x: &Tensor,
    mask: Option<&Tensor>,
    out: &Tensor,
) -> Result<()> {
    const OP: &str = "reduce";
    let err = |why: &str| {
        GpuError::shape(
            OP,
            format!(
                "{why}: {op:?} of x {:?} {:?}{}, out {:?} {:?}",
                x.shape(),
                x.dtype(),
                mask.map(|m| format!(", mask {:?} {:?}", m.shape(), m.dtype()))
                    .unwrap_or_default(),
                out.shape(),
                out.dtype()
            ),
        )
    };
    if x.dtype() != DType::F32 || out.dtype() != DType::F32 {
        return Err(err("x and out must be f32"));
    }
    if out.numel() != 1 {
        return Err(err("out must have exactly one element"));
    }
    if let Some(m) = mask {
        if m.dtype() != DType::U32 || m.numel() != x.numel() {
            return Err(err("mask must be u32 with x's element count"));
        }
    }
    let n = x.numel();
    let ctx = rec.ctx().clone();
    let windows = flat_windows(&ctx, n);
    let total_parts: usize = windows.iter().map(|w| w.len.div_ceil(BLOCK)).sum();
    let partials = Tensor::zeros(&ctx, &[2 * total_parts.max(1)], DType::U32)?;
    let op_code = match op {
        ReduceOp::Sum => 0,
        ReduceOp::Mean => 1,
        ReduceOp::Max => 2,
    };
    let mut part_off = 0;
    for w in &windows {
        let groups = w.len.div_ceil(BLOCK);
        let p = Params {
            n: fits_u32(OP, "window", w.len)?,
            part_off: fits_u32(OP, "partials", part_off)?,
            op: op_code,
            masked: u32::from(mask.is_some()),
            _p: [0; 4],
        };
        // Partials of all windows share one buffer (n / 512 bytes): bound whole.
        let binds = vec![
            x.binding_range(OP, w.start, w.len)?,
            match mask {
                Some(m) => m.binding_range(OP, w.start, w.len)?,
                None => ctx.unused_binding(),
            },
            partials.binding(OP)?,
        ];
        rec.dispatch(
            &PARTIAL,
            &[],
            &p,
            binds,
            grid_1d(groups as u32, rec.max_groups()),
        )?;
        part_off += groups;
    }
    let p = Params {
        n: fits_u32(OP, "partials", total_parts)?,
        part_off: 0,
        op: op_code,
        masked: 0,
        _p: [0; 4],
    };
    rec.dispatch(
        &FINISH,
        &[],
        &p,
        vec![partials.binding(OP)?, out.binding(OP)?],
        [1, 1, 1],
    )
}
