// Tensor-core attention backward, second pass (compiled after attention_coop_common.wgsl; read
// its header first): dK = scale * dS^T Q and dV = P^T dO for 64 key rows of one kv head,
// streaming the query rows of each query head of the group in tiles of QT = 16, from the
// block's first key to T. Training layout only; stats = [lse ; delta ; .. max |dO| at aux].
//
// Each subgroup keeps its 16 keys' K and V fragments in registers (S^T = K Q^T and
// dP^T = V (dO s)^T need them as A operands) and dK, dV as accumulators. Per query tile the
// lanes turn S^T and dP^T into P^T and dS^T (rows = keys), which multiply the staged Q and
// dO s rows.
//
// Workgroup memory stays within 24 KiB so that two workgroups share an SM (see the forward
// pass); with 32-row query tiles it took 43 KiB and ran one workgroup an SM. kv: the V and then
// the K block in 32-row halves at the start, loaded into registers; then per tile the Q rows
// (rows 0..15) and the dO s rows (rows 16..31). Scratch per subgroup: S^T and dP^T (16 x 16
// f32 each, row stride 16); weights per subgroup: P^T and dS^T (16 x 16 halves each, row
// stride 24).

const QT: u32 = 16u;          // query rows a tile
const DR0: u32 = 2176u;       // QT * DP: the dO s rows
const SCT: u32 = 16u;         // scratch row stride in f32
const SC2_SUB: u32 = 512u;    // scratch per subgroup: S^T and dP^T
const PWT: u32 = 24u;         // weight row stride in halves
const PW2_SUB: u32 = 768u;    // weights per subgroup: P^T and dS^T, 16 x 24 each

var<workgroup> kv: array<f16, 4352>; // 2 * QT * DP
var<workgroup> sc: array<f32, 2048>;
var<workgroup> pw: array<f16, 3072>;
// lse (0..15) and delta s (16..31) of the query tile; NEG lse marks a query that sees nothing.
var<workgroup> rowf: array<f32, 32>;

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
    let gs = grad_scale(bitcast<u32>(kv_stats[p.aux]));

    let r = lane % 16u;
    let half = lane / 16u;
    let j = r0 + sg * 16u + r; // this lane's key
    let kreal = j < p.rows && key_visible(b, j);
    let sgo = sg * SC2_SUB;
    let pwo = sg * PW2_SUB;
    let fv = block_frags(t, sg, SRC_V, kbase, p.k_rs, r0, p.rows, 1.0);
    let fk = block_frags(t, sg, SRC_K, kbase, p.k_rs, r0, p.rows, 1.0);

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
        for (var i0 = r0; i0 < p.rows; i0 += QT) {
            stage(t, SRC_Q, qbase, qrs, i0, p.rows, QT, 0u, 1.0);
            stage(t, SRC_DO, qbase, qrs, i0, p.rows, QT, QT, gs);
            if (t < QT) {
                let qi = i0 + t;
                var ls = NEG;
                var dl = 0.0;
                if (qi < p.rows && key_visible(b, qi)) {
                    ls = kv_stats[stat0 + qi];
                    dl = kv_stats[p.n_stat + stat0 + qi] * gs;
                }
                rowf[t] = ls;
                rowf[QT + t] = dl;
            }
            workgroupBarrier();
            // S^T = K Q^T and dP^T = V (dO s)^T: this subgroup's 16 keys x the tile's 16 queries.
            let st = score_tile(fk, 0u);
            let dt = score_tile(fv, DR0);
            coopStoreT(st, &sc[sgo], SCT);
            coopStoreT(dt, &sc[sgo + 256u], SCT);
            workgroupBarrier();
            // P^T and dS^T = P^T (dP^T - delta) of this lane's key over 8 of the 16 queries,
            // visited in an order that puts the 32 lanes of a step on 32 banks.
            for (var c = 0u; c < 8u; c++) {
                let col = half * 8u + (c + r / 2u) % 8u;
                let qi = i0 + col;
                var pr = 0.0;
                var ds = 0.0;
                if (kreal && qi >= j && rowf[col] > NEG) {
                    let e = sgo + r * SCT + col;
                    pr = exp(sc[e] * p.scale - rowf[col]);
                    ds = pr * (sc[e + 256u] - rowf[QT + col]);
                }
                pw[pwo + r * PWT + col] = f16(pr);
                pw[pwo + 384u + r * PWT + col] = f16(ds);
            }
            workgroupBarrier();
            // dV += P^T (dO s) and dK += dS^T Q.
            let p_t = coopLoadT<FA>(&pw[pwo], PWT);
            let w_t = coopLoadT<FA>(&pw[pwo + 384u], PWT);
            dv0 = coopMultiplyAdd(p_t, b_rows(DR0), dv0);
            dk0 = coopMultiplyAdd(w_t, b_rows(0u), dk0);
            if (ND > 1u) {
                dv1 = coopMultiplyAdd(p_t, b_rows(DR0 + 16u), dv1);
                dk1 = coopMultiplyAdd(w_t, b_rows(16u), dk1);
            }
            if (ND > 2u) {
                dv2 = coopMultiplyAdd(p_t, b_rows(DR0 + 32u), dv2);
                dk2 = coopMultiplyAdd(w_t, b_rows(32u), dk2);
            }
            if (ND > 3u) {
                dv3 = coopMultiplyAdd(p_t, b_rows(DR0 + 48u), dv3);
                dk3 = coopMultiplyAdd(w_t, b_rows(48u), dk3);
            }
            if (ND > 4u) {
                dv4 = coopMultiplyAdd(p_t, b_rows(DR0 + 64u), dv4);
                dk4 = coopMultiplyAdd(w_t, b_rows(64u), dk4);
            }
            if (ND > 5u) {
                dv5 = coopMultiplyAdd(p_t, b_rows(DR0 + 80u), dv5);
                dk5 = coopMultiplyAdd(w_t, b_rows(80u), dk5);
            }
            if (ND > 6u) {
                dv6 = coopMultiplyAdd(p_t, b_rows(DR0 + 96u), dv6);
                dk6 = coopMultiplyAdd(w_t, b_rows(96u), dk6);
            }
            if (ND > 7u) {
                dv7 = coopMultiplyAdd(p_t, b_rows(DR0 + 112u), dv7);
                dk7 = coopMultiplyAdd(w_t, b_rows(112u), dk7);
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
