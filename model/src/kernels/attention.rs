//! Causal grouped-query attention (shaders/attention.wgsl) and KV-cache maintenance
//! (shaders/kv_cache.wgsl): training forward and backward, decode against a cache, cache append
//! and beam gather. Five pipelines in all.
//!
//! Layouts: q/out/dout/dq `[B*T, Hq*D]`, k/v/dk/dv `[B*T, Hkv*D]` (heads interleaved in the
//! features), key-padding mask u32 `[B*T]` (1 = real token), row logsumexp `[B, Hq, T]`.
//! The cache is a pair of f32 tensors `[B, Hkv, Tmax, D]` ([`KvCache`]).
//!
//! Masking: query `i` of a sequence sees keys `j <= i` whose mask is 1. A padded query (mask 0)
//! sees nothing: its output row is zero, its lse is stored as 0 and its gradients are zero.
//! Every tensor must fit one storage binding (128 MiB on lavapipe, 2 GiB on NVIDIA); larger
//! ones are reported as `TooLarge` naming the op.
//!
//! Measured on an NVIDIA H200 through Vulkan (test `timing_qwen3_shapes`, Hq 16, Hkv 8, D 128,
//! 2026-11): forward B2 x T2048 30 ms (1.15 TFLOP/s), backward 114 ms (0.76 TFLOP/s); decode
//! of one token per sequence against 1024 cached positions, B 64: 1.6 ms (333 GB/s of K+V);
//! B 8 x 2000 positions 2.6 ms (50 GB/s: only B*Hq workgroups walk the keys, no split over
//! keys); beam gather 2.6 TB/s. Next steps for GPUs: several query rows (or the query heads of
//! a GQA group) per workgroup to share K/V loads, vec4 loads, a split-K decode.

use bytemuck::{Pod, Zeroable};

use crate::gpu::{
    grid_1d, Access, DType, GpuContext, GpuError, KernelEntry, Recorder, Result, ShaderSource,
    Tensor,
};

static ATTN_SRC: ShaderSource = crate::shader!("attention.wgsl");
static CACHE_SRC: ShaderSource = crate::shader!("kv_cache.wgsl");

use Access::{Read as R, ReadWrite as W};
static ATTN_FWD: KernelEntry = KernelEntry {
    source: &ATTN_SRC,
    entry: "attn_fwd",
    bindings: &[R, R, R, R, R, W, W],
};
static ATTN_BWD_DQ: KernelEntry = KernelEntry {
    source: &ATTN_SRC,
    entry: "attn_bwd_dq",
    bindings: &[R, R, R, R, R, R, W, W],
};
static ATTN_BWD_DKDV: KernelEntry = KernelEntry {
    source: &ATTN_SRC,
    entry: "attn_bwd_dkdv",
    bindings: &[R, R, R, R, R, R, W, W],
};
static KV_APPEND: KernelEntry = KernelEntry {
    source: &CACHE_SRC,
    entry: "kv_append",
    bindings: &[R, R, R, W, W],
};
static KV_GATHER: KernelEntry = KernelEntry {
    source: &CACHE_SRC,
    entry: "kv_gather",
    bindings: &[R, R, R, W, W],
};

/// Largest head dimension the kernels hold (64 invocations x 4 dimensions each).
pub const MAX_HEAD_DIM: usize = 256;

const HAS_MASK: u32 = 1;
const HAS_START: u32 = 2;
const WRITE_LSE: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct AttnParams {
    batch: u32,
    rows: u32,
    hq: u32,
    hkv: u32,
    d: u32,
    scale: f32,
    flags: u32,
    mask_bs: u32,
    k_bs: u32,
    k_hs: u32,
    k_rs: u32,
    keys: u32,
    n_wg: u32,
    n_stat: u32,
    _p: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct CacheParams {
    batch: u32,
    rows: u32,
    hkv: u32,
    d: u32,
    tmax: u32,
    n: u32,
    _p: [u32; 2],
}

/// Head layout shared by every attention call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionHeads {
    /// Query heads Hq (a multiple of `kv_heads`; query head h reads kv head h / (Hq/Hkv)).
    pub q_heads: usize,
    pub kv_heads: usize,
    /// Head dimension D, 1..=256.
    pub head_dim: usize,
    /// Score scale; `None` means 1/sqrt(D).
    pub scale: Option<f32>,
}

impl AttentionHeads {
    pub fn new(q_heads: usize, kv_heads: usize, head_dim: usize) -> Self {
        AttentionHeads {
            q_heads,
            kv_heads,
            head_dim,
            scale: None,
        }
    }

    pub fn with_scale(mut self, scale: f32) -> Self {
        self.scale = Some(scale);
        self
    }

    /// The scale applied to q.k.
    pub fn scale(&self) -> f32 {
        self.scale
            .unwrap_or_else(|| 1.0 / (self.head_dim as f32).sqrt())
    }

    fn check(&self, op: &'static str) -> Result<()> {
        let (q, kv, d) = (self.q_heads, self.kv_heads, self.head_dim);
        if q == 0 || kv == 0 || q % kv != 0 || d == 0 || d > MAX_HEAD_DIM {
            return Err(GpuError::shape(
                op,
                format!(
                    "heads Hq {q}, Hkv {kv}, D {d}: need Hq a positive multiple of Hkv and \
                     1 <= D <= {MAX_HEAD_DIM}"
                ),
            ));
        }
        Ok(())
    }
}

/// The inputs of a training attention call: `batch` sequences of T = rows/batch tokens.
#[derive(Clone, Copy, Debug)]
pub struct AttentionInputs<'a> {
    pub batch: usize,
    /// `[B*T, Hq*D]` f32.
    pub q: &'a Tensor,
    /// `[B*T, Hkv*D]` f32.
    pub k: &'a Tensor,
    /// `[B*T, Hkv*D]` f32.
    pub v: &'a Tensor,
    /// u32 `[B*T]`, 1 = real token; `None` = every token real.
    pub mask: Option<&'a Tensor>,
}

/// Gradient outputs of [`attention_backward`], shaped like q, k, v; fully overwritten.
#[derive(Clone, Copy, Debug)]
pub struct AttentionGrads<'a> {
    pub dq: &'a Tensor,
    pub dk: &'a Tensor,
    pub dv: &'a Tensor,
}

fn describe(named: &[(&str, &Tensor)]) -> String {
    named
        .iter()
        .map(|(n, t)| format!("{n} {:?} {:?}", t.dtype(), t.shape()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn expect(
    op: &'static str,
    ok: bool,
    why: &str,
    h: &AttentionHeads,
    named: &[(&str, &Tensor)],
) -> Result<()> {
    if ok {
        return Ok(());
    }
    Err(GpuError::shape(
        op,
        format!(
            "{why}: {} (heads Hq {}, Hkv {}, D {})",
            describe(named),
            h.q_heads,
            h.kv_heads,
            h.head_dim
        ),
    ))
}

fn is(t: &Tensor, dtype: DType, shape: &[usize]) -> bool {
    t.dtype() == dtype && t.shape() == shape
}

fn u32_of(op: &'static str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| GpuError::shape(op, format!("size {n} exceeds u32 indexing")))
}

/// Validates a training call; returns T.
fn check_training(
    op: &'static str,
    h: &AttentionHeads,
    x: &AttentionInputs,
    others: &[(&str, &Tensor, Vec<usize>)],
) -> Result<usize> {
    h.check(op)?;
    let mut named = vec![("q", x.q), ("k", x.k), ("v", x.v)];
    if let Some(m) = x.mask {
        named.push(("mask", m));
    }
    named.extend(others.iter().map(|(n, t, _)| (*n, *t)));
    let rows = x.q.shape().first().copied().unwrap_or(0);
    let ok_batch = x.batch > 0 && x.q.shape().len() == 2 && rows % x.batch == 0;
    expect(
        op,
        ok_batch,
        "q must be [B*T, Hq*D] with B*T a multiple of batch",
        h,
        &named,
    )?;
    let t = rows / x.batch;
    let (qw, kw) = (h.q_heads * h.head_dim, h.kv_heads * h.head_dim);
    expect(
        op,
        is(x.q, DType::F32, &[rows, qw]),
        "q must be f32 [B*T, Hq*D]",
        h,
        &named,
    )?;
    let kv_ok = is(x.k, DType::F32, &[rows, kw]) && is(x.v, DType::F32, &[rows, kw]);
    expect(op, kv_ok, "k and v must be f32 [B*T, Hkv*D]", h, &named)?;
    if let Some(m) = x.mask {
        expect(
            op,
            is(m, DType::U32, &[rows]),
            "mask must be u32 [B*T]",
            h,
            &named,
        )?;
    }
    for (n, tensor, shape) in others {
        let ok = is(tensor, DType::F32, shape);
        expect(op, ok, &format!("{n} must be f32 {shape:?}"), h, &named)?;
    }
    Ok(t)
}

fn training_params(h: &AttentionHeads, batch: usize, t: usize, masked: bool) -> AttnParams {
    let kw = h.kv_heads * h.head_dim;
    AttnParams {
        batch: batch as u32,
        rows: t as u32,
        hq: h.q_heads as u32,
        hkv: h.kv_heads as u32,
        d: h.head_dim as u32,
        scale: h.scale(),
        flags: if masked { HAS_MASK } else { 0 },
        mask_bs: t as u32,
        k_bs: (t * kw) as u32,
        k_hs: h.head_dim as u32,
        k_rs: kw as u32,
        keys: t as u32,
        ..Default::default()
    }
}

fn optional(ctx: &GpuContext, op: &'static str, t: Option<&Tensor>) -> Result<crate::gpu::Binding> {
    match t {
        Some(t) => t.binding(op),
        None => Ok(ctx.unused_binding()),
    }
}

/// Training forward: `out = softmax(scale * q k^T + causal/padding mask) v` per query head,
/// and the row logsumexp `lse [B, Hq, T]` that [`attention_backward`] needs. `out` is
/// `[B*T, Hq*D]`. One workgroup per (query row, query head).
pub fn attention_forward(
    rec: &mut Recorder,
    h: &AttentionHeads,
    x: &AttentionInputs,
    out: &Tensor,
    lse: &Tensor,
) -> Result<()> {
    const OP: &str = "attention_forward";
    let rows = x.q.shape().first().copied().unwrap_or(0);
    let b = x.batch.max(1);
    let t = check_training(
        OP,
        h,
        x,
        &[
            ("out", out, x.q.shape().to_vec()),
            ("lse", lse, vec![x.batch, h.q_heads, rows / b]),
        ],
    )?;
    let n_wg = u32_of(OP, rows * h.q_heads)?;
    u32_of(OP, x.q.numel())?;
    let mut p = training_params(h, x.batch, t, x.mask.is_some());
    p.flags |= WRITE_LSE;
    p.n_wg = n_wg;
    let ctx = rec.ctx().clone();
    let mask = optional(&ctx, OP, x.mask)?;
    let binds = vec![
        x.q.binding(OP)?,
        x.k.binding(OP)?,
        x.v.binding(OP)?,
        mask,
        ctx.unused_binding(),
        out.binding(OP)?,
        lse.binding(OP)?,
    ];
    let groups = grid_1d(n_wg, rec.max_groups());
    rec.dispatch(&ATTN_FWD, &[], &p, binds, groups)
}

/// Training backward from the forward's `out` and `lse` and the output gradient `dout`
/// (`[B*T, Hq*D]`): writes dq, dk, dv. Deterministic: delta = rowsum(dout * out) and dq come
/// from one pass over query rows, then dk/dv from one pass over key rows that visits every
/// query row and every query head of the group in a fixed order (no atomics).
pub fn attention_backward(
    rec: &mut Recorder,
    h: &AttentionHeads,
    x: &AttentionInputs,
    out: &Tensor,
    lse: &Tensor,
    dout: &Tensor,
    grads: &AttentionGrads,
) -> Result<()> {
    const OP: &str = "attention_backward";
    let rows = x.q.shape().first().copied().unwrap_or(0);
    let b = x.batch.max(1);
    let t = check_training(
        OP,
        h,
        x,
        &[
            ("out", out, x.q.shape().to_vec()),
            ("lse", lse, vec![x.batch, h.q_heads, rows / b]),
            ("dout", dout, x.q.shape().to_vec()),
            ("dq", grads.dq, x.q.shape().to_vec()),
            ("dk", grads.dk, x.k.shape().to_vec()),
            ("dv", grads.dv, x.k.shape().to_vec()),
        ],
    )?;
    if rows == 0 {
        return Ok(());
    }
    let n_stat = rows * h.q_heads;
    let ctx = rec.ctx().clone();
    // stats = [lse ; delta]: one buffer keeps each backward kernel at 8 storage bindings (the
    // portable minimum of max_storage_buffers_per_shader_stage).
    let stats = Tensor::zeros(&ctx, &[2 * n_stat], DType::F32)?;
    rec.copy(
        lse.binding_range(OP, 0, n_stat)?,
        stats.binding_range(OP, 0, n_stat)?,
    )?;
    let mut p = training_params(h, x.batch, t, x.mask.is_some());
    p.n_stat = u32_of(OP, n_stat)?;
    u32_of(OP, x.q.numel())?;
    let mask = optional(&ctx, OP, x.mask)?;

    p.n_wg = u32_of(OP, n_stat)?;
    let binds = vec![
        x.q.binding(OP)?,
        x.k.binding(OP)?,
        x.v.binding(OP)?,
        mask.clone(),
        dout.binding(OP)?,
        out.binding(OP)?,
        stats.binding(OP)?,
        grads.dq.binding(OP)?,
    ];
    rec.dispatch(
        &ATTN_BWD_DQ,
        &[],
        &p,
        binds,
        grid_1d(p.n_wg, rec.max_groups()),
    )?;

    p.n_wg = u32_of(OP, rows * h.kv_heads)?;
    let binds = vec![
        x.q.binding(OP)?,
        x.k.binding(OP)?,
        x.v.binding(OP)?,
        mask,
        dout.binding(OP)?,
        stats.binding(OP)?,
        grads.dk.binding(OP)?,
        grads.dv.binding(OP)?,
    ];
    rec.dispatch(
        &ATTN_BWD_DKDV,
        &[],
        &p,
        binds,
        grid_1d(p.n_wg, rec.max_groups()),
    )
}

/// Key and value caches of `batch` sequences, each f32 `[B, Hkv, Tmax, D]`: one head's keys
/// of one sequence are contiguous rows of D. Position p of sequence b holds that sequence's
/// p-th token (left padding, if any, stays in the cache and is masked by a key mask).
#[derive(Clone, Debug)]
pub struct KvCache {
    pub k: Tensor,
    pub v: Tensor,
}

impl KvCache {
    /// A zero-filled cache.
    pub fn new(
        ctx: &GpuContext,
        batch: usize,
        kv_heads: usize,
        max_len: usize,
        head_dim: usize,
    ) -> Result<Self> {
        let shape = [batch, kv_heads, max_len, head_dim];
        Ok(KvCache {
            k: Tensor::zeros(ctx, &shape, DType::F32)?,
            v: Tensor::zeros(ctx, &shape, DType::F32)?,
        })
    }

    /// `[B, Hkv, Tmax, D]`, after checking that k and v agree.
    fn dims(&self, op: &'static str) -> Result<[usize; 4]> {
        match self.k.shape() {
            [b, g, t, d]
                if self.k.dtype() == DType::F32 && is(&self.v, DType::F32, self.k.shape()) =>
            {
                Ok([*b, *g, *t, *d])
            }
            _ => Err(GpuError::shape(
                op,
                format!(
                    "cache k and v must both be f32 [B, Hkv, Tmax, D]: {}",
                    describe(&[("cache k", &self.k), ("cache v", &self.v)])
                ),
            )),
        }
    }

    pub fn batch(&self) -> usize {
        self.k.shape().first().copied().unwrap_or(0)
    }
    pub fn max_len(&self) -> usize {
        self.k.shape().get(2).copied().unwrap_or(0)
    }
}

/// Writes S new key/value rows per sequence, `k_new`/`v_new [B*S, Hkv*D]` (the projection
/// outputs), into cache positions `start[b] + s` (`start` u32 `[B]`, typically the lengths
/// before this chunk). Rows at positions >= Tmax are dropped.
pub fn kv_cache_append(
    rec: &mut Recorder,
    cache: &KvCache,
    k_new: &Tensor,
    v_new: &Tensor,
    start: &Tensor,
) -> Result<()> {
    const OP: &str = "kv_cache_append";
    let [b, g, tmax, d] = cache.dims(OP)?;
    let rows = k_new.shape().first().copied().unwrap_or(0);
    let ok = b > 0
        && rows % b == 0
        && is(k_new, DType::F32, &[rows, g * d])
        && is(v_new, DType::F32, &[rows, g * d])
        && is(start, DType::U32, &[b]);
    if !ok {
        return Err(GpuError::shape(
            OP,
            format!(
                "need k_new, v_new f32 [B*S, Hkv*D] and start u32 [B] for a cache \
                 [B, Hkv, Tmax, D] = [{b}, {g}, {tmax}, {d}]: {}",
                describe(&[("k_new", k_new), ("v_new", v_new), ("start", start)])
            ),
        ));
    }
    let n = u32_of(OP, k_new.numel())?;
    let p = CacheParams {
        batch: b as u32,
        rows: (rows / b) as u32,
        hkv: g as u32,
        d: d as u32,
        tmax: tmax as u32,
        n,
        _p: [0; 2],
    };
    let binds = vec![
        k_new.binding(OP)?,
        v_new.binding(OP)?,
        start.binding(OP)?,
        cache.k.binding(OP)?,
        cache.v.binding(OP)?,
    ];
    rec.dispatch(
        &KV_APPEND,
        &[],
        &p,
        binds,
        grid_1d(n.div_ceil(256), rec.max_groups()),
    )
}

/// Attention of S new query rows per sequence, `q [B*S, Hq*D]`, against the cache: query s of
/// sequence b sits at position `start[b] + s` and sees cache positions `0..=start[b] + s`
/// whose `key_mask` (u32 `[B, Tmax]`, 1 = real; `None` = all real) is 1. Append the chunk's
/// keys first ([`kv_cache_append`] with the same `start`). S = 1 is single-token decode,
/// S > 1 a prefill chunk; sequences may have different lengths. A query whose own position is
/// masked or lies at or beyond Tmax gets a zero row. Writes `out [B*S, Hq*D]`.
pub fn attention_decode(
    rec: &mut Recorder,
    h: &AttentionHeads,
    cache: &KvCache,
    q: &Tensor,
    start: &Tensor,
    key_mask: Option<&Tensor>,
    out: &Tensor,
) -> Result<()> {
    const OP: &str = "attention_decode";
    h.check(OP)?;
    let [b, g, tmax, d] = cache.dims(OP)?;
    let rows = q.shape().first().copied().unwrap_or(0);
    let mut named = vec![
        ("q", q),
        ("cache k", &cache.k),
        ("start", start),
        ("out", out),
    ];
    if let Some(m) = key_mask {
        named.push(("key_mask", m));
    }
    let qw = h.q_heads * h.head_dim;
    let ok = b > 0
        && g == h.kv_heads
        && d == h.head_dim
        && rows % b == 0
        && is(q, DType::F32, &[rows, qw])
        && is(out, DType::F32, &[rows, qw])
        && is(start, DType::U32, &[b])
        && key_mask.is_none_or(|m| is(m, DType::U32, &[b, tmax]));
    expect(
        OP,
        ok,
        "need q, out f32 [B*S, Hq*D], start u32 [B], key_mask u32 [B, Tmax] and a cache \
         [B, Hkv, Tmax, D] matching the heads",
        h,
        &named,
    )?;
    u32_of(OP, cache.k.numel())?;
    let n_wg = u32_of(OP, rows * h.q_heads)?;
    let p = AttnParams {
        batch: b as u32,
        rows: (rows / b) as u32,
        hq: h.q_heads as u32,
        hkv: g as u32,
        d: d as u32,
        scale: h.scale(),
        flags: HAS_START | if key_mask.is_some() { HAS_MASK } else { 0 },
        mask_bs: tmax as u32,
        k_bs: (g * tmax * d) as u32,
        k_hs: (tmax * d) as u32,
        k_rs: d as u32,
        keys: tmax as u32,
        n_wg,
        ..Default::default()
    };
    let ctx = rec.ctx().clone();
    // The lse slot is read_write; it cannot share the read-only unused binding.
    let no_lse = Tensor::zeros(&ctx, &[1], DType::F32)?;
    let binds = vec![
        q.binding(OP)?,
        cache.k.binding(OP)?,
        cache.v.binding(OP)?,
        optional(&ctx, OP, key_mask)?,
        start.binding(OP)?,
        out.binding(OP)?,
        no_lse.binding(OP)?,
    ];
    rec.dispatch(&ATTN_FWD, &[], &p, binds, grid_1d(n_wg, rec.max_groups()))
}

/// Beam reordering: `dst[b] = src[src_index[b]]` for keys and values (`src_index` u32
/// `[B_dst]`; B_dst may differ from the source batch, e.g. one prompt fanned out to beams).
/// An index outside the source batch yields a zero row. `dst` must not share buffers with `src`.
pub fn kv_cache_gather(
    rec: &mut Recorder,
    src: &KvCache,
    src_index: &Tensor,
    dst: &KvCache,
) -> Result<()> {
    const OP: &str = "kv_cache_gather";
    let [sb, g, tmax, d] = src.dims(OP)?;
    let [db, g2, tmax2, d2] = dst.dims(OP)?;
    let ok = g == g2 && tmax == tmax2 && d == d2 && is(src_index, DType::U32, &[db]);
    let shared = [&src.k, &src.v].iter().any(|s| {
        [&dst.k, &dst.v]
            .iter()
            .any(|d| std::sync::Arc::ptr_eq(&s.buffer, &d.buffer))
    });
    if !ok || shared {
        return Err(GpuError::shape(
            OP,
            format!(
                "need distinct caches with equal [Hkv, Tmax, D] and src_index u32 [B_dst]: {}",
                describe(&[
                    ("src k", &src.k),
                    ("dst k", &dst.k),
                    ("src_index", src_index)
                ])
            ),
        ));
    }
    let n = u32_of(OP, dst.k.numel())?;
    let p = CacheParams {
        batch: db as u32,
        rows: sb as u32,
        hkv: g as u32,
        d: d as u32,
        tmax: tmax as u32,
        n,
        _p: [0; 2],
    };
    let binds = vec![
        src.k.binding(OP)?,
        src.v.binding(OP)?,
        src_index.binding(OP)?,
        dst.k.binding(OP)?,
        dst.v.binding(OP)?,
    ];
    rec.dispatch(
        &KV_GATHER,
        &[],
        &p,
        binds,
        grid_1d(n.div_ceil(256), rec.max_groups()),
    )
}
