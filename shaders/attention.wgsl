// Causal grouped-query attention: forward (training and KV-cache decode share one kernel) and
// backward (dq, then dk/dv), flash-style: the T x T score matrix never exists in memory.
//
// Layouts. Queries, outputs and their gradients are [B*S, Hq*D] (heads interleaved in the
// feature dimension, as the projections produce them). Keys and values are addressed through
// strides, so one kernel reads both layouts:
//   K(b, g, j, d) = k[b*k_bs + g*k_hs + j*k_rs + d]
//   training  [B*T, Hkv*D]:    k_bs = T*Hkv*D,      k_hs = D,      k_rs = Hkv*D
//   KV cache  [B, Hkv, Tmax, D]: k_bs = Hkv*Tmax*D, k_hs = Tmax*D, k_rs = D
// Query head h reads kv head h / (Hq/Hkv). Query row s of sequence b sits at key position
// qpos = start[b] + s (start = 0 in training) and sees keys j <= qpos whose mask entry is 1.
// A query whose own mask entry is 0 (a padded token), or whose position lies beyond the key
// capacity, sees nothing: its output row is zero, its lse 0, its gradients zero.
// Row statistics (lse, delta) are [B, Hq, S].
//
// Work split: one workgroup of 64 per (query row, query head) in the forward and dq passes, per
// (key row, kv head) in the dk/dv pass. Keys (or queries) go in blocks of 64: each invocation
// scores one member of the block (a dot product over D), the block's weights are shared
// through workgroup memory, then each invocation accumulates its own D/64 output dimensions,
// so loads of V/K/Q/dout rows in that phase are coalesced along D. Two barriers per block;
// no float atomics, so gradients are deterministic.

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
    _p0: u32,
    _p1: u32,
}

const WG: u32 = 64u;
const MAX_D: u32 = 256u;
const DPT: u32 = 4u; // MAX_D / WG output dimensions per invocation
const NEG: f32 = -3.0e38;
const HAS_MASK: u32 = 1u;
const HAS_START: u32 = 2u;
const WRITE_LSE: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> row_a: array<f32, MAX_D>;
var<workgroup> row_b: array<f32, MAX_D>;
var<workgroup> blk_a: array<f32, WG>;
var<workgroup> blk_b: array<f32, WG>;
var<workgroup> count: u32;

fn key_visible(b: u32, j: u32) -> bool {
    return (p.flags & HAS_MASK) == 0u || mask[b * p.mask_bs + j] != 0u;
}

// ---------------------------------------------------------------- forward / decode
@group(0) @binding(1) var<storage, read> fw_q: array<f32>;
@group(0) @binding(2) var<storage, read> fw_k: array<f32>;
@group(0) @binding(3) var<storage, read> fw_v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read> fw_start: array<u32>;
@group(0) @binding(6) var<storage, read_write> fw_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> fw_lse: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn attn_fwd(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let w = wg.x + wg.y * nwg.x;
    if (w >= p.n_wg) {
        return;
    }
    let h = w % p.hq;
    let row = w / p.hq;
    let b = row / p.rows;
    let s = row % p.rows;
    let g = h / (p.hq / p.hkv);
    let qbase = row * p.hq * p.d + h * p.d;
    let kbase = b * p.k_bs + g * p.k_hs;
    if (t == 0u) {
        var start = 0u;
        if ((p.flags & HAS_START) != 0u) {
            start = fw_start[b];
        }
        let qpos = start + s;
        let real = qpos < p.keys && key_visible(b, qpos);
        count = select(0u, qpos + 1u, real);
    }
    for (var c = 0u; c < DPT; c++) {
        let dd = t + c * WG;
        if (dd < p.d) {
            row_a[dd] = fw_q[qbase + dd];
        }
    }
    let nk = workgroupUniformLoad(&count);

    var m = NEG;
    var l = 0.0;
    var acc = array<f32, DPT>(0.0, 0.0, 0.0, 0.0);
    for (var j0 = 0u; j0 < nk; j0 += WG) {
        let j = j0 + t;
        let vis = j < nk && key_visible(b, j);
        var sc = NEG;
        if (vis) {
            let kr = kbase + j * p.k_rs;
            var dot = 0.0;
            for (var dd = 0u; dd < p.d; dd++) {
                dot += row_a[dd] * fw_k[kr + dd];
            }
            sc = dot * p.scale;
        }
        blk_a[t] = sc;
        workgroupBarrier();
        var bm = m;
        for (var u = 0u; u < WG; u++) {
            bm = max(bm, blk_a[u]);
        }
        blk_b[t] = select(0.0, exp(sc - bm), vis);
        workgroupBarrier();
        // m == bm == NEG (nothing visible yet) gives alpha 1 on a still-zero state.
        let alpha = exp(m - bm);
        for (var c = 0u; c < DPT; c++) {
            acc[c] *= alpha;
        }
        var bl = 0.0;
        let cnt = min(WG, nk - j0);
        for (var u = 0u; u < cnt; u++) {
            let pu = blk_b[u];
            if (pu == 0.0) {
                continue;
            }
            bl += pu;
            let vr = kbase + (j0 + u) * p.k_rs;
            for (var c = 0u; c < DPT; c++) {
                let dd = t + c * WG;
                if (dd < p.d) {
                    acc[c] += pu * fw_v[vr + dd];
                }
            }
        }
        l = l * alpha + bl;
        m = bm;
    }

    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var c = 0u; c < DPT; c++) {
        let dd = t + c * WG;
        if (dd < p.d) {
            fw_out[qbase + dd] = acc[c] * inv;
        }
    }
    if (t == 0u && (p.flags & WRITE_LSE) != 0u) {
        fw_lse[(b * p.hq + h) * p.rows + s] = select(0.0, m + log(l), l > 0.0);
    }
}

// ---------------------------------------------------------------- backward
// stats = [lse (B*Hq*T) ; delta (B*Hq*T)], delta = rowsum(dout * out), written by bwd_dq and
// read by bwd_dkdv (recorded after it). Training layout only: rows = keys = T, no start.
// With P = softmax(scale * Q K^T) and dS = P * (dout V^T - delta):
//   dQ = scale * dS K,  dK = scale * dS^T Q,  dV = P^T dout.
@group(0) @binding(1) var<storage, read> bw_q: array<f32>;
@group(0) @binding(2) var<storage, read> bw_k: array<f32>;
@group(0) @binding(3) var<storage, read> bw_v: array<f32>;
@group(0) @binding(5) var<storage, read> bw_dout: array<f32>;

@group(0) @binding(6) var<storage, read> dq_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> dq_stats: array<f32>;
@group(0) @binding(8) var<storage, read_write> dq_dq: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn attn_bwd_dq(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let w = wg.x + wg.y * nwg.x;
    if (w >= p.n_wg) {
        return;
    }
    let h = w % p.hq;
    let row = w / p.hq;
    let b = row / p.rows;
    let i = row % p.rows;
    let g = h / (p.hq / p.hkv);
    let qbase = row * p.hq * p.d + h * p.d;
    let kbase = b * p.k_bs + g * p.k_hs;
    var part = 0.0;
    for (var c = 0u; c < DPT; c++) {
        let dd = t + c * WG;
        if (dd < p.d) {
            row_a[dd] = bw_q[qbase + dd];
            let go = bw_dout[qbase + dd];
            row_b[dd] = go;
            part += go * dq_out[qbase + dd];
        }
    }
    blk_a[t] = part;
    if (t == 0u) {
        count = select(0u, i + 1u, key_visible(b, i));
    }
    workgroupBarrier();
    var delta = 0.0;
    for (var u = 0u; u < WG; u++) {
        delta += blk_a[u];
    }
    let nk = workgroupUniformLoad(&count);
    let stat = (b * p.hq + h) * p.rows + i;
    if (t == 0u) {
        dq_stats[p.n_stat + stat] = delta;
    }
    let lse = dq_stats[stat];

    var acc = array<f32, DPT>(0.0, 0.0, 0.0, 0.0);
    for (var j0 = 0u; j0 < nk; j0 += WG) {
        let j = j0 + t;
        var ds = 0.0;
        if (j < nk && key_visible(b, j)) {
            let kr = kbase + j * p.k_rs;
            var sc = 0.0;
            var dp = 0.0;
            for (var dd = 0u; dd < p.d; dd++) {
                sc += row_a[dd] * bw_k[kr + dd];
                dp += row_b[dd] * bw_v[kr + dd];
            }
            ds = exp(sc * p.scale - lse) * (dp - delta);
        }
        blk_b[t] = ds;
        workgroupBarrier();
        let cnt = min(WG, nk - j0);
        for (var u = 0u; u < cnt; u++) {
            let du = blk_b[u];
            if (du == 0.0) {
                continue;
            }
            let kr = kbase + (j0 + u) * p.k_rs;
            for (var c = 0u; c < DPT; c++) {
                let dd = t + c * WG;
                if (dd < p.d) {
                    acc[c] += du * bw_k[kr + dd];
                }
            }
        }
        workgroupBarrier();
    }
    for (var c = 0u; c < DPT; c++) {
        let dd = t + c * WG;
        if (dd < p.d) {
            dq_dq[qbase + dd] = acc[c] * p.scale;
        }
    }
}

@group(0) @binding(6) var<storage, read> kv_stats: array<f32>;
@group(0) @binding(7) var<storage, read_write> kv_dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> kv_dv: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn attn_bwd_dkdv(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let w = wg.x + wg.y * nwg.x;
    if (w >= p.n_wg) {
        return;
    }
    let g = w % p.hkv;
    let row = w / p.hkv;
    let b = row / p.rows;
    let j = row % p.rows;
    let kr = b * p.k_bs + g * p.k_hs + j * p.k_rs;
    for (var c = 0u; c < DPT; c++) {
        let dd = t + c * WG;
        if (dd < p.d) {
            row_a[dd] = bw_k[kr + dd];
            row_b[dd] = bw_v[kr + dd];
        }
    }
    if (t == 0u) {
        // Queries i in [j, T) see key j; none do when the key is padding.
        count = select(0u, p.rows - j, key_visible(b, j));
    }
    let nq = workgroupUniformLoad(&count);
    let group = p.hq / p.hkv;
    let qrow = p.hq * p.d;

    var acc_k = array<f32, DPT>(0.0, 0.0, 0.0, 0.0);
    var acc_v = array<f32, DPT>(0.0, 0.0, 0.0, 0.0);
    for (var hh = 0u; hh < group; hh++) {
        let h = g * group + hh;
        let stat0 = (b * p.hq + h) * p.rows;
        let qb0 = b * p.rows * qrow + h * p.d;
        for (var i0 = 0u; i0 < nq; i0 += WG) {
            let i = j + i0 + t;
            var pij = 0.0;
            var ds = 0.0;
            if (i0 + t < nq && key_visible(b, i)) {
                let qb = qb0 + i * qrow;
                var sc = 0.0;
                var dp = 0.0;
                for (var dd = 0u; dd < p.d; dd++) {
                    sc += bw_q[qb + dd] * row_a[dd];
                    dp += bw_dout[qb + dd] * row_b[dd];
                }
                pij = exp(sc * p.scale - kv_stats[stat0 + i]);
                ds = pij * (dp - kv_stats[p.n_stat + stat0 + i]);
            }
            blk_a[t] = pij;
            blk_b[t] = ds;
            workgroupBarrier();
            let cnt = min(WG, nq - i0);
            for (var u = 0u; u < cnt; u++) {
                let pu = blk_a[u];
                if (pu == 0.0) {
                    continue;
                }
                let du = blk_b[u];
                let qb = qb0 + (j + i0 + u) * qrow;
                for (var c = 0u; c < DPT; c++) {
                    let dd = t + c * WG;
                    if (dd < p.d) {
                        acc_v[c] += pu * bw_dout[qb + dd];
                        acc_k[c] += du * bw_q[qb + dd];
                    }
                }
            }
            workgroupBarrier();
        }
    }
    for (var c = 0u; c < DPT; c++) {
        let dd = t + c * WG;
        if (dd < p.d) {
            kv_dk[kr + dd] = acc_k[c] * p.scale;
            kv_dv[kr + dd] = acc_v[c];
        }
    }
}
