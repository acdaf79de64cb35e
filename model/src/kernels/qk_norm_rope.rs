//! Inference's query/key preparation in one dispatch (shaders/qk_norm_rope.wgsl): per-head
//! RMSNorm (Qwen3's q_norm / k_norm; none for Qwen2) and the rotary embedding, in place on q
//! and k, bit-identical to `rmsnorm` on the heads followed by `rope`. A decode step runs it once
//! a layer instead of four dispatches; [`qk_norm_rope_append`] also appends the layer's keys and
//! values to its cache, bit-identical to `kv_cache_append` after it (one dispatch fewer).

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use super::attention::KvCache;
use super::rope::RopeTable;
use crate::gpu::{
    grid_1d, Access, DType, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor,
};

static SRC: ShaderSource =
    crate::shader!("qk_norm_rope.wgsl" after "f16_bits.wgsl", "row_norm.wgsl");
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
        Access::ReadWrite,
        Access::ReadWrite,
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
    batch: u32,
    k_off: u32,
    v_off: u32,
    tmax: u32,
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
    record(rec, table, q, k, positions, norm, None)
}

/// Where [`qk_norm_rope_append`] puts a layer's new keys and values.
pub struct AppendTo<'a> {
    /// The buffer k and v are views of (bound once: the kernel's bindings are full).
    pub kv: &'a Tensor,
    /// v `[T, Hkv*D]` f32, a view of `kv` as k is.
    pub v: &'a Tensor,
    /// `[B, Hkv, Tmax, D]`, f32 or f16 (D even).
    pub cache: &'a KvCache,
    /// Sequences B: token t is row t % S of sequence t / S (S = T / B).
    pub batch: usize,
}

/// [`qk_norm_rope`], then `kv_cache_append(cache, k, v, start)` in the same dispatch:
/// `positions` is u32 `[T + B]`, the T rotary positions followed by the B cache start
/// positions (`start[b] + s` is where row s of sequence b goes; rows at or beyond Tmax are
/// dropped). The cache gets the bits `kv_cache_append` would write.
pub fn qk_norm_rope_append(
    rec: &mut Recorder,
    table: &RopeTable,
    q: &Tensor,
    k: &Tensor,
    positions: &Tensor,
    norm: Option<&QkNorm>,
    to: &AppendTo,
) -> Result<()> {
    record(rec, table, q, k, positions, norm, Some(to))
}

fn record(
    rec: &mut Recorder,
    table: &RopeTable,
    q: &Tensor,
    k: &Tensor,
    positions: &Tensor,
    norm: Option<&QkNorm>,
    append: Option<&AppendTo>,
) -> Result<()> {
    let op = if append.is_some() {
        "qk_norm_rope_append"
    } else {
        "qk_norm_rope"
    };
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
    let starts = append.map_or(0, |a| a.batch);
    if q.dtype() != DType::F32
        || k.dtype() != DType::F32
        || !d.is_multiple_of(2)
        || positions.dtype() != DType::U32
        || positions.shape() != [t + starts]
        || !norm_ok
    {
        return Err(GpuError::shape(
            op,
            format!(
                "expects f32 q {:?} and k {:?}, an even head_dim {d}, u32 positions [{}] (got \
                 {:?} {:?}) and f32 norm weights [{d}]",
                q.dtype(),
                k.dtype(),
                t + starts,
                positions.dtype(),
                positions.shape()
            ),
        ));
    }
    let ctx = rec.ctx().clone();
    // Binding 4 holds k (and v when appending) at these element offsets.
    let (kv_b, k_off, v_off, tmax, cache_b) = match append {
        None => (k.binding(op)?, 0, 0, 0, None),
        Some(a) => {
            let (k_off, v_off, tmax) = check_append(op, a, k, t, hkv, d)?;
            let cache_b = (a.cache.k.binding(op)?, a.cache.v.binding(op)?);
            (a.kv.binding(op)?, k_off, v_off, tmax, Some(cache_b))
        }
    };
    let heads = hq + if append.is_some() { 2 * hkv } else { hkv };
    let groups = t * heads;
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
        batch: starts as u32,
        k_off: k_off as u32,
        v_off: v_off as u32,
        tmax: tmax as u32,
        _p0: 0,
    };
    let tb = if table.max_positions == 0 {
        ctx.unused_binding()
    } else {
        table.table.binding(op)?
    };
    let (qw, kw) = match norm {
        Some(n) => (n.q.binding(op)?, n.k.binding(op)?),
        None => (ctx.unused_binding(), ctx.unused_binding()),
    };
    // Without a cache, its two writable slots repeat q (the shared unused buffer may sit in a
    // read-only slot, and one buffer may not be bound read-only and writable at once).
    let half = append.is_some_and(|a| a.cache.k.dtype() == DType::F16);
    let (ck, cv) = match cache_b {
        Some(c) => c,
        None => (q.binding(op)?, q.binding(op)?),
    };
    let binds = vec![
        tb,
        positions.binding(op)?,
        q.binding(op)?,
        kv_b,
        qw,
        kw,
        ck,
        cv,
    ];
    let flag = |on: bool| on as u8 as f64;
    let constants = [
        ("NORM", flag(norm.is_some())),
        ("APPEND", flag(append.is_some())),
        ("HALF", flag(half)),
    ];
    rec.dispatch(
        &QK_NORM_ROPE,
        &constants,
        &p,
        binds,
        grid_1d(groups as u32, rec.max_groups()),
    )
}

/// The offsets of k and v in `a.kv` and the cache's Tmax, after checking that k and v are views
/// of `a.kv`, v `[T, Hkv*D]` f32, the cache `[B, Hkv, Tmax, D]` f32 or f16 and B divides T.
fn check_append(
    op: &'static str,
    a: &AppendTo,
    k: &Tensor,
    t: usize,
    hkv: usize,
    d: usize,
) -> Result<(usize, usize, usize)> {
    let cache = a.cache.k.shape();
    let dtype = a.cache.k.dtype();
    let tmax = cache.get(2).copied().unwrap_or(0);
    let inside = |x: &Tensor| {
        Arc::ptr_eq(&x.buffer, &a.kv.buffer)
            && x.element_offset() >= a.kv.element_offset()
            && x.element_offset() + x.numel() <= a.kv.element_offset() + a.kv.numel()
    };
    let ok = a.batch > 0
        && t.is_multiple_of(a.batch)
        && a.kv.dtype() == DType::F32
        && a.v.dtype() == DType::F32
        && a.v.shape() == [t, hkv * d]
        && inside(k)
        && inside(a.v)
        && cache == [a.batch, hkv, tmax, d]
        && (dtype == DType::F32 || dtype == DType::F16)
        && a.cache.v.dtype() == dtype
        && a.cache.v.shape() == cache;
    if !ok {
        return Err(GpuError::shape(
            op,
            format!(
                "needs k and v f32 [T, Hkv*D] = [{t}, {}] inside one kv buffer, B = {} dividing T \
                 and caches [B, Hkv, Tmax, D] of f32 or f16; got v {:?}, kv {:?}, caches {:?} \
                 {:?} / {:?}",
                hkv * d,
                a.batch,
                a.v.shape(),
                a.kv.shape(),
                dtype,
                cache,
                a.cache.v.shape()
            ),
        ));
    }
    let base = a.kv.element_offset();
    Ok((k.element_offset() - base, a.v.element_offset() - base, tmax))
}
