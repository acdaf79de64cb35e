//! Launch code of the single-token decode kernel (shaders/attention_decode.wgsl), the
//! `AttentionKernel::SubgroupDecode` family of [`super::attention`]: one workgroup (128
//! invocations, 64 with 8-wide subgroups) per (sequence, kv head) serves the G = Hq/Hkv query
//! heads of the group, its subgroups split the cached keys and the lanes of a subgroup split D,
//! so every cached K and V row is read once, by coalesced vec4 loads. `attention_decode` chooses it (see `AttentionHeads::decode_kernel`)
//! for one query row per sequence when [`fits`] accepts the adapter and the heads.
//!
//! On lavapipe (2-core machine shared with another build, Mesa 25.0.7, LLVM 15,
//! test profile, fastest of 5 x 4 calls, one token against `len` cached positions, no mask),
//! `Rows` -> `SubgroupDecode`: B8 len 100, 4/2 heads, D 32: 0.50 -> 0.23 ms; 3/1 heads (the demo
//! model): 0.29 -> 0.19 ms; B64 len 200, 3/1, D 32: 3.6 -> 1.5 ms; B16 len 300, 16/8, D 128:
//! 38 -> 12 ms (`Workgroup`: 2.5, 2.4, 36, 120 ms). So `Auto` takes it on CPU adapters too.
//! Compiling one pipeline on a cold Mesa cache there: 0.5-1 s at D <= 36, 2.5-3 s at D 64-128,
//! 9 s at D 256 (8 vec4 columns per lane). No GPU timing yet: the ignored test
//! `timing_qwen3_shapes` compares it with `Workgroup`, B 64 x 384 positions included.

use bytemuck::{Pod, Zeroable};

use super::attention::AttentionHeads;
use crate::gpu::{
    grid_1d, Access, GpuContext, KernelEntry, Recorder, Result, ShaderSource, Tensor,
};

/// Trusted (no runtime bounds checks): attention_decode.wgsl's header proves every index in
/// bounds under the conditions [`fits`] checks (an f16 cache row is D / 4 eight-byte words, as an
/// f32 one is D / 4 sixteen-byte ones). One pipeline per cache element type.
static SRC_F32: ShaderSource =
    crate::shader!(trusted "attention_decode_f32.wgsl" after "attention_decode.wgsl");
static SRC_F16: ShaderSource =
    crate::shader!(trusted "attention_decode_f16.wgsl" after "attention_decode.wgsl");
const BINDINGS: &[Access] = &[
    Access::Read,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
    Access::Read,
    Access::Read,
];
pub(crate) static ENTRY: KernelEntry = KernelEntry {
    source: &SRC_F32,
    entry: "attn_decode",
    bindings: BINDINGS,
};
static ENTRY_F16: KernelEntry = KernelEntry {
    source: &SRC_F16,
    entry: "attn_decode",
    bindings: BINDINGS,
};

/// Largest workgroup (the shader's WG) and subgroup.
const MAX_WG: u32 = 512;
const MAX_SUBGROUP: u32 = 128;
/// Smallest subgroup the shader's register arrays are sized for (at most 8 vec4 columns per
/// lane at D 256).
const MIN_SUBGROUP: u32 = 8;
/// Largest GQA group (query heads per kv head) the kernel holds in registers.
pub const MAX_GROUP: usize = 8;
/// Largest head dimension (64 vec4 columns).
pub const MAX_HEAD_DIM: usize = 256;

const HAS_MASK: u32 = 1;
const HAS_START: u32 = 2;
const HAS_PREFIX: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct DecodeParams {
    batch: u32,
    hq: u32,
    hkv: u32,
    tmax: u32,
    scale: f32,
    flags: u32,
    n_wg: u32,
    ptmax: u32,
}

/// How the kernel runs on one adapter: its fixed subgroup size and the workgroup size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    sg: u32,
    wg: u32,
}

/// Invocations per workgroup: as many subgroups as split the keys, up to 8 (256 invocations
/// on GPUs with 32-wide subgroups, 64 on lavapipe's 8-wide ones), halved until the merge
/// buffer fits. Each subgroup walks its share of the keys one block of 4 a step, so the step
/// count, not the bytes, bounded the kernel: at 4 subgroups (128 invocations) an H100 ran
/// 64.8 us a layer call over 64 sequences of ~320 f16 keys (72 us over f32 ones), at 8 47.2
/// us, at 16 52.8 us; with sampling bound by the GPU, 8 gave 3.8% faster calls than 16
/// (bench/NOTES.md).
fn workgroup_size(sg: u32, group: usize, d: usize, shared: u32, inv: u32) -> u32 {
    let most: u32 = 8;
    let mut nsg = most.min(MAX_WG / sg).max(1);
    while nsg > 1 && (shared_bytes(nsg as usize, group, d) > shared as usize || nsg * sg > inv) {
        nsg /= 2;
    }
    nsg * sg
}

/// Workgroup memory the shader declares: per subgroup and query head, one output row (D/4
/// vec4) and the running max and sum.
fn shared_bytes(nsg: usize, group: usize, d: usize) -> usize {
    nsg * group * (4 * d + 8)
}

/// The geometry the kernel would run with on `ctx` for heads `h`, or why it cannot run: the
/// adapter's subgroup size must be fixed (min == max), a power of two in 8..=128; D a multiple
/// of 4 up to 256; Hq/Hkv at most 8; the merge buffer, NSG x G x (4 D + 8) bytes, must fit the
/// adapter's workgroup memory for at least one subgroup (`workgroup_size` takes as many
/// subgroups as fit, e.g. 4 at G 8, D 256 in 48 KiB).
pub(crate) fn fits(ctx: &GpuContext, h: &AttentionHeads) -> std::result::Result<Geometry, String> {
    let caps = ctx.caps();
    let Some(sg) = caps.fixed_subgroup_size() else {
        return Err(format!(
            "needs subgroups of a fixed size; the adapter has {}",
            if caps.subgroups {
                format!(
                    "sizes {}..={}",
                    caps.subgroup_min_size, caps.subgroup_max_size
                )
            } else {
                "no subgroups".to_string()
            }
        ));
    };
    if !sg.is_power_of_two() || !(MIN_SUBGROUP..=MAX_SUBGROUP).contains(&sg) {
        return Err(format!(
            "needs a subgroup size that is a power of two in {MIN_SUBGROUP}..={MAX_SUBGROUP}; the \
             adapter's is {sg}"
        ));
    }
    let (d, group) = (h.head_dim, h.q_heads / h.kv_heads.max(1));
    if !d.is_multiple_of(4) || d > MAX_HEAD_DIM {
        return Err(format!(
            "needs a head dim D that is a multiple of 4 up to {MAX_HEAD_DIM}; got {d}"
        ));
    }
    if group == 0 || group > MAX_GROUP {
        return Err(format!(
            "holds 1..={MAX_GROUP} query heads per kv head; got Hq {} / Hkv {}",
            h.q_heads, h.kv_heads
        ));
    }
    let have = ctx.limits().max_compute_workgroup_storage_size;
    let inv = ctx.limits().max_compute_invocations_per_workgroup;
    let wg = workgroup_size(sg, group, d, have, inv);
    let need = shared_bytes((wg / sg) as usize, group, d);
    if need > have as usize || wg > ctx.limits().max_compute_invocations_per_workgroup {
        return Err(format!(
            "needs {need} bytes of workgroup memory and {wg} invocations per workgroup at \
             D {d}, {group} query heads per kv head; the adapter has {have} bytes and {}",
            ctx.limits().max_compute_invocations_per_workgroup
        ));
    }
    Ok(Geometry { sg, wg })
}

/// The shader file of this family (tests check which kernel a call plans), for an f32 or
/// (`half`) f16 cache.
pub(crate) fn shader_name(half: bool) -> &'static str {
    if half {
        SRC_F16.name
    } else {
        SRC_F32.name
    }
}

/// The call's tensors, already checked by `attention_decode`: q and out `[B, Hq*D]`, the cache
/// `[B, Hkv, Tmax, D]`, start u32 `[B]` (`[3 B]` with a prefix), key_mask u32 `[B, Tmax]`.
pub(crate) struct DecodeCall<'a> {
    pub batch: usize,
    pub tmax: usize,
    pub k: &'a Tensor,
    pub v: &'a Tensor,
    pub q: &'a Tensor,
    pub start: &'a Tensor,
    pub key_mask: Option<&'a Tensor>,
    pub out: &'a Tensor,
    /// The shared-prefix cache's k and v `[P, Hkv, PTmax, D]` and PTmax, checked against the
    /// table in `start` by `attention_decode_shared`.
    pub prefix: Option<(&'a Tensor, &'a Tensor, usize)>,
}

/// Records the kernel for a checked single-row decode call; `geo` from [`fits`].
pub(crate) fn record(
    rec: &mut Recorder,
    op: &'static str,
    h: &AttentionHeads,
    geo: Geometry,
    x: &DecodeCall,
) -> Result<()> {
    let n_wg = x.batch * h.kv_heads;
    let p = DecodeParams {
        batch: x.batch as u32,
        hq: h.q_heads as u32,
        hkv: h.kv_heads as u32,
        tmax: x.tmax as u32,
        scale: h.scale(),
        flags: HAS_START
            | if x.key_mask.is_some() { HAS_MASK } else { 0 }
            | if x.prefix.is_some() { HAS_PREFIX } else { 0 },
        n_wg: n_wg as u32,
        ptmax: x.prefix.map_or(0, |(_, _, t)| t as u32),
    };
    let constants = [
        ("SG", f64::from(geo.sg)),
        ("WG", f64::from(geo.wg)),
        ("G", (h.q_heads / h.kv_heads) as f64),
        ("D4", (h.head_dim / 4) as f64),
    ];
    let ctx = rec.ctx().clone();
    let mask = match x.key_mask {
        Some(m) => m.binding(op)?,
        None => ctx.unused_binding(),
    };
    let (pk, pv) = match x.prefix {
        Some((k, v, _)) => (k.binding(op)?, v.binding(op)?),
        None => (ctx.unused_binding(), ctx.unused_binding()),
    };
    let binds = vec![
        x.q.binding(op)?,
        x.k.binding(op)?,
        x.v.binding(op)?,
        mask,
        x.start.binding(op)?,
        x.out.binding(op)?,
        pk,
        pv,
    ];
    let groups = grid_1d(n_wg as u32, rec.max_groups());
    let entry = if x.k.dtype() == crate::DType::F16 {
        &ENTRY_F16
    } else {
        &ENTRY
    };
    rec.dispatch(entry, &constants, &p, binds, groups)
}
