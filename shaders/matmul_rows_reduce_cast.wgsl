// matmul_rows_reduce.wgsl's modes 0 and 2 fused with the per-row cast of their output for the
// next product (row_cast.wgsl), for decode steps where one product feeds another: the o
// projection (residual add, then the MLP's RMSNorm and cast), the gate/up product (SwiGLU, then
// the cast for the down projection) and the down projection (residual add, then the next
// layer's RMSNorm and cast). One dispatch instead of two: on an H100 a decode step's
// dependent dispatches cost ~4-8 us each beyond their work (bench/NOTES.md).
//
// One workgroup per row r (of CAST_WG invocations: 1024 on GPUs, where the passes over a row
// are bound by load latency; 64 workgroups of 256 took 24 us a call on an H100): it sums the row's K splits (rows_split_sum.wgsl, the order the
// unfused reduction uses, so the f32 output is bit for bit the same) and writes
//   MODE 0: C[r, j] = v(r, j) (+ bias[bias_off + j]) (+ C[r, j]),  C [m, n]
//   MODE 2: C[r, j] = silu(v(r, j)) * v(r, n / 2 + j),            C [m, n / 2]
// then, once its writes are visible to the workgroup (storageBarrier), casts that row of C,
// through the RMSNorm with weight norm_w when NORMED, into out [m_pad, k] (f16 pairs) and
// inv [m_pad] exactly as quantize_rows.wgsl's `main` or `norm` would from C. Rows m..m_pad-1
// are padding: zeros, inv 0. inv must not be inv_a (the launch code alternates two buffers).
// Compiled after f16_bits.wgsl, row_norm.wgsl, row_cast.wgsl and rows_split_sum.wgsl.

struct Params {
    m: u32, n: u32, m_pad: u32, splits: u32,
    bias_off: u32, flags: u32, eps: f32, _p: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read> inv_a: array<f32>;
@group(0) @binding(3) var<storage, read> sb: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<u32>;
@group(0) @binding(7) var<storage, read_write> inv: array<f32>;
@group(0) @binding(8) var<storage, read> norm_w: array<f32>;

const BIAS: u32 = 1u;
const ACCUMULATE: u32 = 2u;

override MODE: u32 = 0u;
override NORMED: bool = false;
// row_cast.wgsl's f32 output form; the fused kernel only feeds the tensor cores.
override DEQUANT: bool = false;

fn cast_input(i: u32) -> f32 {
    return c[i];
}

@compute @workgroup_size(CAST_WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = wg.x + wg.y * nwg.x;
    let k = select(p.n, p.n / 2u, MODE == 2u);
    if (r >= p.m_pad || pad_row(r, p.m, k, lid)) {
        return;
    }
    let base = r * k;
    for (var j = lid; j < k; j += CAST_WG) {
        if (MODE == 2u) {
            c[base + j] = silu_times(split_sum(r, j), split_sum(r, k + j));
        } else {
            var v = split_sum(r, j);
            if ((p.flags & BIAS) != 0u) {
                v += bias[p.bias_off + j];
            }
            if ((p.flags & ACCUMULATE) != 0u) {
                v += c[base + j];
            }
            c[base + j] = v;
        }
    }
    storageBarrier();
    var rstd = 1.0;
    if (NORMED) {
        rstd = row_rstd(base, k, p.eps, lid);
    }
    cast_row(r, base, k, rstd, NORMED, lid);
}
