//! f32 <-> f16 casts (f16 packed two per u32 word). Round to nearest even with overflow to
//! infinity and f16 subnormals, bit-identical to `half::f16::from_f32` for every non-NaN input
//! (NaNs stay NaN, made quiet, sign and top payload bits kept). Chunked over windows, so
//! tensors larger than one storage binding work.

use bytemuck::{Pod, Zeroable};

use super::elementwise::{groups_for, windows, WG};
use crate::gpu::{Access, DType, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor};

static SRC: ShaderSource = crate::shader!("cast.wgsl" after "f16_bits.wgsl");
static TO_F16: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "f32_to_f16",
    bindings: &[Access::Read, Access::ReadWrite],
};
static TO_F32: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "f16_to_f32",
    bindings: &[Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    n: u32,
    _p: [u32; 3],
}

fn cast(
    rec: &mut Recorder,
    op: &'static str,
    k: &KernelEntry,
    x: &Tensor,
    out: &Tensor,
    from: DType,
    to: DType,
) -> Result<()> {
    if x.dtype() != from || out.dtype() != to || x.shape() != out.shape() {
        return Err(GpuError::shape(
            op,
            format!(
                "expects {from:?} -> {to:?} of one shape, got x {:?} {:?}, out {:?} {:?}",
                x.dtype(),
                x.shape(),
                out.dtype(),
                out.shape()
            ),
        ));
    }
    // Windows sized for the f32 side (the larger); starts are 128-element aligned, so the
    // packed f16 window starts on a whole word too.
    let limit = rec.ctx().max_binding_bytes();
    for (s, len) in windows(x.numel(), 4, limit) {
        let p = Params {
            n: len as u32,
            ..Default::default()
        };
        let binds = vec![x.binding_range(op, s, len)?, out.binding_range(op, s, len)?];
        // One invocation per packed word (two elements).
        let g = groups_for(rec, len.div_ceil(2), WG);
        rec.dispatch(k, &[], &p, binds, g)?;
    }
    Ok(())
}

/// `out = f16(x)`: x f32, out f16, same shape.
pub fn f32_to_f16(rec: &mut Recorder, x: &Tensor, out: &Tensor) -> Result<()> {
    cast(rec, "f32_to_f16", &TO_F16, x, out, DType::F32, DType::F16)
}

/// `out = f32(x)`: x f16, out f32, same shape (exact).
pub fn f16_to_f32(rec: &mut Recorder, x: &Tensor, out: &Tensor) -> Result<()> {
    cast(rec, "f16_to_f32", &TO_F32, x, out, DType::F16, DType::F32)
}
