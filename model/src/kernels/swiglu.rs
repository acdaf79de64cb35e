//! SwiGLU `h = silu(gate) * up` and its backward, on separate `gate` and `up` tensors of one
//! shape (e.g. [T, F], the outputs of gate_proj and up_proj). Chunked over windows, so
//! tensors larger than one storage binding work.

use bytemuck::{Pod, Zeroable};

use super::elementwise::{groups_for, windows, WG};
use crate::gpu::{Access, DType, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor};

static SRC: ShaderSource = crate::shader!("swiglu.wgsl");
static FORWARD: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "forward",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};
static BACKWARD: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "backward",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    n: u32,
    _p: [u32; 3],
}

fn check(op: &'static str, named: &[(&str, &Tensor)]) -> Result<()> {
    let shape = named[0].1.shape();
    if named
        .iter()
        .any(|(_, t)| t.dtype() != DType::F32 || t.shape() != shape)
    {
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

fn run(rec: &mut Recorder, op: &'static str, k: &KernelEntry, ts: &[&Tensor]) -> Result<()> {
    let limit = rec.ctx().max_binding_bytes();
    for (s, len) in windows(ts[0].numel(), 4, limit) {
        let binds = ts
            .iter()
            .map(|t| t.binding_range(op, s, len))
            .collect::<Result<Vec<_>>>()?;
        let p = Params {
            n: len as u32,
            ..Default::default()
        };
        let g = groups_for(rec, len, WG);
        rec.dispatch(k, &[], &p, binds, g)?;
    }
    Ok(())
}

/// `h = silu(gate) * up`; gate, up, h f32 of one shape.
pub fn swiglu(rec: &mut Recorder, gate: &Tensor, up: &Tensor, h: &Tensor) -> Result<()> {
    check("swiglu", &[("gate", gate), ("up", up), ("h", h)])?;
    run(rec, "swiglu", &FORWARD, &[gate, up, h])
}

/// Gradients of `swiglu` given `dh`: `d_gate`, `d_up` (overwritten), all of gate's shape.
pub fn swiglu_backward(
    rec: &mut Recorder,
    gate: &Tensor,
    up: &Tensor,
    dh: &Tensor,
    d_gate: &Tensor,
    d_up: &Tensor,
) -> Result<()> {
    let op = "swiglu_backward";
    check(
        op,
        &[
            ("gate", gate),
            ("up", up),
            ("dh", dh),
            ("d_gate", d_gate),
            ("d_up", d_up),
        ],
    )?;
    run(rec, op, &BACKWARD, &[gate, up, dh, d_gate, d_up])
}
