// Second pass of a split-K matmul: sums the `splits` partial products of each output and
// applies what the first pass left out:
//   C[b](r, j) = alpha * sum_s part[b * splits + s](r, j) (+ bias[j]) (+ C[b](r, j)).
//
// part is [batch * splits, rows, n] contiguous (what the split kernels wrote); C is addressed
// like the matmul kernels' C (offset, batch stride, row stride: a window of a larger matrix).
// One invocation per output; the slices are summed in order, so results are deterministic.

struct Params {
    rows: u32, n: u32, batch: u32, splits: u32,
    c_off: u32, c_bs: u32, c_rs: u32, flags: u32,
    bias_off: u32, alpha: f32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const BIAS: u32 = 1u;
const ACCUMULATE: u32 = 2u;

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let i = (wg.x + wg.y * nwg.x) * 256u + t;
    let plane = p.rows * p.n;
    if (i >= p.batch * plane) {
        return;
    }
    let bi = i / plane;
    let e = i % plane;
    let r = e / p.n;
    let j = e % p.n;
    var sum = 0.0;
    let first = bi * p.splits * plane + e;
    for (var s = 0u; s < p.splits; s++) {
        sum += part[first + s * plane];
    }
    var v = p.alpha * sum;
    if ((p.flags & BIAS) != 0u) {
        v += bias[p.bias_off + j];
    }
    let idx = p.c_off + bi * p.c_bs + r * p.c_rs + j;
    if ((p.flags & ACCUMULATE) != 0u) {
        v += c[idx];
    }
    c[idx] = v;
}
