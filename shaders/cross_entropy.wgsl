// Fused cross-entropy over vocabulary-sized rows, with temperature: z = logits * inv_tau.
// Per row r with target t = targets[row0 + r] (IGNORE = 0xFFFFFFFF):
//   lse = log sum_v exp z_v,  logprob = z_t - lse,  loss = -logprob,
//   entropy = -sum_v p_v log p_v = lse - E_p[z],  p = softmax(z).
// Gradient, written in place over the logits (saves an [R, V] buffer):
//   dlogits_v = coef[r] * inv_tau * (p_v - [v == t]),
// i.e. coef[r] times the gradient of loss_r with respect to the logits. Ignored rows: logprob,
// loss and gradient are 0 (lse and entropy are still reported). A target >= V that is not IGNORE
// is a caller bug: logprob, loss and the row's gradient become NaN so it cannot pass unnoticed.
//
// `forward`: one workgroup per row; each invocation keeps an online triple over its strided
// elements (max m, s = sum exp(z - m), t = sum exp(z - m) (z - m)), merged by a shared-memory
// tree. With flags & 1 it then overwrites the row with the gradient (one extra read + write).
// `backward`: the gradient alone from a stored lse (for RL, whose coef depends on the forward).

struct Params {
    rows: u32, v: u32, base: u32, flags: u32, // flags: 1 = forward also writes the gradient
    inv_tau: f32, row0: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

const WG: u32 = 256u;
const NEG_BIG: f32 = -3.4028235e38;
const IGNORE: u32 = 0xFFFFFFFFu;

var<workgroup> sh_m: array<f32, WG>;
var<workgroup> sh_s: array<f32, WG>;
var<workgroup> sh_t: array<f32, WG>;

fn row_index(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + wg.y * nwg.x;
}

fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

// d loss_r / d z_v scaled by coef * inv_tau; `prob` = p_v.
fn grad_of(prob: f32, v: u32, tgt: u32, c: f32) -> f32 {
    if (tgt == IGNORE) {
        return 0.0;
    }
    if (tgt >= p.v) {
        return nan();
    }
    return c * p.inv_tau * (prob - select(0.0, 1.0, v == tgt));
}

@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> coef: array<f32>;
@group(0) @binding(4) var<storage, read_write> out_lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> out_logprob: array<f32>;
@group(0) @binding(6) var<storage, read_write> out_loss: array<f32>;
@group(0) @binding(7) var<storage, read_write> out_entropy: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = row_index(wg, nwg);
    if (row >= p.rows) {
        return;
    }
    let start = p.base + row * p.v;
    let tgt = targets[p.row0 + row];
    var m = NEG_BIG;
    var s = 0.0;
    var t = 0.0;
    for (var i = lid; i < p.v; i += WG) {
        let z = logits[start + i] * p.inv_tau;
        if (z > m) {
            let d = z - m;
            let a = exp(-d);
            t = a * (t - d * s);
            s = s * a + 1.0;
            m = z;
        } else {
            let e = exp(z - m);
            s += e;
            // e == 0 for z = -inf (a masked logit), where e * (z - m) would be NaN.
            t += select(0.0, e * (z - m), e > 0.0);
        }
    }
    // Read the tgt's logit before any invocation overwrites the row with the gradient.
    var zt = 0.0;
    if (lid == 0u && tgt < p.v) {
        zt = logits[start + tgt] * p.inv_tau;
    }
    sh_m[lid] = m;
    sh_s[lid] = s;
    sh_t[lid] = t;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w >>= 1u) {
        if (lid < w) {
            let m1 = sh_m[lid];
            let m2 = sh_m[lid + w];
            let mm = max(m1, m2);
            let a1 = exp(m1 - mm);
            let a2 = exp(m2 - mm);
            let s1 = sh_s[lid];
            let s2 = sh_s[lid + w];
            sh_t[lid] = a1 * (sh_t[lid] + (m1 - mm) * s1) + a2 * (sh_t[lid + w] + (m2 - mm) * s2);
            sh_s[lid] = s1 * a1 + s2 * a2;
            sh_m[lid] = mm;
        }
        workgroupBarrier();
    }
    let mx = sh_m[0];
    let sum = sh_s[0];
    let lse = mx + log(sum);
    if (lid == 0u) {
        let r = p.row0 + row;
        var lp = 0.0;
        if (tgt != IGNORE) {
            lp = select(nan(), zt - lse, tgt < p.v);
        }
        out_lse[r] = lse;
        out_logprob[r] = lp;
        out_loss[r] = -lp;
        out_entropy[r] = log(sum) - sh_t[0] / sum;
    }
    if ((p.flags & 1u) != 0u) {
        let c = coef[p.row0 + row];
        for (var i = lid; i < p.v; i += WG) {
            let prob = exp(logits[start + i] * p.inv_tau - lse);
            logits[start + i] = grad_of(prob, i, tgt, c);
        }
    }
}

// Bindings of `backward`: logits, targets, coef, lse (bound read_write by the layout, only read).
@compute @workgroup_size(256, 1, 1)
fn backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = row_index(wg, nwg);
    if (row >= p.rows) {
        return;
    }
    let start = p.base + row * p.v;
    let r = p.row0 + row;
    let tgt = targets[r];
    let c = coef[r];
    let lse = out_lse[r];
    for (var i = lid; i < p.v; i += WG) {
        let prob = exp(logits[start + i] * p.inv_tau - lse);
        logits[start + i] = grad_of(prob, i, tgt, c);
    }
}
