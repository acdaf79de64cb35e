//! Rotary position embedding in HF Qwen/Llama's half-rotation form, any theta, explicit u32
//! positions per token (left padding works), in place or out of place, on q [T, Hq*D] and
//! k [T, Hkv*D]. The backward is the rotation by the negative angle (`inverse = true`).
//!
//! cos/sin are tabulated once on the host, in f32, exactly as HF computes them:
//! `inv_freq = 1.0 / (theta ** (arange(0, D, 2, float32) / D))` (f32 pow), `angle = pos * inv_freq`
//! (one f32 product), `cos(angle)`, `sin(angle)` in f32 (libm, within 1 ulp of torch's f32
//! cos/sin). GPU `cos`/`sin` are far less accurate (Vulkan allows 2^-11 absolute error, and
//! large angles lose all precision on some drivers), so logits could not match transformers.

use bytemuck::{Pod, Zeroable};

use super::elementwise::{groups_for, same_buffer, WG};
use crate::gpu::{
    Access, DType, GpuContext, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor,
};

static SRC: ShaderSource = crate::shader!("rope.wgsl");
static ROPE: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "rope",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};
static ROPE_INPLACE: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "rope_inplace",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    tokens: u32,
    heads: u32,
    half: u32,
    table_rows: u32,
    sign: f32,
    nan: f32,
    _p: [u32; 2],
}

/// HF's `inv_freq` for `head_dim` and `theta`, in f32 as torch computes it.
pub fn inv_freq(head_dim: usize, theta: f64) -> Vec<f32> {
    let base = theta as f32;
    (0..head_dim / 2)
        .map(|i| 1.0f32 / base.powf((2 * i) as f32 / head_dim as f32))
        .collect()
}

/// cos/sin table on the device: row `pos` holds `[cos(pos*f_0) .. cos(pos*f_{D/2-1}),
/// sin(pos*f_0) .. sin(pos*f_{D/2-1})]` for positions `0..max_positions`.
/// A position outside the table makes the kernel write NaN for that token (never an
/// out-of-bounds read).
pub struct RopeTable {
    pub table: Tensor,
    pub head_dim: usize,
    pub theta: f64,
    pub max_positions: usize,
}

impl RopeTable {
    pub fn new(
        ctx: &GpuContext,
        head_dim: usize,
        theta: f64,
        max_positions: usize,
    ) -> Result<Self> {
        if head_dim == 0 || !head_dim.is_multiple_of(2) || theta.is_nan() || theta <= 0.0 {
            return Err(GpuError::shape(
                "rope",
                format!("head_dim {head_dim} must be even and positive, theta {theta} positive"),
            ));
        }
        let f = inv_freq(head_dim, theta);
        let half = head_dim / 2;
        let mut data = vec![0f32; max_positions * head_dim];
        for (pos, row) in data.chunks_mut(head_dim).enumerate() {
            for (k, &fk) in f.iter().enumerate() {
                let angle = pos as f32 * fk;
                row[k] = angle.cos();
                row[half + k] = angle.sin();
            }
        }
        Ok(RopeTable {
            table: Tensor::from_f32(ctx, &[max_positions, head_dim], &data)?,
            head_dim,
            theta,
            max_positions,
        })
    }
}

/// Rotates every head of `x` (f32 [T, H*D], D = `table.head_dim`) by the angles of its token's
/// position (`positions` u32 [T]). Writes `out` (same shape as x, not sharing its buffer), or
/// `x` itself when `out` is None. `inverse` rotates by the negative angle: the backward, applied
/// to the gradient of the output, gives the gradient of the input.
pub fn rope(
    rec: &mut Recorder,
    table: &RopeTable,
    x: &Tensor,
    positions: &Tensor,
    out: Option<&Tensor>,
    inverse: bool,
) -> Result<()> {
    let d = table.head_dim;
    let (t, hd) = match x.shape() {
        [t, hd] => (*t, *hd),
        _ => (0, 0),
    };
    let out_ok =
        out.is_none_or(|o| o.dtype() == DType::F32 && o.shape() == x.shape() && !same_buffer(o, x));
    if x.shape().len() != 2
        || x.dtype() != DType::F32
        || !hd.is_multiple_of(d)
        || positions.dtype() != DType::U32
        || positions.shape() != [t]
        || !out_ok
    {
        return Err(GpuError::shape(
            "rope",
            format!(
                "x {:?} {:?} must be f32 [T, H*{d}], positions {:?} {:?} u32 [T], out {} the \
                 shape of x in another buffer",
                x.dtype(),
                x.shape(),
                positions.dtype(),
                positions.shape(),
                out.map(|o| format!("{:?} {:?}", o.dtype(), o.shape()))
                    .unwrap_or_else(|| "None (in place)".into())
            ),
        ));
    }
    let pairs = t * hd / 2;
    if pairs == 0 {
        return Ok(());
    }
    let p = Params {
        tokens: t as u32,
        heads: (hd / d) as u32,
        half: (d / 2) as u32,
        table_rows: table.max_positions as u32,
        sign: if inverse { -1.0 } else { 1.0 },
        nan: f32::NAN,
        ..Default::default()
    };
    let g = groups_for(rec, pairs, WG);
    let tb = if table.max_positions == 0 {
        rec.ctx().unused_binding()
    } else {
        table.table.binding("rope")?
    };
    let pb = positions.binding("rope")?;
    match out {
        Some(o) => {
            let binds = vec![tb, pb, x.binding("rope")?, o.binding("rope")?];
            rec.dispatch(&ROPE, &[], &p, binds, g)
        }
        None => {
            let binds = vec![tb, pb, x.binding("rope")?];
            rec.dispatch(&ROPE_INPLACE, &[], &p, binds, g)
        }
    }
}
