// Tensor-core matmul for whole 16x16 tiles: f16 A and B, f32 accumulation, f32 C, fragments
// loaded straight from storage (no workgroup staging, no barriers in the K loop).
//   C[b] = alpha * A[b] @ B[b] (+ bias) (+ C[b] when accumulating).
//
// Why: the staged kernel (matmul_coop.wgsl) runs at ~27 TFLOP/s on an H200, no faster than the
// f32 tiled kernel; its scalar f16 stores into workgroup memory and a barrier every 32 of K cap
// it. A kernel in which one subgroup owns a 64x64 block of C and loads 4 A and 4 B fragments
// from storage per 16 of K (the caches serve the reuse between neighbouring workgroups)
// measured ~71 TFLOP/s on the same card (DESIGN.md).
//
// One workgroup = one subgroup of 32 (the launch code checks subgroups of exactly 32) = a 64x64
// block of C as 4x4 accumulator tiles. M, N and K must be multiples of 16 and the operand
// offsets multiples of 16 elements (matmul.rs `coop_direct_fits`): every fragment is then a
// whole tile inside its matrix. Rows or columns of a block past M or N load the last valid
// tile instead (clamped; the result is discarded at the store), so no load leaves the matrix.
// Same Params block (strides included), flags and scale bindings as matmul_coop.wgsl.

// Split K (launch code, for grids too small to fill the GPU): grid z runs over batch x splits;
// z's slice covers k in [(z % splits) * k_split, +k_split) clipped to K, with k_split a multiple
// of 32 so no slab crosses a slice boundary, and its partial sums go to C's batch z (the launch
// code binds a scratch [batch * splits, M, N] and reduces it with matmul_split_reduce.wgsl).
// With splits = 1 and k_split = K this is the plain matmul.

enable f16;
enable wgpu_cooperative_matrix;

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_off: u32, a_bs: u32, a_rs: u32, a_cs: u32,
    b_off: u32, b_bs: u32, b_rs: u32, b_cs: u32,
    c_off: u32, c_bs: u32, c_rs: u32, flags: u32,
    bias_off: u32, alpha: f32, k_split: u32, splits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f16>;
@group(0) @binding(2) var<storage, read> b: array<f16>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read> sa: array<f32>;
@group(0) @binding(6) var<storage, read> sb: array<f32>;

const BIAS: u32 = 1u;
const ACCUMULATE: u32 = 2u;
const TRANS_A: u32 = 4u;  // A stored [K, M]
const TRANS_B: u32 = 8u;  // B stored [N, K]
const SCALED: u32 = 64u;

const BLOCK: u32 = 64u;

var<workgroup> scratch: array<f32, 256>;

// Fragment of A at rows r..r+15, k..k+15.
fn frag_a(base: u32, r: u32, k: u32) -> coop_mat16x16<f16, A> {
    if ((p.flags & TRANS_A) != 0u) {
        // Stored [K, M]: column-major in (m, k).
        let i = base + k * p.a_cs + r;
        let stride = p.a_cs;
        return coopLoad<coop_mat16x16<f16, A>>(&a[i], stride);
    }
    let i = base + r * p.a_rs + k;
    let stride = p.a_rs;
    return coopLoadT<coop_mat16x16<f16, A>>(&a[i], stride);
}

// Fragment of B at k..k+15, columns cc..cc+15.
fn frag_b(base: u32, k: u32, cc: u32) -> coop_mat16x16<f16, B> {
    if ((p.flags & TRANS_B) != 0u) {
        // Stored [N, K]: column-major in (k, n).
        let i = base + cc * p.b_cs + k;
        let stride = p.b_cs;
        return coopLoad<coop_mat16x16<f16, B>>(&b[i], stride);
    }
    let i = base + k * p.b_rs + cc;
    let stride = p.b_rs;
    return coopLoadT<coop_mat16x16<f16, B>>(&b[i], stride);
}

// Writes one accumulator tile at (row, col) of C through the scratch (alpha, bias, accumulate).
fn emit(acc: coop_mat16x16<f32, C>, lane: u32, c_base: u32, row: u32, col: u32, alpha: f32) {
    if (row >= p.m || col >= p.n) {
        return; // uniform across the subgroup: a clamped tile
    }
    // Offset and stride bound with `let`: naga 30 panics on inline ones (DESIGN.md).
    let at = 0u;
    let stride = 16u;
    coopStoreT(acc, &scratch[at], stride);
    workgroupBarrier();
    for (var e = lane; e < 256u; e += 32u) {
        let r = row + e / 16u;
        let cc = col + e % 16u;
        var v = alpha * scratch[at + e];
        if ((p.flags & BIAS) != 0u) {
            v += bias[p.bias_off + cc];
        }
        let idx = c_base + r * p.c_rs + cc;
        if ((p.flags & ACCUMULATE) != 0u) {
            v += c[idx];
        }
        c[idx] = v;
    }
    workgroupBarrier();
}

@compute @workgroup_size(32, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let col0 = wg.x * BLOCK;
    let row0 = wg.y * BLOCK;
    let bi = wg.z / p.splits;
    let k_lo = (wg.z % p.splits) * p.k_split;
    let k_hi = min(p.k, k_lo + p.k_split);
    let a_base = p.a_off + bi * p.a_bs;
    let b_base = p.b_off + bi * p.b_bs;
    // Tile origins, clamped to the last whole tile (M, N are multiples of 16).
    let r0 = min(row0, p.m - 16u);
    let r1 = min(row0 + 16u, p.m - 16u);
    let r2 = min(row0 + 32u, p.m - 16u);
    let r3 = min(row0 + 48u, p.m - 16u);
    let q0 = min(col0, p.n - 16u);
    let q1 = min(col0 + 16u, p.n - 16u);
    let q2 = min(col0 + 32u, p.n - 16u);
    let q3 = min(col0 + 48u, p.n - 16u);

    var c00 = coop_mat16x16<f32, C>();
    var c01 = coop_mat16x16<f32, C>();
    var c02 = coop_mat16x16<f32, C>();
    var c03 = coop_mat16x16<f32, C>();
    var c10 = coop_mat16x16<f32, C>();
    var c11 = coop_mat16x16<f32, C>();
    var c12 = coop_mat16x16<f32, C>();
    var c13 = coop_mat16x16<f32, C>();
    var c20 = coop_mat16x16<f32, C>();
    var c21 = coop_mat16x16<f32, C>();
    var c22 = coop_mat16x16<f32, C>();
    var c23 = coop_mat16x16<f32, C>();
    var c30 = coop_mat16x16<f32, C>();
    var c31 = coop_mat16x16<f32, C>();
    var c32 = coop_mat16x16<f32, C>();
    var c33 = coop_mat16x16<f32, C>();

    for (var k = k_lo; k < k_hi; k += 16u) {
        let a0 = frag_a(a_base, r0, k);
        let a1 = frag_a(a_base, r1, k);
        let a2 = frag_a(a_base, r2, k);
        let a3 = frag_a(a_base, r3, k);
        let b0 = frag_b(b_base, k, q0);
        let b1 = frag_b(b_base, k, q1);
        let b2 = frag_b(b_base, k, q2);
        let b3 = frag_b(b_base, k, q3);
        c00 = coopMultiplyAdd(a0, b0, c00);
        c01 = coopMultiplyAdd(a0, b1, c01);
        c02 = coopMultiplyAdd(a0, b2, c02);
        c03 = coopMultiplyAdd(a0, b3, c03);
        c10 = coopMultiplyAdd(a1, b0, c10);
        c11 = coopMultiplyAdd(a1, b1, c11);
        c12 = coopMultiplyAdd(a1, b2, c12);
        c13 = coopMultiplyAdd(a1, b3, c13);
        c20 = coopMultiplyAdd(a2, b0, c20);
        c21 = coopMultiplyAdd(a2, b1, c21);
        c22 = coopMultiplyAdd(a2, b2, c22);
        c23 = coopMultiplyAdd(a2, b3, c23);
        c30 = coopMultiplyAdd(a3, b0, c30);
        c31 = coopMultiplyAdd(a3, b1, c31);
        c32 = coopMultiplyAdd(a3, b2, c32);
        c33 = coopMultiplyAdd(a3, b3, c33);
    }

    let c_base = p.c_off + wg.z * p.c_bs;
    var alpha = p.alpha;
    if ((p.flags & SCALED) != 0u) {
        alpha *= sa[1] * sb[1];
    }
    // Unclamped origins decide which tiles are real.
    let o0 = row0;
    let o1 = row0 + 16u;
    let o2 = row0 + 32u;
    let o3 = row0 + 48u;
    let p0 = col0;
    let p1 = col0 + 16u;
    let p2 = col0 + 32u;
    let p3 = col0 + 48u;
    emit(c00, lane, c_base, o0, p0, alpha);
    emit(c01, lane, c_base, o0, p1, alpha);
    emit(c02, lane, c_base, o0, p2, alpha);
    emit(c03, lane, c_base, o0, p3, alpha);
    emit(c10, lane, c_base, o1, p0, alpha);
    emit(c11, lane, c_base, o1, p1, alpha);
    emit(c12, lane, c_base, o1, p2, alpha);
    emit(c13, lane, c_base, o1, p3, alpha);
    emit(c20, lane, c_base, o2, p0, alpha);
    emit(c21, lane, c_base, o2, p1, alpha);
    emit(c22, lane, c_base, o2, p2, alpha);
    emit(c23, lane, c_base, o2, p3, alpha);
    emit(c30, lane, c_base, o3, p0, alpha);
    emit(c31, lane, c_base, o3, p1, alpha);
    emit(c32, lane, c_base, o3, p2, alpha);
    emit(c33, lane, c_base, o3, p3, alpha);
}
