// Second pass of matmul_rows.wgsl: sums the K splits of each output in order (deterministic)
// and applies what the first pass left out,
//   v(r, j) = (sum_z part[z](r, j)) * inv_a[r] * inv_b (+ bias[j])
// with inv_a the row scales of A (quantize_rows.wgsl) and inv_b = sb[1], the weight's scale word
// (cast_scaled.wgsl); both powers of two, so undoing them is exact. part is [splits, m_pad, n];
// only the first m rows are real. Then, by MODE:
//   0: C[r, c_col0 + j] = v(r, j) (+ C[r, c_col0 + j])              one output, any window
//   1: columns [0, n0) to C, [n0, n1) to C1, [n1, n) to C2          q, k and v from one product
//   2: C[r, j] = silu(v(r, j)) * v(r, half + j), j < half = n / 2   SwiGLU of gate and up
// (modes 1 and 2 take no bias, no accumulate and one window). Mode 2's expression is
// swiglu.wgsl's, on the same f32 values, so it writes what the unfused kernels would.
// One invocation per output.

struct Params {
    m: u32, n: u32, m_pad: u32, splits: u32,
    c_rs: u32, c_col0: u32, bias_off: u32, flags: u32,
    n0: u32, n1: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read> inv_a: array<f32>;
@group(0) @binding(3) var<storage, read> sb: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;
@group(0) @binding(6) var<storage, read_write> c1: array<f32>;
@group(0) @binding(7) var<storage, read_write> c2: array<f32>;

const BIAS: u32 = 1u;
const ACCUMULATE: u32 = 2u;

override MODE: u32 = 0u;

// The scaled sum of the splits at row r, column j.
fn value(r: u32, j: u32) -> f32 {
    let plane = p.m_pad * p.n;
    var sum = 0.0;
    for (var z = 0u; z < p.splits; z += 1u) {
        sum += part[z * plane + r * p.n + j];
    }
    return sum * (inv_a[r] * sb[1]);
}

fn sigmoid(g: f32) -> f32 {
    return 1.0 / (1.0 + exp(-g));
}

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let i = (wg.x + wg.y * nwg.x) * 256u + t;
    if (MODE == 2u) {
        let half = p.n / 2u;
        if (i >= p.m * half) {
            return;
        }
        let r = i / half;
        let j = i % half;
        let g = value(r, j);
        c[i] = g * sigmoid(g) * value(r, half + j);
        return;
    }
    if (i >= p.m * p.n) {
        return;
    }
    let r = i / p.n;
    let j = i % p.n;
    var v = value(r, j);
    if (MODE == 1u) {
        if (j < p.n0) {
            c[r * p.n0 + j] = v;
        } else if (j < p.n1) {
            c1[r * (p.n1 - p.n0) + j - p.n0] = v;
        } else {
            c2[r * (p.n - p.n1) + j - p.n1] = v;
        }
        return;
    }
    if ((p.flags & BIAS) != 0u) {
        v += bias[p.bias_off + j];
    }
    let idx = r * p.c_rs + p.c_col0 + j;
    if ((p.flags & ACCUMULATE) != 0u) {
        v += c[idx];
    }
    c[idx] = v;
}
