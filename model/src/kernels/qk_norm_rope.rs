//! Inference's query/key preparation in one dispatch (shaders/qk_norm_rope.wgsl): per-head
//! RMSNorm (Qwen3's q_norm / k_norm; none for Qwen2) and the rotary embedding, in place on q
//! and k, bit-identical to `rmsnorm` on the heads followed by `rope`. A decode step runs it once
//! a layer instead of four dispatches.

use bytemuck::{Pod, Zeroable};

use super::rope::RopeTable;
use crate::gpu::{
    grid_1d, Access, DType, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor,
};

static SRC: ShaderSource = crate::shader!("qk_norm_rope.wgsl" after "row_norm.wgsl");
static QK_NORM_ROPE: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "main",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::Read,
        Access::Read,
    ],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    tokens: u32,
    hq: u32,
    hkv: u32,
    half: u32,
    table_rows: u32,
    eps: f32,
    nan: f32,
    _p0: u32,
}

/// The per-head norm weights of q and k (each f32 `[D]`) and the norm's epsilon.
pub struct QkNorm<'a> {
    pub q: &'a Tensor,
    pub k: &'a Tensor,
    pub eps: f32,
}

/// q `[T, Hq*D]` and k `[T, Hkv*D]` (f32, D = the table's head_dim) normalised per head when
/// `norm` is given, then rotated to `positions` (u32 `[T]`), in place.
pub fn qk_norm_rope(
    rec: &mut Recorder,
    table: &RopeTable,
    q: &Tensor,
    k: &Tensor,
    positions: &Tensor,
    norm: Option<&QkNorm>,
) -> Result<()> {
    let op = "qk_norm_rope";
    let d = table.head_dim;
    let t = q.shape().first().copied().unwrap_or(0);
    let heads = |x: &Tensor| match x.shape() {
        [rows, w] if *rows == t && d > 0 && w.is_multiple_of(d) => Some(w / d),
        _ => None,
    };
    let (hq, hkv) = (heads(q), heads(k));
    let norm_ok = norm.is_none_or(|n| {
        [n.q, n.k]
            .iter()
            .all(|w| w.dtype() == DType::F32 && w.shape() == [d])
    });
    let (Some(hq), Some(hkv)) = (hq, hkv) else {
        return Err(GpuError::shape(
            op,
            format!(
                "q {:?} and k {:?} must be [T, H*{d}] of one T",
                q.shape(),
                k.shape()
            ),
        ));
    };
    if q.dtype() != DType::F32
        || k.dtype() != DType::F32
        || !d.is_multiple_of(2)
        || positions.dtype() != DType::U32
        || positions.shape() != [t]
        || !norm_ok
    {
        return Err(GpuError::shape(
            op,
            format!(
                "expects f32 q {:?} and k {:?}, an even head_dim {d}, u32 positions [{t}] (got \
                 {:?} {:?}) and f32 norm weights [{d}]",
                q.dtype(),
                k.dtype(),
                positions.dtype(),
                positions.shape()
            ),
        ));
    }
    let groups = t * (hq + hkv);
    if groups == 0 {
        return Ok(());
    }
    let p = Params {
        tokens: t as u32,
        hq: hq as u32,
        hkv: hkv as u32,
        half: (d / 2) as u32,
        table_rows: table.max_positions as u32,
        eps: norm.map_or(0.0, |n| n.eps),
        nan: f32::NAN,
        _p0: 0,
    };
    let ctx = rec.ctx().clone();
    let tb = if table.max_positions == 0 {
        ctx.unused_binding()
    } else {
        table.table.binding(op)?
    };
    let (qw, kw) = match norm {
        Some(n) => (n.q.binding(op)?, n.k.binding(op)?),
        None => (ctx.unused_binding(), ctx.unused_binding()),
    };
    let binds = vec![
        tb,
        positions.binding(op)?,
        q.binding(op)?,
        k.binding(op)?,
        qw,
        kw,
    ];
    let constants = [("NORM", norm.is_some() as u8 as f64)];
    rec.dispatch(
        &QK_NORM_ROPE,
        &constants,
        &p,
        binds,
        grid_1d(groups as u32, rec.max_groups()),
    )
}
