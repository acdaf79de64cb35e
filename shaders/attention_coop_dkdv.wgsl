// Tensor-core attention backward, second pass (compiled after attention_coop_common.wgsl; read
// its header first): dK = scale * dS^T Q and dV = P^T dO for 64 key rows of one kv head,
// streaming the query rows of each query head of the group in tiles of 32, from the block's
// first key to T. Training layout only; stats = [lse ; delta ; .. max |dO| at aux].
//
// Each subgroup keeps its 16 keys' K and V fragments in registers (S^T = K Q^T and
// dP^T = V (dO s)^T need them as A operands) and dK, dV as accumulators. Per query tile the
// lanes turn S^T and dP^T into P^T and dS^T (rows = keys), which multiply the staged Q and
// dO s rows.
//
// kv: the V and then the K block (64 rows) at the start, loaded into registers; then per tile
// the Q rows (rows 0..31) and the dO s rows (rows 32..63). Scratch per subgroup: S^T
// (16 x 32) then dP^T; weights per subgroup: P^T then dS^T (16 x 40 each).

const DR0: u32 = 4352u;     // BKV * DP: the dO s rows
const SC2_SUB: u32 = 1024u; // scratch per subgroup: S^T and dP^T, 16 x 32 each
const PW2_SUB: u32 = 1280u; // weights per subgroup: P^T and dS^T, 16 x 40 each

var<workgroup> kv: array<f16, 8704>;
var<workgroup> sc: array<f32, 4096>;
var<workgroup> pw: array<f16, 5120>;
// lse (0..31) and delta s (32..63) of the query tile; NEG lse marks a query that sees nothing.
var<workgroup> rowf: array<f32, 64>;
// A broadcast word, as a 16-byte vector: every workgroup variable is a whole number of 16-byte
// units, so that the arrays the cooperative loads read stay 16-byte aligned however the
// driver orders them (a lone u32 here made those loads read at shifted addresses on an H100).
var<workgroup> count: vec4<u32>;

@group(0) @binding(5) var<storage, read> do4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> kv_stats: array<f32>;
@group(0) @binding(7) var<storage, read_write> kv_dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> kv_dv: array<f32>;

fn ld(src: u32, w: u32) -> vec4<f32> {
    switch src {
        case 0u: { return q4[w]; }
        case 1u: { return k4[w]; }
        case 2u: { return v4[w]; }
        default: { return do4[w]; }
    }
}

// Output 0 is dk, 1 is dv.
fn put(which: u32, e: u32, v: f32) {
    if (which == 0u) {
        kv_dk[e] = v;
    } else {
        kv_dv[e] = v;
    }
}

@compute @workgroup_size(128, 1, 1)
fn attn_coop_bwd_dkdv(
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
    let g = w % p.hkv;
    let b = (w / p.hkv) % p.batch;
    let r0 = w / (p.hkv * p.batch) * BQ; // first key of the block
    let kbase = b * p.k_bs + g * p.k_hs;
    let qrs = p.hq * p.d;
    let group = p.hq / p.hkv;
    if (t == 0u) {
        count.x = bitcast<u32>(kv_stats[p.aux]);
    }
    let gs = grad_scale(workgroupUniformLoad(&count).x);

    let r = lane % 16u;
    let half = lane / 16u;
    let j = r0 + sg * 16u + r; // this lane's key
    let kreal = j < p.rows && key_visible(b, j);
    let sgo = sg * SC2_SUB;
    let pwo = sg * PW2_SUB;
    let ka = sg * 16u * DP;

    stage(t, SRC_V, kbase, p.k_rs, r0, p.rows, BQ, 0u, 1.0);
    workgroupBarrier();
    let fv = row_frags(ka);
    workgroupBarrier();
    stage(t, SRC_K, kbase, p.k_rs, r0, p.rows, BQ, 0u, 1.0);
    workgroupBarrier();
    let fk = row_frags(ka);
    workgroupBarrier();

    var dk0 = FC();
    var dk1 = FC();
    var dk2 = FC();
    var dk3 = FC();
    var dk4 = FC();
    var dk5 = FC();
    var dk6 = FC();
    var dk7 = FC();
    var dv0 = FC();
    var dv1 = FC();
    var dv2 = FC();
    var dv3 = FC();
    var dv4 = FC();
    var dv5 = FC();
    var dv6 = FC();
    var dv7 = FC();
    for (var hh = 0u; hh < group; hh++) {
        let h = g * group + hh;
        let stat0 = (b * p.hq + h) * p.rows;
        let qbase = b * p.rows * qrs + h * p.d;
        for (var i0 = r0; i0 < p.rows; i0 += BKV) {
            stage(t, SRC_Q, qbase, qrs, i0, p.rows, BKV, 0u, 1.0);
            stage(t, SRC_DO, qbase, qrs, i0, p.rows, BKV, BKV, gs);
            if (t < BKV) {
                let qi = i0 + t;
                var ls = NEG;
                var dl = 0.0;
                if (qi < p.rows && key_visible(b, qi)) {
                    ls = kv_stats[stat0 + qi];
                    dl = kv_stats[p.n_stat + stat0 + qi] * gs;
                }
                rowf[t] = ls;
                rowf[BKV + t] = dl;
            }
            workgroupBarrier();
            // S^T = K Q^T and dP^T = V (dO s)^T: this subgroup's 16 keys x queries 0..15 (lo)
            // and 16..31 (hi).
            let qh = 16u * DP;
            var s_lo = mma_cols(FC(), fk.f0, 0u);
            var s_hi = mma_cols(FC(), fk.f0, qh);
            var d_lo = mma_cols(FC(), fv.f0, DR0);
            var d_hi = mma_cols(FC(), fv.f0, DR0 + qh);
            if (ND > 1u) {
                s_lo = mma_cols(s_lo, fk.f1, 16u);
                s_hi = mma_cols(s_hi, fk.f1, qh + 16u);
                d_lo = mma_cols(d_lo, fv.f1, DR0 + 16u);
                d_hi = mma_cols(d_hi, fv.f1, DR0 + qh + 16u);
            }
            if (ND > 2u) {
                s_lo = mma_cols(s_lo, fk.f2, 32u);
                s_hi = mma_cols(s_hi, fk.f2, qh + 32u);
                d_lo = mma_cols(d_lo, fv.f2, DR0 + 32u);
                d_hi = mma_cols(d_hi, fv.f2, DR0 + qh + 32u);
            }
            if (ND > 3u) {
                s_lo = mma_cols(s_lo, fk.f3, 48u);
                s_hi = mma_cols(s_hi, fk.f3, qh + 48u);
                d_lo = mma_cols(d_lo, fv.f3, DR0 + 48u);
                d_hi = mma_cols(d_hi, fv.f3, DR0 + qh + 48u);
            }
            if (ND > 4u) {
                s_lo = mma_cols(s_lo, fk.f4, 64u);
                s_hi = mma_cols(s_hi, fk.f4, qh + 64u);
                d_lo = mma_cols(d_lo, fv.f4, DR0 + 64u);
                d_hi = mma_cols(d_hi, fv.f4, DR0 + qh + 64u);
            }
            if (ND > 5u) {
                s_lo = mma_cols(s_lo, fk.f5, 80u);
                s_hi = mma_cols(s_hi, fk.f5, qh + 80u);
                d_lo = mma_cols(d_lo, fv.f5, DR0 + 80u);
                d_hi = mma_cols(d_hi, fv.f5, DR0 + qh + 80u);
            }
            if (ND > 6u) {
                s_lo = mma_cols(s_lo, fk.f6, 96u);
                s_hi = mma_cols(s_hi, fk.f6, qh + 96u);
                d_lo = mma_cols(d_lo, fv.f6, DR0 + 96u);
                d_hi = mma_cols(d_hi, fv.f6, DR0 + qh + 96u);
            }
            if (ND > 7u) {
                s_lo = mma_cols(s_lo, fk.f7, 112u);
                s_hi = mma_cols(s_hi, fk.f7, qh + 112u);
                d_lo = mma_cols(d_lo, fv.f7, DR0 + 112u);
                d_hi = mma_cols(d_hi, fv.f7, DR0 + qh + 112u);
            }
            coopStoreT(s_lo, &sc[sgo], SCS);
            coopStoreT(s_hi, &sc[sgo + 16u], SCS);
            coopStoreT(d_lo, &sc[sgo + 512u], SCS);
            coopStoreT(d_hi, &sc[sgo + 528u], SCS);
            workgroupBarrier();
            // P^T and dS^T = P^T (dP^T - delta) of this lane's key over its 16 queries.
            for (var c = 0u; c < 16u; c++) {
                let col = col_of(lane, c);
                let qi = i0 + col;
                var pr = 0.0;
                var ds = 0.0;
                if (kreal && qi >= j && rowf[col] > NEG) {
                    let e = sgo + r * SCS + col;
                    pr = exp(sc[e] * p.scale - rowf[col]);
                    ds = pr * (sc[e + 512u] - rowf[BKV + col]);
                }
                pw[pwo + r * PWS + col] = f16(pr);
                pw[pwo + 640u + r * PWS + col] = f16(ds);
            }
            workgroupBarrier();
            // dV += P^T (dO s) and dK += dS^T Q.
            let p_lo = w_frag(pwo);
            let p_hi = w_frag(pwo + 16u);
            let w_lo = w_frag(pwo + 640u);
            let w_hi = w_frag(pwo + 656u);
            dv0 = mma_rows2(dv0, p_lo, p_hi, DR0);
            dk0 = mma_rows2(dk0, w_lo, w_hi, 0u);
            if (ND > 1u) {
                dv1 = mma_rows2(dv1, p_lo, p_hi, DR0 + 16u);
                dk1 = mma_rows2(dk1, w_lo, w_hi, 16u);
            }
            if (ND > 2u) {
                dv2 = mma_rows2(dv2, p_lo, p_hi, DR0 + 32u);
                dk2 = mma_rows2(dk2, w_lo, w_hi, 32u);
            }
            if (ND > 3u) {
                dv3 = mma_rows2(dv3, p_lo, p_hi, DR0 + 48u);
                dk3 = mma_rows2(dk3, w_lo, w_hi, 48u);
            }
            if (ND > 4u) {
                dv4 = mma_rows2(dv4, p_lo, p_hi, DR0 + 64u);
                dk4 = mma_rows2(dk4, w_lo, w_hi, 64u);
            }
            if (ND > 5u) {
                dv5 = mma_rows2(dv5, p_lo, p_hi, DR0 + 80u);
                dk5 = mma_rows2(dk5, w_lo, w_hi, 80u);
            }
            if (ND > 6u) {
                dv6 = mma_rows2(dv6, p_lo, p_hi, DR0 + 96u);
                dk6 = mma_rows2(dk6, w_lo, w_hi, 96u);
            }
            if (ND > 7u) {
                dv7 = mma_rows2(dv7, p_lo, p_hi, DR0 + 112u);
                dk7 = mma_rows2(dk7, w_lo, w_hi, 112u);
            }
            workgroupBarrier();
        }
    }

    let k_scale = p.scale / gs;
    let v_scale = 1.0 / gs;
    let ok = j < p.rows;
    let at = kbase + j * p.k_rs;
    emit_tile(dk0, sgo, lane, ok, at, k_scale, 0u);
    emit_tile(dv0, sgo, lane, ok, at, v_scale, 1u);
    if (ND > 1u) {
        emit_tile(dk1, sgo, lane, ok, at + 16u, k_scale, 0u);
        emit_tile(dv1, sgo, lane, ok, at + 16u, v_scale, 1u);
    }
    if (ND > 2u) {
        emit_tile(dk2, sgo, lane, ok, at + 32u, k_scale, 0u);
        emit_tile(dv2, sgo, lane, ok, at + 32u, v_scale, 1u);
    }
    if (ND > 3u) {
        emit_tile(dk3, sgo, lane, ok, at + 48u, k_scale, 0u);
        emit_tile(dv3, sgo, lane, ok, at + 48u, v_scale, 1u);
    }
    if (ND > 4u) {
        emit_tile(dk4, sgo, lane, ok, at + 64u, k_scale, 0u);
        emit_tile(dv4, sgo, lane, ok, at + 64u, v_scale, 1u);
    }
    if (ND > 5u) {
        emit_tile(dk5, sgo, lane, ok, at + 80u, k_scale, 0u);
        emit_tile(dv5, sgo, lane, ok, at + 80u, v_scale, 1u);
    }
    if (ND > 6u) {
        emit_tile(dk6, sgo, lane, ok, at + 96u, k_scale, 0u);
        emit_tile(dv6, sgo, lane, ok, at + 96u, v_scale, 1u);
    }
    if (ND > 7u) {
        emit_tile(dk7, sgo, lane, ok, at + 112u, k_scale, 0u);
        emit_tile(dv7, sgo, lane, ok, at + 112u, v_scale, 1u);
    }
}
