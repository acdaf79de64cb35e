// Tensor-core attention backward, second pass (compiled after attention_coop_common.wgsl; read
// its header first): dK = scale * dS^T Q and dV = P^T dO for 64 key rows of one kv head,
// streaming the query rows of each query head of the group in tiles of QT = 16, from the
// block's first key to T. Training layout only; stats = [lse ; delta ; .. max |dO| at aux].
//
// Each subgroup keeps its 16 keys' K and V fragments in registers (S^T = K Q^T and
// dP^T = V (dO s)^T need them as A operands) and dK, dV as accumulators. Per query tile the
// lanes turn S^T and dP^T into P^T and dS^T (rows = keys), which multiply the transposed
// copies of Q and dO s (dS^T Q and P^T dO contract over the queries).
//
// kv regions: the V and then the K block (64 row copies) at the start, loaded into registers;
// then per tile the Q rows ([0, 2176)), the dO s rows ([2176, 4352)), Q^T ([4352, 9472)) and
// dO^T s ([9472, 14592)), the transposed copies D rows of 16 queries at stride TS.

const QT: u32 = 16u;
const DR0: u32 = 2176u;  // QT * DP
const QT0: u32 = 4352u;  // 2 * QT * DP
const DT0: u32 = 9472u;  // QT0 + 128 * TS

var<workgroup> kv: array<f16, 14592>;
// Per-subgroup f32 scratch: S^T (columns 0..15) and dP^T (16..31), and outputs on their way.
var<workgroup> sc: array<f32, 2048>;
// Per-subgroup f16 weights: P^T (columns 0..15) and dS^T (16..31).
var<workgroup> pw: array<f16, 2560>;
// lse (0..15) and delta s (16..31) of the query tile; NEG lse marks a query that sees nothing.
var<workgroup> rowf: array<f32, 32>;
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

// dk and dv dims 16 i.. of this lane's key (element `at`, `ok` when the key exists) from
// tiles i, times fk and fv.
fn emit_dkdv(dk: FC, dv: FC, i: u32, sg: u32, lane: u32, ok: bool, at: u32, fk: f32, fv: f32) {
    let sgo = sg * SC_SUB;
    let r = lane % 16u;
    let half = lane / 16u;
    coopStoreT(dk, &sc[sgo], SCS);
    coopStoreT(dv, &sc[sgo + 16u], SCS);
    workgroupBarrier();
    if (ok) {
        for (var c = 0u; c < 8u; c++) {
            let col = half * 8u + (c + r) % 8u;
            kv_dk[at + i * 16u + col] = sc[sgo + r * SCS + col] * fk;
            kv_dv[at + i * 16u + col] = sc[sgo + r * SCS + 16u + col] * fv;
        }
    }
    workgroupBarrier();
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
    let sgo = sg * SC_SUB;
    let pwo = sg * PW_SUB;
    let ka = sg * 16u * DP;

    stage(t, SRC_V, kbase, p.k_rs, r0, p.rows, BQ, 0u, 1.0);
    workgroupBarrier();
    let fv0 = a_rows(ka);
    var fv1: FA;
    var fv2: FA;
    var fv3: FA;
    var fv4: FA;
    var fv5: FA;
    var fv6: FA;
    var fv7: FA;
    if (ND > 1u) { fv1 = a_rows(ka + 16u); }
    if (ND > 2u) { fv2 = a_rows(ka + 32u); }
    if (ND > 3u) { fv3 = a_rows(ka + 48u); }
    if (ND > 4u) { fv4 = a_rows(ka + 64u); }
    if (ND > 5u) { fv5 = a_rows(ka + 80u); }
    if (ND > 6u) { fv6 = a_rows(ka + 96u); }
    if (ND > 7u) { fv7 = a_rows(ka + 112u); }
    workgroupBarrier();
    stage(t, SRC_K, kbase, p.k_rs, r0, p.rows, BQ, 0u, 1.0);
    workgroupBarrier();
    let fk0 = a_rows(ka);
    var fk1: FA;
    var fk2: FA;
    var fk3: FA;
    var fk4: FA;
    var fk5: FA;
    var fk6: FA;
    var fk7: FA;
    if (ND > 1u) { fk1 = a_rows(ka + 16u); }
    if (ND > 2u) { fk2 = a_rows(ka + 32u); }
    if (ND > 3u) { fk3 = a_rows(ka + 48u); }
    if (ND > 4u) { fk4 = a_rows(ka + 64u); }
    if (ND > 5u) { fk5 = a_rows(ka + 80u); }
    if (ND > 6u) { fk6 = a_rows(ka + 96u); }
    if (ND > 7u) { fk7 = a_rows(ka + 112u); }
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
        for (var i0 = r0; i0 < p.rows; i0 += QT) {
            stage(t, SRC_Q, qbase, qrs, i0, p.rows, QT, 0u, 1.0);
            stage(t, SRC_DO, qbase, qrs, i0, p.rows, QT, QT, gs);
            stage_t(t, SRC_Q, qbase, qrs, i0, p.rows, QT, QT0, 1.0);
            stage_t(t, SRC_DO, qbase, qrs, i0, p.rows, QT, DT0, gs);
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
            // S^T = K Q^T and dP^T = V (dO s)^T: this subgroup's 16 keys x 16 queries.
            var st = mma_cols(FC(), fk0, 0u);
            var dt = mma_cols(FC(), fv0, DR0);
            if (ND > 1u) { st = mma_cols(st, fk1, 16u); dt = mma_cols(dt, fv1, DR0 + 16u); }
            if (ND > 2u) { st = mma_cols(st, fk2, 32u); dt = mma_cols(dt, fv2, DR0 + 32u); }
            if (ND > 3u) { st = mma_cols(st, fk3, 48u); dt = mma_cols(dt, fv3, DR0 + 48u); }
            if (ND > 4u) { st = mma_cols(st, fk4, 64u); dt = mma_cols(dt, fv4, DR0 + 64u); }
            if (ND > 5u) { st = mma_cols(st, fk5, 80u); dt = mma_cols(dt, fv5, DR0 + 80u); }
            if (ND > 6u) { st = mma_cols(st, fk6, 96u); dt = mma_cols(dt, fv6, DR0 + 96u); }
            if (ND > 7u) { st = mma_cols(st, fk7, 112u); dt = mma_cols(dt, fv7, DR0 + 112u); }
            coopStoreT(st, &sc[sgo], SCS);
            coopStoreT(dt, &sc[sgo + 16u], SCS);
            workgroupBarrier();
            // P^T and dS^T = P^T (dP^T - delta): lane (r, half) takes 8 of the 16 queries.
            for (var c = 0u; c < 8u; c++) {
                let col = half * 8u + (c + r) % 8u;
                let qi = i0 + col;
                var pr = 0.0;
                var ds = 0.0;
                if (kreal && qi >= j && rowf[col] > NEG) {
                    pr = exp(sc[sgo + r * SCS + col] * p.scale - rowf[col]);
                    ds = pr * (sc[sgo + r * SCS + 16u + col] - rowf[QT + col]);
                }
                pw[pwo + r * PWS + col] = f16(pr);
                pw[pwo + r * PWS + 16u + col] = f16(ds);
            }
            workgroupBarrier();
            // dV += P^T (dO s) and dK += dS^T Q over the transposed copies.
            let pt = w_frag(pwo);
            let dst = w_frag(pwo + 16u);
            dv0 = coopMultiplyAdd(pt, b_trans(DT0), dv0);
            dk0 = coopMultiplyAdd(dst, b_trans(QT0), dk0);
            if (ND > 1u) {
                dv1 = coopMultiplyAdd(pt, b_trans(DT0 + 16u * TS), dv1);
                dk1 = coopMultiplyAdd(dst, b_trans(QT0 + 16u * TS), dk1);
            }
            if (ND > 2u) {
                dv2 = coopMultiplyAdd(pt, b_trans(DT0 + 32u * TS), dv2);
                dk2 = coopMultiplyAdd(dst, b_trans(QT0 + 32u * TS), dk2);
            }
            if (ND > 3u) {
                dv3 = coopMultiplyAdd(pt, b_trans(DT0 + 48u * TS), dv3);
                dk3 = coopMultiplyAdd(dst, b_trans(QT0 + 48u * TS), dk3);
            }
            if (ND > 4u) {
                dv4 = coopMultiplyAdd(pt, b_trans(DT0 + 64u * TS), dv4);
                dk4 = coopMultiplyAdd(dst, b_trans(QT0 + 64u * TS), dk4);
            }
            if (ND > 5u) {
                dv5 = coopMultiplyAdd(pt, b_trans(DT0 + 80u * TS), dv5);
                dk5 = coopMultiplyAdd(dst, b_trans(QT0 + 80u * TS), dk5);
            }
            if (ND > 6u) {
                dv6 = coopMultiplyAdd(pt, b_trans(DT0 + 96u * TS), dv6);
                dk6 = coopMultiplyAdd(dst, b_trans(QT0 + 96u * TS), dk6);
            }
            if (ND > 7u) {
                dv7 = coopMultiplyAdd(pt, b_trans(DT0 + 112u * TS), dv7);
                dk7 = coopMultiplyAdd(dst, b_trans(QT0 + 112u * TS), dk7);
            }
            workgroupBarrier();
        }
    }

    let fk = p.scale / gs;
    let fvv = 1.0 / gs;
    let ok = j < p.rows;
    let at = kbase + j * p.k_rs;
    emit_dkdv(dk0, dv0, 0u, sg, lane, ok, at, fk, fvv);
    if (ND > 1u) { emit_dkdv(dk1, dv1, 1u, sg, lane, ok, at, fk, fvv); }
    if (ND > 2u) { emit_dkdv(dk2, dv2, 2u, sg, lane, ok, at, fk, fvv); }
    if (ND > 3u) { emit_dkdv(dk3, dv3, 3u, sg, lane, ok, at, fk, fvv); }
    if (ND > 4u) { emit_dkdv(dk4, dv4, 4u, sg, lane, ok, at, fk, fvv); }
    if (ND > 5u) { emit_dkdv(dk5, dv5, 5u, sg, lane, ok, at, fk, fvv); }
    if (ND > 6u) { emit_dkdv(dk6, dv6, 6u, sg, lane, ok, at, fk, fvv); }
    if (ND > 7u) { emit_dkdv(dk7, dv7, 7u, sg, lane, ok, at, fk, fvv); }
}
