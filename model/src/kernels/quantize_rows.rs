//! Per-row scaled f32 -> f16 cast (shaders/quantize_rows.wgsl): the A operand of
//! [`matmul_rows`](super::matmul_rows), one power-of-two scale per row chosen on the GPU, in one
//! dispatch; optionally of an RMSNorm's output computed in the same dispatch.

use bytemuck::{Pod, Zeroable};

use crate::gpu::{
    grid_1d, Access, DType, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor,
};

static SRC: ShaderSource = crate::shader!(
    "quantize_rows.wgsl" after "f16_bits.wgsl", "row_norm.wgsl", "row_cast.wgsl"
);
// Both entries share `value`, which names the norm weight, so both bind it (`main` an unused
// buffer).
static QUANTIZE_ROWS: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "main",
    bindings: &[
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::Read,
    ],
};
static NORM_QUANTIZE_ROWS: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "norm",
    bindings: &[
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::Read,
    ],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    rows: u32,
    rows_out: u32,
    k: u32,
    eps: f32,
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
    cast(rec, "quantize_rows", x, None, out, inv)
}

/// [`quantize_rows`] of `rmsnorm(x, w, eps)` (`kernels::rmsnorm`'s output, bit for bit) in one
/// dispatch, without writing the normalised rows anywhere else.
pub fn quantize_rows_normed(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    eps: f32,
    out: &Tensor,
    inv: &Tensor,
) -> Result<()> {
    cast(rec, "quantize_rows_normed", x, Some((w, eps)), out, inv)
}

fn cast(
    rec: &mut Recorder,
    op: &'static str,
    x: &Tensor,
    norm: Option<(&Tensor, f32)>,
    out: &Tensor,
    inv: &Tensor,
) -> Result<()> {
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
        || norm.is_some_and(|(w, _)| w.dtype() != DType::F32 || w.shape() != [k])
    {
        return Err(GpuError::shape(
            op,
            format!(
                "expects f32 x [m, k], out [m_pad >= m, k] (even k for f16), f32 inv [m_pad] \
                 and f32 norm weight [k]; got x {:?} {:?}, out {:?} {:?}, inv {:?} {:?}, w {:?}",
                x.dtype(),
                x.shape(),
                out.dtype(),
                out.shape(),
                inv.dtype(),
                inv.shape(),
                norm.map(|(w, _)| w.shape().to_vec())
            ),
        ));
    }
    let p = Params {
        rows: m as u32,
        rows_out: m_pad as u32,
        k: k as u32,
        eps: norm.map_or(0.0, |(_, e)| e),
    };
    let x_bind = if m == 0 {
        rec.ctx().unused_binding()
    } else {
        x.binding(op)?
    };
    let (entry, w_bind) = match norm {
        Some((w, _)) => (&NORM_QUANTIZE_ROWS, w.binding(op)?),
        None => (&QUANTIZE_ROWS, rec.ctx().unused_binding()),
    };
    let binds = vec![x_bind, out.binding(op)?, inv.binding(op)?, w_bind];
    let constants = [("DEQUANT", dequant as u8 as f64)];
    let groups = grid_1d(m_pad as u32, rec.max_groups());
    rec.dispatch(entry, &constants, &p, binds, groups)
}
