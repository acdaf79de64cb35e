// Second pass of matmul_rows.wgsl: sums the K splits of each output in order (deterministic)
// and applies what the first pass left out:
//   C[r, c_col0 + j] = (sum_z part[z](r, j)) * inv_a[r] * inv_b (+ bias[j]) (+ C[r, c_col0 + j])
// with inv_a the row scales of A (quantize_rows.wgsl) and inv_b = sb[1], the weight's scale word
// (cast_scaled.wgsl); both powers of two, so undoing them is exact. part is [splits, m_pad, n];
// only the first m rows are real. One invocation per output.

struct Params {
    m: u32, n: u32, m_pad: u32, splits: u32,
    c_rs: u32, c_col0: u32, bias_off: u32, flags: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read> inv_a: array<f32>;
@group(0) @binding(3) var<storage, read> sb: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;

const BIAS: u32 = 1u;
const ACCUMULATE: u32 = 2u;

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let i = (wg.x + wg.y * nwg.x) * 256u + t;
    if (i >= p.m * p.n) {
        return;
    }
    let r = i / p.n;
    let j = i % p.n;
    let plane = p.m_pad * p.n;
    var sum = 0.0;
    for (var z = 0u; z < p.splits; z += 1u) {
        sum += part[z * plane + i];
    }
    var v = sum * (inv_a[r] * sb[1]);
    if ((p.flags & BIAS) != 0u) {
        v += bias[p.bias_off + j];
    }
    let idx = r * p.c_rs + p.c_col0 + j;
    if ((p.flags & ACCUMULATE) != 0u) {
        v += c[idx];
    }
    c[idx] = v;
}
