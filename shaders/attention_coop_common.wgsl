// Causal grouped-query attention on tensor cores (cooperative matrices, f16 in, f32
// accumulate): the same three operations, layouts, masking rules, Params block and bindings as
// attention_tiled.wgsl (read attention.wgsl's header first), for adapters with 16x16x16
// f16/f32 cooperative matrices and subgroups of exactly 32, with D a multiple of 16 up to 128.
// This file is the shared prelude; each pass is its own file, compiled after it
// (`shader!(trusted "attention_coop_fwd.wgsl" after "attention_coop_common.wgsl")`), so that
// each declares only the workgroup memory it uses:
//   attention_coop_fwd.wgsl   forward and prefill (out, lse)
//   attention_coop_dq.wgsl    backward: delta and dq
//   attention_coop_dkdv.wgsl  backward: dk and dv
//
// Why: the tiled kernel multiplies in f32 on the CUDA cores (~8 TFLOP/s on an H100); here the
// six products of flash attention (Q K^T, P V, dO V^T, dS K, dS^T Q, P^T dO) are 16x16x16
// cooperative-matrix multiply-adds, and only the softmax runs on scalars.
//
// Operand forms. A operands are loaded row-major (coopLoadT); B operands column-major (coopLoad)
// where the contraction runs along the staged rows (K^T in Q K^T, V^T in dO V^T) and row-major
// (coopLoadT) where it runs across them (V in P V, K in dS K, Q and dO in dS^T Q and P^T dO);
// accumulators leave through row-major stores (coopStoreT).
//
// Alignment: every workgroup variable of every pass is a whole number of 16-byte units. With a
// lone u32 beside the f16 arrays, the cooperative loads of an H100 (driver 580.159.04) read at
// shifted addresses (the driver orders workgroup variables its own way, and a 4-byte one
// misaligned the arrays behind it) while scalar reads of the same arrays were right.

// Geometry. A workgroup is 4 subgroups of 32. The forward and dq passes own BQ = 64 query rows
// of one query head (16 per subgroup) and stream keys in tiles of BKV = 32; dk/dv owns 64 key
// rows of one kv head (16 per subgroup) and streams the query rows of each query head of the
// group in tiles of 16. Each pass keeps its workgroup memory within 24 KiB: the H100's Vulkan
// driver gives the workgroups of an SM 48 KiB in all, so at 31-44 KiB a pass ran one workgroup
// (4 subgroups) an SM and at 22-23 KiB two (1.6-1.7x faster, bench/NOTES.md). The stationary
// 64-row blocks are therefore staged in 32-row halves (block_frags).
//
// Operands are read from storage as f32 vec4, rounded to f16 and staged into workgroup memory
// as row copies padded to DP = 136 halves, so the rows of one fragment load fall on different
// banks. Each subgroup keeps its stationary fragments (Q and dO, or K and V: 16 rows x D) in
// registers and its output accumulators (16 x D f32) as ND = D/16 cooperative matrices: named
// variables (fragments: the members of a RowFrags) under `ND > i` guards that fold away once ND
// is fixed. Arrays of them, indexed in loops that hold barriers, would be kept in local memory
// by a driver that does not unroll those loops.
//
// Scalar phase. A subgroup stores its score tiles to its own f32 scratch (row stride 32), and
// lane l owns row l % 16 and half l / 16 of the columns, visited in a rotated order so that
// the lanes of a step hit different banks; a row's two lanes combine through
// subgroupShuffleXor(., 16). The weights (P or dS) go back to workgroup memory as f16 and are
// loaded as A fragments for the second product.
//
// Backward scaling: dO values of a token-mean loss sit far below f16's normal range, so the
// launch code writes max |dO| (bits) into the stats buffer at word p.aux (cast_scaled.wgsl's
// absmax pass) and dO is staged times s = 2^-e, e = exponent of max |dO|, so max |dO s| lies in
// [1, 2); dP, delta and dS scale with it and the outputs are divided by s (exact: a power of
// two). Requires |q|, |k|, |v| and the scaled products below 65504 (f16 range).
//
// Precision: q, k, v, dO s, P and dS are rounded to f16 (relative 2^-11), every product
// accumulates in f32, and the softmax statistics (max, sums, lse, delta) are f32. Keys and
// values up to the block's last query position must be finite, masked ones included
// (0 * NaN is not 0), as in the tiled kernel.
//
// Compiled without wgpu's runtime checks (shader!(trusted ...)); why every access is in bounds:
// - Workgroup memory: a staged element (dst + r) * DP + 4 c + i with dst + r < 32 (stage
//   calls move at most 32 rows, at dst 0, or 16 rows at dst 16 in dk/dv) and
//   4 c + 3 < D <= 128 < DP, inside kv (32 * DP halves in every pass); fragment loads read rows
//   at most 16 + 15 = 31 and columns 16 i + 15 < D; each subgroup's scratch and weights are its
//   own region (forward, dq: 512 f32 and 640 halves at sg * 512 and sg * 640, lane indices
//   r * 32 + col and r * 40 + col with r < 16, col < 32, fragment loads ending at
//   16 + 15 * 32 + 15 < 512 and 16 + 15 * 40 + 15 < 640; dk/dv: 512 f32 and 768 halves at
//   sg * 512 and sg * 768, each two 16 x 16 tiles at +0 and +256 (+384) with row stride 16
//   (24), col < 16, ending at 256 + 15 * 16 + 15 < 512 and 384 + 15 * 24 + 15 < 768; emit_tile
//   stores 16 x 16 at row stride 32 from sg * 512, ending at 15 * 32 + 15 < 512); sg < 4
//   (workgroup 128, subgroups of 32, checked by the launch code); row factors t < 64 (forward)
//   and t < 32 (dk/dv).
// - Storage: a staged row is read only when row0 + r < limit, where limit is the tensor's rows
//   per sequence (T, S) or the block's key bound kend <= keys, and its vec4 runs c < D / 4
//   lie inside that row (D % 16 == 0, so every row offset is a multiple of 4); mask entries
//   are read for positions < keys <= mask_bs (&& short-circuits every guard); outputs and
//   statistics are written for rows < T (S) only, at dims < D; stats words < 2 B Hq T, and
//   p.aux inside the buffer the launch code sizes for it; start[b] with b < batch. The launch
//   code checks every tensor's shape against these.
// - Loops count to constants, ND <= 8, kend, T or the GQA group.

enable f16;
enable wgpu_cooperative_matrix;

struct Params {
    batch: u32,
    rows: u32,     // query rows per sequence: T (training) or S (prefill chunk)
    hq: u32,
    hkv: u32,
    d: u32,
    scale: f32,
    flags: u32,    // 1 = key mask bound, 2 = start positions bound, 4 = write lse
    mask_bs: u32,  // mask entries per sequence (T or Tmax)
    k_bs: u32,
    k_hs: u32,
    k_rs: u32,
    keys: u32,     // key positions per sequence (T or Tmax)
    n_wg: u32,     // workgroups that do work (the grid may be rounded up)
    n_stat: u32,   // B*Hq*T: offset of delta behind lse in the backward's stats buffer
    n_blk: u32,    // blocks of 64 stationary rows per sequence
    aux: u32,      // backward: word of stats holding the bits of max |dO|
}

override ND: u32 = 8u; // D / 16

const WG: u32 = 128u;
const BQ: u32 = 64u;
const BKV: u32 = 32u;
const DP: u32 = 136u;  // row copies: row stride in halves (D <= 128, + 8)
const SCS: u32 = 32u;  // scratch row stride in f32
const SC_SUB: u32 = 512u; // scratch per subgroup: 16 x 32 f32
const PWS: u32 = 40u;  // weight row stride in halves
const PW_SUB: u32 = 640u; // weights per subgroup: 16 x 40 halves
const NEG: f32 = -3.0e38;
const HAS_MASK: u32 = 1u;
const HAS_START: u32 = 2u;
const WRITE_LSE: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;

fn key_visible(b: u32, j: u32) -> bool {
    return (p.flags & HAS_MASK) == 0u || mask[b * p.mask_bs + j] != 0u;
}

// Operands a staging loop reads (each pass file defines `ld(src, w)`, vec4 w of operand src).
const SRC_Q: u32 = 0u;
const SRC_K: u32 = 1u;
const SRC_V: u32 = 2u;
const SRC_DO: u32 = 3u;

alias FA = coop_mat16x16<f16, A>;
alias FB = coop_mat16x16<f16, B>;
alias FC = coop_mat16x16<f32, C>;

// Row copy: rows [row0, row0 + n) of an operand (row r at element base + r * rs; rows at or
// past `limit` stage as zero) times `mul`, rounded to f16, into rows dst.. of kv (stride DP).
// Consecutive invocations take consecutive vec4 runs of a row.
fn stage(t: u32, src: u32, base: u32, rs: u32, row0: u32, limit: u32, n: u32, dst: u32, mul: f32) {
    let c4 = ND * 4u;
    for (var e = t; e < n * c4; e += WG) {
        let r = e / c4;
        let c = e % c4;
        var x = vec4<f32>(0.0);
        if (row0 + r < limit) {
            x = ld(src, (base + (row0 + r) * rs) / 4u + c) * mul;
        }
        let h = vec4<f16>(x);
        let o = (dst + r) * DP + 4u * c;
        kv[o] = h.x;
        kv[o + 1u] = h.y;
        kv[o + 2u] = h.z;
        kv[o + 3u] = h.w;
    }
}

// Column of step c of the scalar phase over a 16 x 32 tile for `lane` (rotated so the 32
// lanes read 32 different banks).
fn col_of(lane: u32, c: u32) -> u32 {
    return (lane / 16u) * 16u + (c + lane) % 16u;
}

// s = 2^-e with e the exponent of max |dO| (bits at stats word p.aux): max |dO| s in [1, 2).
// Zero, inf and NaN maxima take s = 1.
fn grad_scale(bits: u32) -> f32 {
    let ex = (bits >> 23u) & 0xffu;
    if (bits == 0u || ex == 255u) {
        return 1.0;
    }
    return ldexp(1.0, 127 - i32(ex));
}

// A fragment of a row copy: element (i, k) at kv[at + i * DP + k].
fn a_rows(at: u32) -> FA {
    return coopLoadT<FA>(&kv[at], DP);
}

// One subgroup's 16 staged rows from `at` as ND A fragments of 16 dims, kept in registers: a
// struct of named members used under `ND > i` guards (constant member access), never an array.
struct RowFrags {
    f0: FA,
    f1: FA,
    f2: FA,
    f3: FA,
    f4: FA,
    f5: FA,
    f6: FA,
    f7: FA,
}

fn row_frags(at: u32) -> RowFrags {
    var r: RowFrags;
    r.f0 = a_rows(at);
    if (ND > 1u) { r.f1 = a_rows(at + 16u); }
    if (ND > 2u) { r.f2 = a_rows(at + 32u); }
    if (ND > 3u) { r.f3 = a_rows(at + 48u); }
    if (ND > 4u) { r.f4 = a_rows(at + 64u); }
    if (ND > 5u) { r.f5 = a_rows(at + 80u); }
    if (ND > 6u) { r.f6 = a_rows(at + 96u); }
    if (ND > 7u) { r.f7 = a_rows(at + 112u); }
    return r;
}

// One subgroup's fragments of a 64-row stationary block (rows row0.. of operand src, times
// mul), staged through kv in two 32-row halves: subgroups 0-1 keep their fragments of the first
// half, 2-3 of the second. Every subgroup loads both (cooperative loads need uniform control
// flow; a plain assignment does not). Ends on a barrier, so kv is free again.
fn block_frags(t: u32, sg: u32, src: u32, base: u32, rs: u32, row0: u32, limit: u32, mul: f32) -> RowFrags {
    let at = (sg % 2u) * 16u * DP;
    stage(t, src, base, rs, row0, limit, 32u, 0u, mul);
    workgroupBarrier();
    var f = row_frags(at);
    workgroupBarrier();
    stage(t, src, base, rs, row0 + 32u, limit, 32u, 0u, mul);
    workgroupBarrier();
    let hi = row_frags(at);
    if (sg >= 2u) {
        f = hi;
    }
    workgroupBarrier();
    return f;
}

// Writes an accumulator tile times f to this lane's output row, through the subgroup's scratch
// at `sgo`: column col of the tile goes to element at + col of output `which` (each pass
// defines `put(which, e, v)`); `ok` when the row exists.
fn emit_tile(acc: FC, sgo: u32, lane: u32, ok: bool, at: u32, f: f32, which: u32) {
    let r = lane % 16u;
    let half = lane / 16u;
    coopStoreT(acc, &sc[sgo], SCS);
    workgroupBarrier();
    if (ok) {
        for (var c = 0u; c < 8u; c++) {
            let col = half * 8u + (c + r) % 8u;
            put(which, at + col, sc[sgo + r * SCS + col] * f);
        }
    }
    workgroupBarrier();
}

// B fragment over a row copy, contraction along the rows: element (k, j) at kv[at + j * DP + k]
// (B = X^T for the rows X of a Q K^T-style product).
fn b_cols(at: u32) -> FB {
    return coopLoad<FB>(&kv[at], DP);
}

// B fragment over a row copy, contraction across the rows: element (k, j) at
// kv[at + k * DP + j] (B = X for the streamed rows X of a P V-style product).
fn b_rows(at: u32) -> FB {
    return coopLoadT<FB>(&kv[at], DP);
}

// A fragment of this subgroup's weights: element (i, k) at pw[at + i * PWS + k].
fn w_frag(at: u32) -> FA {
    return coopLoadT<FA>(&pw[at], PWS);
}

// acc + a x (b_cols at `at`): one 16-dim step of a score product.
fn mma_cols(acc: FC, a: FA, at: u32) -> FC {
    return coopMultiplyAdd(a, b_cols(at), acc);
}

// A 16 x 16 tile of a Q K^T-style product: this subgroup's stationary rows f (16 x D) times the
// 16 staged rows from `at`, transposed, contracted over all D dims.
fn score_tile(f: RowFrags, at: u32) -> FC {
    var acc = mma_cols(FC(), f.f0, at);
    if (ND > 1u) { acc = mma_cols(acc, f.f1, at + 16u); }
    if (ND > 2u) { acc = mma_cols(acc, f.f2, at + 32u); }
    if (ND > 3u) { acc = mma_cols(acc, f.f3, at + 48u); }
    if (ND > 4u) { acc = mma_cols(acc, f.f4, at + 64u); }
    if (ND > 5u) { acc = mma_cols(acc, f.f5, at + 80u); }
    if (ND > 6u) { acc = mma_cols(acc, f.f6, at + 96u); }
    if (ND > 7u) { acc = mma_cols(acc, f.f7, at + 112u); }
    return acc;
}

// Where the forward and dq passes' workgroup w works: query head h of sequence b, the 64 query
// rows from s0 (blocks issued last-first, so the longest causal blocks start first), and the
// element offsets of its kv head's rows (kbase) and of its query head's rows (qbase, row stride
// qrs).
struct QueryBlock {
    h: u32,
    b: u32,
    s0: u32,
    kbase: u32,
    qrs: u32,
    qbase: u32,
}

fn query_block(w: u32) -> QueryBlock {
    var q: QueryBlock;
    q.h = w % p.hq;
    q.b = (w / p.hq) % p.batch;
    q.s0 = (p.n_blk - 1u - w / (p.hq * p.batch)) * BQ;
    let g = q.h / (p.hq / p.hkv);
    q.kbase = q.b * p.k_bs + g * p.k_hs;
    q.qrs = p.hq * p.d;
    q.qbase = q.b * p.rows * q.qrs + q.h * p.d;
    return q;
}

// acc + [w_lo w_hi] x (32 staged rows from `at`): a 16 x 32 weight tile times 16 dims of the
// streamed rows.
fn mma_rows2(acc: FC, w_lo: FA, w_hi: FA, at: u32) -> FC {
    return coopMultiplyAdd(w_hi, b_rows(at + 16u * DP), coopMultiplyAdd(w_lo, b_rows(at), acc));
}
