//! Causal grouped-query attention and KV-cache maintenance (shaders/kv_cache.wgsl): training
//! forward and backward, decode against a cache, cache append and beam gather.
//!
//! Four kernel families compute the same attention ([`AttentionKernel`]), and a fifth serves
//! single-token decode only; `Auto` picks by adapter and shape:
//! - `Tiled` (shaders/attention_tiled.wgsl), for GPUs, D <= 128: flash-attention tiles, a
//!   workgroup of 128 per 64 query rows (key rows for dk/dv) of one head, the other side
//!   streamed through workgroup memory in tiles of 32 rows, scores and outputs in registers.
//!   Three pipelines. Training and prefill; `Auto` leaves chunks under 16 rows (decode) to
//!   `Workgroup`.
//! - `Workgroup` (shaders/attention.wgsl), for GPUs: a workgroup of 64 per (query row, head), each
//!   invocation owning D/64 output dimensions, so head dims up to 256 stay in registers. Three
//!   pipelines. Every key row is re-read per query row: the fallback for D > 128 and decode.
//! - `Rows` (shaders/attention_rows.wgsl), for CPU adapters (lavapipe): an invocation owns four
//!   query (or key) rows, accumulates them in place in their output buffers and streams the
//!   other side in blocks of 8 rows; no workgroup memory, no barriers. Four pipelines (decode
//!   runs one row per invocation); Mesa compiles them in about 3.3 s of CPU on a cold shader
//!   cache, `Workgroup`'s three in about 2.8 s. On GPUs its per-lane rows make uncoalesced
//!   global read-modify-writes and few workgroups, so it is not the default there.
//! - `TensorCore` (shaders/attention_coop_{fwd,dq,dkdv}.wgsl after attention_coop_common.wgsl),
//!   for GPUs with 16x16x16 f16 -> f32 cooperative matrices and subgroups of 32, D % 16 == 0,
//!   D <= 128: the Tiled geometry (64 stationary rows per workgroup, 4 subgroups of 16 rows;
//!   dk/dv streams 16 query rows a tile) with every product on the tensor cores, each pass
//!   within 24 KiB of workgroup memory, operands rounded to f16 while staged, f32
//!   accumulation and softmax statistics, dout scaled by a power of two from its max |x|.
//!   `Auto` picks it on such adapters for training and prefill; the transformer keeps `Tiled`
//!   when its matmuls run in f32 (`Transformer::attention_heads`).
//! - `SubgroupDecode` (shaders/attention_decode.wgsl, launch code in attention_decode.rs), for
//!   [`attention_decode`] with one query row per sequence on adapters whose subgroup size is
//!   fixed (NVIDIA 32, lavapipe 8), D % 4 == 0, Hq/Hkv <= 8 (and the merge buffer in
//!   workgroup memory): a workgroup of 128 (64 on lavapipe) per (sequence, kv head) serves the
//!   whole GQA group, its subgroups split the keys and the lanes of a
//!   subgroup split D, so each cached K and V row is read once, coalesced. One pipeline per
//!   (subgroup size, group, D). `Auto` picks it wherever it fits; prefill chunks and other
//!   adapters keep the families above.
//!
//! `grrm bench kernels --quick --filter attention` times the families. Release build, 2-core
//! lavapipe machine (Mesa 25.0.7) shared with other jobs, fastest of 8 runs, 4/2 heads, D 32,
//! `Workgroup` -> `Rows`: B2 T128 forward 34.8 -> 1.7 ms, backward 65.9 -> 3.4 ms; B8 T100 (the
//! demo's SFT step) forward 90 -> 2.7 ms, backward 166 -> 9.5 ms; decode of one token per
//! sequence against 100 positions, B8: 1.7 -> 0.3 ms.
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
//! `Workgroup` measured on an NVIDIA H200 through Vulkan (test `timing_qwen3_shapes`, Hq 16,
//! Hkv 8, D 128, 2026-11): forward B2 x T2048 30 ms (1.15 TFLOP/s), backward 114 ms
//! (0.76 TFLOP/s); decode of one token per sequence against 1024 cached positions, B 64:
//! 1.6 ms (333 GB/s of K+V); B 8 x 2000 positions 2.6 ms (50 GB/s: only B*Hq workgroups walk
//! the keys, no split over keys); beam gather 2.6 TB/s.
//!
//! `Tiled` against `Workgroup` on an NVIDIA H100 80GB HBM3 through Vulkan (driver 580.159.04,
//! same test, causal FLOPs, 2026-11-26): B8 x T1024 forward 4.2 vs 36.3 ms (8.1 vs 0.95
//! TFLOP/s), backward 12.9 vs 138 ms (6.7 vs 0.62); B2 x T2048 forward 9.6, backward 7.3
//! TFLOP/s. torch SDPA on the same card: fp32 10.3 / 20.5, bf16 399 / 234 TFLOP/s (forward /
//! backward). `TensorCore` on the same card (2026-11-26, session 5): B8 x T1024 forward 1.46 ms
//! (23.6 TFLOP/s), backward 3.57 ms (24.1); B2 x T2048 29.7 / 29.3 TFLOP/s. Next steps: register
//! prefetch of the next tile, f16 q/k/v from the producing kernels, a split-K decode.

use bytemuck::{Pod, Zeroable};

use super::attention_decode;
use super::cast_scaled::absmax_bits;
use crate::gpu::{
    grid_1d, Access, DType, GpuContext, GpuError, KernelEntry, Recorder, Result, ShaderSource,
    Tensor,
};

static ATTN_SRC: ShaderSource = crate::shader!("attention.wgsl");
static CACHE_SRC: ShaderSource = crate::shader!("kv_cache.wgsl" after "f16_bits.wgsl");

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
static ROWS_SRC: ShaderSource = crate::shader!("attention_rows.wgsl");
static ROWS_FWD: KernelEntry = KernelEntry {
    source: &ROWS_SRC,
    entry: "attn_rows_fwd",
    bindings: &[R, R, R, R, R, W, W],
};
static ROWS_BWD_DQ: KernelEntry = KernelEntry {
    source: &ROWS_SRC,
    entry: "attn_rows_bwd_dq",
    bindings: &[R, R, R, R, R, R, W, W],
};
static ROWS_BWD_DKDV: KernelEntry = KernelEntry {
    source: &ROWS_SRC,
    entry: "attn_rows_bwd_dkdv",
    bindings: &[R, R, R, R, R, R, W, W],
};
/// Trusted (no runtime bounds checks): the file's header proves every index in bounds.
static TILED_SRC: ShaderSource = crate::shader!(trusted "attention_tiled.wgsl");
static TILED_FWD: KernelEntry = KernelEntry {
    source: &TILED_SRC,
    entry: "attn_tiled_fwd",
    bindings: &[R, R, R, R, R, W, W],
};
static TILED_BWD_DQ: KernelEntry = KernelEntry {
    source: &TILED_SRC,
    entry: "attn_tiled_bwd_dq",
    bindings: &[R, R, R, R, R, R, W, W],
};
static TILED_BWD_DKDV: KernelEntry = KernelEntry {
    source: &TILED_SRC,
    entry: "attn_tiled_bwd_dkdv",
    bindings: &[R, R, R, R, R, R, W, W],
};
/// Trusted (no runtime bounds checks): attention_coop_common.wgsl's header proves every index
/// in bounds. One file per pass after a shared prelude, so each declares only its workgroup
/// memory.
static COOP_FWD_SRC: ShaderSource =
    crate::shader!(trusted "attention_coop_fwd.wgsl" after "attention_coop_common.wgsl");
static COOP_DQ_SRC: ShaderSource =
    crate::shader!(trusted "attention_coop_dq.wgsl" after "attention_coop_common.wgsl");
static COOP_DKDV_SRC: ShaderSource =
    crate::shader!(trusted "attention_coop_dkdv.wgsl" after "attention_coop_common.wgsl");
static COOP_FWD: KernelEntry = KernelEntry {
    source: &COOP_FWD_SRC,
    entry: "attn_coop_fwd",
    bindings: &[R, R, R, R, R, W, W],
};
static COOP_BWD_DQ: KernelEntry = KernelEntry {
    source: &COOP_DQ_SRC,
    entry: "attn_coop_bwd_dq",
    bindings: &[R, R, R, R, R, R, W, W],
};
static COOP_BWD_DKDV: KernelEntry = KernelEntry {
    source: &COOP_DKDV_SRC,
    entry: "attn_coop_bwd_dkdv",
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
    bindings: &[R, R, R, W, W, R],
};
static KV_WIDEN: KernelEntry = KernelEntry {
    source: &CACHE_SRC,
    entry: "kv_widen",
    bindings: &[R, R, R, W, W],
};

/// Largest head dimension (the Workgroup kernel's 64 invocations x 4 dimensions each; the Rows
/// kernel has no limit of its own).
pub const MAX_HEAD_DIM: usize = 256;

/// Rows kernel geometry (attention_rows.wgsl): invocations per workgroup, the SIMD width the
/// lanes are arranged for, and rows per invocation in training (decode runs 1).
const ROWS_WG: usize = 64;
const ROWS_SIMD: usize = 8;
const ROWS_PER_LANE: usize = 4;

/// Tiled kernel geometry (attention_tiled.wgsl): stationary rows per workgroup, the largest
/// head dimension its workgroup tiles hold, and the workgroup memory it declares.
const TILED_BLOCK: usize = 64;
pub const TILED_MAX_HEAD_DIM: usize = 128;
const TILED_SHARED_BYTES: u32 = (1056 + 576) * 16 + 512 * 4 + 4;
/// Prefill chunks shorter than this decode with `Workgroup` under `Auto`: a tiled workgroup
/// owns 64 query rows, so a single new token would leave 63 of them idle.
const TILED_MIN_DECODE_ROWS: usize = 16;

/// Tensor-core kernel geometry (attention_coop_*.wgsl): stationary rows per workgroup, the
/// largest head dimension, and the workgroup memory of its largest pass (dk/dv: 32 staged rows
/// of 136 halves, 8 KiB of f32 scratch, 6 KiB of f16 weights and 32 row factors; every pass
/// stays within 24 KiB so that two workgroups share an H100 SM).
const COOP_BLOCK: usize = 64;
pub const COOP_MAX_HEAD_DIM: usize = 128;
const COOP_SHARED_BYTES: u32 = 32 * 136 * 2 + 2048 * 4 + 3072 * 2 + 32 * 4;
/// Override `ND` (D / 16) per head dimension.
static COOP_ND: [[(&str, f64); 1]; 8] = [
    [("ND", 1.0)],
    [("ND", 2.0)],
    [("ND", 3.0)],
    [("ND", 4.0)],
    [("ND", 5.0)],
    [("ND", 6.0)],
    [("ND", 7.0)],
    [("ND", 8.0)],
];
/// Stats words reserved behind [lse ; delta] for max |dO| (a 256-byte-aligned view).
const COOP_STAT_SLOT: usize = 64;

const HAS_MASK: u32 = 1;
const HAS_START: u32 = 2;
const WRITE_LSE: u32 = 4;
/// Tiled kernel: D % 4 == 0, so every row offset is 4-aligned and operands load as vec4.
const VEC: u32 = 8;

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
    /// Rows kernel: workgroups per (sequence, kv head); Tiled and TensorCore: 64-row blocks
    /// per sequence.
    n_blk: u32,
    /// TensorCore backward: the stats word holding the bits of max |dout|.
    aux: u32,
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
    p0: u32,
    p1: u32,
}

/// Which kernel family runs an attention call. All compute the same function (the tests run
/// every case through each); they differ in speed per adapter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttentionKernel {
    /// On CPU adapters (lavapipe) `Rows` when Hq/Hkv <= 64, else `Workgroup`; on GPUs
    /// `TensorCore` where it fits (adapter and D), else `Tiled` when D <= 128 and the adapter
    /// has its workgroup memory, else `Workgroup` (and `Workgroup` for prefill chunks of fewer
    /// than 16 rows). Single-token decode:
    /// `SubgroupDecode` wherever it fits (see [`AttentionHeads::decode_kernel`]).
    #[default]
    Auto,
    /// One workgroup per (query row, head) with shared-memory score blocks: GPUs, any D.
    Workgroup,
    /// Four rows per invocation accumulated in place, no barriers: CPU adapters. Needs
    /// Hq/Hkv <= 64.
    Rows,
    /// Flash-attention tiles: 64 query (or key) rows per workgroup share every staged key
    /// (or query) tile: GPUs. Needs D <= 128 and 28 KiB of workgroup memory.
    Tiled,
    /// Flash attention on tensor cores (shaders/attention_coop_*.wgsl): the Tiled geometry with
    /// every product a 16x16x16 cooperative-matrix multiply-add, f16 operands (q, k, v and dout
    /// rounded while staged; dout scaled by a power of two from its max |x|) and f32
    /// accumulation, softmax statistics in f32. Needs 16x16x16 f16 -> f32 cooperative
    /// matrices, subgroups of exactly 32, D a multiple of 16 up to 128, 22.6 KiB of workgroup
    /// memory (kept under 24 KiB so two workgroups share an H100 SM), and |q|, |k|, |v| within
    /// f16's range. Training and prefill.
    TensorCore,
    /// Single-token decode only ([`attention_decode`] with one query row per sequence): one
    /// workgroup per (sequence, kv head) for all its query heads, subgroups split the keys,
    /// lanes split D (shaders/attention_decode.wgsl). Needs subgroups of a fixed size (a power
    /// of two, 8..=128), D a multiple of 4 up to 256, Hq/Hkv <= 8 and a merge buffer of
    /// 8 (4 at subgroup size 32) x Hq/Hkv x (4 D + 8) bytes of workgroup memory; other calls, and
    /// adapters or heads it does not fit, are shape errors. `Auto` picks it wherever it fits;
    /// force `Workgroup` (GPUs) or `Rows` (CPU adapters) to decode with the older kernels.
    SubgroupDecode,
}

/// Largest GQA group (Hq/Hkv) the Rows kernel spreads over one workgroup.
const ROWS_MAX_GROUP: usize = ROWS_WG;

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
    /// Kernel family; `Auto` by default.
    pub kernel: AttentionKernel,
}

impl AttentionHeads {
    pub fn new(q_heads: usize, kv_heads: usize, head_dim: usize) -> Self {
        AttentionHeads {
            q_heads,
            kv_heads,
            head_dim,
            scale: None,
            kernel: AttentionKernel::Auto,
        }
    }

    pub fn with_scale(mut self, scale: f32) -> Self {
        self.scale = Some(scale);
        self
    }

    pub fn with_kernel(mut self, kernel: AttentionKernel) -> Self {
        self.kernel = kernel;
        self
    }

    /// The kernel family that runs on `ctx`: `Auto` resolved (see [`AttentionKernel`]).
    pub fn resolved_kernel(&self, ctx: &GpuContext) -> AttentionKernel {
        match self.kernel {
            AttentionKernel::Auto => {
                let cpu = ctx.on_cpu();
                if cpu {
                    if self.group() <= ROWS_MAX_GROUP {
                        AttentionKernel::Rows
                    } else {
                        AttentionKernel::Workgroup
                    }
                } else if coop_fits(ctx, self.head_dim).is_ok() {
                    AttentionKernel::TensorCore
                } else if self.head_dim <= TILED_MAX_HEAD_DIM && tiled_fits(ctx) {
                    AttentionKernel::Tiled
                } else {
                    AttentionKernel::Workgroup
                }
            }
            k => k,
        }
    }

    /// Query heads per kv head (Hq/Hkv); 0 on a malformed layout, which `check` rejects.
    fn group(&self) -> usize {
        self.q_heads.checked_div(self.kv_heads).unwrap_or(0)
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
        if self.kernel == AttentionKernel::Rows && q / kv > ROWS_MAX_GROUP {
            return Err(GpuError::shape(
                op,
                format!(
                    "heads Hq {q}, Hkv {kv}: the Rows kernel holds at most {ROWS_MAX_GROUP} \
                     query heads per kv head"
                ),
            ));
        }
        if self.kernel == AttentionKernel::Tiled && d > TILED_MAX_HEAD_DIM {
            return Err(GpuError::shape(
                op,
                format!("head dim D {d}: the Tiled kernel holds at most D {TILED_MAX_HEAD_DIM}"),
            ));
        }
        if self.kernel == AttentionKernel::TensorCore
            && (d > COOP_MAX_HEAD_DIM || !d.is_multiple_of(16))
        {
            return Err(GpuError::shape(
                op,
                format!(
                    "head dim D {d}: the TensorCore kernel needs D a multiple of 16 up to \
                     {COOP_MAX_HEAD_DIM}"
                ),
            ));
        }
        Ok(())
    }

    /// The kernel for a training call on `ctx` (or a decode call that `decode_plan` leaves to
    /// the training families), with the adapter checks a forced kernel needs.
    fn kernel_for(&self, op: &'static str, ctx: &GpuContext) -> Result<AttentionKernel> {
        let k = self.resolved_kernel(ctx);
        if k == AttentionKernel::SubgroupDecode {
            return Err(GpuError::shape(
                op,
                "the SubgroupDecode kernel runs attention_decode with one query row per \
                 sequence only"
                    .to_string(),
            ));
        }
        if k == AttentionKernel::Tiled && !tiled_fits(ctx) {
            return Err(GpuError::shape(
                op,
                format!(
                    "the Tiled kernel needs {TILED_SHARED_BYTES} bytes of workgroup memory; the \
                     adapter has {}",
                    ctx.limits().max_compute_workgroup_storage_size
                ),
            ));
        }
        if k == AttentionKernel::TensorCore {
            if let Err(why) = coop_fits(ctx, self.head_dim) {
                return Err(GpuError::shape(op, format!("the TensorCore kernel {why}")));
            }
        }
        Ok(k)
    }

    /// The kernel family that runs [`attention_decode`] of `rows_per_seq` query rows per
    /// sequence on `ctx`. Under `Auto`: `SubgroupDecode` for one row per sequence wherever it
    /// fits (adapter subgroups, D, group size), else the training choice, with `Workgroup` in
    /// place of `Tiled` for chunks under 16 rows. A forced kernel is used as is, or is an error
    /// where it cannot run.
    pub fn decode_kernel(&self, ctx: &GpuContext, rows_per_seq: usize) -> Result<AttentionKernel> {
        self.decode_plan("attention_decode", ctx, rows_per_seq)
            .map(|(k, _)| k)
    }

    /// Whether [`attention_decode_shared`] runs on `ctx` for these heads (it needs the
    /// `SubgroupDecode` kernel).
    pub fn decodes_shared_prefix(&self, ctx: &GpuContext) -> bool {
        matches!(
            self.decode_plan("attention_decode_shared", ctx, 1),
            Ok((_, Some(_)))
        )
    }

    /// `decode_kernel` and, for `SubgroupDecode`, the geometry it runs with.
    fn decode_plan(
        &self,
        op: &'static str,
        ctx: &GpuContext,
        rows_per_seq: usize,
    ) -> Result<(AttentionKernel, Option<attention_decode::Geometry>)> {
        use AttentionKernel::{Auto, SubgroupDecode, TensorCore, Tiled, Workgroup};
        self.check(op)?;
        let fits = attention_decode::fits(ctx, self);
        match (self.kernel, fits) {
            (SubgroupDecode, Ok(geo)) if rows_per_seq == 1 => Ok((SubgroupDecode, Some(geo))),
            (SubgroupDecode, fits) => Err(GpuError::shape(
                op,
                match fits {
                    Err(why) => format!("the SubgroupDecode kernel {why}"),
                    Ok(_) => format!(
                        "the SubgroupDecode kernel runs one query row per sequence; got \
                         {rows_per_seq}"
                    ),
                },
            )),
            (Auto, Ok(geo)) if rows_per_seq == 1 => Ok((SubgroupDecode, Some(geo))),
            _ => match self.kernel_for(op, ctx)? {
                Tiled | TensorCore
                    if self.kernel == Auto && rows_per_seq < TILED_MIN_DECODE_ROWS =>
                {
                    Ok((Workgroup, None))
                }
                k => Ok((k, None)),
            },
        }
    }
}

/// The shader file that runs [`attention_decode`] with `rows_per_seq` query rows per sequence
/// (tests use it to check which kernel covers a case).
#[doc(hidden)]
pub fn planned_decode_shader(
    ctx: &GpuContext,
    h: &AttentionHeads,
    rows_per_seq: usize,
) -> Result<&'static str> {
    let kernel = h.decode_kernel(ctx, rows_per_seq)?;
    if kernel == AttentionKernel::SubgroupDecode {
        return Ok(attention_decode::shader_name(false));
    }
    let pl = plan(kernel, Pass::Decode, h, 1, rows_per_seq);
    Ok(pl.entry.source.name)
}

fn tiled_fits(ctx: &GpuContext) -> bool {
    ctx.limits().max_compute_workgroup_storage_size >= TILED_SHARED_BYTES
}

/// Whether the TensorCore kernel runs on `ctx` at head dim `d`; the reason when not.
fn coop_fits(ctx: &GpuContext, d: usize) -> std::result::Result<(), String> {
    let caps = ctx.caps();
    if !(caps.has_coop_16x16_f16_f32() && caps.shader_f16) {
        return Err("needs 16x16x16 f16 -> f32 cooperative matrices and shader-f16".into());
    }
    if caps.fixed_subgroup_size() != Some(32) {
        return Err("needs subgroups of exactly 32 invocations".into());
    }
    let shared = ctx.limits().max_compute_workgroup_storage_size;
    if shared < COOP_SHARED_BYTES {
        return Err(format!(
            "needs {COOP_SHARED_BYTES} bytes of workgroup memory; the adapter has {shared}"
        ));
    }
    if d > COOP_MAX_HEAD_DIM || !d.is_multiple_of(16) {
        return Err(format!(
            "needs D a multiple of 16 up to {COOP_MAX_HEAD_DIM}; got {d}"
        ));
    }
    Ok(())
}

/// Workgroups per (sequence, kv head) of the Rows kernel's query-row passes (forward, dq) over
/// `rows` rows at `per_lane` rows per invocation; mirrors `query_lane` in attention_rows.wgsl.
fn rows_query_blocks(h: &AttentionHeads, rows: usize, per_lane: usize) -> usize {
    let group = h.group();
    let vw = (ROWS_SIMD / group).max(1);
    let slots = (ROWS_WG / group) / vw * vw;
    rows.div_ceil(slots * per_lane)
}

/// The passes the attention ops record.
#[derive(Clone, Copy)]
enum Pass {
    Forward,
    Decode,
    Dq,
    Dkdv,
}

/// Entry point, override constants and grid of one pass of the resolved kernel family over
/// `batch` sequences of `rows` query rows (key rows for dk/dv) each.
struct Plan {
    entry: &'static KernelEntry,
    constants: &'static [(&'static str, f64)],
    n_wg: usize,
    n_blk: usize,
    /// Extra `Params::flags` bits.
    flags: u32,
}

fn plan(
    kernel: AttentionKernel,
    pass: Pass,
    h: &AttentionHeads,
    batch: usize,
    rows: usize,
) -> Plan {
    let fixed = |entry, n_wg| Plan {
        entry,
        constants: &[],
        n_wg,
        n_blk: 0,
        flags: 0,
    };
    if kernel == AttentionKernel::TensorCore {
        let n_blk = rows.div_ceil(COOP_BLOCK);
        let (entry, heads) = match pass {
            Pass::Forward | Pass::Decode => (&COOP_FWD, h.q_heads),
            Pass::Dq => (&COOP_BWD_DQ, h.q_heads),
            Pass::Dkdv => (&COOP_BWD_DKDV, h.kv_heads),
        };
        let nd = (h.head_dim / 16).clamp(1, COOP_ND.len());
        return Plan {
            entry,
            constants: &COOP_ND[nd - 1],
            n_wg: batch * heads * n_blk,
            n_blk,
            flags: 0,
        };
    }
    if kernel == AttentionKernel::Tiled {
        let n_blk = rows.div_ceil(TILED_BLOCK);
        let (entry, heads) = match pass {
            Pass::Forward | Pass::Decode => (&TILED_FWD, h.q_heads),
            Pass::Dq => (&TILED_BWD_DQ, h.q_heads),
            Pass::Dkdv => (&TILED_BWD_DKDV, h.kv_heads),
        };
        return Plan {
            entry,
            constants: &[],
            n_wg: batch * heads * n_blk,
            n_blk,
            flags: if h.head_dim.is_multiple_of(4) { VEC } else { 0 },
        };
    }
    if kernel != AttentionKernel::Rows {
        return match pass {
            Pass::Forward | Pass::Decode => fixed(&ATTN_FWD, batch * rows * h.q_heads),
            Pass::Dq => fixed(&ATTN_BWD_DQ, batch * rows * h.q_heads),
            Pass::Dkdv => fixed(&ATTN_BWD_DKDV, batch * rows * h.kv_heads),
        };
    }
    let (entry, constants, n_blk): (_, &'static [(&'static str, f64)], _) = match pass {
        Pass::Forward => (&ROWS_FWD, &[], rows_query_blocks(h, rows, ROWS_PER_LANE)),
        // One query row per sequence and head: rows per invocation would sit idle.
        Pass::Decode => (&ROWS_FWD, &[("ROWS", 1.0)], rows_query_blocks(h, rows, 1)),
        Pass::Dq => (&ROWS_BWD_DQ, &[], rows_query_blocks(h, rows, ROWS_PER_LANE)),
        Pass::Dkdv => (&ROWS_BWD_DKDV, &[], rows.div_ceil(ROWS_WG * ROWS_PER_LANE)),
    };
    Plan {
        entry,
        constants,
        n_wg: batch * h.kv_heads * n_blk,
        n_blk,
        flags: 0,
    }
}

/// Records one planned pass with its grid in `p`.
fn dispatch(
    rec: &mut Recorder,
    op: &'static str,
    plan: Plan,
    p: &mut AttnParams,
    binds: Vec<crate::gpu::Binding>,
) -> Result<()> {
    p.n_wg = u32_of(op, plan.n_wg)?;
    p.n_blk = u32_of(op, plan.n_blk)?;
    p.flags = (p.flags & !VEC) | plan.flags;
    let groups = grid_1d(p.n_wg, rec.max_groups());
    rec.dispatch(plan.entry, plan.constants, &*p, binds, groups)
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
/// `[B*T, Hq*D]`.
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
    u32_of(OP, x.q.numel())?;
    let mut p = training_params(h, x.batch, t, x.mask.is_some());
    p.flags |= WRITE_LSE;
    let ctx = rec.ctx().clone();
    let plan = plan(h.kernel_for(OP, &ctx)?, Pass::Forward, h, x.batch, t);
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
    dispatch(rec, OP, plan, &mut p, binds)
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
    let kernel = h.kernel_for(OP, &ctx)?;
    // stats = [lse ; delta] (and for TensorCore, max |dout| in a slot behind them): one buffer
    // keeps each backward kernel at 8 storage bindings (the portable minimum of
    // max_storage_buffers_per_shader_stage).
    let aux = (2 * n_stat).next_multiple_of(COOP_STAT_SLOT);
    let coop = kernel == AttentionKernel::TensorCore;
    let len = if coop {
        aux + COOP_STAT_SLOT
    } else {
        2 * n_stat
    };
    let stats = Tensor::zeros(&ctx, &[len], DType::F32)?;
    rec.copy(
        lse.binding_range(OP, 0, n_stat)?,
        stats.binding_range(OP, 0, n_stat)?,
    )?;
    let mut p = training_params(h, x.batch, t, x.mask.is_some());
    p.n_stat = u32_of(OP, n_stat)?;
    u32_of(OP, x.q.numel())?;
    if coop {
        p.aux = u32_of(OP, aux)?;
        absmax_bits(rec, dout, stats.binding_range(OP, aux, COOP_STAT_SLOT)?)?;
    }
    let mask = optional(&ctx, OP, x.mask)?;

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
    let dq = plan(kernel, Pass::Dq, h, x.batch, t);
    dispatch(rec, OP, dq, &mut p, binds)?;

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
    let dkdv = plan(kernel, Pass::Dkdv, h, x.batch, t);
    dispatch(rec, OP, dkdv, &mut p, binds)
}

/// Key and value caches of `batch` sequences, each `[B, Hkv, Tmax, D]` of f32 or f16: one head's
/// keys of one sequence are contiguous rows of D. Position p of sequence b holds that
/// sequence's p-th token (left padding, if any, stays in the cache and is masked by a key
/// mask). An f16 cache (D even) holds the appended rows rounded to nearest even and halves what
/// a decode step reads; the single-row decode kernel reads it directly, the other attention
/// kernels through an f32 copy made per call.
#[derive(Clone, Debug)]
pub struct KvCache {
    pub k: Tensor,
    pub v: Tensor,
}

impl KvCache {
    /// A zero-filled f32 cache.
    pub fn new(
        ctx: &GpuContext,
        batch: usize,
        kv_heads: usize,
        max_len: usize,
        head_dim: usize,
    ) -> Result<Self> {
        Self::with_dtype(ctx, DType::F32, batch, kv_heads, max_len, head_dim)
    }

    /// A zero-filled cache of `dtype` (f32, or f16 with an even `head_dim`).
    pub fn with_dtype(
        ctx: &GpuContext,
        dtype: DType,
        batch: usize,
        kv_heads: usize,
        max_len: usize,
        head_dim: usize,
    ) -> Result<Self> {
        let ok = dtype == DType::F32 || (dtype == DType::F16 && head_dim.is_multiple_of(2));
        if !ok {
            return Err(GpuError::shape(
                "kv_cache",
                format!("a cache holds f32, or f16 with an even head dim; got {dtype:?} at D {head_dim}"),
            ));
        }
        let shape = [batch, kv_heads, max_len, head_dim];
        Ok(KvCache {
            k: Tensor::zeros(ctx, &shape, dtype)?,
            v: Tensor::zeros(ctx, &shape, dtype)?,
        })
    }

    /// `[B, Hkv, Tmax, D]`, after checking that k and v agree.
    fn dims(&self, op: &'static str) -> Result<[usize; 4]> {
        let dtype = self.k.dtype();
        match self.k.shape() {
            [b, g, t, d]
                if (dtype == DType::F32 || (dtype == DType::F16 && d % 2 == 0))
                    && is(&self.v, dtype, self.k.shape()) =>
            {
                Ok([*b, *g, *t, *d])
            }
            _ => Err(GpuError::shape(
                op,
                format!(
                    "cache k and v must both be f32 [B, Hkv, Tmax, D] (or both f16, D even): {}",
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
    pub fn dtype(&self) -> DType {
        self.k.dtype()
    }

    /// 32-bit words per cache row of D elements.
    fn row_words(&self, d: usize) -> usize {
        if self.dtype() == DType::F16 {
            d / 2
        } else {
            d
        }
    }

    /// An f32 copy of an f16 cache (itself when it is f32), recorded into `rec`.
    fn widened(&self, rec: &mut Recorder, op: &'static str) -> Result<KvCache> {
        let [b, g, t, d] = self.dims(op)?;
        if self.dtype() == DType::F32 {
            return Ok(self.clone());
        }
        let wide = KvCache::new(rec.ctx(), b, g, t, d)?;
        let n = u32_of(op, self.k.numel() / 2)?;
        let p = CacheParams {
            batch: b as u32,
            rows: b as u32,
            hkv: g as u32,
            d: (d / 2) as u32,
            tmax: t as u32,
            n,
            p0: 0,
            p1: t as u32,
        };
        let ctx = rec.ctx().clone();
        let binds = vec![
            self.k.binding(op)?,
            self.v.binding(op)?,
            ctx.unused_binding(),
            wide.k.binding(op)?,
            wide.v.binding(op)?,
        ];
        let groups = grid_1d(n.div_ceil(256), rec.max_groups());
        rec.dispatch(&KV_WIDEN, &[], &p, binds, groups)?;
        Ok(wide)
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
    // One invocation per cache word: an f16 cache packs two new elements into each.
    let words = cache.row_words(d);
    let n = u32_of(OP, rows * g * words)?;
    let p = CacheParams {
        batch: b as u32,
        rows: (rows / b) as u32,
        hkv: g as u32,
        d: words as u32,
        tmax: tmax as u32,
        n,
        p0: 0,
        p1: 0,
    };
    let binds = vec![
        k_new.binding(OP)?,
        v_new.binding(OP)?,
        start.binding(OP)?,
        cache.k.binding(OP)?,
        cache.v.binding(OP)?,
    ];
    let half = if cache.dtype() == DType::F16 {
        1.0
    } else {
        0.0
    };
    rec.dispatch(
        &KV_APPEND,
        &[("HALF", half)],
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
/// masked or lies at or beyond Tmax gets a zero row. Writes `out [B*S, Hq*D]`. The kernel is
/// [`AttentionHeads::decode_kernel`]'s choice.
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
    u32_of(OP, rows * h.q_heads * h.head_dim)?;
    let mut p = AttnParams {
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
        ..Default::default()
    };
    let ctx = rec.ctx().clone();
    let (kernel, geo) = h.decode_plan(OP, &ctx, rows / b)?;
    if let Some(geo) = geo {
        let call = attention_decode::DecodeCall {
            batch: b,
            tmax,
            k: &cache.k,
            v: &cache.v,
            q,
            start,
            key_mask,
            out,
            prefix: None,
        };
        return attention_decode::record(rec, OP, h, geo, &call);
    }
    if cache.dtype() == DType::F16 {
        // Only the single-row kernel reads f16 rows: the others get an f32 copy.
        let wide = cache.widened(rec, OP)?;
        return attention_decode(rec, h, &wide, q, start, key_mask, out);
    }
    let plan = plan(kernel, Pass::Decode, h, b, rows / b);
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
    dispatch(rec, OP, plan, &mut p, binds)
}

/// Where each decode row's first keys live when rows share them (beam search: every beam of a
/// user reads the user's prompt from the prefill's cache, and its own cache holds only the
/// positions after it). Built once per step on the host, where its entries are checked: the
/// decode kernel trusts them.
pub struct PrefixTable {
    /// u32 `[3 B]`: each row's query position (counting the prefix), its prefix row, and the
    /// prefix length.
    words: Tensor,
    batch: usize,
    /// One more than the largest prefix row (the prefix cache needs at least this many rows).
    rows_needed: usize,
    /// The longest prefix (the prefix cache needs at least this many positions).
    longest: usize,
}

impl PrefixTable {
    /// Row `b` queries at position `qpos[b]` (its keys are positions `0..=qpos[b]`), of which
    /// the first `lens[b]` are positions `0..lens[b]` of row `rows[b]` of the prefix cache and
    /// the rest positions `0..=qpos[b] - lens[b]` of its own cache.
    pub fn new(ctx: &GpuContext, qpos: &[u32], rows: &[u32], lens: &[u32]) -> Result<Self> {
        let b = qpos.len();
        if rows.len() != b || lens.len() != b || b == 0 {
            return Err(GpuError::shape(
                "prefix_table",
                format!(
                    "need one query position, prefix row and prefix length per row; got {}, {} \
                     and {}",
                    b,
                    rows.len(),
                    lens.len()
                ),
            ));
        }
        if let Some(i) = (0..b).find(|&i| lens[i] > qpos[i]) {
            return Err(GpuError::shape(
                "prefix_table",
                format!(
                    "row {i}: prefix of {} positions but query position {} (the query's own key \
                     must be in the row's own cache)",
                    lens[i], qpos[i]
                ),
            ));
        }
        let words: Vec<u32> = qpos.iter().chain(rows).chain(lens).copied().collect();
        Ok(PrefixTable {
            words: Tensor::from_u32(ctx, &[3 * b], &words)?,
            batch: b,
            rows_needed: rows.iter().map(|&r| r as usize + 1).max().unwrap_or(0),
            longest: lens.iter().map(|&l| l as usize).max().unwrap_or(0),
        })
    }
}

/// [`attention_decode`] of one query row per sequence whose first keys come from a shared
/// prefix cache (`prefix` `[P, Hkv, PTmax, D]`, the element type of `cache`) as `table` says,
/// and the rest from `cache` (position 0 of a row's own cache is its key right after the
/// prefix). Runs on the `SubgroupDecode` kernel only ([`AttentionHeads::decodes_shared_prefix`]
/// says whether it can); no key mask.
pub fn attention_decode_shared(
    rec: &mut Recorder,
    h: &AttentionHeads,
    cache: &KvCache,
    prefix: &KvCache,
    table: &PrefixTable,
    q: &Tensor,
    out: &Tensor,
) -> Result<()> {
    const OP: &str = "attention_decode_shared";
    h.check(OP)?;
    let [b, g, tmax, d] = cache.dims(OP)?;
    let [pb, pg, ptmax, pd] = prefix.dims(OP)?;
    let qw = h.q_heads * h.head_dim;
    let ok = b > 0
        && g == h.kv_heads
        && d == h.head_dim
        && (pg, pd) == (g, d)
        && prefix.dtype() == cache.dtype()
        && table.batch == b
        && table.rows_needed <= pb
        && table.longest <= ptmax
        && is(q, DType::F32, &[b, qw])
        && is(out, DType::F32, &[b, qw]);
    expect(
        OP,
        ok,
        &format!(
            "need q, out f32 [B, Hq*D], a cache [B, Hkv, Tmax, D] matching the heads, a prefix \
             cache of the same element type with [Hkv, D] equal and at least {} rows of {} \
             positions, and a table of {} rows",
            table.rows_needed, table.longest, table.batch
        ),
        h,
        &[
            ("q", q),
            ("cache k", &cache.k),
            ("prefix k", &prefix.k),
            ("out", out),
        ],
    )?;
    u32_of(OP, cache.k.numel().max(prefix.k.numel()))?;
    u32_of(OP, b * qw)?;
    let ctx = rec.ctx().clone();
    let (kernel, geo) = h.decode_plan(OP, &ctx, 1)?;
    let Some(geo) = geo else {
        return Err(GpuError::shape(
            OP,
            format!("a shared prefix is read only by the SubgroupDecode kernel; this call plans {kernel:?}"),
        ));
    };
    let call = attention_decode::DecodeCall {
        batch: b,
        tmax,
        k: &cache.k,
        v: &cache.v,
        q,
        start: &table.words,
        key_mask: None,
        out,
        prefix: Some((&prefix.k, &prefix.v, ptmax)),
    };
    attention_decode::record(rec, OP, h, geo, &call)
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
    let end = src.max_len();
    kv_cache_gather_keeping(rec, src, src_index, None, end, dst)
}

/// [`kv_cache_gather`] leaving positions below `keep[b]` (u32 `[B_dst]`) of each destination
/// row as they are: beam search skips the prompt a row already holds. `keep` comes with a
/// lower bound of its entries (their minimum), below which no position is even visited.
/// Positions from `end` on (clamped to Tmax) are left as they are too: past the longest source
/// row they hold nothing a query sees, and a cache's capacity may be well beyond that
/// (`DecodeState` rounds it up so that calls of similar lengths reuse the buffers).
pub fn kv_cache_gather_keeping(
    rec: &mut Recorder,
    src: &KvCache,
    src_index: &Tensor,
    keep: Option<(&Tensor, usize)>,
    end: usize,
    dst: &KvCache,
) -> Result<()> {
    const OP: &str = "kv_cache_gather";
    let [sb, g, tmax, d] = src.dims(OP)?;
    let [db, g2, tmax2, d2] = dst.dims(OP)?;
    let ok = g == g2
        && tmax == tmax2
        && d == d2
        && src.dtype() == dst.dtype()
        && is(src_index, DType::U32, &[db])
        && keep.is_none_or(|(k, _)| is(k, DType::U32, &[db]));
    let shared = [&src.k, &src.v].iter().any(|s| {
        [&dst.k, &dst.v]
            .iter()
            .any(|d| std::sync::Arc::ptr_eq(&s.buffer, &d.buffer))
    });
    if !ok || shared {
        return Err(GpuError::shape(
            OP,
            format!(
                "need distinct caches of one element type with equal [Hkv, Tmax, D], src_index \
                 and keep u32 [B_dst]: {}",
                describe(&[
                    ("src k", &src.k),
                    ("dst k", &dst.k),
                    ("src_index", src_index)
                ])
            ),
        ));
    }
    // No keep list: keep nothing (position 0 onwards is copied). The grid covers only the
    // positions from the smallest keep on.
    let end = end.min(tmax);
    let (keep, p0) = match keep {
        Some((k, p0)) => (k.clone(), p0.min(end)),
        None => (Tensor::from_u32(rec.ctx(), &[db], &vec![0; db])?, 0),
    };
    let words = src.row_words(d);
    let n = u32_of(OP, db * g * (end - p0) * words)?;
    if n == 0 {
        return Ok(());
    }
    let p = CacheParams {
        batch: db as u32,
        rows: sb as u32,
        hkv: g as u32,
        d: words as u32,
        tmax: tmax as u32,
        n,
        p0: p0 as u32,
        p1: end as u32,
    };
    let binds = vec![
        src.k.binding(OP)?,
        src.v.binding(OP)?,
        src_index.binding(OP)?,
        dst.k.binding(OP)?,
        dst.v.binding(OP)?,
        keep.binding(OP)?,
    ];
    rec.dispatch(
        &KV_GATHER,
        &[],
        &p,
        binds,
        grid_1d(n.div_ceil(256), rec.max_groups()),
    )
}
