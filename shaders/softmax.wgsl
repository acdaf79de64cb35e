// Softmax / log-softmax over rows of length V (vocabulary-sized: 150k+), temperature-scaled:
// z = x * inv_tau, y = exp(z - lse) or z - lse, lse = log sum exp z.
//
// One workgroup per row (WG invocations). Each invocation walks the row with stride WG keeping an online
// (running max m, sum s = sum exp(z - m)) pair, so the row is read once for the statistics and
// once for the output; the pairs are merged by a shared-memory tree (fixed order: deterministic).
// Rows come in windows of one binding; row r of the window starts at base + r * v.

struct Params {
    rows: u32, v: u32, base: u32, flags: u32, // flags: 1 = log-softmax
    inv_tau: f32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// Invocations per row: 1024 on GPUs that allow it (softmax.rs; at 256 a 64-row step over
// 153k entries was latency-bound, 559 us on an H100), else 256.
override WG: u32 = 256u;
const NEG_BIG: f32 = -3.4028235e38;

var<workgroup> sh_m: array<f32, WG>;
var<workgroup> sh_s: array<f32, WG>;

// One value z into an invocation's running (max m, sum exp(z - m)).
fn online_add(z: f32, m: ptr<function, f32>, s: ptr<function, f32>) {
    if (z > *m) {
        *s = *s * exp(*m - z) + 1.0;
        *m = z;
    } else {
        *s += exp(z - *m);
    }
}

@compute @workgroup_size(WG, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let start = p.base + row * p.v;
    var m = NEG_BIG;
    var s = 0.0;
    // Four loads in flight at a time (one per invocation left each pass latency-bound), taken in
    // the order i = lid, lid + WG, ... as before.
    var i = lid;
    for (; i + 3u * WG < p.v; i += 4u * WG) {
        let z0 = x[start + i] * p.inv_tau;
        let z1 = x[start + i + WG] * p.inv_tau;
        let z2 = x[start + i + 2u * WG] * p.inv_tau;
        let z3 = x[start + i + 3u * WG] * p.inv_tau;
        online_add(z0, &m, &s);
        online_add(z1, &m, &s);
        online_add(z2, &m, &s);
        online_add(z3, &m, &s);
    }
    for (; i < p.v; i += WG) {
        online_add(x[start + i] * p.inv_tau, &m, &s);
    }
    sh_m[lid] = m;
    sh_s[lid] = s;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w >>= 1u) {
        if (lid < w) {
            let m1 = sh_m[lid];
            let m2 = sh_m[lid + w];
            let mm = max(m1, m2);
            sh_s[lid] = sh_s[lid] * exp(m1 - mm) + sh_s[lid + w] * exp(m2 - mm);
            sh_m[lid] = mm;
        }
        workgroupBarrier();
    }
    let mx = sh_m[0];
    let sum = sh_s[0];
    let log_s = log(sum);
    let inv_s = 1.0 / sum;
    let as_log = (p.flags & 1u) != 0u;
    i = lid;
    for (; i + 3u * WG < p.v; i += 4u * WG) {
        let d0 = x[start + i] * p.inv_tau - mx;
        let d1 = x[start + i + WG] * p.inv_tau - mx;
        let d2 = x[start + i + 2u * WG] * p.inv_tau - mx;
        let d3 = x[start + i + 3u * WG] * p.inv_tau - mx;
        y[start + i] = select(exp(d0) * inv_s, d0 - log_s, as_log);
        y[start + i + WG] = select(exp(d1) * inv_s, d1 - log_s, as_log);
        y[start + i + 2u * WG] = select(exp(d2) * inv_s, d2 - log_s, as_log);
        y[start + i + 3u * WG] = select(exp(d3) * inv_s, d3 - log_s, as_log);
    }
    for (; i < p.v; i += WG) {
        let d = x[start + i] * p.inv_tau - mx;
        y[start + i] = select(exp(d) * inv_s, d - log_s, as_log);
    }
}
