//! RMSNorm forward and backward, over whole hidden vectors (`x` [T, D], `w` [D]) or per
//! attention head (`x` [T, H*D], `w` [D]: Qwen3's q_norm/k_norm, one weight for every head).
//! The row length is always `w`'s length; `rstd` (saved for backward) has one entry per row,
//! so its element count (`numel(x) / D`) tells the two uses apart.

use bytemuck::{Pod, Zeroable};

use crate::gpu::{
    grid_1d, Access, DType, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor,
};

static SRC: ShaderSource = crate::shader!("rmsnorm.wgsl" after "row_norm.wgsl");
static FORWARD: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "forward",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};
static BACKWARD_DX: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "backward_dx",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
    ],
};
static DW_PARTIAL: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "dw_partial",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};
static DW_REDUCE: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "dw_reduce",
    bindings: &[Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    rows: u32,
    dim: u32,
    eps: f32,
    accumulate: u32,
    rows_per_block: u32,
    blocks: u32,
    _p: [u32; 2],
}

/// At most this many partial rows of dw (bounds the scratch buffer; each block sums at least
/// 32 rows).
const MAX_BLOCKS: usize = 1024;

/// Validates shapes and returns (rows, dim).
fn dims(
    op: &'static str,
    w: &Tensor,
    rstd: &Tensor,
    rowed: &[(&str, &Tensor)],
) -> Result<(usize, usize)> {
    let x = rowed[0].1;
    let d = w.shape().first().copied().unwrap_or(0);
    let rows = x.numel().checked_div(d).unwrap_or(0);
    let last = x.shape().last().copied().unwrap_or(0);
    let ok = w.shape().len() == 1
        && d > 0
        && last.is_multiple_of(d)
        && rstd.numel() == rows
        && [w, rstd].iter().all(|t| t.dtype() == DType::F32)
        && rowed
            .iter()
            .all(|(_, t)| t.dtype() == DType::F32 && t.shape() == x.shape());
    if !ok {
        let list = rowed
            .iter()
            .map(|(n, t)| format!("{n} {:?} {:?}", t.dtype(), t.shape()))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(GpuError::shape(
            op,
            format!(
                "{list}, w {:?} {:?}, rstd {:?} {:?}: want f32 tensors of one shape whose last \
                 dim is a multiple of w's length D, w [D], rstd with numel(x) / D elements",
                w.dtype(),
                w.shape(),
                rstd.dtype(),
                rstd.shape()
            ),
        ));
    }
    Ok((rows, d))
}

/// `y = w * (x * rstd)` with `rstd[r] = 1 / sqrt(mean(x[r, :]^2) + eps)` saved for backward.
/// x, y f32 [.., k*D] (k = 1 or the number of heads); w f32 [D]; rstd f32 with numel(x)/D
/// elements. `y` must not share `x`'s buffer.
pub fn rmsnorm(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    eps: f32,
    y: &Tensor,
    rstd: &Tensor,
) -> Result<()> {
    let (rows, d) = dims("rmsnorm", w, rstd, &[("x", x), ("y", y)])?;
    let p = Params {
        rows: rows as u32,
        dim: d as u32,
        eps,
        ..Default::default()
    };
    let binds = vec![
        x.binding("rmsnorm")?,
        w.binding("rmsnorm")?,
        y.binding("rmsnorm")?,
        rstd.binding("rmsnorm")?,
    ];
    rec.dispatch(
        &FORWARD,
        &[],
        &p,
        binds,
        grid_1d(rows as u32, rec.max_groups()),
    )
}

/// Gradients of `rmsnorm`: `dx` (overwritten) and `dw` (f32 [D]; overwritten, or added to
/// when `accumulate_dw`, for gradient accumulation). dw is summed over all rows in a fixed
/// order: bitwise reproducible for a given shape.
#[allow(clippy::too_many_arguments)]
pub fn rmsnorm_backward(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
    dw: &Tensor,
    accumulate_dw: bool,
) -> Result<()> {
    let op = "rmsnorm_backward";
    let (rows, d) = dims(op, w, rstd, &[("x", x), ("dy", dy), ("dx", dx)])?;
    if dw.dtype() != DType::F32 || dw.shape() != w.shape() {
        return Err(GpuError::shape(
            op,
            format!(
                "dw {:?} {:?} must be f32 like w {:?}",
                dw.dtype(),
                dw.shape(),
                w.shape()
            ),
        ));
    }
    let rows_per_block = rows.div_ceil(MAX_BLOCKS).max(32);
    let blocks = rows.div_ceil(rows_per_block).max(1);
    let p = Params {
        rows: rows as u32,
        dim: d as u32,
        accumulate: u32::from(accumulate_dw),
        rows_per_block: rows_per_block as u32,
        blocks: blocks as u32,
        ..Default::default()
    };
    let binds = vec![
        x.binding(op)?,
        w.binding(op)?,
        dy.binding(op)?,
        rstd.binding(op)?,
        dx.binding(op)?,
    ];
    rec.dispatch(
        &BACKWARD_DX,
        &[],
        &p,
        binds,
        grid_1d(rows as u32, rec.max_groups()),
    )?;
    let partial = Tensor::zeros(rec.ctx(), &[blocks, d], DType::F32)?;
    let binds = vec![
        x.binding(op)?,
        dy.binding(op)?,
        rstd.binding(op)?,
        partial.binding(op)?,
    ];
    let cols = (d as u32).div_ceil(64);
    rec.dispatch(&DW_PARTIAL, &[], &p, binds, [cols, blocks as u32, 1])?;
    let binds = vec![partial.binding(op)?, dw.binding(op)?];
    // One workgroup per column.
    let grid = grid_1d(d as u32, rec.max_groups());
    rec.dispatch(&DW_REDUCE, &[], &p, binds, grid)
}
