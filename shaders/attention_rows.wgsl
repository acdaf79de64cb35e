// Causal grouped-query attention, row-per-invocation variant for CPU adapters (Mesa lavapipe):
// the same three operations, layouts, masking rules and Params block as attention.wgsl (read
// its header first), with another split of the work.
//
// Why another split. llvmpipe runs 8 invocations as one SIMD vector; a storage load costs
// about the same whether its address is uniform across the vector or not (a vec4 load about
// 30 cycles either way: bounds are checked per component), workgroup memory read inside a
// loop is no cheaper, and a barrier is a coroutine switch. What
// pays is reuse of every loaded value from registers. So here an invocation owns ROWS query
// rows (forward, dq) or ROWS key rows (dk/dv) of one head with their online-softmax state, and
// the other side (keys and values, or queries and output gradients) streams in blocks of 8
// rows, each loaded value feeding ROWS multiply-adds. The owned rows stay in their storage
// buffers and the outputs accumulate in place (out, dq, dk, dv are written only by the lane
// that owns the row): private arrays of 256 floats indexed at run time were no faster to read
// and cost Mesa about 7 s of compile time for the forward alone (0.7 s as written here).
// No workgroup memory, no barriers, no atomics; every sum runs in a fixed order, so results
// are deterministic.
//
// Lanes. Forward and dq: a workgroup serves one (sequence, kv head) and a range of query rows;
// lane t takes query head g*G + t%G (G = Hq/Hkv) and row slot t/G, so the query heads of a GQA
// group share every key load. With VW = max(1, 8/G) slots per vector of 8 lanes, slot s holds
// rows base + (s/VW)*VW*ROWS + r*VW + s%VW, r < ROWS: the rows of one vector are contiguous,
// which keeps the causal bound (the vector runs until its last row is done) tight. dk/dv: lane
// t holds key rows the same way with G = 1 and loops over the group's query heads.
//
// Loop bounds and reads. Key blocks start at 0 (forward, dq) and run while any of the lane's
// rows needs them; query blocks (dk/dv) start at the top row and run down to the lane's
// lowest key row. Rows past the block's last needed row are read at a clamped, in-range index
// (row jmax, a real key of this workgroup) and masked out of the softmax, so no read leaves
// the data the workgroup owns; a lane's rows past the end read a clamped row and write
// nothing. Keys and values at positions up to each query's own position must be finite
// (masked ones included): a masked weight is exactly 0, but 0 * NaN is not.
//
// Sizes: any D; ROWS <= MAX_ROWS; Hq/Hkv <= 64 (the launch code checks it).

struct Params {
    batch: u32,
    rows: u32,     // query rows per sequence: T (training) or S (decode)
    hq: u32,
    hkv: u32,
    d: u32,
    scale: f32,
    flags: u32,    // 1 = key mask bound, 2 = per-sequence start positions bound, 4 = write lse
    mask_bs: u32,  // mask entries per sequence (T or Tmax)
    k_bs: u32,
    k_hs: u32,
    k_rs: u32,
    keys: u32,     // key positions per sequence (T or Tmax)
    n_wg: u32,     // workgroups that do work (the grid may be rounded up)
    n_stat: u32,   // B*Hq*T: offset of delta behind lse in the backward's stats buffer
    n_blk: u32,    // workgroups per (sequence, kv head)
    _p0: u32,
}

// Rows per invocation: 4 for training; the launch code sets 1 for decode (one query row per
// sequence and head would leave the other three idle).
// The launch code (model/src/kernels/attention.rs) mirrors ROWS, WG and SIMD in its grid.
override ROWS: u32 = 4u;
const MAX_ROWS: u32 = 4u;
const WG: u32 = 64u;
const SIMD: u32 = 8u; // llvmpipe's vector width: a tuning choice, not a correctness assumption
const NEG: f32 = -3.0e38;
const HAS_MASK: u32 = 1u;
const HAS_START: u32 = 2u;
const WRITE_LSE: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read> mask: array<u32>;

// Mask entries of four positions of sequence b (clamped to jmax, which is in range).
fn mask4(b: u32, j: vec4<u32>, jmax: u32) -> vec4<bool> {
    if ((p.flags & HAS_MASK) == 0u) {
        return vec4<bool>(true);
    }
    let mb = b * p.mask_bs;
    let m = vec4<u32>(mask[mb + min(j.x, jmax)], mask[mb + min(j.y, jmax)],
                      mask[mb + min(j.z, jmax)], mask[mb + min(j.w, jmax)]);
    return m != vec4<u32>(0u);
}

fn visible(b: u32, j: u32) -> bool {
    return (p.flags & HAS_MASK) == 0u || mask[b * p.mask_bs + j] != 0u;
}

// Where a workgroup of the forward or dq pass works: sequence b, kv head g, query head h of
// this lane, the lane's first row and the row stride between its ROWS rows, and the
// workgroup's row range [row0, row_end).
struct QueryLane {
    b: u32,
    g: u32,
    h: u32,
    first: u32,
    stride: u32,
    row0: u32,
    row_end: u32,
    live: bool,
}

fn query_lane(w: u32, t: u32) -> QueryLane {
    let group = p.hq / p.hkv;
    let vw = max(1u, SIMD / group);
    let slots = (WG / group) / vw * vw;
    var l: QueryLane;
    let bg = w / p.n_blk;
    l.g = bg % p.hkv;
    l.b = bg / p.hkv;
    l.row0 = (w % p.n_blk) * slots * ROWS;
    l.row_end = min(l.row0 + slots * ROWS, p.rows);
    let slot = t / group;
    l.h = l.g * group + t % group;
    l.first = l.row0 + (slot / vw) * vw * ROWS + slot % vw;
    l.stride = vw;
    l.live = slot < slots && l.first < p.rows;
    return l;
}

// Four consecutive positions from j0.
fn quad(j0: u32) -> vec4<u32> {
    return vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u);
}

// ---------------------------------------------------------------- forward / decode
@group(0) @binding(1) var<storage, read> fw_q: array<f32>;
@group(0) @binding(2) var<storage, read> fw_k: array<f32>;
@group(0) @binding(3) var<storage, read> fw_v: array<f32>;
@group(0) @binding(5) var<storage, read> fw_start: array<u32>;
@group(0) @binding(6) var<storage, read_write> fw_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> fw_lse: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn attn_rows_fwd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let w = wg.x + wg.y * nwg.x;
    if (w >= p.n_wg) {
        return;
    }
    let ln = query_lane(w, t);
    if (!ln.live) {
        return;
    }
    let b = ln.b;
    var start = 0u;
    if ((p.flags & HAS_START) != 0u) {
        start = fw_start[b];
    }
    // The workgroup's last key: every row read below is clamped to it.
    let jmax = min(start + ln.row_end - 1u, p.keys - 1u);
    let kbase = b * p.k_bs + ln.g * p.k_hs;

    var nk: array<u32, MAX_ROWS>;   // keys row r sees: 0..nk[r]
    var live: array<bool, MAX_ROWS>;
    var qb: array<u32, MAX_ROWS>;  // the row's q, and its out row holding the accumulator
    var m: array<f32, MAX_ROWS>;
    var l: array<f32, MAX_ROWS>;
    var nk_lane = 0u;
    for (var r = 0u; r < ROWS; r++) {
        let s = ln.first + r * ln.stride;
        let qpos = start + s;
        live[r] = s < p.rows;
        nk[r] = 0u;
        if (live[r] && qpos < p.keys) {
            if (visible(b, qpos)) {
                nk[r] = qpos + 1u;
            }
        }
        nk_lane = max(nk_lane, nk[r]);
        qb[r] = (b * p.rows + min(s, p.rows - 1u)) * p.hq * p.d + ln.h * p.d;
        m[r] = NEG;
        l[r] = 0.0;
        if (live[r]) {
            for (var dd = 0u; dd < p.d; dd++) {
                fw_out[qb[r] + dd] = 0.0;
            }
        }
    }

    for (var j0 = 0u; j0 < nk_lane; j0 += 8u) {
        var kr: array<u32, 8>;
        for (var u = 0u; u < 8u; u++) {
            kr[u] = kbase + min(j0 + u, jmax) * p.k_rs;
        }
        var sl: array<vec4<f32>, MAX_ROWS>;
        var sh: array<vec4<f32>, MAX_ROWS>;
        for (var dd = 0u; dd < p.d; dd++) {
            let kl = vec4<f32>(fw_k[kr[0] + dd], fw_k[kr[1] + dd], fw_k[kr[2] + dd], fw_k[kr[3] + dd]);
            let kh = vec4<f32>(fw_k[kr[4] + dd], fw_k[kr[5] + dd], fw_k[kr[6] + dd], fw_k[kr[7] + dd]);
            for (var r = 0u; r < ROWS; r++) {
                let qd = fw_q[qb[r] + dd];
                sl[r] += qd * kl;
                sh[r] += qd * kh;
            }
        }
        let jl = quad(j0);
        let jh = quad(j0 + 4u);
        let ml = mask4(b, jl, jmax);
        let mh = mask4(b, jh, jmax);
        var pl: array<vec4<f32>, MAX_ROWS>;
        var ph: array<vec4<f32>, MAX_ROWS>;
        var alpha: array<f32, MAX_ROWS>;
        for (var r = 0u; r < ROWS; r++) {
            let vl = ml & (jl < vec4<u32>(nk[r]));
            let vh = mh & (jh < vec4<u32>(nk[r]));
            let xl = select(vec4<f32>(NEG), sl[r] * p.scale, vl);
            let xh = select(vec4<f32>(NEG), sh[r] * p.scale, vh);
            let x4 = max(xl, xh);
            let bm = max(m[r], max(max(x4.x, x4.y), max(x4.z, x4.w)));
            // m == bm == NEG (nothing visible yet) gives alpha 1 on a still-zero state.
            alpha[r] = exp(m[r] - bm);
            pl[r] = select(vec4<f32>(0.0), exp(xl - vec4<f32>(bm)), vl);
            ph[r] = select(vec4<f32>(0.0), exp(xh - vec4<f32>(bm)), vh);
            l[r] = l[r] * alpha[r] + dot(pl[r], vec4<f32>(1.0)) + dot(ph[r], vec4<f32>(1.0));
            m[r] = bm;
        }
        for (var dd = 0u; dd < p.d; dd++) {
            let vl = vec4<f32>(fw_v[kr[0] + dd], fw_v[kr[1] + dd], fw_v[kr[2] + dd], fw_v[kr[3] + dd]);
            let vh = vec4<f32>(fw_v[kr[4] + dd], fw_v[kr[5] + dd], fw_v[kr[6] + dd], fw_v[kr[7] + dd]);
            for (var r = 0u; r < ROWS; r++) {
                if (live[r]) {
                    let i = qb[r] + dd;
                    fw_out[i] = fw_out[i] * alpha[r] + dot(pl[r], vl) + dot(ph[r], vh);
                }
            }
        }
    }

    for (var r = 0u; r < ROWS; r++) {
        if (live[r]) {
            let inv = select(0.0, 1.0 / l[r], l[r] > 0.0);
            for (var dd = 0u; dd < p.d; dd++) {
                fw_out[qb[r] + dd] *= inv;
            }
            if ((p.flags & WRITE_LSE) != 0u) {
                let s = ln.first + r * ln.stride;
                fw_lse[(b * p.hq + ln.h) * p.rows + s] = select(0.0, m[r] + log(l[r]), l[r] > 0.0);
            }
        }
    }
}

// ---------------------------------------------------------------- backward
// Training layout only (rows = keys = T, no start). stats = [lse ; delta] as in
// attention.wgsl: bwd_dq writes delta = rowsum(dout * out), bwd_dkdv (recorded after) reads it.
@group(0) @binding(1) var<storage, read> bw_q: array<f32>;
@group(0) @binding(2) var<storage, read> bw_k: array<f32>;
@group(0) @binding(3) var<storage, read> bw_v: array<f32>;
@group(0) @binding(5) var<storage, read> bw_dout: array<f32>;

@group(0) @binding(6) var<storage, read> dq_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> dq_stats: array<f32>;
@group(0) @binding(8) var<storage, read_write> dq_dq: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn attn_rows_bwd_dq(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let w = wg.x + wg.y * nwg.x;
    if (w >= p.n_wg) {
        return;
    }
    let ln = query_lane(w, t);
    if (!ln.live) {
        return;
    }
    let b = ln.b;
    let jmax = ln.row_end - 1u;
    let kbase = b * p.k_bs + ln.g * p.k_hs;

    var nk: array<u32, MAX_ROWS>;
    var live: array<bool, MAX_ROWS>;
    var qb: array<u32, MAX_ROWS>;  // the row's q and dout, and its dq row (accumulator)
    var lse: array<f32, MAX_ROWS>;
    var delta: array<f32, MAX_ROWS>;
    var nk_lane = 0u;
    for (var r = 0u; r < ROWS; r++) {
        let s = ln.first + r * ln.stride;
        let sc = min(s, p.rows - 1u);
        live[r] = s < p.rows;
        nk[r] = select(0u, s + 1u, live[r] && visible(b, sc));
        nk_lane = max(nk_lane, nk[r]);
        qb[r] = (b * p.rows + sc) * p.hq * p.d + ln.h * p.d;
        var dl = 0.0;
        for (var dd = 0u; dd < p.d; dd++) {
            dl += bw_dout[qb[r] + dd] * dq_out[qb[r] + dd];
        }
        delta[r] = dl;
        let stat = (b * p.hq + ln.h) * p.rows + sc;
        lse[r] = dq_stats[stat];
        if (live[r]) {
            dq_stats[p.n_stat + stat] = dl;
            for (var dd = 0u; dd < p.d; dd++) {
                dq_dq[qb[r] + dd] = 0.0;
            }
        }
    }

    for (var j0 = 0u; j0 < nk_lane; j0 += 8u) {
        var kr: array<u32, 8>;
        for (var u = 0u; u < 8u; u++) {
            kr[u] = kbase + min(j0 + u, jmax) * p.k_rs;
        }
        var sl: array<vec4<f32>, MAX_ROWS>;
        var sh: array<vec4<f32>, MAX_ROWS>;
        var gl: array<vec4<f32>, MAX_ROWS>;   // dout . v
        var gh: array<vec4<f32>, MAX_ROWS>;
        for (var dd = 0u; dd < p.d; dd++) {
            let kl = vec4<f32>(bw_k[kr[0] + dd], bw_k[kr[1] + dd], bw_k[kr[2] + dd], bw_k[kr[3] + dd]);
            let kh = vec4<f32>(bw_k[kr[4] + dd], bw_k[kr[5] + dd], bw_k[kr[6] + dd], bw_k[kr[7] + dd]);
            let vl = vec4<f32>(bw_v[kr[0] + dd], bw_v[kr[1] + dd], bw_v[kr[2] + dd], bw_v[kr[3] + dd]);
            let vh = vec4<f32>(bw_v[kr[4] + dd], bw_v[kr[5] + dd], bw_v[kr[6] + dd], bw_v[kr[7] + dd]);
            for (var r = 0u; r < ROWS; r++) {
                let qd = bw_q[qb[r] + dd];
                let gd = bw_dout[qb[r] + dd];
                sl[r] += qd * kl;
                sh[r] += qd * kh;
                gl[r] += gd * vl;
                gh[r] += gd * vh;
            }
        }
        let jl = quad(j0);
        let jh = quad(j0 + 4u);
        let ml = mask4(b, jl, jmax);
        let mh = mask4(b, jh, jmax);
        // dS * scale: dQ = scale * dS K.
        var dsl: array<vec4<f32>, MAX_ROWS>;
        var dsh: array<vec4<f32>, MAX_ROWS>;
        for (var r = 0u; r < ROWS; r++) {
            let vl = ml & (jl < vec4<u32>(nk[r]));
            let vh = mh & (jh < vec4<u32>(nk[r]));
            let pl = select(vec4<f32>(0.0), exp(sl[r] * p.scale - vec4<f32>(lse[r])), vl);
            let ph = select(vec4<f32>(0.0), exp(sh[r] * p.scale - vec4<f32>(lse[r])), vh);
            dsl[r] = pl * (gl[r] - vec4<f32>(delta[r])) * p.scale;
            dsh[r] = ph * (gh[r] - vec4<f32>(delta[r])) * p.scale;
        }
        for (var dd = 0u; dd < p.d; dd++) {
            let kl = vec4<f32>(bw_k[kr[0] + dd], bw_k[kr[1] + dd], bw_k[kr[2] + dd], bw_k[kr[3] + dd]);
            let kh = vec4<f32>(bw_k[kr[4] + dd], bw_k[kr[5] + dd], bw_k[kr[6] + dd], bw_k[kr[7] + dd]);
            for (var r = 0u; r < ROWS; r++) {
                if (live[r]) {
                    let i = qb[r] + dd;
                    dq_dq[i] += dot(dsl[r], kl) + dot(dsh[r], kh);
                }
            }
        }
    }
}

@group(0) @binding(6) var<storage, read> kv_stats: array<f32>;
@group(0) @binding(7) var<storage, read_write> kv_dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> kv_dv: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn attn_rows_bwd_dkdv(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let w = wg.x + wg.y * nwg.x;
    if (w >= p.n_wg) {
        return;
    }
    let bg = w / p.n_blk;
    let g = bg % p.hkv;
    let b = bg / p.hkv;
    let first = (w % p.n_blk) * WG * ROWS + (t / SIMD) * SIMD * ROWS + t % SIMD;
    if (first >= p.rows) {
        return;
    }
    let group = p.hq / p.hkv;
    let kbase = b * p.k_bs + g * p.k_hs;

    // Key row r of this lane is seen by queries lo[r]..T-1; lo[r] = T when it is padding or
    // past the end, so nothing sees it.
    var lo: array<u32, MAX_ROWS>;
    var live: array<bool, MAX_ROWS>;
    var kr: array<u32, MAX_ROWS>;  // the row's k and v, and its dk and dv rows (accumulators)
    var lo_lane = p.rows;
    for (var r = 0u; r < ROWS; r++) {
        let j = first + r * SIMD;
        let jc = min(j, p.rows - 1u);
        live[r] = j < p.rows;
        lo[r] = select(p.rows, j, live[r] && visible(b, jc));
        lo_lane = min(lo_lane, lo[r]);
        kr[r] = kbase + jc * p.k_rs;
        if (live[r]) {
            for (var dd = 0u; dd < p.d; dd++) {
                kv_dk[kr[r] + dd] = 0.0;
                kv_dv[kr[r] + dd] = 0.0;
            }
        }
    }
    let imax = p.rows - 1u;
    let qrs = p.hq * p.d;

    for (var hh = 0u; hh < group; hh++) {
        let h = g * group + hh;
        let stat0 = (b * p.hq + h) * p.rows;
        let qb0 = b * p.rows * qrs + h * p.d;
        // Query blocks from the top: rows i0-1 down to i0-8 (negative ones are masked).
        for (var i0 = p.rows; i0 > lo_lane; i0 -= min(i0, 8u)) {
            let il = vec4<i32>(i32(i0) - 1) - vec4<i32>(0, 1, 2, 3);
            let ih = il - vec4<i32>(4);
            let cl = vec4<u32>(max(il, vec4<i32>(0)));
            let ch = vec4<u32>(max(ih, vec4<i32>(0)));
            var qr: array<u32, 8>;
            for (var u = 0u; u < 4u; u++) {
                qr[u] = qb0 + cl[u] * qrs;
                qr[u + 4u] = qb0 + ch[u] * qrs;
            }
            var sl: array<vec4<f32>, MAX_ROWS>;
            var sh: array<vec4<f32>, MAX_ROWS>;
            var gl: array<vec4<f32>, MAX_ROWS>;   // dout . v
            var gh: array<vec4<f32>, MAX_ROWS>;
            for (var dd = 0u; dd < p.d; dd++) {
                let ql = vec4<f32>(bw_q[qr[0] + dd], bw_q[qr[1] + dd], bw_q[qr[2] + dd], bw_q[qr[3] + dd]);
                let qh = vec4<f32>(bw_q[qr[4] + dd], bw_q[qr[5] + dd], bw_q[qr[6] + dd], bw_q[qr[7] + dd]);
                let ol = vec4<f32>(bw_dout[qr[0] + dd], bw_dout[qr[1] + dd], bw_dout[qr[2] + dd], bw_dout[qr[3] + dd]);
                let oh = vec4<f32>(bw_dout[qr[4] + dd], bw_dout[qr[5] + dd], bw_dout[qr[6] + dd], bw_dout[qr[7] + dd]);
                for (var r = 0u; r < ROWS; r++) {
                    let kd = bw_k[kr[r] + dd];
                    let vd = bw_v[kr[r] + dd];
                    sl[r] += kd * ql;
                    sh[r] += kd * qh;
                    gl[r] += vd * ol;
                    gh[r] += vd * oh;
                }
            }
            let lse_l = vec4<f32>(kv_stats[stat0 + cl.x], kv_stats[stat0 + cl.y],
                                  kv_stats[stat0 + cl.z], kv_stats[stat0 + cl.w]);
            let lse_h = vec4<f32>(kv_stats[stat0 + ch.x], kv_stats[stat0 + ch.y],
                                  kv_stats[stat0 + ch.z], kv_stats[stat0 + ch.w]);
            let ds0 = p.n_stat + stat0;
            let del_l = vec4<f32>(kv_stats[ds0 + cl.x], kv_stats[ds0 + cl.y],
                                  kv_stats[ds0 + cl.z], kv_stats[ds0 + cl.w]);
            let del_h = vec4<f32>(kv_stats[ds0 + ch.x], kv_stats[ds0 + ch.y],
                                  kv_stats[ds0 + ch.z], kv_stats[ds0 + ch.w]);
            // A padded query row sees nothing (its lse is 0, not a normaliser).
            let ml = mask4(b, cl, imax);
            let mh = mask4(b, ch, imax);
            var pl: array<vec4<f32>, MAX_ROWS>;
            var ph: array<vec4<f32>, MAX_ROWS>;
            // dS * scale: dK = scale * dS^T Q.
            var dsl: array<vec4<f32>, MAX_ROWS>;
            var dsh: array<vec4<f32>, MAX_ROWS>;
            for (var r = 0u; r < ROWS; r++) {
                let lor = vec4<i32>(i32(lo[r]));
                let vl = ml & (il >= lor);
                let vh = mh & (ih >= lor);
                pl[r] = select(vec4<f32>(0.0), exp(sl[r] * p.scale - lse_l), vl);
                ph[r] = select(vec4<f32>(0.0), exp(sh[r] * p.scale - lse_h), vh);
                dsl[r] = pl[r] * (gl[r] - del_l) * p.scale;
                dsh[r] = ph[r] * (gh[r] - del_h) * p.scale;
            }
            for (var dd = 0u; dd < p.d; dd++) {
                let ql = vec4<f32>(bw_q[qr[0] + dd], bw_q[qr[1] + dd], bw_q[qr[2] + dd], bw_q[qr[3] + dd]);
                let qh = vec4<f32>(bw_q[qr[4] + dd], bw_q[qr[5] + dd], bw_q[qr[6] + dd], bw_q[qr[7] + dd]);
                let ol = vec4<f32>(bw_dout[qr[0] + dd], bw_dout[qr[1] + dd], bw_dout[qr[2] + dd], bw_dout[qr[3] + dd]);
                let oh = vec4<f32>(bw_dout[qr[4] + dd], bw_dout[qr[5] + dd], bw_dout[qr[6] + dd], bw_dout[qr[7] + dd]);
                for (var r = 0u; r < ROWS; r++) {
                    if (live[r]) {
                        let i = kr[r] + dd;
                        kv_dv[i] += dot(pl[r], ol) + dot(ph[r], oh);
                        kv_dk[i] += dot(dsl[r], ql) + dot(dsh[r], qh);
                    }
                }
            }
        }
    }
}
