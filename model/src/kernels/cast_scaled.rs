//! Scaled f32 -> f16 cast of a matmul operand for mixed-precision training
//! (shaders/cast_scaled.wgsl): a power-of-two scale per tensor, chosen on the GPU from its
//! max |x| so that the largest value lands in [2^14, 2^15), keeps small gradients out of f16's
//! underflow and large activations out of its overflow. The scale never comes back to the
//! host: `stats` holds `[bits of max |x|, 1/s]` and the cooperative-matrix matmul reads 1/s.

use bytemuck::{Pod, Zeroable};

use super::elementwise::{fill, groups_for, windows, WG};
use crate::gpu::{Access, DType, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor};

static SRC: ShaderSource = crate::shader!("cast_scaled.wgsl" after "f16_bits.wgsl");
static ABSMAX: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "absmax",
    bindings: &[Access::Read, Access::ReadWrite],
};
static QUANTIZE: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "quantize",
    bindings: &[Access::Read, Access::ReadWrite, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    n: u32,
    _p: [u32; 3],
}

/// `out = f16(x * s)` with `s` a power of two per tensor; `stats` (f32 `[2]`, any contents)
/// receives the bits of max |x| and `1/s`. With `out` f32 instead of f16, writes the f32 value
/// `f16(x * s) / s` (the same rounding, for running the f16 numerics through f32 kernels).
pub fn cast_scaled(rec: &mut Recorder, x: &Tensor, stats: &Tensor, out: &Tensor) -> Result<()> {
    cast_scaled_group(rec, &[x], stats, &[out])
}

/// [`cast_scaled`] of several tensors with one scale, chosen from the max |x| over all of them
/// (weights that are multiplied as one matrix, e.g. q, k and v stacked).
pub fn cast_scaled_group(
    rec: &mut Recorder,
    xs: &[&Tensor],
    stats: &Tensor,
    outs: &[&Tensor],
) -> Result<()> {
    let op = "cast_scaled";
    let Some(first) = outs.first() else {
        return Err(GpuError::shape(op, "no tensors to cast"));
    };
    let dequant = match first.dtype() {
        DType::F16 => false,
        DType::F32 => true,
        _ => return Err(GpuError::shape(op, "out must be f16 or f32")),
    };
    let bad = xs.len() != outs.len()
        || stats.dtype() != DType::F32
        || stats.numel() != 2
        || xs.iter().zip(outs).any(|(x, out)| {
            x.dtype() != DType::F32 || x.shape() != out.shape() || out.dtype() != first.dtype()
        });
    if bad {
        return Err(GpuError::shape(
            op,
            format!(
                "expects f32 xs and outs of one dtype (f16 or f32), pairwise of one shape, and \
                 f32 stats [2]; got xs {:?}, outs {:?}, stats {:?}",
                xs.iter()
                    .map(|x| (x.dtype(), x.shape().to_vec()))
                    .collect::<Vec<_>>(),
                outs.iter()
                    .map(|x| (x.dtype(), x.shape().to_vec()))
                    .collect::<Vec<_>>(),
                stats.shape()
            ),
        ));
    }
    fill(rec, stats, 0.0)?;
    for x in xs {
        absmax_bits(rec, x, stats.binding(op)?)?;
    }
    let constants = [("DEQUANT", dequant as u8 as f64)];
    for (x, out) in xs.iter().zip(outs) {
        for (s, len) in windows(x.numel(), 4, rec.ctx().max_binding_bytes()) {
            let p = Params {
                n: len as u32,
                ..Default::default()
            };
            let binds = vec![
                x.binding_range(op, s, len)?,
                stats.binding(op)?,
                out.binding_range(op, s, len)?,
            ];
            let g = groups_for(rec, len.div_ceil(2), WG);
            rec.dispatch(&QUANTIZE, &constants, &p, binds, g)?;
        }
    }
    Ok(())
}

/// Writes the bits of max |x| (f32 `x`) into the first word of `slot` (a view of at least one
/// f32 word that holds 0 beforehand): the absmax pass of [`cast_scaled`] on its own, for
/// kernels that pick their own scale from it (tensor-core attention's backward).
pub(crate) fn absmax_bits(rec: &mut Recorder, x: &Tensor, slot: crate::gpu::Binding) -> Result<()> {
    let op = "absmax";
    if x.dtype() != DType::F32 {
        return Err(GpuError::shape(
            op,
            format!("x must be f32, got {:?}", x.dtype()),
        ));
    }
    let limit = rec.ctx().max_binding_bytes();
    for (s, len) in windows(x.numel(), 4, limit) {
        let p = Params {
            n: len as u32,
            ..Default::default()
        };
        let binds = vec![x.binding_range(op, s, len)?, slot.clone()];
        let g = groups_for(rec, len.div_ceil(4), WG);
        rec.dispatch(&ABSMAX, &[], &p, binds, g)?;
    }
    Ok(())
}

/// log2 of the scale the kernel picks for a tensor whose max |x| has the bits `absmax`
/// (host mirror of the shader's rule, for tests and documentation).
pub fn scale_log2(absmax: u32) -> i32 {
    let e = ((absmax >> 23) & 0xff) as i32;
    if absmax == 0 || e == 255 {
        return 0;
    }
    (14 - (e.max(1) - 127)).clamp(-126, 126)
}
