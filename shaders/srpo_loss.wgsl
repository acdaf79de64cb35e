// Token-level SRPO/PPO policy loss over a packed batch of response tokens, its gradient with
// respect to each token's new log-prob, and the step's loss metrics. Three entry points recorded
// back to back (SPEC.md section 4; formulas in model/src/kernels/srpo/reference.rs):
//   seq_stats   one workgroup: unmasked-token count per sequence, batch totals
//   token_loss  one invocation per token: loss terms, gradient, per-workgroup partial sums
//   finalize    one workgroup: sums the partials into the loss and the metrics
// Sequence s owns tokens [offsets[s], offsets[s+1]); offsets[0] = 0, offsets[S] = Ntok.
// scratch layout (f32): [0] unmasked tokens M, [1] sequences with any unmasked token S',
// [2] longest response (unmasked tokens), [3] unused, then M_s for s < S at GLOBALS + s, then
// NSTAT partial sums per token_loss workgroup at GLOBALS + S + wg * NSTAT.

struct Params {
    n_tok: u32, n_seq: u32, n_wg: u32, flags: u32, // flags: 1 ref, 2 per-sequence adv, 4 entropy
    agg: u32, kl_est: u32, _p0: u32, _p1: u32,     // agg 0 token-mean, 1 seq-mean-token-mean, 2 seq-mean-token-sum
    eps_low: f32, eps_high: f32, dual_clip: f32, kl_coef: f32,
    kl_clamp: f32, log_ratio_clamp: f32, scale: f32, _p2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> new_lp: array<f32>;
@group(0) @binding(2) var<storage, read> old_lp: array<f32>;
@group(0) @binding(3) var<storage, read> ref_lp: array<f32>;
@group(0) @binding(4) var<storage, read> adv: array<f32>;
@group(0) @binding(5) var<storage, read> mask: array<u32>;
@group(0) @binding(6) var<storage, read> offsets: array<u32>;
@group(0) @binding(7) var<storage, read> entropy: array<f32>;
@group(0) @binding(8) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(9) var<storage, read_write> grad: array<f32>;
@group(0) @binding(10) var<storage, read_write> loss: array<f32>;
@group(0) @binding(11) var<storage, read_write> metrics: array<f32>;

const WG: u32 = 256u;
const GLOBALS: u32 = 4u;
// Partial sums: 0 pg loss (aggregation-weighted), 1 kl loss (weighted), 2 clipped low,
// 3 clipped high, 4 dual-clipped, 5 approx KL(old || new), 6 entropy, 7 unmasked tokens.
const NSTAT: u32 = 8u;

var<workgroup> red: array<f32, 2048>; // NSTAT * WG

// Tree-sums red[j * WG + lid] over lid for every stat j; the totals land at red[j * WG].
fn reduce_stats(lid: u32) {
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            for (var j = 0u; j < NSTAT; j++) {
                red[j * WG + lid] += red[j * WG + lid + s];
            }
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256, 1, 1)
fn seq_stats(@builtin(local_invocation_index) lid: u32) {
    var tokens = 0.0;
    var nonempty = 0.0;
    var longest = 0.0;
    for (var s = lid; s < p.n_seq; s += WG) {
        var m = 0u;
        for (var t = offsets[s]; t < offsets[s + 1u]; t++) {
            m += select(0u, 1u, mask[t] != 0u);
        }
        scratch[GLOBALS + s] = f32(m);
        tokens += f32(m);
        nonempty += select(0.0, 1.0, m > 0u);
        longest = max(longest, f32(m));
    }
    red[lid] = tokens;
    red[WG + lid] = nonempty;
    red[2u * WG + lid] = longest;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
            red[WG + lid] += red[WG + lid + s];
            red[2u * WG + lid] = max(red[2u * WG + lid], red[2u * WG + lid + s]);
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        scratch[0] = red[0];
        scratch[1] = red[WG];
        scratch[2] = red[2u * WG];
        scratch[3] = 0.0;
    }
}

// The sequence owning token t: the last s with offsets[s] <= t.
fn seq_of(t: u32) -> u32 {
    var lo = 0u;
    var hi = p.n_seq; // invariant: offsets[lo] <= t < offsets[hi]
    while (hi - lo > 1u) {
        let mid = (lo + hi) / 2u;
        if (offsets[mid] <= t) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// d/dx clamp(x, lo, hi) as autograd gives it: 1 inside [lo, hi], 0 outside.
fn clamp_grad(x: f32, lim: f32) -> f32 {
    return select(0.0, 1.0, abs(x) <= lim);
}

@compute @workgroup_size(256, 1, 1)
fn token_loss(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let wgi = wg.x + wg.y * nwg.x;
    if (wgi >= p.n_wg) {
        return; // padding workgroups of a 2-D grid (workgroup-uniform, before any barrier)
    }
    let t = wgi * WG + lid;
    for (var j = 0u; j < NSTAT; j++) {
        red[j * WG + lid] = 0.0;
    }
    if (t < p.n_tok) {
        var g = 0.0;
        if (mask[t] != 0u) {
            let s = seq_of(t);
            var a = 0.0;
            if ((p.flags & 2u) != 0u) {
                a = adv[s];
            } else {
                a = adv[t];
            }
            var w = 1.0 / max(scratch[0], 1.0);
            if (p.agg == 1u) {
                w = 1.0 / (scratch[1] * scratch[GLOBALS + s]);
            } else if (p.agg == 2u) {
                w = 1.0 / scratch[1];
            }

            // Clipped surrogate with dual clip; dpg = d pg / d new.
            let raw = new_lp[t] - old_lp[t];
            let lr = clamp(raw, -p.log_ratio_clamp, p.log_ratio_clamp);
            let ratio = exp(lr);
            let unclipped = -a * ratio;
            let clipped = -a * clamp(ratio, 1.0 - p.eps_low, 1.0 + p.eps_high);
            var pg = unclipped;
            var dpg = -a * ratio * clamp_grad(raw, p.log_ratio_clamp);
            if (clipped > unclipped) {
                pg = clipped;
                dpg = 0.0;
            }
            var dual = false;
            if (a < 0.0 && pg > -a * p.dual_clip) {
                pg = -a * p.dual_clip;
                dpg = 0.0;
                dual = true;
            }

            // KL(new || ref) estimate, clamped, and its derivative.
            var kl = 0.0;
            var dkl = 0.0;
            if ((p.flags & 1u) != 0u) {
                let d = new_lp[t] - ref_lp[t];
                switch p.kl_est {
                    case 1u: { kl = d; dkl = 1.0; }
                    case 2u: { kl = 0.5 * d * d; dkl = d; }
                    default: {
                        let x = clamp(-d, -p.log_ratio_clamp, p.log_ratio_clamp);
                        kl = exp(x) - x - 1.0;
                        dkl = (1.0 - exp(x)) * clamp_grad(-d, p.log_ratio_clamp);
                    }
                }
                dkl *= clamp_grad(kl, p.kl_clamp);
                kl = clamp(kl, -p.kl_clamp, p.kl_clamp);
            }
            g = p.scale * w * (dpg + p.kl_coef * dkl);

            red[lid] = w * pg;
            red[WG + lid] = w * kl;
            red[2u * WG + lid] = select(0.0, 1.0, a < 0.0 && ratio < 1.0 - p.eps_low);
            red[3u * WG + lid] = select(0.0, 1.0, a > 0.0 && ratio > 1.0 + p.eps_high);
            red[4u * WG + lid] = select(0.0, 1.0, dual);
            red[5u * WG + lid] = ratio - 1.0 - lr;
            if ((p.flags & 4u) != 0u) {
                red[6u * WG + lid] = entropy[t];
            }
            red[7u * WG + lid] = 1.0;
        }
        grad[t] = g;
    }
    reduce_stats(lid);
    if (lid == 0u) {
        let base = GLOBALS + p.n_seq + wgi * NSTAT;
        for (var j = 0u; j < NSTAT; j++) {
            scratch[base + j] = red[j * WG];
        }
    }
}

@compute @workgroup_size(256, 1, 1)
fn finalize(@builtin(local_invocation_index) lid: u32) {
    var acc: array<f32, 8>;
    for (var j = 0u; j < NSTAT; j++) {
        acc[j] = 0.0;
    }
    let base = GLOBALS + p.n_seq;
    for (var w = lid; w < p.n_wg; w += WG) {
        for (var j = 0u; j < NSTAT; j++) {
            acc[j] += scratch[base + w * NSTAT + j];
        }
    }
    for (var j = 0u; j < NSTAT; j++) {
        red[j * WG + lid] = acc[j];
    }
    reduce_stats(lid);
    if (lid == 0u) {
        let pg = red[0];
        let kl = red[WG];
        let tokens = red[7u * WG];
        let per_tok = 1.0 / max(tokens, 1.0);
        loss[0] = p.scale * (pg + p.kl_coef * kl);
        metrics[0] = pg;
        metrics[1] = kl;
        metrics[2] = red[2u * WG] * per_tok;
        metrics[3] = red[3u * WG] * per_tok;
        metrics[4] = red[4u * WG] * per_tok;
        metrics[5] = red[5u * WG] * per_tok;
        metrics[6] = red[6u * WG] * per_tok;
        metrics[7] = scratch[0] / max(f32(p.n_seq), 1.0);
        metrics[8] = scratch[2];
        metrics[9] = tokens;
        metrics[10] = scratch[1];
    }
}
