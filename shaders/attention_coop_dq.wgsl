// Tensor-core attention backward, first pass (compiled after attention_coop_common.wgsl; read
// its header first): delta = rowsum(dO s * out) and dQ = scale * dS K for 64 query rows of one
// query head, streaming the keys in tiles of 32. Training layout only (rows = keys = T, no
// start). stats = [lse ; delta ; .. max |dO| at aux]. With P = softmax(scale * Q K^T) and
// dS = P * (dO V^T - delta): dQ = scale * dS K.
//
// Workgroup memory stays within 24 KiB so that two workgroups share an SM (see the forward
// pass), so kv holds 32 rows: the Q and then the dO s block in 32-row halves at the start,
// loaded into registers; then per tile the V rows, for dP = (dO s) V^T, and in their place the
// K rows, for S = Q K^T and dQ += dS K. The dP tile and then the S tile go through the
// subgroup's scratch in turn.

var<workgroup> kv: array<f16, 4352>; // BKV * DP
var<workgroup> sc: array<f32, 2048>;
var<workgroup> pw: array<f16, 2560>;

@group(0) @binding(5) var<storage, read> do4: array<vec4<f32>>;

fn ld(src: u32, w: u32) -> vec4<f32> {
    switch src {
        case 0u: { return q4[w]; }
        case 1u: { return k4[w]; }
        case 2u: { return v4[w]; }
        default: { return do4[w]; }
    }
}

@group(0) @binding(6) var<storage, read> dq_out: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> dq_stats: array<f32>;
@group(0) @binding(8) var<storage, read_write> dq_dq: array<f32>;

fn put(which: u32, e: u32, v: f32) {
    dq_dq[e] = v;
}

@compute @workgroup_size(128, 1, 1)
fn attn_coop_bwd_dq(
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
    let kend = min(s0 + BQ, p.rows);
    let gs = grad_scale(bitcast<u32>(dq_stats[p.aux]));

    let r = lane % 16u;
    let half = lane / 16u;
    let srow = s0 + sg * 16u + r;
    let sgo = sg * SC_SUB;
    let pwo = sg * PW_SUB;
    // delta = rowsum(dO s * out) in f32 over the f16-rounded dO s the products use (so each
    // row of dS sums to zero up to the weights' rounding); the two lanes of a row split D.
    // Written behind lse, divided by s, for the dk/dv pass; lse of this row.
    var nk = 0u;
    var part = 0.0;
    var lse = 0.0;
    let stat = (b * p.hq + h) * p.rows + srow;
    if (srow < p.rows) {
        if (key_visible(b, srow)) {
            nk = srow + 1u;
        }
        let at = (qbase + srow * qrs) / 4u + half * ND * 2u;
        for (var c = 0u; c < ND * 2u; c++) {
            part += dot(vec4<f32>(vec4<f16>(do4[at + c] * gs)), dq_out[at + c]);
        }
        lse = dq_stats[stat];
    }
    let dlt = part + subgroupShuffleXor(part, 16u);
    if (half == 0u && srow < p.rows) {
        dq_stats[p.n_stat + stat] = dlt / gs;
    }

    let fq = block_frags(t, sg, SRC_Q, qbase, qrs, s0, p.rows, 1.0);
    let fd = block_frags(t, sg, SRC_DO, qbase, qrs, s0, p.rows, gs);

    var a0 = FC();
    var a1 = FC();
    var a2 = FC();
    var a3 = FC();
    var a4 = FC();
    var a5 = FC();
    var a6 = FC();
    var a7 = FC();
    for (var j0 = 0u; j0 < kend; j0 += BKV) {
        let kh = 16u * DP;
        stage(t, SRC_V, kbase, p.k_rs, j0, kend, BKV, 0u, 1.0);
        workgroupBarrier();
        // dP = (dO s) V^T, keys 0..15 (lo) and 16..31 (hi) of the tile.
        let d_lo = score_tile(fd, 0u);
        let d_hi = score_tile(fd, kh);
        coopStoreT(d_lo, &sc[sgo], SCS);
        coopStoreT(d_hi, &sc[sgo + 16u], SCS);
        // dP visible, and every subgroup is done with the V rows: K takes their place.
        workgroupBarrier();
        stage(t, SRC_K, kbase, p.k_rs, j0, kend, BKV, 0u, 1.0);
        var dp: array<f32, 16>;
        for (var c = 0u; c < 16u; c++) {
            dp[c] = sc[sgo + r * SCS + col_of(lane, c)];
        }
        workgroupBarrier();
        // S = Q K^T.
        let s_lo = score_tile(fq, 0u);
        let s_hi = score_tile(fq, kh);
        coopStoreT(s_lo, &sc[sgo], SCS);
        coopStoreT(s_hi, &sc[sgo + 16u], SCS);
        workgroupBarrier();
        // dS = P * (dP - delta).
        for (var c = 0u; c < 16u; c++) {
            let col = col_of(lane, c);
            let key = j0 + col;
            var pr = 0.0;
            if (key < nk && key_visible(b, key)) {
                pr = exp(sc[sgo + r * SCS + col] * p.scale - lse);
            }
            pw[pwo + r * PWS + col] = f16(pr * (dp[c] - dlt));
        }
        workgroupBarrier();
        // dQ += dS K.
        let w_lo = w_frag(pwo);
        let w_hi = w_frag(pwo + 16u);
        a0 = mma_rows2(a0, w_lo, w_hi, 0u);
        if (ND > 1u) { a1 = mma_rows2(a1, w_lo, w_hi, 16u); }
        if (ND > 2u) { a2 = mma_rows2(a2, w_lo, w_hi, 32u); }
        if (ND > 3u) { a3 = mma_rows2(a3, w_lo, w_hi, 48u); }
        if (ND > 4u) { a4 = mma_rows2(a4, w_lo, w_hi, 64u); }
        if (ND > 5u) { a5 = mma_rows2(a5, w_lo, w_hi, 80u); }
        if (ND > 6u) { a6 = mma_rows2(a6, w_lo, w_hi, 96u); }
        if (ND > 7u) { a7 = mma_rows2(a7, w_lo, w_hi, 112u); }
        workgroupBarrier();
    }

    let f = p.scale / gs;
    let ok = srow < p.rows;
    let at = qbase + srow * qrs;
    emit_tile(a0, sgo, lane, ok, at, f, 0u);
    if (ND > 1u) { emit_tile(a1, sgo, lane, ok, at + 16u, f, 0u); }
    if (ND > 2u) { emit_tile(a2, sgo, lane, ok, at + 32u, f, 0u); }
    if (ND > 3u) { emit_tile(a3, sgo, lane, ok, at + 48u, f, 0u); }
    if (ND > 4u) { emit_tile(a4, sgo, lane, ok, at + 64u, f, 0u); }
    if (ND > 5u) { emit_tile(a5, sgo, lane, ok, at + 80u, f, 0u); }
    if (ND > 6u) { emit_tile(a6, sgo, lane, ok, at + 96u, f, 0u); }
    if (ND > 7u) { emit_tile(a7, sgo, lane, ok, at + 112u, f, 0u); }
}
