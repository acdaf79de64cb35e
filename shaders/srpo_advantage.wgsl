// Group advantages for SRPO/GRPO-style RL (SPEC.md section 4), the zero-variance group filter and
// the reward metrics, in one dispatch of one workgroup.
//
// G groups of n responses each, groups contiguous in rewards[G*n]. One invocation owns a group at
// a time (n is small: the responses of one prompt), so the statistics are plain loops; the
// workgroup then reduces the per-group metric sums. G is at most a few thousand per step, so a
// single workgroup is never the bottleneck next to the transformer's passes.
//
// estimator: 0 bonus-calibrated (z-score + pass@k bonus), 1 GRPO z-score, 2 Dr.GRPO (r - mean),
// 3 RLOO (r_i - mean of the others = n/(n-1) * (r_i - mean)).
// A group whose rewards have variance <= 1e-12 gets zero advantages from every estimator (not
// NaN or 1e-6-scaled rounding noise); the bonus is added afterwards (it depends only on n, c, k).
// flags: 1 = exact[] holds hit flags (else a hit is reward == 1), 2 = score[] is the filter score
// (else the rewards are).
// metrics: [zero-variance group fraction, reward mean, reward max, exact-hit rate].

struct Params {
    groups: u32, n: u32, estimator: u32, k: u32,
    flags: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rewards: array<f32>;
@group(0) @binding(2) var<storage, read> exact: array<u32>;
@group(0) @binding(3) var<storage, read> score: array<f32>;
@group(0) @binding(4) var<storage, read_write> adv: array<f32>;
@group(0) @binding(5) var<storage, read_write> keep: array<u32>;
@group(0) @binding(6) var<storage, read_write> metrics: array<f32>;

const WG: u32 = 64u;
const ZERO_VAR: f32 = 1e-12;
const STD_EPS: f32 = 1e-6;

var<workgroup> red_zero: array<f32, WG>;
var<workgroup> red_sum: array<f32, WG>;
var<workgroup> red_max: array<f32, WG>;
var<workgroup> red_hits: array<f32, WG>;

fn value(i: u32, use_score: bool) -> f32 {
    if (use_score) {
        return score[i];
    }
    return rewards[i];
}

// Mean (shifted by the first value, so equal values give their exact mean) and unbiased variance.
fn mean_var(base: u32, use_score: bool) -> vec2<f32> {
    let x0 = value(base, use_score);
    var s = 0.0;
    for (var i = 0u; i < p.n; i++) {
        s += value(base + i, use_score) - x0;
    }
    let mean = x0 + s / f32(p.n);
    var v = 0.0;
    for (var i = 0u; i < p.n; i++) {
        let d = value(base + i, use_score) - mean;
        v += d * d;
    }
    return vec2<f32>(mean, v / f32(p.n - 1u));
}

fn is_hit(i: u32) -> bool {
    if ((p.flags & 1u) != 0u) {
        return exact[i] != 0u;
    }
    return rewards[i] == 1.0;
}

// C(a, t) / C(b, t) = prod_{i<t} (a - i) / (b - i) for integers 0 <= a <= b, t <= b: every
// factor lies in [0, 1], so nothing overflows and the integer operands are exact in f32.
fn binom_ratio(a: u32, b: u32, t: u32) -> f32 {
    var r = 1.0;
    for (var i = 0u; i < t; i++) {
        if (i >= a) {
            return 0.0;
        }
        r *= f32(a - i) / f32(b - i);
    }
    return r;
}

// (bonus of a hit, bonus of a miss) for c hits among n with pass@k.
fn pass_at_k_bonus(c: u32) -> vec2<f32> {
    let n = p.n;
    let k = p.k;
    if (c == 0u || n - c < k) {
        return vec2<f32>(0.0, 0.0);
    }
    let rho = 1.0 - binom_ratio(n - c, n, k);
    let sigma = sqrt(rho * (1.0 - rho));
    let miss_term = binom_ratio(n - c - 1u, n - 1u, k - 1u);
    return vec2<f32>((1.0 - rho) / (sigma + STD_EPS), (1.0 - rho - miss_term) / (sigma + STD_EPS));
}

@compute @workgroup_size(64, 1, 1)
fn group_advantages(@builtin(local_invocation_index) lid: u32) {
    let n = p.n;
    var zero = 0.0;
    var rsum = 0.0;
    var rmax = -3.4028235e38;
    var hits = 0.0;
    for (var g = lid; g < p.groups; g += WG) {
        let base = g * n;
        let mv = mean_var(base, false);
        var kept = 1u;
        if ((p.flags & 2u) != 0u) {
            kept = select(0u, 1u, mean_var(base, true).y > ZERO_VAR);
        } else {
            kept = select(0u, 1u, mv.y > ZERO_VAR);
        }
        keep[g] = kept;
        zero += f32(1u - kept);
        var c = 0u;
        for (var i = 0u; i < n; i++) {
            let r = rewards[base + i];
            rsum += r;
            rmax = max(rmax, r);
            c += select(0u, 1u, is_hit(base + i));
        }
        hits += f32(c);
        var bonus = vec2<f32>(0.0, 0.0);
        if (p.estimator == 0u) {
            bonus = pass_at_k_bonus(c);
        }
        let degenerate = mv.y <= ZERO_VAR;
        let inv_std = 1.0 / (sqrt(mv.y) + STD_EPS);
        for (var i = 0u; i < n; i++) {
            let d = rewards[base + i] - mv.x;
            var a = 0.0;
            if (!degenerate) {
                switch p.estimator {
                    case 0u, 1u: { a = d * inv_std; }
                    case 2u: { a = d; }
                    default: { a = d * f32(n) / f32(n - 1u); }
                }
            }
            if (p.estimator == 0u) {
                a += select(bonus.y, bonus.x, is_hit(base + i));
            }
            adv[base + i] = a;
        }
    }
    red_zero[lid] = zero;
    red_sum[lid] = rsum;
    red_max[lid] = rmax;
    red_hits[lid] = hits;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red_zero[lid] += red_zero[lid + s];
            red_sum[lid] += red_sum[lid + s];
            red_max[lid] = max(red_max[lid], red_max[lid + s]);
            red_hits[lid] += red_hits[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let samples = f32(p.groups * n);
        metrics[0] = red_zero[0] / f32(p.groups);
        metrics[1] = red_sum[0] / samples;
        metrics[2] = red_max[0];
        metrics[3] = red_hits[0] / samples;
    }
}
