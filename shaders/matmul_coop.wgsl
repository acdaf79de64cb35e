// Tensor-core matmul through cooperative matrices: f16 A and B, f32 accumulation, f32 C.
//   C[b] = alpha * A[b] @ B[b] (+ bias) (+ C[b] when accumulating).
//
// Same operand addressing and Params block as matmul.wgsl, in f16 elements for A and B. Needs
// shader-f16, cooperative matrices with 16x16x16 f16 x f16 -> f32, and subgroups of exactly 32
// invocations (the launch code checks): the 256 invocations are 8 subgroups, each owning a
// 32x64 block (2x4 tiles of 16x16) of the workgroup's 128x128 block of C.
//
// Slabs of BK = 32 along K are staged through shared memory with bounds checks (zero outside
// the matrices), so any M, N, K and layout works: a slab keeps its operand's stored layout and
// the fragment load picks row- or column-major accordingly. Two slab buffers alternate and the
// next slab is fetched into registers while the current one is multiplied (one barrier a
// slab). Results leave through a per-subgroup 16x16 f32 scratch so the epilogue (alpha, bias,
// accumulate, edges) is plain per-element code.

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
@group(0) @binding(1) var<storage, read> a4: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
// Per-operand scale words of cast_scaled.wgsl ([max |x| bits, 1/s]); read only with SCALED.
@group(0) @binding(5) var<storage, read> sa: array<f32>;
@group(0) @binding(6) var<storage, read> sb: array<f32>;

const BIAS: u32 = 1u;
const ACCUMULATE: u32 = 2u;
const TRANS_A: u32 = 4u;  // A stored [K, M]
const TRANS_B: u32 = 8u;  // B stored [N, K]
const VEC_A: u32 = 16u;   // A's contiguous runs are 4-aligned: 8-byte loads
const VEC_B: u32 = 32u;
const SCALED: u32 = 64u;  // alpha *= sa[1] * sb[1] (undoes the operands' power-of-two scales)

const TILE: u32 = 128u;
const BK: u32 = 32u;
// Padded row lengths (multiples of 8 halves keep fragment rows 16-byte aligned):
const KP: u32 = 40u;   // slab stored [TILE][BK] (A as [M, K], B as [N, K])
const TP: u32 = 136u;  // slab stored [BK][TILE] (A as [K, M], B as [K, N])
const SLAB: u32 = 5120u; // max(TILE * KP, BK * TP) halves per buffer

var<workgroup> as_: array<f16, 10240>;
var<workgroup> bs_: array<f16, 10240>;
var<workgroup> scratch: array<f32, 2048>;

fn a_scalar(i: u32) -> f16 {
    return a4[i >> 2u][i & 3u];
}
fn b_scalar(i: u32) -> f16 {
    return b4[i >> 2u][i & 3u];
}

// Four stored-contiguous elements at (outer, inner..inner+3) of the operand's storage.
fn load_a(base: u32, outer: u32, inner: u32, outer_len: u32, inner_len: u32, stride: u32) -> vec4<f16> {
    if (outer >= outer_len || inner >= inner_len) {
        return vec4<f16>(0.0h);
    }
    let i = base + outer * stride + inner;
    if ((p.flags & VEC_A) != 0u) {
        return a4[i >> 2u];
    }
    var v = vec4<f16>(0.0h);
    v.x = a_scalar(i);
    if (inner + 1u < inner_len) { v.y = a_scalar(i + 1u); }
    if (inner + 2u < inner_len) { v.z = a_scalar(i + 2u); }
    if (inner + 3u < inner_len) { v.w = a_scalar(i + 3u); }
    return v;
}

fn load_b(base: u32, outer: u32, inner: u32, outer_len: u32, inner_len: u32, stride: u32) -> vec4<f16> {
    if (outer >= outer_len || inner >= inner_len) {
        return vec4<f16>(0.0h);
    }
    let i = base + outer * stride + inner;
    if ((p.flags & VEC_B) != 0u) {
        return b4[i >> 2u];
    }
    var v = vec4<f16>(0.0h);
    v.x = b_scalar(i);
    if (inner + 1u < inner_len) { v.y = b_scalar(i + 1u); }
    if (inner + 2u < inner_len) { v.z = b_scalar(i + 2u); }
    if (inner + 3u < inner_len) { v.w = b_scalar(i + 3u); }
    return v;
}

// A slab is 1024 vec4 of halves; invocation t moves q = t + 256 i, i < 4. Stored contiguous
// along k (A as [M, K], B as [N, K]): q -> (outer q/8, inner 4*(q%8)) into [TILE][KP];
// contiguous along m or n: q -> (outer q/32, inner 4*(q%32)) into [BK][TP].
struct Staged {
    a: array<vec4<f16>, 4>,
    b: array<vec4<f16>, 4>,
}

fn fetch(t: u32, row0: u32, col0: u32, k0: u32, a_base: u32, b_base: u32) -> Staged {
    var s: Staged;
    let ta = (p.flags & TRANS_A) != 0u;
    let tb = (p.flags & TRANS_B) != 0u;
    for (var i = 0u; i < 4u; i++) {
        let q = t + i * 256u;
        if (ta) {
            s.a[i] = load_a(a_base, k0 + q / 32u, row0 + 4u * (q % 32u), p.k, p.m, p.a_cs);
        } else {
            s.a[i] = load_a(a_base, row0 + q / 8u, k0 + 4u * (q % 8u), p.m, p.k, p.a_rs);
        }
        if (tb) {
            s.b[i] = load_b(b_base, col0 + q / 8u, k0 + 4u * (q % 8u), p.n, p.k, p.b_cs);
        } else {
            s.b[i] = load_b(b_base, k0 + q / 32u, col0 + 4u * (q % 32u), p.k, p.n, p.b_rs);
        }
    }
    return s;
}

fn slab_index(q: u32, contiguous_k: bool) -> u32 {
    if (contiguous_k) {
        return (q / 8u) * KP + 4u * (q % 8u);
    }
    return (q / 32u) * TP + 4u * (q % 32u);
}

fn put(t: u32, buf: u32, s: Staged) {
    let ta = (p.flags & TRANS_A) != 0u;
    let tb = (p.flags & TRANS_B) != 0u;
    let off = buf * SLAB;
    for (var i = 0u; i < 4u; i++) {
        let q = t + i * 256u;
        let ia = off + slab_index(q, !ta);
        let va = s.a[i];
        as_[ia] = va.x;
        as_[ia + 1u] = va.y;
        as_[ia + 2u] = va.z;
        as_[ia + 3u] = va.w;
        let ib = off + slab_index(q, tb);
        let vb = s.b[i];
        bs_[ib] = vb.x;
        bs_[ib + 1u] = vb.y;
        bs_[ib + 2u] = vb.z;
        bs_[ib + 3u] = vb.w;
    }
}

// Fragment of A at rows r..r+15, k..k+15 of slab buffer `off`.
fn frag_a(off: u32, r: u32, k: u32) -> coop_mat16x16<f16, A> {
    if ((p.flags & TRANS_A) != 0u) {
        // [BK][TP]: element (m, k) at k*TP + m, column-major in (m, k).
        let i = off + k * TP + r;
        let stride = TP;
        return coopLoad<coop_mat16x16<f16, A>>(&as_[i], stride);
    }
    let i = off + r * KP + k;
    let stride = KP;
    return coopLoadT<coop_mat16x16<f16, A>>(&as_[i], stride);
}

// Fragment of B at k..k+15, columns cc..cc+15.
fn frag_b(off: u32, k: u32, cc: u32) -> coop_mat16x16<f16, B> {
    if ((p.flags & TRANS_B) != 0u) {
        // [TILE][KP]: element (k, n) at n*KP + k, column-major in (k, n).
        let i = off + cc * KP + k;
        let stride = KP;
        return coopLoad<coop_mat16x16<f16, B>>(&bs_[i], stride);
    }
    let i = off + k * TP + cc;
    let stride = TP;
    return coopLoadT<coop_mat16x16<f16, B>>(&bs_[i], stride);
}

// Writes one 16x16 accumulator tile at (row, col) of C through the subgroup's scratch.
fn emit(acc: coop_mat16x16<f32, C>, sg: u32, lane: u32, c_base: u32, row: u32, col: u32, alpha: f32) {
    let at = sg * 256u;
    let stride = 16u;
    coopStoreT(acc, &scratch[at], stride);
    workgroupBarrier();
    for (var e = lane; e < 256u; e += 32u) {
        let r = row + e / 16u;
        let cc = col + e % 16u;
        if (r < p.m && cc < p.n) {
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
    }
    workgroupBarrier();
}

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let col0 = wg.x * TILE;
    let row0 = wg.y * TILE;
    let bi = wg.z / p.splits;
    let k_lo = (wg.z % p.splits) * p.k_split;
    let k_len = min(p.k - k_lo, p.k_split);
    let a_base = p.a_off + bi * p.a_bs;
    let b_base = p.b_off + bi * p.b_bs;
    // This subgroup's 32x64 block within the workgroup's tile.
    let wr = (sg / 2u) * 32u;
    let wc = (sg % 2u) * 64u;

    var c00 = coop_mat16x16<f32, C>();
    var c01 = coop_mat16x16<f32, C>();
    var c02 = coop_mat16x16<f32, C>();
    var c03 = coop_mat16x16<f32, C>();
    var c10 = coop_mat16x16<f32, C>();
    var c11 = coop_mat16x16<f32, C>();
    var c12 = coop_mat16x16<f32, C>();
    var c13 = coop_mat16x16<f32, C>();

    let slabs = (k_len + BK - 1u) / BK;
    var staged = fetch(t, row0, col0, k_lo, a_base, b_base);
    put(t, 0u, staged);
    workgroupBarrier();
    for (var s = 0u; s < slabs; s++) {
        let cur = (s & 1u) * SLAB;
        if (s + 1u < slabs) {
            staged = fetch(t, row0, col0, k_lo + (s + 1u) * BK, a_base, b_base);
        }
        for (var kk = 0u; kk < BK; kk += 16u) {
            let a0 = frag_a(cur, wr, kk);
            let a1 = frag_a(cur, wr + 16u, kk);
            let b0 = frag_b(cur, kk, wc);
            let b1 = frag_b(cur, kk, wc + 16u);
            let b2 = frag_b(cur, kk, wc + 32u);
            let b3 = frag_b(cur, kk, wc + 48u);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c02 = coopMultiplyAdd(a0, b2, c02);
            c03 = coopMultiplyAdd(a0, b3, c03);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
            c12 = coopMultiplyAdd(a1, b2, c12);
            c13 = coopMultiplyAdd(a1, b3, c13);
        }
        if (s + 1u < slabs) {
            put(t, 1u - (s & 1u), staged);
        }
        workgroupBarrier();
    }

    let c_base = p.c_off + wg.z * p.c_bs;
    var alpha = p.alpha;
    if ((p.flags & SCALED) != 0u) {
        alpha *= sa[1] * sb[1];
    }
    let r0 = row0 + wr;
    let q0 = col0 + wc;
    emit(c00, sg, lane, c_base, r0, q0, alpha);
    emit(c01, sg, lane, c_base, r0, q0 + 16u, alpha);
    emit(c02, sg, lane, c_base, r0, q0 + 32u, alpha);
    emit(c03, sg, lane, c_base, r0, q0 + 48u, alpha);
    emit(c10, sg, lane, c_base, r0 + 16u, q0, alpha);
    emit(c11, sg, lane, c_base, r0 + 16u, q0 + 16u, alpha);
    emit(c12, sg, lane, c_base, r0 + 16u, q0 + 32u, alpha);
    emit(c13, sg, lane, c_base, r0 + 16u, q0 + 48u, alpha);
}
