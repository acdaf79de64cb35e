//! Per-row scaled f32 -> f16 cast (shaders/quantize_rows.wgsl): the A operand of
//! [`matmul_rows`](super::matmul_rows), one power-of-two scale per row chosen on the GPU, in one
//! dispatch.

use bytemuck::{Pod, Zeroable};

use crate::gpu::{
    grid_1d, Access, DType, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor,
};

static SRC: ShaderSource = crate::shader!("quantize_rows.wgsl" after "f16_bits.wgsl");
static QUANTIZE_ROWS: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "main",
    bindings: &[Access::Read, Access::ReadWrite, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    rows: u32,
    rows_out: u32,
    k: u32,
    _p0: u32,
}

/// Rows of an operand rounded up to whole 16-row tiles (what [`quantize_rows`] writes).
pub fn padded_rows(m: usize) -> usize {
    m.div_ceil(16).max(1) * 16
}

/// `out[r] = f16(x[r] * s_r)` and `inv[r] = 1 / s_r` for each row of `x` (f32 `[m, k]`), with
/// `s_r` the power of two that puts the row's max |x| in `[2^14, 2^15)` (1 for zero or
/// non-finite maxima). `out` is `[m_pad, k]` and `inv` `[m_pad]` with `m_pad >= m`; rows past
/// `m` become zeros with `inv` 0. With `out` f32 instead of f16, writes `f16(x s) / s` (the same
/// rounding for the f32 kernels). f16 `out` needs an even `k`.
pub fn quantize_rows(rec: &mut Recorder, x: &Tensor, out: &Tensor, inv: &Tensor) -> Result<()> {
    let op = "quantize_rows";
    let dequant = match out.dtype() {
        DType::F16 => false,
        DType::F32 => true,
        _ => return Err(GpuError::shape(op, "out must be f16 or f32")),
    };
    let (m, k) = match *x.shape() {
        [m, k] => (m, k),
        _ => {
            return Err(GpuError::shape(
                op,
                format!("x must be 2-D, got {:?}", x.shape()),
            ))
        }
    };
    let m_pad = out.shape().first().copied().unwrap_or(0);
    if x.dtype() != DType::F32
        || out.shape() != [m_pad, k]
        || m_pad < m
        || inv.dtype() != DType::F32
        || inv.shape() != [m_pad]
        || (!dequant && !k.is_multiple_of(2))
    {
        return Err(GpuError::shape(
            op,
            format!(
                "expects f32 x [m, k], out [m_pad >= m, k] (even k for f16) and f32 inv [m_pad]; \
                 got x {:?} {:?}, out {:?} {:?}, inv {:?} {:?}",
                x.dtype(),
                x.shape(),
                out.dtype(),
                out.shape(),
                inv.dtype(),
                inv.shape()
            ),
        ));
    }
    let p = Params {
        rows: m as u32,
        rows_out: m_pad as u32,
        k: k as u32,
        ..Default::default()
    };
    let x_bind = if m == 0 {
        rec.ctx().unused_binding()
    } else {
        x.binding(op)?
    };
    let binds = vec![x_bind, out.binding(op)?, inv.binding(op)?];
    let constants = [("DEQUANT", dequant as u8 as f64)];
    let groups = grid_1d(m_pad as u32, rec.max_groups());
    rec.dispatch(&QUANTIZE_ROWS, &constants, &p, binds, groups)
}
