// Second pass of matmul_rows.wgsl: sums the K splits of each output in order (deterministic)
// and undoes the scales (v(r, j) = rows_split_sum.wgsl's split_sum, compiled before this file);
// only the first m rows are real. Then, by MODE:
//   0: C[r, c_col0 + j] = v(r, j) (+ C[r, c_col0 + j])              one output, any window
//   1: columns [0, n0) to C, [n0, n1) to C1, [n1, n) to C2          q, k and v from one product
//   2: C[r, j] = silu(v(r, j)) * v(r, half + j), j < half = n / 2   SwiGLU of gate and up
// (modes 1 and 2 take no bias, no accumulate and one window). Mode 2's expression is
// swiglu.wgsl's, on the same f32 values, so it writes what the unfused kernels would.
// One invocation per output. matmul_rows_reduce_cast.wgsl is modes 0 and 2 fused with the cast
// of the output rows for the next product.

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
        c[i] = silu_times(split_sum(r, j), split_sum(r, half + j));
        return;
    }
    if (i >= p.m * p.n) {
        return;
    }
    let r = i / p.n;
    let j = i % p.n;
    var v = split_sum(r, j);
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
