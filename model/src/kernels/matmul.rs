//! Batched matmul with transposed operands, optional bias, accumulation, and chunking of
//! operands larger than one storage binding (a 150k x 1024 f32 LM head is 600 MiB; lavapipe
//! binds at most 128 MiB).
//!
//! Four kernels share one parameter block and one launch path: the portable 4x4-per-invocation
//! kernel (any adapter, any shape), a subgroup-broadcast kernel for CPU adapters whose subgroups
//! are 8-wide SIMD vectors (lavapipe: `Simd8`), a shared-memory 128x128-tiled f32 kernel for
//! GPUs, and a cooperative-matrix (tensor core) kernel for f16 operands with f32 accumulation.
//! The tiled kernel has two entry files: a bounds-checked general one, and an interior one
//! compiled without runtime checks, launched only for shapes whose every block is whole (see
//! `interior_fits`). The `Simd8` kernel is compiled without runtime checks too; it clamps every
//! index itself and runs only where its vec4 operand loads are aligned (see `simd8_fits`).

use bytemuck::{Pod, Zeroable};

use crate::gpu::{
    grid_1d, Access, Binding, DType, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor,
};

static SRC: ShaderSource = crate::shader!("matmul.wgsl");
static MATMUL: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "main",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};
static TILED_SRC: ShaderSource = crate::shader!("matmul_tiled.wgsl");
static TILED: KernelEntry = KernelEntry {
    source: &TILED_SRC,
    entry: "main",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};
/// Same file twice: the trusted module is the one `Tiled` runs; the checked one exists only to
/// measure what dropping wgpu's runtime checks is worth (`TiledConfig::checked`).
static INTERIOR_SRC: ShaderSource = crate::shader!(trusted "matmul_tiled_interior.wgsl");
static INTERIOR: KernelEntry = KernelEntry {
    source: &INTERIOR_SRC,
    entry: "main",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};
/// Trusted: every index is in bounds under `tiled64_fits` (the shader's header has the proof).
static TILED64_SRC: ShaderSource = crate::shader!(trusted "matmul_tiled64.wgsl");
static TILED64: KernelEntry = KernelEntry {
    source: &TILED64_SRC,
    entry: "main",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};
static INTERIOR_CHECKED_SRC: ShaderSource = crate::shader!("matmul_tiled_interior.wgsl");
static INTERIOR_CHECKED: KernelEntry = KernelEntry {
    source: &INTERIOR_CHECKED_SRC,
    entry: "main",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};
/// The general tiled kernel without runtime checks, for the same measurement. It is safe too:
/// every storage access is guarded by its own M/N/K tests, and its workgroup indices are
/// bounded by construction, but it is not used outside benchmarks.
static TILED_UNCHECKED_SRC: ShaderSource = crate::shader!(trusted "matmul_tiled.wgsl");
static TILED_UNCHECKED: KernelEntry = KernelEntry {
    source: &TILED_UNCHECKED_SRC,
    entry: "main",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};
/// Trusted: every index is clamped in the shader (its header has the proof), and dropping wgpu's
/// checks measured 15% faster for TN and up to 8% for the other layouts on lavapipe.
static SIMD8_SRC: ShaderSource = crate::shader!(trusted "matmul_simd8.wgsl");
static SIMD8: KernelEntry = KernelEntry {
    source: &SIMD8_SRC,
    entry: "main",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};
static SPLIT_REDUCE_SRC: ShaderSource = crate::shader!("matmul_split_reduce.wgsl");
static SPLIT_REDUCE: KernelEntry = KernelEntry {
    source: &SPLIT_REDUCE_SRC,
    entry: "main",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};
static COOP_SRC: ShaderSource = crate::shader!("matmul_coop.wgsl");
static COOP: KernelEntry = KernelEntry {
    source: &COOP_SRC,
    entry: "main",
    bindings: COOP_BINDINGS,
};
/// Trusted: the shader's header proves every access in bounds under `coop_tiled_fits`; the
/// checked build measured 49 TFLOP/s at 4096^3 on an H100 against 179 trusted.
static COOP_TILED_SRC: ShaderSource = crate::shader!(trusted "matmul_coop_tiled.wgsl");
static COOP_TILED: KernelEntry = KernelEntry {
    source: &COOP_TILED_SRC,
    entry: "main",
    bindings: COOP_BINDINGS,
};
static COOP_DIRECT_SRC: ShaderSource = crate::shader!("matmul_coop_direct.wgsl");
static COOP_DIRECT: KernelEntry = KernelEntry {
    source: &COOP_DIRECT_SRC,
    entry: "main",
    bindings: COOP_BINDINGS,
};
/// A, B, bias, C, and the scale words of A and B (`matmul_scaled`).
const COOP_BINDINGS: &[Access] = &[
    Access::Read,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
    Access::Read,
    Access::Read,
];

/// Flag bits of `Params::flags` (the portable kernel reads only the first two).
const F_BIAS: u32 = 1;
const F_ACCUMULATE: u32 = 2;
const F_TRANS_A: u32 = 4;
const F_TRANS_B: u32 = 8;
const F_VEC_A: u32 = 16;
const F_VEC_B: u32 = 32;
const F_SCALED: u32 = 64;

/// Output block of one workgroup of the tiled and cooperative kernels.
const TILE: usize = 128;
/// Output block of one workgroup (one subgroup of 8) of the `Simd8` kernel.
const SIMD8_TILE: u32 = 32;
/// Fewest rows for which `Auto` prefers `Simd8` to the portable kernel: below this its 32-row
/// blocks are mostly idle; on lavapipe it measured 15-35% slower at 1 and 4 rows (x 128 x 128,
/// x 832 x 128) and 10-30% faster at 8 (x 384 x 128).
const SIMD8_MIN_ROWS: usize = 8;
/// Shared memory the tiled and cooperative kernels declare.
const TILED_SHARED_BYTES: u32 = 32 << 10;
const COOP_SHARED_BYTES: u32 = 48 << 10;

/// Which kernel runs a matmul.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MatmulKernel {
    /// Cooperative matrix when both operands are f16 (and the adapter has it); otherwise the
    /// tiled kernel on GPUs for problems of at least one 128x128 output block; `Simd8` on CPU
    /// adapters with subgroups of exactly 8 for problems of at least 8 rows; else portable.
    #[default]
    Auto,
    /// One invocation per 4x4 block of C, scalar loads, no shared memory or subgroups: runs on
    /// any adapter and any shape (the fallback of the other f32 kernels).
    Portable,
    /// For CPU Vulkan drivers that run a subgroup of 8 as one SIMD vector (lavapipe): a subgroup
    /// owns 32x32 of C, loads each operand element once as part of a vec4 and shares A through
    /// `subgroupBroadcast` (matmul_simd8.wgsl). Needs subgroups of exactly 8; dispatches whose
    /// operands are not 4-aligned along their contiguous axes (see `simd8_fits`) run the
    /// portable kernel.
    Simd8,
    /// Shared-memory tiled f32: the 128x128 interior kernel where the shape allows, the 64x64
    /// one (matmul_tiled64.wgsl) for whole 64x64 blocks, else the general one.
    Tiled,
    /// The tiled kernel's general (bounds-checked) path for every shape.
    TiledGeneral,
    /// Cooperative matrix, 16x16x16 f16 x f16 -> f32; A and B must be f16. Problems of whole
    /// 128x128 blocks with 8-aligned operands (see `coop_tiled_fits`) run the 16-byte-load
    /// staged kernel (matmul_coop_tiled.wgsl), other problems of whole 16x16 tiles (see
    /// `coop_direct_fits`) the direct kernel (fragments straight from storage, 64x64 per
    /// subgroup), the rest the general staged one.
    Coop16,
    /// The staged cooperative-matrix kernel for every shape (128x128 per workgroup, operands
    /// through workgroup memory): the general path of `Coop16`, forced for tests and benchmarks.
    Coop16Staged,
    /// A benchmark variant of the tiled kernel (what each change is worth).
    #[doc(hidden)]
    TiledVariant(TiledConfig),
}

/// One configuration of the tiled kernel. `Tiled` is `TiledConfig::BEST` and `TiledGeneral`
/// is `{ interior: false, checked: true, .. }`.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TiledConfig {
    /// Use the interior kernel where `interior_fits`.
    pub interior: bool,
    /// Compile with wgpu's runtime checks (index clamping, loop bounding).
    pub checked: bool,
    /// Slab depth of the interior kernel: 8 or 16.
    pub bk: u32,
}

impl TiledConfig {
    /// 8-deep slabs measured 2.7% faster than 16 at 4096^3 on an H200 (26.7 vs 26.0 TFLOP/s,
    /// bench/kernels-nvidia-h200-2026-11-26.md) and admit any K divisible by 8.
    pub const BEST: TiledConfig = TiledConfig {
        interior: true,
        checked: false,
        bk: 8,
    };
    const GENERAL: TiledConfig = TiledConfig {
        interior: false,
        checked: true,
        bk: 16,
    };
}

impl MatmulKernel {
    fn tiled(self) -> Option<TiledConfig> {
        match self {
            MatmulKernel::Tiled => Some(TiledConfig::BEST),
            MatmulKernel::TiledGeneral => Some(TiledConfig::GENERAL),
            MatmulKernel::TiledVariant(v) => Some(v),
            _ => None,
        }
    }
}

/// The parameter block every matmul kernel file reads (labs launching their own kernel files
/// build it with `params_for`).
#[doc(hidden)]
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
pub struct Params {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub batch: u32,
    pub a_off: u32,
    pub a_bs: u32,
    pub a_rs: u32,
    pub a_cs: u32,
    pub b_off: u32,
    pub b_bs: u32,
    pub b_rs: u32,
    pub b_cs: u32,
    pub c_off: u32,
    pub c_bs: u32,
    pub c_rs: u32,
    pub flags: u32,
    pub bias_off: u32,
    pub alpha: f32,
    /// Split K (tiled and cooperative kernels): slice length and count; K and 1 when unsplit.
    pub k_split: u32,
    pub splits: u32,
}

/// Parameters of matmul_split_reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceParams {
    rows: u32,
    n: u32,
    batch: u32,
    splits: u32,
    c_off: u32,
    c_bs: u32,
    c_rs: u32,
    flags: u32,
    bias_off: u32,
    alpha: f32,
    _p: [u32; 2],
}

/// Whether a matmul's K is split into slices whose partial products a second pass sums. Small
/// output grids (decode's 64 rows, the LM-head input gradient's 384 x 1024 over K = 153,216)
/// otherwise leave most of a GPU idle: each workgroup owns a 128x128 block, so 64 x 1024 is 8
/// workgroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SplitK {
    /// Split on GPU adapters (not CPU ones) when the grid has fewer than
    /// `SPLIT_TARGET_INVOCATIONS` invocations, into as many slices as bring it there, at least
    /// `SPLIT_MIN_K` deep each and within `SPLIT_SCRATCH_BYTES` of partial sums.
    #[default]
    Auto,
    Off,
    /// Exactly this many slices where K allows (slices are multiples of 32 deep); only the
    /// tiled and cooperative kernels split.
    Slices(u32),
}

/// Invocations a grid should have for `SplitK::Auto` to leave it unsplit (an H100 holds about
/// 270k resident; a quarter keeps each slice's partial-sum traffic small).
const SPLIT_TARGET_INVOCATIONS: u64 = 65_536;
/// Shallowest slice `SplitK::Auto` makes.
const SPLIT_MIN_K: usize = 64;
/// Most partial-sum bytes `SplitK::Auto` uses (the recorder's scratch).
const SPLIT_SCRATCH_BYTES: usize = 32 << 20;
/// Slice depths are multiples of this, so no kernel's K slab (8, 16 or 32 deep) crosses a slice.
const SPLIT_ALIGN: usize = 32;

/// How the operands are stored: `trans_a` means A is stored as [K, M], `trans_b` means B is
/// stored as [N, K] (the layout of a PyTorch `Linear` weight, so `x @ W^T` is `trans_b`).
#[derive(Clone, Copy, Debug)]
pub struct MatmulOpts {
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    /// C += result instead of C = result.
    pub accumulate: bool,
    pub kernel: MatmulKernel,
    pub split_k: SplitK,
}

impl Default for MatmulOpts {
    fn default() -> Self {
        MatmulOpts {
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            accumulate: false,
            kernel: MatmulKernel::Auto,
            split_k: SplitK::Auto,
        }
    }
}

impl MatmulOpts {
    pub fn nt() -> Self {
        MatmulOpts {
            trans_b: true,
            ..Default::default()
        }
    }
    pub fn tn() -> Self {
        MatmulOpts {
            trans_a: true,
            ..Default::default()
        }
    }
    pub fn accumulate(mut self, yes: bool) -> Self {
        self.accumulate = yes;
        self
    }
    pub fn kernel(mut self, k: MatmulKernel) -> Self {
        self.kernel = k;
        self
    }
    pub fn split_k(mut self, s: SplitK) -> Self {
        self.split_k = s;
        self
    }
}

/// Problem dimensions after validating the shapes.
#[derive(Clone, Copy, Debug)]
struct Dims {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    b_batched: bool,
    /// A and B are f16 (cooperative-matrix kernel).
    half: bool,
}

fn dims(a: &Tensor, b: &Tensor, c: &Tensor, bias: Option<&Tensor>, o: &MatmulOpts) -> Result<Dims> {
    let err = |why: &str| {
        GpuError::shape(
            "matmul",
            format!(
                "{why}: A {:?}{}, B {:?}{}, C {:?}{}",
                a.shape(),
                if o.trans_a { "^T" } else { "" },
                b.shape(),
                if o.trans_b { "^T" } else { "" },
                c.shape(),
                bias.map(|t| format!(", bias {:?}", t.shape()))
                    .unwrap_or_default()
            ),
        )
    };
    let half = a.dtype() == DType::F16 && b.dtype() == DType::F16;
    if !half && (a.dtype() != DType::F32 || b.dtype() != DType::F32) {
        return Err(err("A and B must be both f32 or both f16"));
    }
    let coop = matches!(o.kernel, MatmulKernel::Coop16 | MatmulKernel::Coop16Staged);
    if half && !coop && o.kernel != MatmulKernel::Auto {
        return Err(err("f16 operands need the cooperative-matrix kernel"));
    }
    if !half && coop {
        return Err(err("the cooperative-matrix kernel takes f16 A and B"));
    }
    for t in [c].into_iter().chain(bias) {
        if t.dtype() != DType::F32 {
            return Err(err("C and bias must be f32"));
        }
    }
    let (batch, ar, ac) = match a.shape() {
        [r, c] => (1, *r, *c),
        [bt, r, c] => (*bt, *r, *c),
        _ => return Err(err("A must be 2-D or 3-D")),
    };
    let (m, k) = if o.trans_a { (ac, ar) } else { (ar, ac) };
    let (b_batched, br, bc) = match b.shape() {
        [r, c] => (false, *r, *c),
        [bt, r, c] if *bt == batch => (true, *r, *c),
        _ => return Err(err("B must be 2-D or 3-D with A's batch")),
    };
    let (kb, n) = if o.trans_b { (bc, br) } else { (br, bc) };
    if kb != k {
        return Err(err("inner dimensions differ"));
    }
    let c_ok = match c.shape() {
        [r, cc] => batch == 1 && *r == m && *cc == n,
        [bt, r, cc] => *bt == batch && *r == m && *cc == n,
        _ => false,
    };
    if !c_ok {
        return Err(err("C must be [batch,] M x N"));
    }
    if let Some(t) = bias {
        if t.shape() != [n] {
            return Err(err("bias must be [N]"));
        }
    }
    Ok(Dims {
        batch,
        m,
        n,
        k,
        b_batched,
        half,
    })
}

/// Whether this adapter runs the cooperative-matrix kernels (16x16x16 f16 -> f32 with
/// shader-f16, subgroups of exactly 32 and 48 KiB of workgroup memory).
pub fn coop16_available(ctx: &crate::gpu::GpuContext) -> bool {
    ctx.caps().has_coop_16x16_f16_f32()
        && ctx.caps().shader_f16
        && ctx.caps().fixed_subgroup_size() == Some(32)
        && ctx.limits().max_compute_workgroup_storage_size >= COOP_SHARED_BYTES
}

/// The kernel `o.kernel` resolves to on this adapter for this problem.
fn choose(rec: &Recorder, d: &Dims, o: &MatmulOpts) -> Result<MatmulKernel> {
    let ctx = rec.ctx();
    let shared = ctx.limits().max_compute_workgroup_storage_size;
    let coop_ok = coop16_available(ctx);
    let simd8_ok = ctx.caps().fixed_subgroup_size() == Some(8);
    let missing = |feature: &'static str| GpuError::MissingFeature {
        op: "matmul",
        feature,
        adapter: ctx.info().name.clone(),
    };
    match o.kernel {
        MatmulKernel::Coop16 | MatmulKernel::Coop16Staged | MatmulKernel::Auto if d.half => {
            if coop_ok {
                Ok(if o.kernel == MatmulKernel::Coop16Staged {
                    MatmulKernel::Coop16Staged
                } else {
                    MatmulKernel::Coop16
                })
            } else {
                Err(missing(
                    "cooperative matrix 16x16x16 f16->f32 with shader-f16, subgroups of 32 \
                     and 48 KiB of workgroup memory",
                ))
            }
        }
        k if k.tiled().is_some() && shared < TILED_SHARED_BYTES => {
            Err(missing("32 KiB of workgroup memory"))
        }
        MatmulKernel::Simd8 if !simd8_ok => Err(missing("subgroups of exactly 8 invocations")),
        MatmulKernel::Auto => {
            let gpu = !ctx.on_cpu();
            let big = d.batch * d.m * d.n >= TILE * TILE;
            Ok(if gpu && big && shared >= TILED_SHARED_BYTES {
                MatmulKernel::Tiled
            } else if !gpu && simd8_ok && d.m >= SIMD8_MIN_ROWS {
                MatmulKernel::Simd8
            } else {
                MatmulKernel::Portable
            })
        }
        k => Ok(k),
    }
}

/// Binding of `len` elements from `start`, widened to whole 16-byte words where the buffer
/// allows (the tiled kernels read their operands as vec4 arrays).
fn range(t: &Tensor, start: usize, len: usize) -> Result<Binding> {
    let es = t.dtype().size_bytes();
    let cap = t.buffer().size() as usize / es;
    let len = len.next_multiple_of(16 / es).min(cap - start);
    t.binding_range("matmul", start, len)
}

/// Rows per chunk so that `rows * row_len` elements of `es` bytes fit one binding, in
/// multiples of 256 / es rows so every chunk starts on a 256-byte boundary.
fn chunk_rows(total: usize, row_len: usize, es: usize, limit_bytes: u64) -> usize {
    let fit = (limit_bytes / (row_len.max(1) * es) as u64) as usize;
    let step = 256 / es;
    if fit >= total {
        total
    } else {
        (fit / step * step).max(step)
    }
}

/// C = alpha * op(A) @ op(B) (+ bias) (+ C).
pub fn matmul(
    rec: &mut Recorder,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    o: MatmulOpts,
) -> Result<()> {
    matmul_scaled(rec, a, b, None, bias, c, o)
}

/// `matmul` of f16 operands cast by `kernels::cast_scaled`, whose scale words (`[2]` f32
/// each, the second holding 1/s) are `scales`: C = alpha / (s_a s_b) * op(A) @ op(B) (+ bias)
/// (+ C). The scales stay on the GPU; only the cooperative-matrix kernels take them.
#[allow(clippy::too_many_arguments)]
pub fn matmul_scaled(
    rec: &mut Recorder,
    a: &Tensor,
    b: &Tensor,
    scales: Option<[&Tensor; 2]>,
    bias: Option<&Tensor>,
    c: &Tensor,
    o: MatmulOpts,
) -> Result<()> {
    let d = dims(a, b, c, bias, &o)?;
    let kernel = choose(rec, &d, &o)?;
    let coop = matches!(kernel, MatmulKernel::Coop16 | MatmulKernel::Coop16Staged);
    let scale_binds = match scales {
        Some(s) if coop => {
            for t in s {
                if t.dtype() != DType::F32 || t.numel() != 2 {
                    return Err(GpuError::shape("matmul", "scale words must be f32 [2]"));
                }
            }
            Some([s[0].binding("matmul")?, s[1].binding("matmul")?])
        }
        Some(_) => {
            return Err(GpuError::shape(
                "matmul",
                "operand scales need the cooperative-matrix kernel",
            ))
        }
        None => None,
    };
    let scaled = scale_binds.is_some();
    // The cooperative kernels bind the scale words (unused ones when unscaled).
    let extra = |binds: &mut Vec<Binding>| {
        if coop {
            match &scale_binds {
                Some([x, y]) => binds.extend([x.clone(), y.clone()]),
                None => binds.extend([a.ctx().unused_binding(), a.ctx().unused_binding()]),
            }
        }
    };
    let limit = rec.ctx().max_binding_bytes();
    let fits = |t: &Tensor| t.size_bytes() <= limit;
    let bias_b = match bias {
        Some(t) => t.binding("matmul")?,
        None => rec.ctx().unused_binding(),
    };
    if fits(a) && fits(b) && fits(c) {
        let mut whole = vec![
            a.binding("matmul")?,
            b.binding("matmul")?,
            bias_b,
            c.binding("matmul")?,
        ];
        extra(&mut whole);
        return record(
            rec,
            kernel,
            &d,
            &o,
            (bias.is_some(), scaled),
            whole,
            d.m,
            Chunk::Whole,
        );
    }
    if d.batch != 1 || o.trans_a {
        return Err(GpuError::TooLarge {
            op: "matmul",
            bytes: a.size_bytes().max(b.size_bytes()).max(c.size_bytes()),
            limit,
            what: "chunking supports unbatched, non-transposed A only",
        });
    }
    // Rows of A and C are contiguous: chunk over M. B is chunked over N when stored [N, K]
    // (rows contiguous) and over K otherwise (accumulating partial products into C).
    // A (f16 or f32) and C (f32) share the row chunking, so plan it with 4-byte elements.
    let mc = chunk_rows(d.m, d.k.max(d.n), 4, limit);
    // f16 A chunks start on 256-byte boundaries only every 128 rows when K is odd.
    let mc = if d.half && mc < d.m {
        (mc / 128 * 128).max(128)
    } else {
        mc
    };
    let bes = b.dtype().size_bytes();
    let bc = chunk_rows(
        if o.trans_b { d.n } else { d.k },
        if o.trans_b { d.k } else { d.n },
        bes,
        limit,
    );
    for m0 in (0..d.m).step_by(mc) {
        let mlen = mc.min(d.m - m0);
        let a_b = range(a, m0 * d.k, mlen * d.k)?;
        let c_b = range(c, m0 * d.n, mlen * d.n)?;
        let total = if o.trans_b { d.n } else { d.k };
        for j0 in (0..total).step_by(bc) {
            let jlen = bc.min(total - j0);
            let row_len = if o.trans_b { d.k } else { d.n };
            let b_b = range(b, j0 * row_len, jlen * row_len)?;
            let mut binds = vec![a_b.clone(), b_b, bias_b.clone(), c_b.clone()];
            extra(&mut binds);
            let mut oo = o;
            let chunk = if o.trans_b {
                Chunk::N { n0: j0, len: jlen }
            } else {
                oo.accumulate = o.accumulate || j0 > 0;
                Chunk::K { k0: j0, len: jlen }
            };
            let with_bias = bias.is_some() && (o.trans_b || j0 == 0);
            record(
                rec,
                kernel,
                &d,
                &oo,
                (with_bias, scaled),
                binds,
                mlen,
                chunk,
            )?;
        }
    }
    Ok(())
}

/// Which window of the problem one dispatch covers.
#[derive(Clone, Copy)]
enum Chunk {
    Whole,
    /// Output columns [n0, n0+len): B's binding starts at row n0 of its [N, K] storage.
    N {
        n0: usize,
        len: usize,
    },
    /// Inner indices [k0, k0+len): B's binding starts at row k0 of its [K, N] storage.
    K {
        k0: usize,
        len: usize,
    },
}

/// One dispatch: its kernel, override constants, parameters and grid.
struct Plan {
    entry: &'static KernelEntry,
    constants: Vec<(&'static str, f64)>,
    params: Params,
    groups: [u32; 3],
}

/// Records one dispatch over `rows` rows of the bound A/C windows.
#[allow(clippy::too_many_arguments)]
fn record(
    rec: &mut Recorder,
    kernel: MatmulKernel,
    d: &Dims,
    o: &MatmulOpts,
    (with_bias, scaled): (bool, bool),
    binds: Vec<Binding>,
    rows: usize,
    chunk: Chunk,
) -> Result<()> {
    let mut pl = plan(kernel, d, o, with_bias, rows, chunk);
    if scaled {
        pl.params.flags |= F_SCALED;
    }
    let Some((splits, k_split)) = split_k(rec, &pl, d.batch, o.split_k)? else {
        // The staged cooperative kernel accumulates on a pipeline of its own (DIRECT_ACC: that
        // epilogue's registers slowed the others); split slices accumulate nothing.
        let add = pl.params.flags & (F_BIAS | F_ACCUMULATE);
        if std::ptr::eq(pl.entry, &COOP_TILED) && add == F_ACCUMULATE {
            pl.constants.push(("DIRECT_ACC", 1.0));
        }
        return rec.dispatch(pl.entry, &pl.constants, &pl.params, binds, pl.groups);
    };
    // First pass: raw partial sums (the scales of SCALED operands included, as they are
    // linear) into [batch * splits, rows, n] of the recorder's scratch.
    let (rows, n) = (pl.params.m as usize, pl.params.n as usize);
    let part_len = d.batch * splits as usize * rows * n;
    let part = rec.scratch_f32(part_len)?;
    let part_b = part.binding_range("matmul", 0, part_len)?;
    let out = pl.params;
    let mut first = pl.params;
    first.flags &= !(F_BIAS | F_ACCUMULATE);
    first.alpha = 1.0;
    first.c_off = 0;
    first.c_bs = (rows * n) as u32;
    first.c_rs = n as u32;
    first.k_split = k_split;
    first.splits = splits;
    let mut first_binds = binds.clone();
    first_binds[3] = part_b.clone();
    let groups = [pl.groups[0], pl.groups[1], pl.groups[2] * splits];
    rec.dispatch(pl.entry, &pl.constants, &first, first_binds, groups)?;
    let reduce = ReduceParams {
        rows: rows as u32,
        n: n as u32,
        batch: d.batch as u32,
        splits,
        c_off: out.c_off,
        c_bs: out.c_bs,
        c_rs: out.c_rs,
        flags: out.flags & (F_BIAS | F_ACCUMULATE),
        bias_off: out.bias_off,
        alpha: out.alpha,
        _p: [0; 2],
    };
    let outputs = (d.batch * rows * n) as u32;
    let grid = grid_1d(outputs.div_ceil(256), rec.max_groups());
    rec.dispatch(
        &SPLIT_REDUCE,
        &[],
        &reduce,
        vec![part_b, binds[2].clone(), binds[3].clone()],
        grid,
    )
}

/// The (splits, slice depth) a dispatch runs with, or None to run it whole. Only the tiled and
/// cooperative kernels split.
fn split_k(rec: &Recorder, pl: &Plan, batch: usize, want: SplitK) -> Result<Option<(u32, u32)>> {
    let splittable = [
        &TILED,
        &TILED_UNCHECKED,
        &INTERIOR,
        &INTERIOR_CHECKED,
        &TILED64,
        &COOP,
        &COOP_TILED,
        &COOP_DIRECT,
    ]
    .iter()
    .any(|e| std::ptr::eq(*e, pl.entry));
    let k = pl.params.k as usize;
    let (rows, n) = (pl.params.m as usize, pl.params.n as usize);
    let plane_bytes = (batch * rows * n * 4).max(1);
    let max_groups = rec.max_groups() as usize;
    let by_grid = max_groups / pl.groups[2].max(1) as usize;
    let by_binding = (rec.ctx().max_binding_bytes() as usize / plane_bytes).min(by_grid);
    let wanted = match want {
        SplitK::Off => return Ok(None),
        SplitK::Slices(s) if !splittable && s > 1 => {
            return Err(GpuError::shape(
                "matmul",
                format!(
                    "split K needs the tiled or cooperative kernels, not {}",
                    pl.entry.source.name
                ),
            ))
        }
        SplitK::Slices(s) => (s as usize).min(by_binding),
        SplitK::Auto => {
            let gpu = !rec.ctx().on_cpu();
            let threads: u64 = if std::ptr::eq(pl.entry, &COOP_DIRECT) {
                32
            } else if std::ptr::eq(pl.entry, &COOP_TILED) {
                128
            } else {
                256
            };
            let invocations = pl.groups.iter().map(|&g| g as u64).product::<u64>() * threads;
            if !gpu || !splittable || invocations >= SPLIT_TARGET_INVOCATIONS {
                return Ok(None);
            }
            // The staged kernel holds its 128x128 blocks two to an SM: a grid of about one
            // wave (256 blocks on 132 SMs) cut in two runs as two waves of half the depth
            // each, plus the reduction, so it splits only into whole copies of one wave.
            let slices = if std::ptr::eq(pl.entry, &COOP_TILED) {
                (SPLIT_TARGET_INVOCATIONS / 2 / invocations) as usize
            } else {
                SPLIT_TARGET_INVOCATIONS.div_ceil(invocations) as usize
            };
            slices
                .min(k / SPLIT_MIN_K)
                .min(SPLIT_SCRATCH_BYTES / plane_bytes)
                .min(by_binding)
        }
    };
    if wanted < 2 || k < 2 * SPLIT_ALIGN {
        return Ok(None);
    }
    let k_split = k.div_ceil(wanted).next_multiple_of(SPLIT_ALIGN);
    let splits = k.div_ceil(k_split);
    Ok((splits >= 2).then_some((splits as u32, k_split as u32)))
}

/// The dispatch over `rows` rows of the bound A/C windows and the `chunk` of N or K.
fn plan(
    kernel: MatmulKernel,
    d: &Dims,
    o: &MatmulOpts,
    with_bias: bool,
    rows: usize,
    chunk: Chunk,
) -> Plan {
    let (n0, n, k0, k) = match chunk {
        Chunk::Whole => (0, d.n, 0, d.k),
        Chunk::N { n0, len } => (n0, len, 0, d.k),
        Chunk::K { k0, len } => (0, d.n, k0, len),
    };
    let (a_rs, a_cs) = if o.trans_a { (1, d.m) } else { (d.k, 1) };
    let (b_rs, b_cs) = if o.trans_b { (1, d.k) } else { (d.n, 1) };
    let a_bs = d.m * d.k;
    let b_bs = if d.b_batched { d.k * d.n } else { 0 };
    // 16-byte operand loads need every run start (offset, row and batch strides) 4-aligned.
    let aligned = |xs: &[usize]| xs.iter().all(|x| x % 4 == 0);
    let vec_a = aligned(&[k0, if o.trans_a { d.m } else { d.k }, a_bs]);
    let vec_b = aligned(&[if o.trans_b { d.k } else { d.n }, b_bs]);
    let bit = |on: bool, f: u32| if on { f } else { 0 };
    let flags = bit(with_bias, F_BIAS)
        | bit(o.accumulate, F_ACCUMULATE)
        | bit(o.trans_a, F_TRANS_A)
        | bit(o.trans_b, F_TRANS_B)
        | bit(vec_a, F_VEC_A)
        | bit(vec_b, F_VEC_B);
    let params = Params {
        m: rows as u32,
        n: n as u32,
        k: k as u32,
        batch: d.batch as u32,
        a_off: k0 as u32,
        a_bs: a_bs as u32,
        a_rs: a_rs as u32,
        a_cs: a_cs as u32,
        b_off: 0,
        b_bs: b_bs as u32,
        b_rs: b_rs as u32,
        b_cs: b_cs as u32,
        c_off: n0 as u32,
        c_bs: (d.m * d.n) as u32,
        c_rs: d.n as u32,
        flags,
        bias_off: n0 as u32,
        alpha: o.alpha,
        k_split: k as u32,
        splits: 1,
    };
    let mut constants: Vec<(&str, f64)> = Vec::new();
    let (entry, block) = match (kernel, kernel.tiled()) {
        (_, Some(v)) if v.interior && interior_fits(rows, n, k, v.bk, vec_a && vec_b) => {
            if v.bk != 16 {
                constants.push(("BK", v.bk as f64));
            }
            let e = if v.checked {
                &INTERIOR_CHECKED
            } else {
                &INTERIOR
            };
            (e, TILE as u32)
        }
        (_, Some(v)) if v.interior && !v.checked && tiled64_fits(rows, n, k, vec_a && vec_b) => {
            (&TILED64, 64)
        }
        (_, Some(v)) if v.checked => (&TILED, TILE as u32),
        (_, Some(_)) => (&TILED_UNCHECKED, TILE as u32),
        (MatmulKernel::Coop16, _)
            if coop_tiled_fits(rows, n, k, &[k0, n0, d.n, d.k, d.m, a_bs, b_bs, d.m * d.n]) =>
        {
            constants.push(("TA", o.trans_a as u8 as f64));
            constants.push(("TB", o.trans_b as u8 as f64));
            (&COOP_TILED, COOP_TILED_BLOCK)
        }
        (MatmulKernel::Coop16, _)
            if coop_direct_fits(
                rows,
                n,
                k,
                &[k0, n0, d.n, d.k, if o.trans_a { d.m } else { 0 }],
            ) =>
        {
            (&COOP_DIRECT, COOP_DIRECT_BLOCK)
        }
        (MatmulKernel::Coop16 | MatmulKernel::Coop16Staged, _) => (&COOP, TILE as u32),
        (MatmulKernel::Simd8, _) if simd8_fits(vec_a, vec_b) => {
            constants.push(("TA", o.trans_a as u8 as f64));
            constants.push(("TB", o.trans_b as u8 as f64));
            (&SIMD8, SIMD8_TILE)
        }
        _ => (&MATMUL, 32),
    };
    let groups = [
        (n as u32).div_ceil(block),
        (rows as u32).div_ceil(block),
        d.batch as u32,
    ];
    Plan {
        entry,
        constants,
        params,
        groups,
    }
}

/// Output block of one workgroup (four subgroups of 64x64) of the staged 16-byte-load kernel.
const COOP_TILED_BLOCK: u32 = 128;

/// Whether matmul_coop_tiled.wgsl may run a dispatch of `rows` x `n` outputs over `k`, the
/// conditions its shader's proof of in-bounds access rests on: whole 128x128 blocks, K a
/// multiple of 32 (split-K slices are too), and every offset, stride and batch stride in `more`
/// a multiple of 8 halves, so each 16-byte word it loads starts on an element of its row.
fn coop_tiled_fits(rows: usize, n: usize, k: usize, more: &[usize]) -> bool {
    let block = COOP_TILED_BLOCK as usize;
    rows.is_multiple_of(block)
        && n.is_multiple_of(block)
        && k >= SPLIT_ALIGN
        && k.is_multiple_of(SPLIT_ALIGN)
        && more.iter().all(|x| x.is_multiple_of(8))
}

/// Output block of one workgroup (one subgroup) of the direct cooperative-matrix kernel.
const COOP_DIRECT_BLOCK: u32 = 64;

/// Whether the direct cooperative-matrix kernel may run a dispatch of `rows` x `n` outputs
/// over `k`: every fragment it loads must be a whole 16x16 tile inside its operand, so M, N, K
/// and every offset and stride in `more` are multiples of 16 (its shader clamps the tiles of a
/// partial 64x64 block to the last whole tile).
fn coop_direct_fits(rows: usize, n: usize, k: usize, more: &[usize]) -> bool {
    [rows, n, k].iter().all(|&x| x >= 16 && x % 16 == 0) && more.iter().all(|x| x % 16 == 0)
}

/// Whether the unchecked `Simd8` kernel may run a dispatch: both operands take 16-byte loads,
/// i.e. A's offset, batch stride and stride between its 4-runs (K, or M when stored [K, M]) and
/// B's (N, or K when stored [N, K]) are multiples of 4. Then every 4-run it reads lies inside
/// one row, and K is a multiple of 4 except when A is stored [K, M] and B [K, N] (TN), where the
/// shader clamps and zeroes the last partial slab. Its proof of in-bounds access rests on this
/// (and on subgroups of exactly 8, which `choose` checks).
fn simd8_fits(vec_a: bool, vec_b: bool) -> bool {
    vec_a && vec_b
}

/// The parameter block `matmul` gives a kernel for one unbatched, unchunked, unsplit product of
/// contiguous operands (A [M, K] or [K, M], B [K, N] or [N, K]), without bias or accumulation:
/// for labs that time their own kernel files against the launcher's.
#[doc(hidden)]
pub fn params_for(
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    half: bool,
) -> Params {
    let d = Dims {
        batch: 1,
        m,
        n,
        k,
        b_batched: false,
        half,
    };
    let o = MatmulOpts {
        trans_a,
        trans_b,
        ..Default::default()
    };
    plan(MatmulKernel::Portable, &d, &o, false, m, Chunk::Whole).params
}

/// The shader file that runs `matmul(rec, a, b, bias, c, o)` when no operand needs chunking
/// (tests use it to check which kernel covered a shape).
#[doc(hidden)]
pub fn planned_shader(
    rec: &Recorder,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    o: MatmulOpts,
) -> Result<&'static str> {
    let d = dims(a, b, c, bias, &o)?;
    let kernel = choose(rec, &d, &o)?;
    let pl = plan(kernel, &d, &o, bias.is_some(), d.m, Chunk::Whole);
    Ok(pl.entry.source.name)
}

/// Whether matmul_tiled64.wgsl (unchecked) may run a dispatch that `interior_fits` refused:
/// whole 64x64 blocks (decode's 64 rows), K a multiple of its 16-deep slabs (split-K slices
/// are multiples of 32) and 16-byte operand loads; its proof of in-bounds access rests on these.
fn tiled64_fits(rows: usize, n: usize, k: usize, vec: bool) -> bool {
    vec && rows.is_multiple_of(64) && n.is_multiple_of(64) && k >= 16 && k.is_multiple_of(16)
}

/// Whether the unchecked interior kernel may run a dispatch of `rows` x `n` outputs over `k`:
/// whole 128x128 blocks, at least one and a whole number of `bk`-deep slabs, and 16-byte operand
/// loads. Its shader's proof of in-bounds access rests on exactly these conditions.
fn interior_fits(rows: usize, n: usize, k: usize, bk: u32, vec: bool) -> bool {
    let bk = bk as usize;
    vec && rows.is_multiple_of(TILE) && n.is_multiple_of(TILE) && k >= bk && k.is_multiple_of(bk)
}
