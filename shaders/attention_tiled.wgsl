// Causal grouped-query attention, tiled (flash-attention style) variant for discrete GPUs: the
// same three operations, layouts, masking rules, Params block and bindings as attention.wgsl
// (read its header first), with D <= 128.
//
// Why tiles. attention.wgsl gives each (query row, head) its own workgroup, so every key and
// value row is fetched once per query row. Here a workgroup of 128 owns BQ = 64 stationary rows
// (query rows in the forward and dq passes, key rows in dk/dv) of one head, and the other side
// streams through workgroup memory in tiles of BK = 32 rows, so every staged value feeds 64
// rows' multiply-adds out of registers.
//
// Invocation t = 8*ty + tx owns stationary rows r_i = ty + 16*i (i < 4) and, in a 64 x 32 score
// tile, streamed columns c_j = tx + 8*j (j < 4): 16 scores in registers. Output rows are the
// same r_i; output dimensions are the vec4 groups tx + 8*j, so 4 x 4 vec4 accumulators
// (64 floats; dk/dv keep two sets). The 8 invocations of a row are 8 consecutive lanes.
//
// Workgroup memory (28 KiB, fits the 32 KiB of lavapipe and the 48 KiB of NVIDIA's Vulkan):
// - tile: the streamed tile, BK rows x 32 vec4 (whole D), row stride 33 vec4 so that the 8
//   lanes reading 8 different rows at one column hit distinct banks.
// - slab: the stationary rows' operand of the score product, BQ rows x one slab of 32 dims
//   (8 vec4), reloaded per tile and per slab (the whole 64 x 128 block would not fit; the
//   reload comes from L2). Once the scores are done it holds the 64 x 32 weight tile (P or dS)
//   for the second product.
// - red: per-row partials of the 8 lanes of a row (row max, row sums).
// Loads outside the data (rows past the end, keys past the causal bound of the block, dims
// >= D) are zero, so the products need no bounds tests; weights of invisible pairs are selected
// to exactly 0. Keys and values up to the block's last query position must be finite (masked
// ones included), as in attention_rows.wgsl: 0 * NaN is not 0.
//
// Online softmax (forward): per tile each row's max over its 32 scores (lanes' partials through
// red), rescale of the accumulators and of the lane's partial row sum; the 8 partial sums are
// added once at the end. Every sum runs in a fixed order and no atomics are used, so results
// are deterministic. Operand reads are vec4 when D % 4 == 0 (flag VEC, set by the launch code;
// every row offset is then 4-aligned), scalar otherwise.
//
// Compiled without wgpu's runtime checks (shader!(trusted ...)). Workgroup indices are bounded
// by construction: tile r * 33 + c with r < 32, c < 32 (D <= 128: at most 4 slabs of 8 vec4),
// the highest read (4*7 + 3) * 33 + 7 + 24 = 1054 < 1056; slab r * 9 + c with r < 64, c < 9
// (574 < 576); red r * 8 + u < 512. Storage indices: every row read is below its limit (T, the
// block's key bound kend <= keys, or rows) and every dim below D, on tensors whose shapes the
// launch code checks; a zero-staged slot reads element 0 (buffers are at least 16 bytes) and
// discards it; mask entries are read only for positions < keys <= mask_bs, start and stats only
// within [B] and [2 * B*Hq*T]. Loops step by 32 up to T or kend, or count to constants.
//
// Work order: longest query blocks first (causal rows near the end see the most keys), and key
// block 0 first in dk/dv, so the tail of the grid is short work.

struct Params {
    batch: u32,
    rows: u32,     // query rows per sequence: T (training) or S (prefill chunk)
    hq: u32,
    hkv: u32,
    d: u32,
    scale: f32,
    flags: u32,    // 1 = key mask bound, 2 = start positions bound, 4 = write lse, 8 = VEC
    mask_bs: u32,  // mask entries per sequence (T or Tmax)
    k_bs: u32,
    k_hs: u32,
    k_rs: u32,
    keys: u32,     // key positions per sequence (T or Tmax)
    n_wg: u32,     // workgroups that do work (the grid may be rounded up)
    n_stat: u32,   // B*Hq*T: offset of delta behind lse in the backward's stats buffer
    n_blk: u32,    // blocks of BQ stationary rows per sequence
    _p0: u32,
}

const WG: u32 = 128u;
const BQ: u32 = 64u;
const BK: u32 = 32u;
const TS: u32 = 33u;  // tile row stride, vec4
const SL: u32 = 8u;   // vec4 per slab row
const SS: u32 = 9u;   // slab row stride, vec4
const NEG: f32 = -3.0e38;
const HAS_MASK: u32 = 1u;
const HAS_START: u32 = 2u;
const WRITE_LSE: u32 = 4u;
const VEC: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;

var<workgroup> tile: array<vec4<f32>, 1056>; // BK * TS
var<workgroup> slab: array<vec4<f32>, 576>;  // BQ * SS
var<workgroup> red: array<f32, 512>;         // BQ * 8
var<workgroup> count: u32;

fn key_visible(b: u32, j: u32) -> bool {
    return (p.flags & HAS_MASK) == 0u || mask[b * p.mask_bs + j] != 0u;
}

// Which operand a staging load reads.
const SRC_Q: u32 = 0u;
const SRC_K: u32 = 1u;
const SRC_V: u32 = 2u;
const SRC_DO: u32 = 3u;

fn scalar_of(src: u32, i: u32) -> f32 {
    let w = i >> 2u;
    let c = i & 3u;
    switch src {
        case 0u: { return q4[w][c]; }
        case 1u: { return k4[w][c]; }
        default: { return v4[w][c]; }
    }
}

// Four dims of q, k or v from element i, n of them valid (n < 4 only when D % 4 != 0).
fn ld(src: u32, i: u32, n: u32) -> vec4<f32> {
    if ((p.flags & VEC) != 0u) {
        switch src {
            case 0u: { return q4[i >> 2u]; }
            case 1u: { return k4[i >> 2u]; }
            default: { return v4[i >> 2u]; }
        }
    }
    var v = vec4<f32>(0.0);
    for (var c = 0u; c < n; c++) {
        v[c] = scalar_of(src, i + c);
    }
    return v;
}

// Staging. A tile slot e (8 per invocation) is row e / 32, vec4 column e % 32 of the streamed
// rows [row0, row0 + BK), whole D; a slab slot e (4 per invocation) is row e / 8 of the
// stationary rows [row0, row0 + BQ), vec4 column 8*sl + e % 8. Rows at or past `limit` and
// dims past D stage as zero. Consecutive invocations take consecutive vec4 of a row.
// Element index of a slot's first dim, and how many of its 4 dims are real (0: stage zero).
fn slot(base: u32, rs: u32, row: u32, limit: u32, c: u32) -> vec2<u32> {
    let d4n = (p.d + 3u) / 4u;
    if (row >= limit || c >= d4n) {
        return vec2<u32>(0u, 0u);
    }
    return vec2<u32>(base + row * rs + 4u * c, min(4u, p.d - 4u * c));
}

fn stage_tile(t: u32, src: u32, base: u32, rs: u32, row0: u32, limit: u32) {
    for (var u = 0u; u < 8u; u++) {
        let e = t + u * WG;
        let at = slot(base, rs, row0 + e / 32u, limit, e % 32u);
        tile[(e / 32u) * TS + e % 32u] = select(vec4<f32>(0.0), ld(src, at.x, at.y), at.y > 0u);
    }
}

fn stage_slab(t: u32, src: u32, base: u32, rs: u32, row0: u32, limit: u32, sl: u32) {
    for (var u = 0u; u < 4u; u++) {
        let e = t + u * WG;
        let at = slot(base, rs, row0 + e / SL, limit, sl * SL + e % SL);
        slab[(e / SL) * SS + e % SL] = select(vec4<f32>(0.0), ld(src, at.x, at.y), at.y > 0u);
    }
}

// Scores of this invocation's 4 x 4 (row, column) pairs over the staged slab: row i's
// vector holds columns j = 0..3. Adds slab(r_i) . tile(c_j) over the slab's 8 vec4.
struct Scores {
    s0: vec4<f32>,
    s1: vec4<f32>,
    s2: vec4<f32>,
    s3: vec4<f32>,
}

fn slab_scores(acc: Scores, tx: u32, ty: u32, sl: u32) -> Scores {
    var r = acc;
    for (var c = 0u; c < SL; c++) {
        let kc = sl * SL + c;
        let km = mat4x4<f32>(tile[tx * TS + kc], tile[(tx + 8u) * TS + kc],
                             tile[(tx + 16u) * TS + kc], tile[(tx + 24u) * TS + kc]);
        // v * M = (dot(v, M[0]), .., dot(v, M[3])): one row against the 4 columns.
        r.s0 += slab[ty * SS + c] * km;
        r.s1 += slab[(ty + 16u) * SS + c] * km;
        r.s2 += slab[(ty + 32u) * SS + c] * km;
        r.s3 += slab[(ty + 48u) * SS + c] * km;
    }
    return r;
}

// Row i's 4 weights (columns c_j = tx + 8j of the 64 x 32 weight tile) into slab.
fn put_weights(tx: u32, r: u32, w: vec4<f32>) {
    let base = r * SS + tx / 4u;
    let c = tx % 4u;
    slab[base][c] = w.x;
    slab[base + 2u][c] = w.y;
    slab[base + 4u][c] = w.z;
    slab[base + 6u][c] = w.w;
}

// Accumulators of 4 rows, each 4 vec4 of output dims (column j of the matrix = dims of vec4
// group tx + 8j).
struct Acc {
    a0: mat4x4<f32>,
    a1: mat4x4<f32>,
    a2: mat4x4<f32>,
    a3: mat4x4<f32>,
}

// acc(r_i) += sum over the 32 tile rows k of W[r_i][k] * tile[k] (W in slab, tile rows as the
// streamed operand): the P V, dS K, dS^T Q, P^T dO products.
fn weighted_rows(acc: Acc, tx: u32, ty: u32) -> Acc {
    var a = acc;
    for (var k4 = 0u; k4 < BK / 4u; k4++) {
        let b = 4u * k4 * TS + tx;
        // Column kk of each matrix is tile row 4*k4 + kk, at one output vec4 group.
        let v0 = mat4x4<f32>(tile[b], tile[b + TS], tile[b + 2u * TS], tile[b + 3u * TS]);
        let v1 = mat4x4<f32>(tile[b + 8u], tile[b + TS + 8u], tile[b + 2u * TS + 8u],
                             tile[b + 3u * TS + 8u]);
        let v2 = mat4x4<f32>(tile[b + 16u], tile[b + TS + 16u], tile[b + 2u * TS + 16u],
                             tile[b + 3u * TS + 16u]);
        let v3 = mat4x4<f32>(tile[b + 24u], tile[b + TS + 24u], tile[b + 2u * TS + 24u],
                             tile[b + 3u * TS + 24u]);
        let w0 = slab[ty * SS + k4];
        let w1 = slab[(ty + 16u) * SS + k4];
        let w2 = slab[(ty + 32u) * SS + k4];
        let w3 = slab[(ty + 48u) * SS + k4];
        a.a0 += mat4x4<f32>(v0 * w0, v1 * w0, v2 * w0, v3 * w0);
        a.a1 += mat4x4<f32>(v0 * w1, v1 * w1, v2 * w1, v3 * w1);
        a.a2 += mat4x4<f32>(v0 * w2, v1 * w2, v2 * w2, v3 * w2);
        a.a3 += mat4x4<f32>(v0 * w3, v1 * w3, v2 * w3, v3 * w3);
    }
    return a;
}

fn acc_row(a: Acc, i: u32) -> mat4x4<f32> {
    switch i {
        case 0u: { return a.a0; }
        case 1u: { return a.a1; }
        case 2u: { return a.a2; }
        default: { return a.a3; }
    }
}

fn score_row(s: Scores, i: u32) -> vec4<f32> {
    switch i {
        case 0u: { return s.s0; }
        case 1u: { return s.s1; }
        case 2u: { return s.s2; }
        default: { return s.s3; }
    }
}

fn max4(v: vec4<f32>) -> f32 {
    return max(max(v.x, v.y), max(v.z, v.w));
}

// ---------------------------------------------------------------- forward / prefill
@group(0) @binding(5) var<storage, read> fw_start: array<u32>;
@group(0) @binding(6) var<storage, read_write> fw_out: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> fw_lse: array<f32>;

fn store_out(i: u32, n: u32, v: vec4<f32>) {
    if ((p.flags & VEC) != 0u) {
        fw_out[i >> 2u] = v;
        return;
    }
    for (var c = 0u; c < n; c++) {
        fw_out[(i + c) >> 2u][(i + c) & 3u] = v[c];
    }
}

@compute @workgroup_size(128, 1, 1)
fn attn_tiled_fwd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let w = wg.x + wg.y * nwg.x;
    if (w >= p.n_wg) {
        return;
    }
    let h = w % p.hq;
    let b = (w / p.hq) % p.batch;
    let s0 = (p.n_blk - 1u - w / (p.hq * p.batch)) * BQ;
    let g = h / (p.hq / p.hkv);
    let tx = t % 8u;
    let ty = t / 8u;
    let kbase = b * p.k_bs + g * p.k_hs;
    let qrs = p.hq * p.d;
    let qbase = b * p.rows * qrs + h * p.d;
    let d4n = (p.d + 3u) / 4u;
    var start = 0u;
    if ((p.flags & HAS_START) != 0u) {
        start = fw_start[b];
    }
    if (t == 0u) {
        // Keys any row of the block may see.
        count = min(start + min(s0 + BQ, p.rows), p.keys);
    }
    // Keys each owned row sees: positions < nk (0 for padded rows and rows past capacity).
    var nk = vec4<u32>(0u);
    for (var i = 0u; i < 4u; i++) {
        let s = s0 + ty + 16u * i;
        let qpos = start + s;
        if (s < p.rows && qpos < p.keys && key_visible(b, qpos)) {
            nk[i] = qpos + 1u;
        }
    }
    let kend = workgroupUniformLoad(&count);

    var m = vec4<f32>(NEG);
    var l = vec4<f32>(0.0); // this lane's share of each row sum
    var acc: Acc;
    let nsl = (d4n + SL - 1u) / SL;
    for (var j0 = 0u; j0 < kend; j0 += BK) {
        var sc: Scores;
        for (var sl = 0u; sl < nsl; sl++) {
            if (sl == 0u) {
                stage_tile(t, SRC_K, kbase, p.k_rs, j0, kend);
            }
            stage_slab(t, SRC_Q, qbase, qrs, s0, p.rows, sl);
            workgroupBarrier();
            sc = slab_scores(sc, tx, ty, sl);
            workgroupBarrier();
        }
        let key = vec4<u32>(j0 + tx) + vec4<u32>(0u, 8u, 16u, 24u);
        var kvis = vec4<bool>(false);
        for (var j = 0u; j < 4u; j++) {
            kvis[j] = key[j] < kend && key_visible(b, key[j]);
        }
        for (var i = 0u; i < 4u; i++) {
            let vis = kvis & (key < vec4<u32>(nk[i]));
            let s = select(vec4<f32>(NEG), score_row(sc, i) * p.scale, vis);
            red[(ty + 16u * i) * 8u + tx] = max4(s);
        }
        // K is no longer read: V takes its place while the maxima are exchanged.
        stage_tile(t, SRC_V, kbase, p.k_rs, j0, kend);
        workgroupBarrier();
        var alpha = vec4<f32>(1.0);
        for (var i = 0u; i < 4u; i++) {
            let r = ty + 16u * i;
            var mt = m[i];
            for (var u = 0u; u < 8u; u++) {
                mt = max(mt, red[r * 8u + u]);
            }
            let vis = kvis & (key < vec4<u32>(nk[i]));
            let pr = select(vec4<f32>(0.0), exp(score_row(sc, i) * p.scale - mt), vis);
            // m == mt == NEG (nothing visible yet) gives alpha 1 on a still-zero state.
            alpha[i] = exp(m[i] - mt);
            l[i] = l[i] * alpha[i] + (pr.x + pr.y + pr.z + pr.w);
            m[i] = mt;
            put_weights(tx, r, pr);
        }
        acc.a0 *= alpha.x;
        acc.a1 *= alpha.y;
        acc.a2 *= alpha.z;
        acc.a3 *= alpha.w;
        workgroupBarrier();
        acc = weighted_rows(acc, tx, ty);
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        red[(ty + 16u * i) * 8u + tx] = l[i];
    }
    workgroupBarrier();
    for (var i = 0u; i < 4u; i++) {
        let r = ty + 16u * i;
        let s = s0 + r;
        if (s >= p.rows) {
            continue;
        }
        var lt = 0.0;
        for (var u = 0u; u < 8u; u++) {
            lt += red[r * 8u + u];
        }
        let inv = select(0.0, 1.0 / lt, lt > 0.0);
        let a = acc_row(acc, i);
        for (var j = 0u; j < 4u; j++) {
            let c = tx + 8u * j;
            if (c < d4n) {
                store_out(qbase + s * qrs + 4u * c, min(4u, p.d - 4u * c), a[j] * inv);
            }
        }
        if (tx == 0u && (p.flags & WRITE_LSE) != 0u) {
            fw_lse[(b * p.hq + h) * p.rows + s] = select(0.0, m[i] + log(lt), lt > 0.0);
        }
    }
}

// ---------------------------------------------------------------- backward
// Training layout only (rows = keys = T, no start). stats = [lse ; delta] as in attention.wgsl.
// With P = softmax(scale * Q K^T) and dS = P * (dO V^T - delta):
//   dQ = scale * dS K,  dK = scale * dS^T Q,  dV = P^T dO.
@group(0) @binding(5) var<storage, read> do4: array<vec4<f32>>;

fn ld_bw(src: u32, i: u32, n: u32) -> vec4<f32> {
    if (src != SRC_DO) {
        return ld(src, i, n);
    }
    if ((p.flags & VEC) != 0u) {
        return do4[i >> 2u];
    }
    var v = vec4<f32>(0.0);
    for (var c = 0u; c < n; c++) {
        v[c] = do4[(i + c) >> 2u][(i + c) & 3u];
    }
    return v;
}

// The staging loops again, reading dO too (the forward binds start positions at binding 5).
fn stage_tile_bw(t: u32, src: u32, base: u32, rs: u32, row0: u32, limit: u32) {
    for (var u = 0u; u < 8u; u++) {
        let e = t + u * WG;
        let at = slot(base, rs, row0 + e / 32u, limit, e % 32u);
        tile[(e / 32u) * TS + e % 32u] = select(vec4<f32>(0.0), ld_bw(src, at.x, at.y), at.y > 0u);
    }
}

fn stage_slab_bw(t: u32, src: u32, base: u32, rs: u32, row0: u32, limit: u32, sl: u32) {
    for (var u = 0u; u < 4u; u++) {
        let e = t + u * WG;
        let at = slot(base, rs, row0 + e / SL, limit, sl * SL + e % SL);
        slab[(e / SL) * SS + e % SL] = select(vec4<f32>(0.0), ld_bw(src, at.x, at.y), at.y > 0u);
    }
}

@group(0) @binding(6) var<storage, read> dq_out: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> dq_stats: array<f32>;
@group(0) @binding(8) var<storage, read_write> dq_dq: array<vec4<f32>>;

fn ld_out(i: u32, n: u32) -> vec4<f32> {
    if ((p.flags & VEC) != 0u) {
        return dq_out[i >> 2u];
    }
    var v = vec4<f32>(0.0);
    for (var c = 0u; c < n; c++) {
        v[c] = dq_out[(i + c) >> 2u][(i + c) & 3u];
    }
    return v;
}

fn store_dq(i: u32, n: u32, v: vec4<f32>) {
    if ((p.flags & VEC) != 0u) {
        dq_dq[i >> 2u] = v;
        return;
    }
    for (var c = 0u; c < n; c++) {
        dq_dq[(i + c) >> 2u][(i + c) & 3u] = v[c];
    }
}

@compute @workgroup_size(128, 1, 1)
fn attn_tiled_bwd_dq(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let w = wg.x + wg.y * nwg.x;
    if (w >= p.n_wg) {
        return;
    }
    let h = w % p.hq;
    let b = (w / p.hq) % p.batch;
    let s0 = (p.n_blk - 1u - w / (p.hq * p.batch)) * BQ;
    let g = h / (p.hq / p.hkv);
    let tx = t % 8u;
    let ty = t / 8u;
    let kbase = b * p.k_bs + g * p.k_hs;
    let qrs = p.hq * p.d;
    let qbase = b * p.rows * qrs + h * p.d;
    let d4n = (p.d + 3u) / 4u;
    let kend = min(s0 + BQ, p.rows);

    // delta = rowsum(dout * out), written behind lse for the dk/dv pass.
    var nk = vec4<u32>(0u);
    for (var i = 0u; i < 4u; i++) {
        let s = s0 + ty + 16u * i;
        var part = 0.0;
        if (s < p.rows) {
            if (key_visible(b, s)) {
                nk[i] = s + 1u;
            }
            for (var j = 0u; j < 4u; j++) {
                let c = tx + 8u * j;
                if (c < d4n) {
                    let at = qbase + s * qrs + 4u * c;
                    let n = min(4u, p.d - 4u * c);
                    part += dot(ld_bw(SRC_DO, at, n), ld_out(at, n));
                }
            }
        }
        red[(ty + 16u * i) * 8u + tx] = part;
    }
    workgroupBarrier();
    var delta = vec4<f32>(0.0);
    var lse = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        let r = ty + 16u * i;
        for (var u = 0u; u < 8u; u++) {
            delta[i] += red[r * 8u + u];
        }
        let s = s0 + r;
        if (s < p.rows) {
            let stat = (b * p.hq + h) * p.rows + s;
            lse[i] = dq_stats[stat];
            if (tx == 0u) {
                dq_stats[p.n_stat + stat] = delta[i];
            }
        }
    }

    var acc: Acc;
    let nsl = (d4n + SL - 1u) / SL;
    for (var j0 = 0u; j0 < kend; j0 += BK) {
        // Pass 0: dP = dO V^T; pass 1: S = Q K^T, which leaves K staged for dS K.
        var dp: Scores;
        var sc: Scores;
        for (var ph = 0u; ph < 2u; ph++) {
            var x: Scores;
            for (var sl = 0u; sl < nsl; sl++) {
                if (sl == 0u) {
                    stage_tile_bw(t, select(SRC_V, SRC_K, ph == 1u), kbase, p.k_rs, j0, kend);
                }
                stage_slab_bw(t, select(SRC_DO, SRC_Q, ph == 1u), qbase, qrs, s0, p.rows, sl);
                workgroupBarrier();
                x = slab_scores(x, tx, ty, sl);
                workgroupBarrier();
            }
            if (ph == 0u) {
                dp = x;
            } else {
                sc = x;
            }
        }
        let key = vec4<u32>(j0 + tx) + vec4<u32>(0u, 8u, 16u, 24u);
        var kvis = vec4<bool>(false);
        for (var j = 0u; j < 4u; j++) {
            kvis[j] = key[j] < kend && key_visible(b, key[j]);
        }
        for (var i = 0u; i < 4u; i++) {
            let vis = kvis & (key < vec4<u32>(nk[i]));
            let pr = exp(score_row(sc, i) * p.scale - lse[i]);
            let ds = select(vec4<f32>(0.0), pr * (score_row(dp, i) - delta[i]), vis);
            put_weights(tx, ty + 16u * i, ds);
        }
        workgroupBarrier();
        acc = weighted_rows(acc, tx, ty);
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let s = s0 + ty + 16u * i;
        if (s >= p.rows) {
            continue;
        }
        let a = acc_row(acc, i);
        for (var j = 0u; j < 4u; j++) {
            let c = tx + 8u * j;
            if (c < d4n) {
                store_dq(qbase + s * qrs + 4u * c, min(4u, p.d - 4u * c), a[j] * p.scale);
            }
        }
    }
}

@group(0) @binding(6) var<storage, read> kv_stats: array<f32>;
@group(0) @binding(7) var<storage, read_write> kv_dk: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> kv_dv: array<vec4<f32>>;

fn store_dkdv(i: u32, n: u32, dk: vec4<f32>, dv: vec4<f32>) {
    if ((p.flags & VEC) != 0u) {
        kv_dk[i >> 2u] = dk;
        kv_dv[i >> 2u] = dv;
        return;
    }
    for (var c = 0u; c < n; c++) {
        kv_dk[(i + c) >> 2u][(i + c) & 3u] = dk[c];
        kv_dv[(i + c) >> 2u][(i + c) & 3u] = dv[c];
    }
}

// Stationary rows are 64 keys of one kv head; the streamed tiles are 32 query rows (Q or dO)
// of each query head of the group in turn, from the block's first key to T.
@compute @workgroup_size(128, 1, 1)
fn attn_tiled_bwd_dkdv(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let w = wg.x + wg.y * nwg.x;
    if (w >= p.n_wg) {
        return;
    }
    let g = w % p.hkv;
    let b = (w / p.hkv) % p.batch;
    let r0 = w / (p.hkv * p.batch) * BQ; // first key of the block
    let tx = t % 8u;
    let ty = t / 8u;
    let kbase = b * p.k_bs + g * p.k_hs;
    let qrs = p.hq * p.d;
    let d4n = (p.d + 3u) / 4u;
    let group = p.hq / p.hkv;
    // Owned keys that are real; the last position any of them is visible from is T - 1.
    var kreal = vec4<bool>(false);
    var kpos = vec4<u32>(0u);
    for (var i = 0u; i < 4u; i++) {
        let j = r0 + ty + 16u * i;
        kpos[i] = j;
        kreal[i] = j < p.rows && key_visible(b, j);
    }

    var acck: Acc;
    var accv: Acc;
    let nsl = (d4n + SL - 1u) / SL;
    for (var hh = 0u; hh < group; hh++) {
        let h = g * group + hh;
        let stat0 = (b * p.hq + h) * p.rows;
        let qbase = b * p.rows * qrs + h * p.d;
        for (var i0 = r0; i0 < p.rows; i0 += BK) {
            let qi = vec4<u32>(i0 + tx) + vec4<u32>(0u, 8u, 16u, 24u);
            var qok = vec4<bool>(false);
            var lse = vec4<f32>(0.0);
            var delta = vec4<f32>(0.0);
            for (var j = 0u; j < 4u; j++) {
                if (qi[j] < p.rows && key_visible(b, qi[j])) {
                    qok[j] = true;
                    lse[j] = kv_stats[stat0 + qi[j]];
                    delta[j] = kv_stats[p.n_stat + stat0 + qi[j]];
                }
            }
            // Pass 0: dP^T = V dO^T; pass 1: S^T = K Q^T, which leaves Q staged for dS^T Q.
            var dp: Scores;
            var sc: Scores;
            for (var ph = 0u; ph < 2u; ph++) {
                var x: Scores;
                for (var sl = 0u; sl < nsl; sl++) {
                    if (sl == 0u) {
                        stage_tile_bw(t, select(SRC_DO, SRC_Q, ph == 1u), qbase, qrs, i0, p.rows);
                    }
                    stage_slab_bw(t, select(SRC_V, SRC_K, ph == 1u), kbase, p.k_rs, r0, p.rows, sl);
                    workgroupBarrier();
                    x = slab_scores(x, tx, ty, sl);
                    workgroupBarrier();
                }
                if (ph == 0u) {
                    dp = x;
                } else {
                    sc = x;
                }
            }
            var pt: Scores;
            for (var i = 0u; i < 4u; i++) {
                let vis = qok & vec4<bool>(kreal[i]) & (qi >= vec4<u32>(kpos[i]));
                let pr = select(vec4<f32>(0.0), exp(score_row(sc, i) * p.scale - lse), vis);
                let ds = pr * (score_row(dp, i) - delta);
                put_weights(tx, ty + 16u * i, ds);
                switch i {
                    case 0u: { pt.s0 = pr; }
                    case 1u: { pt.s1 = pr; }
                    case 2u: { pt.s2 = pr; }
                    default: { pt.s3 = pr; }
                }
            }
            workgroupBarrier();
            acck = weighted_rows(acck, tx, ty);
            workgroupBarrier();
            for (var i = 0u; i < 4u; i++) {
                put_weights(tx, ty + 16u * i, score_row(pt, i));
            }
            stage_tile_bw(t, SRC_DO, qbase, qrs, i0, p.rows);
            workgroupBarrier();
            accv = weighted_rows(accv, tx, ty);
            workgroupBarrier();
        }
    }

    for (var i = 0u; i < 4u; i++) {
        let j = r0 + ty + 16u * i;
        if (j >= p.rows) {
            continue;
        }
        let ak = acc_row(acck, i);
        let av = acc_row(accv, i);
        for (var jj = 0u; jj < 4u; jj++) {
            let c = tx + 8u * jj;
            if (c < d4n) {
                let at = kbase + j * p.k_rs + 4u * c;
                store_dkdv(at, min(4u, p.d - 4u * c), ak[jj] * p.scale, av[jj]);
            }
        }
    }
}
