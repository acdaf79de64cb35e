// Shared-memory, register-tiled f32 matmul for discrete GPUs:
//   C[b] = alpha * A[b] @ B[b] (+ bias) (+ C[b] when accumulating).
//
// Same operand addressing and Params block as matmul.wgsl (strides cover NN, NT = B stored
// [N, K], TN = A stored [K, M], batch and broadcast weights, column windows of C). A workgroup
// of 256 invocations owns a 128x128 block of C; each invocation owns 8x8 outputs in registers
// (rows ty*4+{0..3} and 64+ty*4+{0..3}, columns likewise with tx), so one k step costs four
// 16-byte shared-memory reads for 64 FMAs. K advances in slabs of BK = 8: the next slab is
// fetched from global memory into registers while the current one is multiplied out of shared
// memory, and the two shared-memory buffers alternate, so each slab costs one barrier. BK is 8
// rather than 16 so that the two buffers take 16 KiB: an H100's Vulkan driver gives the
// workgroups of an SM 48 KiB in all, and at 32 KiB only one workgroup ran an SM.
//
// Operands are bound as vec4 arrays (buffers are allocated in whole 16-byte words): when the
// stored rows are contiguous and 4-aligned (flag bits VEC_A / VEC_B, decided by the launch
// code) a slab element group is one 16-byte load; otherwise four bounds-checked scalar reads.
// Out-of-range elements (edges of any M, N, K) load as zero and their outputs are not stored.

// Split K (launch code, for grids too small to fill the GPU): grid z runs over batch x splits;
// z's slice covers k in [(z % splits) * k_split, +k_split) clipped to K, with k_split a multiple
// of 32 so no slab crosses a slice boundary, and its partial sums go to C's batch z (the launch
// code binds a scratch [batch * splits, M, N] and reduces it with matmul_split_reduce.wgsl).
// With splits = 1 and k_split = K this is the plain matmul.

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_off: u32, a_bs: u32, a_rs: u32, a_cs: u32,
    b_off: u32, b_bs: u32, b_rs: u32, b_cs: u32,
    c_off: u32, c_bs: u32, c_rs: u32, flags: u32,
    bias_off: u32, alpha: f32, k_split: u32, splits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const BIAS: u32 = 1u;
const ACCUMULATE: u32 = 2u;
const TRANS_A: u32 = 4u;  // A stored [K, M]: contiguous along m
const TRANS_B: u32 = 8u;  // B stored [N, K]: contiguous along k
const VEC_A: u32 = 16u;   // A's contiguous runs are 4-aligned: 16-byte loads
const VEC_B: u32 = 32u;

const TILE: u32 = 128u;
const BK: u32 = 8u;
const ROW4: u32 = 32u;             // vec4 per shared-memory row of TILE floats
const SLAB4: u32 = BK * ROW4;      // vec4 per slab buffer
const LOADS: u32 = BK / 8u;        // vec4 per invocation per operand per slab
const KQ: u32 = BK / 4u;           // vec4 per slab row of a k-contiguous operand

// Slabs stored k-major: as_[buf*SLAB4 + k*ROW4 + m/4] holds A(m..m+3, k).
var<workgroup> as_: array<vec4<f32>, 2u * SLAB4>;
var<workgroup> bs_: array<vec4<f32>, 2u * SLAB4>;

fn a_scalar(i: u32) -> f32 {
    return a4[i >> 2u][i & 3u];
}
fn b_scalar(i: u32) -> f32 {
    return b4[i >> 2u][i & 3u];
}

// Four stored-contiguous elements of A starting at (outer, inner) of its storage, where inner is
// the contiguous index: (m, k..k+3) for NN, (k, m..m+3) for TN. Zero outside the matrix.
fn load_a(base: u32, outer: u32, inner: u32, outer_len: u32, inner_len: u32, stride: u32) -> vec4<f32> {
    if (outer >= outer_len || inner >= inner_len) {
        return vec4<f32>(0.0);
    }
    let i = base + outer * stride + inner;
    if ((p.flags & VEC_A) != 0u) {
        return a4[i >> 2u];
    }
    var v = vec4<f32>(0.0);
    v.x = a_scalar(i);
    if (inner + 1u < inner_len) { v.y = a_scalar(i + 1u); }
    if (inner + 2u < inner_len) { v.z = a_scalar(i + 2u); }
    if (inner + 3u < inner_len) { v.w = a_scalar(i + 3u); }
    return v;
}

fn load_b(base: u32, outer: u32, inner: u32, outer_len: u32, inner_len: u32, stride: u32) -> vec4<f32> {
    if (outer >= outer_len || inner >= inner_len) {
        return vec4<f32>(0.0);
    }
    let i = base + outer * stride + inner;
    if ((p.flags & VEC_B) != 0u) {
        return b4[i >> 2u];
    }
    var v = vec4<f32>(0.0);
    v.x = b_scalar(i);
    if (inner + 1u < inner_len) { v.y = b_scalar(i + 1u); }
    if (inner + 2u < inner_len) { v.z = b_scalar(i + 2u); }
    if (inner + 3u < inner_len) { v.w = b_scalar(i + 3u); }
    return v;
}

// Each invocation moves LOADS vec4 of A and LOADS of B per slab. Index q in [0, 32 BK) names
// one vec4 of the 128 x BK slab: along k (stored contiguous in k) q -> (q/KQ, 4*(q%KQ)); along
// m or n (contiguous in m/n) q -> (q/32, 4*(q%32)).
struct Staged {
    a0: vec4<f32>, a1: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, // a1, b1 when LOADS = 2
}

fn fetch(t: u32, row0: u32, col0: u32, k0: u32, a_base: u32, b_base: u32) -> Staged {
    var s: Staged;
    let ta = (p.flags & TRANS_A) != 0u;
    let tb = (p.flags & TRANS_B) != 0u;
    for (var i = 0u; i < LOADS; i++) {
        let q = t + i * 256u;
        var va: vec4<f32>;
        if (ta) {
            // A stored [K, M]: outer k, inner m.
            va = load_a(a_base, k0 + q / 32u, row0 + 4u * (q % 32u), p.k, p.m, p.a_cs);
        } else {
            va = load_a(a_base, row0 + q / KQ, k0 + 4u * (q % KQ), p.m, p.k, p.a_rs);
        }
        var vb: vec4<f32>;
        if (tb) {
            // B stored [N, K]: outer n, inner k.
            vb = load_b(b_base, col0 + q / KQ, k0 + 4u * (q % KQ), p.n, p.k, p.b_cs);
        } else {
            vb = load_b(b_base, k0 + q / 32u, col0 + 4u * (q % 32u), p.k, p.n, p.b_rs);
        }
        if (i == 0u) { s.a0 = va; s.b0 = vb; } else { s.a1 = va; s.b1 = vb; }
    }
    return s;
}

// Writes one invocation's staged vec4 into slab buffer `buf` in k-major layout.
fn put(t: u32, buf: u32, s: Staged) {
    let ta = (p.flags & TRANS_A) != 0u;
    let tb = (p.flags & TRANS_B) != 0u;
    let off = buf * SLAB4;
    for (var i = 0u; i < LOADS; i++) {
        let q = t + i * 256u;
        var va = s.a0;
        var vb = s.b0;
        if (i == 1u) { va = s.a1; vb = s.b1; }
        if (ta) {
            as_[off + (q / 32u) * ROW4 + q % 32u] = va;
        } else {
            // Four k rows of one m column.
            let m = q / KQ;
            let k = 4u * (q % KQ);
            let base = off + k * ROW4 + m / 4u;
            let lane = m % 4u;
            as_[base][lane] = va.x;
            as_[base + ROW4][lane] = va.y;
            as_[base + 2u * ROW4][lane] = va.z;
            as_[base + 3u * ROW4][lane] = va.w;
        }
        if (tb) {
            let n = q / KQ;
            let k = 4u * (q % KQ);
            let base = off + k * ROW4 + n / 4u;
            let lane = n % 4u;
            bs_[base][lane] = vb.x;
            bs_[base + ROW4][lane] = vb.y;
            bs_[base + 2u * ROW4][lane] = vb.z;
            bs_[base + 3u * ROW4][lane] = vb.w;
        } else {
            bs_[off + (q / 32u) * ROW4 + q % 32u] = vb;
        }
    }
}

// Stores outputs (row, col..col+3) with alpha, bias and accumulation, skipping those outside C.
fn store4(c_base: u32, row: u32, col: u32, v4: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let cj = col + j;
        if (cj >= p.n) {
            return;
        }
        var v = p.alpha * v4[j];
        if ((p.flags & BIAS) != 0u) {
            v += bias[p.bias_off + cj];
        }
        let idx = c_base + row * p.c_rs + cj;
        if ((p.flags & ACCUMULATE) != 0u) {
            v += c[idx];
        }
        c[idx] = v;
    }
}

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wg: vec3<u32>,
) {
    let col0 = wg.x * TILE;
    let row0 = wg.y * TILE;
    let bi = wg.z / p.splits;
    let k_lo = (wg.z % p.splits) * p.k_split;
    let k_len = min(p.k - k_lo, p.k_split);
    let tx = t % 16u;
    let ty = t / 16u;
    let a_base = p.a_off + bi * p.a_bs;
    let b_base = p.b_off + bi * p.b_bs;

    // acc[2*r + h]: output row r of this invocation's 8 (r < 4: ty*4+r, else 64+ty*4+r-4),
    // columns tx*4..+3 (h = 0) or 64+tx*4..+3 (h = 1).
    var acc: array<vec4<f32>, 16>; // zero-initialised

    let slabs = (k_len + BK - 1u) / BK;
    var staged = fetch(t, row0, col0, k_lo, a_base, b_base);
    put(t, 0u, staged);
    workgroupBarrier();
    for (var s = 0u; s < slabs; s++) {
        let cur = (s & 1u) * SLAB4;
        if (s + 1u < slabs) {
            staged = fetch(t, row0, col0, k_lo + (s + 1u) * BK, a_base, b_base);
        }
        for (var kk = 0u; kk < BK; kk++) {
            let r = cur + kk * ROW4;
            let a0 = as_[r + ty];
            let a1 = as_[r + 16u + ty];
            let b0 = bs_[r + tx];
            let b1 = bs_[r + 16u + tx];
            acc[0] += a0.x * b0;
            acc[1] += a0.x * b1;
            acc[2] += a0.y * b0;
            acc[3] += a0.y * b1;
            acc[4] += a0.z * b0;
            acc[5] += a0.z * b1;
            acc[6] += a0.w * b0;
            acc[7] += a0.w * b1;
            acc[8] += a1.x * b0;
            acc[9] += a1.x * b1;
            acc[10] += a1.y * b0;
            acc[11] += a1.y * b1;
            acc[12] += a1.z * b0;
            acc[13] += a1.z * b1;
            acc[14] += a1.w * b0;
            acc[15] += a1.w * b1;
        }
        if (s + 1u < slabs) {
            // The other buffer was last read in iteration s-1, which every invocation finished
            // before the barrier that ended it.
            put(t, 1u - (s & 1u), staged);
        }
        workgroupBarrier();
    }

    // Constant indices only, so the accumulators stay in registers.
    let c_base = p.c_off + wg.z * p.c_bs;
    let r0 = row0 + ty * 4u;
    let r1 = row0 + 64u + ty * 4u;
    let c0 = col0 + tx * 4u;
    let c1 = col0 + 64u + tx * 4u;
    store4(c_base, r0, c0, acc[0]);
    store4(c_base, r0, c1, acc[1]);
    store4(c_base, r0 + 1u, c0, acc[2]);
    store4(c_base, r0 + 1u, c1, acc[3]);
    store4(c_base, r0 + 2u, c0, acc[4]);
    store4(c_base, r0 + 2u, c1, acc[5]);
    store4(c_base, r0 + 3u, c0, acc[6]);
    store4(c_base, r0 + 3u, c1, acc[7]);
    store4(c_base, r1, c0, acc[8]);
    store4(c_base, r1, c1, acc[9]);
    store4(c_base, r1 + 1u, c0, acc[10]);
    store4(c_base, r1 + 1u, c1, acc[11]);
    store4(c_base, r1 + 2u, c0, acc[12]);
    store4(c_base, r1 + 2u, c1, acc[13]);
    store4(c_base, r1 + 3u, c0, acc[14]);
    store4(c_base, r1 + 3u, c1, acc[15]);
}
