// Tensor-core attention, forward and prefill pass (compiled after attention_coop_common.wgsl;
// read its header first): a workgroup owns 64 query rows of one query head and streams the
// keys in tiles of 32.
//
// Online softmax with lazy rescaling: scores are in log2 units (x = s * scale * log2 e); a
// row's reference max m only moves when a tile's max exceeds it by more than TH = 8, so the
// weights exp2(x - m) stay below 2^8 (exact enough in f16) and the accumulators, which
// cooperative matrices cannot scale per row, are rescaled through workgroup memory only on
// those tiles. Whether any subgroup needs it is made workgroup-uniform (cooperative-matrix
// operations need uniform control flow) with workgroupUniformLoad.
//
// Workgroup memory stays within 24 KiB so that two workgroups share an SM: on an H100 (driver
// 580.159.04) a Vulkan workgroup gets at most 48 KiB of an SM's shared memory in all, and at
// 31 KiB this pass ran one workgroup (4 subgroups) an SM (bench/NOTES.md). So kv holds 32 rows:
// the Q block in two halves at the start, then per tile the K rows, and, once every subgroup has
// its scores, the V rows in their place (staged while the scalar phase runs).

const TH: f32 = 8.0;
const LOG2E: f32 = 1.4426950408889634;
const LN2: f32 = 0.6931471805599453;
var<workgroup> kv: array<f16, 4352>; // BKV * DP
// Per-subgroup f32 scratch: score tiles, and accumulator tiles on their way out.
var<workgroup> sc: array<f32, 2048>;
// Per-subgroup f16 weights P, 16 x 32.
var<workgroup> pw: array<f16, 2560>;
// Per-row rescale factors.
var<workgroup> rowf: array<f32, 64>;
// Whether each subgroup must rescale (4 words: 16 bytes, see the prelude on alignment).
var<workgroup> need: array<u32, 4>;

fn ld(src: u32, w: u32) -> vec4<f32> {
    switch src {
        case 0u: { return q4[w]; }
        case 1u: { return k4[w]; }
        default: { return v4[w]; }
    }
}

@group(0) @binding(5) var<storage, read> fw_start: array<u32>;
@group(0) @binding(6) var<storage, read_write> fw_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> fw_lse: array<f32>;

// acc with row r multiplied by rowf[sg * 16 + r], through this subgroup's scratch.
fn rescaled(acc: FC, sg: u32, lane: u32) -> FC {
    let sgo = sg * SC_SUB;
    let r = lane % 16u;
    let half = lane / 16u;
    coopStoreT(acc, &sc[sgo], SCS);
    workgroupBarrier();
    let f = rowf[sg * 16u + r];
    for (var c = 0u; c < 8u; c++) {
        let e = sgo + r * SCS + half * 8u + (c + r) % 8u;
        sc[e] *= f;
    }
    workgroupBarrier();
    let out = coopLoadT<FC>(&sc[sgo], SCS);
    workgroupBarrier();
    return out;
}

fn put(which: u32, e: u32, v: f32) {
    fw_out[e] = v;
}

@compute @workgroup_size(128, 1, 1)
fn attn_coop_fwd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let w = wg.x + wg.y * nwg.x;
    if (w >= p.n_wg) {
        return;
    }
    let qb = query_block(w);
    let h = qb.h;
    let b = qb.b;
    let s0 = qb.s0;
    let kbase = qb.kbase;
    let qrs = qb.qrs;
    let qbase = qb.qbase;
    var start = 0u;
    if ((p.flags & HAS_START) != 0u) {
        start = fw_start[b];
    }
    // Uniform: uniforms, the workgroup id and a read-only storage word.
    let kend = min(start + min(s0 + BQ, p.rows), p.keys);
    // This lane's row and the keys it sees: positions < nk (0 for padded rows and rows past
    // the end or the capacity).
    let r = lane % 16u;
    let half = lane / 16u;
    let srow = s0 + sg * 16u + r;
    let qpos = start + srow;
    var nk = 0u;
    if (srow < p.rows && qpos < p.keys && key_visible(b, qpos)) {
        nk = qpos + 1u;
    }
    let sgo = sg * SC_SUB;
    let pwo = sg * PW_SUB;
    let xs = p.scale * LOG2E;

    let fq = block_frags(t, sg, SRC_Q, qbase, qrs, s0, p.rows, 1.0);

    var o0 = FC();
    var o1 = FC();
    var o2 = FC();
    var o3 = FC();
    var o4 = FC();
    var o5 = FC();
    var o6 = FC();
    var o7 = FC();
    var m = NEG;
    var l = 0.0; // this lane's share of the row sum
    for (var j0 = 0u; j0 < kend; j0 += BKV) {
        stage(t, SRC_K, kbase, p.k_rs, j0, kend, BKV, 0u, 1.0);
        workgroupBarrier();
        // S = Q K^T: keys 0..15 of the tile (lo) and 16..31 (hi).
        let s_lo = score_tile(fq, 0u);
        let s_hi = score_tile(fq, 16u * DP);
        coopStoreT(s_lo, &sc[sgo], SCS);
        coopStoreT(s_hi, &sc[sgo + 16u], SCS);
        // Scores visible, and every subgroup is done with the K rows: V takes their place.
        workgroupBarrier();
        stage(t, SRC_V, kbase, p.k_rs, j0, kend, BKV, 0u, 1.0);

        var x: array<f32, 16>;
        var mx = NEG;
        for (var c = 0u; c < 16u; c++) {
            let col = col_of(lane, c);
            let key = j0 + col;
            x[c] = NEG;
            if (key < nk && key_visible(b, key)) {
                x[c] = sc[sgo + r * SCS + col] * xs;
            }
            mx = max(mx, x[c]);
        }
        mx = max(mx, subgroupShuffleXor(mx, 16u));
        var alpha = 1.0;
        if (mx > m + TH) {
            // Nothing was accumulated while m was NEG, so only a finite m needs a rescale.
            if (m > NEG) {
                alpha = exp2(m - mx);
            }
            m = mx;
        }
        l *= alpha;
        for (var c = 0u; c < 16u; c++) {
            let col = col_of(lane, c);
            var pr = 0.0;
            if (x[c] > NEG) {
                pr = exp2(x[c] - m);
            }
            l += pr;
            pw[pwo + r * PWS + col] = f16(pr);
        }
        if (half == 0u) {
            rowf[sg * 16u + r] = alpha;
        }
        let any = subgroupAny(alpha != 1.0);
        if (lane == 0u) {
            need[sg] = u32(any);
        }
        // Also the barrier after which the V rows and the weights are visible.
        let nd = workgroupUniformLoad(&need);
        if ((nd[0] | nd[1] | nd[2] | nd[3]) != 0u) {
            o0 = rescaled(o0, sg, lane);
            if (ND > 1u) { o1 = rescaled(o1, sg, lane); }
            if (ND > 2u) { o2 = rescaled(o2, sg, lane); }
            if (ND > 3u) { o3 = rescaled(o3, sg, lane); }
            if (ND > 4u) { o4 = rescaled(o4, sg, lane); }
            if (ND > 5u) { o5 = rescaled(o5, sg, lane); }
            if (ND > 6u) { o6 = rescaled(o6, sg, lane); }
            if (ND > 7u) { o7 = rescaled(o7, sg, lane); }
        }
        // O += P V.
        let p_lo = w_frag(pwo);
        let p_hi = w_frag(pwo + 16u);
        o0 = mma_rows2(o0, p_lo, p_hi, 0u);
        if (ND > 1u) { o1 = mma_rows2(o1, p_lo, p_hi, 16u); }
        if (ND > 2u) { o2 = mma_rows2(o2, p_lo, p_hi, 32u); }
        if (ND > 3u) { o3 = mma_rows2(o3, p_lo, p_hi, 48u); }
        if (ND > 4u) { o4 = mma_rows2(o4, p_lo, p_hi, 64u); }
        if (ND > 5u) { o5 = mma_rows2(o5, p_lo, p_hi, 80u); }
        if (ND > 6u) { o6 = mma_rows2(o6, p_lo, p_hi, 96u); }
        if (ND > 7u) { o7 = mma_rows2(o7, p_lo, p_hi, 112u); }
        workgroupBarrier();
    }

    let lt = l + subgroupShuffleXor(l, 16u);
    let inv = select(0.0, 1.0 / lt, lt > 0.0);
    if (half == 0u && srow < p.rows && (p.flags & WRITE_LSE) != 0u) {
        fw_lse[(b * p.hq + h) * p.rows + srow] = select(0.0, (m + log2(lt)) * LN2, lt > 0.0);
    }
    let ok = srow < p.rows;
    let at = qbase + srow * qrs;
    emit_tile(o0, sgo, lane, ok, at, inv, 0u);
    if (ND > 1u) { emit_tile(o1, sgo, lane, ok, at + 16u, inv, 0u); }
    if (ND > 2u) { emit_tile(o2, sgo, lane, ok, at + 32u, inv, 0u); }
    if (ND > 3u) { emit_tile(o3, sgo, lane, ok, at + 48u, inv, 0u); }
    if (ND > 4u) { emit_tile(o4, sgo, lane, ok, at + 64u, inv, 0u); }
    if (ND > 5u) { emit_tile(o5, sgo, lane, ok, at + 80u, inv, 0u); }
    if (ND > 6u) { emit_tile(o6, sgo, lane, ok, at + 96u, inv, 0u); }
    if (ND > 7u) { emit_tile(o7, sgo, lane, ok, at + 112u, inv, 0u); }
}
