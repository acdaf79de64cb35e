//! Element-wise f32 ops: residual add, `y += alpha * x` (gradient accumulation), scale, fill.
//! Every op walks the tensor in windows of at most one storage binding, so AdamW-size tensors
//! (larger than lavapipe's 128 MiB binding) work unchanged.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use crate::gpu::{
    grid_1d, Access, DType, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor,
};

static SRC: ShaderSource = crate::shader!("elementwise.wgsl");
static ADD: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "add",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};
static AXPY: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "axpy",
    bindings: &[Access::Read, Access::ReadWrite],
};
static SCALE_FILL: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "scale_fill",
    bindings: &[Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    n: u32,
    alpha: f32,
    value: f32,
    fill: u32,
}

/// Invocations per workgroup of the element-wise kernels (one element each).
pub(crate) const WG: u32 = 256;

/// Windows `[start, start + len)` covering `n` elements of `elem_bytes` each, every window at
/// most `limit_bytes` long and starting at a multiple of 128 elements (a 256-byte boundary for
/// both f32 and packed f16, the strictest storage offset alignment wgpu allows).
pub(crate) fn windows(n: usize, elem_bytes: usize, limit_bytes: u64) -> Vec<(usize, usize)> {
    let fit = (limit_bytes / elem_bytes as u64) as usize;
    let w = if fit >= n {
        n.max(1)
    } else {
        (fit / 128 * 128).max(128)
    };
    (0..n).step_by(w).map(|s| (s, w.min(n - s))).collect()
}

/// Workgroup grid for `len` elements at `per_group` elements per workgroup.
pub(crate) fn groups_for(rec: &Recorder, len: usize, per_group: u32) -> [u32; 3] {
    grid_1d((len as u32).div_ceil(per_group), rec.max_groups())
}

fn check_f32(op: &'static str, named: &[(&str, &Tensor)]) -> Result<()> {
    let shape = named[0].1.shape();
    let bad = named
        .iter()
        .any(|(_, t)| t.dtype() != DType::F32 || t.shape() != shape);
    if bad {
        let list = named
            .iter()
            .map(|(n, t)| format!("{n} {:?} {:?}", t.dtype(), t.shape()))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(GpuError::shape(
            op,
            format!("operands must be f32 of one shape: {list}"),
        ));
    }
    Ok(())
}

/// True when two tensors share a buffer (wgpu rejects binding one buffer read-only and
/// read-write in one dispatch, so in-place forms have their own entry points).
pub(crate) fn same_buffer(a: &Tensor, b: &Tensor) -> bool {
    Arc::ptr_eq(&a.buffer, &b.buffer)
}

/// `out = a + b` (residual add). `out` must not share a buffer with `a` or `b`; for the
/// in-place form use `axpy(rec, 1.0, b, a)`.
pub fn add(rec: &mut Recorder, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    check_f32("add", &[("a", a), ("b", b), ("out", out)])?;
    if same_buffer(out, a) || same_buffer(out, b) {
        return Err(GpuError::shape(
            "add",
            format!(
                "out {:?} aliases an input; use axpy(1.0, x, y) for y += x",
                out.shape()
            ),
        ));
    }
    let limit = rec.ctx().max_binding_bytes();
    for (s, len) in windows(out.numel(), 4, limit) {
        let p = Params {
            n: len as u32,
            ..Default::default()
        };
        let binds = vec![
            a.binding_range("add", s, len)?,
            b.binding_range("add", s, len)?,
            out.binding_range("add", s, len)?,
        ];
        let g = groups_for(rec, len, WG);
        rec.dispatch(&ADD, &[], &p, binds, g)?;
    }
    Ok(())
}

/// `y += alpha * x` (gradient accumulation, in-place residual add).
pub fn axpy(rec: &mut Recorder, alpha: f32, x: &Tensor, y: &Tensor) -> Result<()> {
    check_f32("axpy", &[("x", x), ("y", y)])?;
    if same_buffer(x, y) {
        return scale(rec, 1.0 + alpha, y);
    }
    let limit = rec.ctx().max_binding_bytes();
    for (s, len) in windows(y.numel(), 4, limit) {
        let p = Params {
            n: len as u32,
            alpha,
            ..Default::default()
        };
        let binds = vec![
            x.binding_range("axpy", s, len)?,
            y.binding_range("axpy", s, len)?,
        ];
        let g = groups_for(rec, len, WG);
        rec.dispatch(&AXPY, &[], &p, binds, g)?;
    }
    Ok(())
}

fn scale_fill(rec: &mut Recorder, op: &'static str, y: &Tensor, p: Params) -> Result<()> {
    check_f32(op, &[("y", y)])?;
    let limit = rec.ctx().max_binding_bytes();
    for (s, len) in windows(y.numel(), 4, limit) {
        let p = Params { n: len as u32, ..p };
        let g = groups_for(rec, len, WG);
        rec.dispatch(&SCALE_FILL, &[], &p, vec![y.binding_range(op, s, len)?], g)?;
    }
    Ok(())
}

/// `y *= alpha`.
pub fn scale(rec: &mut Recorder, alpha: f32, y: &Tensor) -> Result<()> {
    scale_fill(
        rec,
        "scale",
        y,
        Params {
            alpha,
            ..Default::default()
        },
    )
}

/// `y = value` everywhere (overwrites whatever was there, NaN included).
pub fn fill(rec: &mut Recorder, y: &Tensor, value: f32) -> Result<()> {
    scale_fill(
        rec,
        "fill",
        y,
        Params {
            value,
            fill: 1,
            ..Default::default()
        },
    )
}
