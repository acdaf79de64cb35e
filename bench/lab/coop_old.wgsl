// Tensor-core matmul for whole blocks, staged through workgroup memory with 16-byte loads:
// f16 A and B, f32 accumulation, f32 C.
//   C[b] = alpha * A[b] @ B[b] (+ bias) (+ C[b] when accumulating).
//
// Why: the direct kernel (matmul_coop_direct.wgsl) loads every fragment from storage; each of
// its subgroups re-reads A and B rows that its neighbours also read, and a fragment load with a
// run-time stride cannot be vectorised. Here a workgroup of WARPS_M x WARPS_N subgroups owns a
// BM x BN block of C (each subgroup 64x64, as 4x4 accumulator tiles): every BK-deep slab of A
// and B is read from storage once per workgroup as 16-byte words (8 halves), written to
// workgroup memory, and each subgroup loads its fragments from there with constant strides.
// The next slab's words are fetched into registers while the current slab is multiplied.
//
// Launched only for whole blocks (matmul.rs `coop_tiled_fits`): M % BM == 0, N % BN == 0,
// K % BK == 0 (per split-K slice too: slices are multiples of 32 deep), and every 8-half run
// that a 16-byte word covers starts on a multiple of 8 halves (offsets, strides, batch strides).
// So no load or store tests a bound. The layouts are override constants TA (A stored [K, M])
// and TB (B stored [N, K]), so each layout is its own pipeline without run-time branches.
// Same Params block, flags, split-K convention and scale bindings as matmul_coop.wgsl.
// DOUBLE = 1 alternates two slab buffers (one barrier a slab, twice the workgroup memory).
//
// Workgroup memory: slab rows are padded by 8 halves (16 bytes) so the 8 rows of one fragment
// load fall on different banks.
//
// Compiled without wgpu's runtime checks (`shader!(trusted ...)`): on an H100 the checked build
// ran 49 TFLOP/s at 4096^3 against 179 for the trusted one (bench/NOTES.md). Why every access
// is in bounds, given the launch conditions above:
// - Storage loads: the grid is (N / BN, M / BM, batch * splits), so a workgroup's rows
//   row0 + r < M and columns col0 + r < N; k0 + kr < k_lo + k_len <= K because k_len is a whole
//   number of BK slabs (launch code: K and the slice depth are multiples of 32 >= BK, and
//   (splits - 1) * k_split < K); bi = z / splits < batch. Each word's first half index is
//   that of an in-range element, a multiple of 8 (alignment conditions), and its 8 halves lie
//   in the same stored row (the contiguous extent, K, M or N, is a multiple of 8), all inside
//   the operand the launch code binds whole.
// - Workgroup memory: word q < BM * BK / 8 (or BN * BK / 8) lands at r * KP + kc + 7 <
//   BM * KP or kr * MP + mc + 7 < BK * MP, within A_SLAB (B likewise); fragment loads read
//   rows wr + 48 + 15 < BM and k + 15 < BK of the same slabs; the scratch index sg * 256 + e
//   < 256 * WARPS_M * WARPS_N. With DOUBLE the second buffer adds A_SLAB (B_SLAB) to indices
//   of arrays twice as long.
// - Stores to C: rows and columns < M, N as above; C is bound [batch * splits, M, N] when split
//   (c_bs = M * N) and whole otherwise. Bias indices bias_off + col < bound length.
// - Loops: slab count k_len / BK and constant counts.

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
// f16 operands read as 16-byte words of 8 halves (mat2x4<f16>: naga 30 mistypes bitcasts from
// u32 words to f16 vectors, so the word is an f16 matrix rather than a vec4<u32>).
@group(0) @binding(1) var<storage, read> a8: array<mat2x4<f16>>;
@group(0) @binding(2) var<storage, read> b8: array<mat2x4<f16>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read> sa: array<f32>;
@group(0) @binding(6) var<storage, read> sb: array<f32>;

const BIAS: u32 = 1u;
const ACCUMULATE: u32 = 2u;
const SCALED: u32 = 64u;

override TA: bool = false;
override TB: bool = true;

const WARPS_M: u32 = 2u;
const WARPS_N: u32 = 2u;
const BK: u32 = 32u;
const DOUBLE: u32 = 0u;

const BM: u32 = WARPS_M * 64u;
const BN: u32 = WARPS_N * 64u;
const THREADS: u32 = WARPS_M * WARPS_N * 32u;
// Padded slab row lengths in halves: k-contiguous rows (A as [M, K], B as [N, K]) and
// m- or n-contiguous rows (A as [K, M], B as [K, N]).
const KP: u32 = BK + 8u;
const MP: u32 = BM + 8u;
const NP: u32 = BN + 8u;
const A_SLAB: u32 = max(BM * KP, BK * MP);
const B_SLAB: u32 = max(BN * KP, BK * NP);
// 16-byte words per thread per slab.
const A_WORDS: u32 = BM * BK / 8u / THREADS;
const B_WORDS: u32 = BN * BK / 8u / THREADS;

var<workgroup> as_: array<f16, A_SLAB * (1u + DOUBLE)>;
var<workgroup> bs_: array<f16, B_SLAB * (1u + DOUBLE)>;
var<workgroup> scratch: array<f32, 256u * WARPS_M * WARPS_N>;

// Word q of A's slab at k0: its half index in storage and in the slab.
fn a_word(q: u32, row0: u32, k0: u32, base: u32) -> vec2<u32> {
    if (TA) {
        let kr = q / (BM / 8u);
        let mc = (q % (BM / 8u)) * 8u;
        return vec2<u32>(base + (k0 + kr) * p.a_cs + row0 + mc, kr * MP + mc);
    }
    let r = q / (BK / 8u);
    let kc = (q % (BK / 8u)) * 8u;
    return vec2<u32>(base + (row0 + r) * p.a_rs + k0 + kc, r * KP + kc);
}

fn b_word(q: u32, col0: u32, k0: u32, base: u32) -> vec2<u32> {
    if (TB) {
        let r = q / (BK / 8u);
        let kc = (q % (BK / 8u)) * 8u;
        return vec2<u32>(base + (col0 + r) * p.b_cs + k0 + kc, r * KP + kc);
    }
    let kr = q / (BN / 8u);
    let nc = (q % (BN / 8u)) * 8u;
    return vec2<u32>(base + (k0 + kr) * p.b_rs + col0 + nc, kr * NP + nc);
}

fn put_a(i: u32, w: mat2x4<f16>) {
    as_[i] = w[0].x;
    as_[i + 1u] = w[0].y;
    as_[i + 2u] = w[0].z;
    as_[i + 3u] = w[0].w;
    as_[i + 4u] = w[1].x;
    as_[i + 5u] = w[1].y;
    as_[i + 6u] = w[1].z;
    as_[i + 7u] = w[1].w;
}

fn put_b(i: u32, w: mat2x4<f16>) {
    bs_[i] = w[0].x;
    bs_[i + 1u] = w[0].y;
    bs_[i + 2u] = w[0].z;
    bs_[i + 3u] = w[0].w;
    bs_[i + 4u] = w[1].x;
    bs_[i + 5u] = w[1].y;
    bs_[i + 6u] = w[1].z;
    bs_[i + 7u] = w[1].w;
}

// Fragment of A at slab rows r..r+15, k..k+15.
fn frag_a(off: u32, r: u32, k: u32) -> coop_mat16x16<f16, A> {
    if (TA) {
        let i = off + k * MP + r;
        let stride = MP;
        return coopLoad<coop_mat16x16<f16, A>>(&as_[i], stride);
    }
    let i = off + r * KP + k;
    let stride = KP;
    return coopLoadT<coop_mat16x16<f16, A>>(&as_[i], stride);
}

// Fragment of B at k..k+15, slab columns cc..cc+15.
fn frag_b(off: u32, k: u32, cc: u32) -> coop_mat16x16<f16, B> {
    if (TB) {
        let i = off + cc * KP + k;
        let stride = KP;
        return coopLoad<coop_mat16x16<f16, B>>(&bs_[i], stride);
    }
    let i = off + k * NP + cc;
    let stride = NP;
    return coopLoadT<coop_mat16x16<f16, B>>(&bs_[i], stride);
}

// One accumulator tile at (row, col) of C: stored straight to C when the epilogue has nothing
// to add, else through this subgroup's scratch (alpha, bias, accumulate).
fn emit(acc: coop_mat16x16<f32, C>, sg: u32, lane: u32, c_base: u32, row: u32, col: u32, alpha: f32, plain: bool) {
    if (plain) {
        let i = c_base + row * p.c_rs + col;
        let stride = p.c_rs;
        coopStoreT(acc, &c[i], stride);
        return;
    }
    let at = sg * 256u;
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

@compute @workgroup_size(THREADS, 1, 1)
fn main(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let col0 = wg.x * BN;
    let row0 = wg.y * BM;
    let bi = wg.z / p.splits;
    let k_lo = (wg.z % p.splits) * p.k_split;
    let k_len = min(p.k - k_lo, p.k_split);
    let a_base = p.a_off + bi * p.a_bs;
    let b_base = p.b_off + bi * p.b_bs;
    // This subgroup's 64x64 block within the workgroup's.
    let wr = (sg / WARPS_N) * 64u;
    let wc = (sg % WARPS_N) * 64u;

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

    var ra: array<mat2x4<f16>, A_WORDS>;
    var rb: array<mat2x4<f16>, B_WORDS>;
    for (var i = 0u; i < A_WORDS; i++) {
        ra[i] = a8[a_word(t + i * THREADS, row0, k_lo, a_base).x >> 3u];
    }
    for (var i = 0u; i < B_WORDS; i++) {
        rb[i] = b8[b_word(t + i * THREADS, col0, k_lo, b_base).x >> 3u];
    }
    let slabs = k_len / BK;
    for (var i = 0u; i < A_WORDS; i++) {
        put_a(a_word(t + i * THREADS, row0, 0u, 0u).y, ra[i]);
    }
    for (var i = 0u; i < B_WORDS; i++) {
        put_b(b_word(t + i * THREADS, col0, 0u, 0u).y, rb[i]);
    }
    workgroupBarrier();
    for (var s = 0u; s < slabs; s++) {
        let more = s + 1u < slabs;
        if (more) {
            let k0 = k_lo + (s + 1u) * BK;
            for (var i = 0u; i < A_WORDS; i++) {
                ra[i] = a8[a_word(t + i * THREADS, row0, k0, a_base).x >> 3u];
            }
            for (var i = 0u; i < B_WORDS; i++) {
                rb[i] = b8[b_word(t + i * THREADS, col0, k0, b_base).x >> 3u];
            }
        }
        let cur = s & DOUBLE;
        let ao = cur * A_SLAB;
        let bo = cur * B_SLAB;
        for (var kk = 0u; kk < BK; kk += 16u) {
            let a0 = frag_a(ao, wr, kk);
            let a1 = frag_a(ao, wr + 16u, kk);
            let a2 = frag_a(ao, wr + 32u, kk);
            let a3 = frag_a(ao, wr + 48u, kk);
            var b = frag_b(bo, kk, wc);
            c00 = coopMultiplyAdd(a0, b, c00);
            c10 = coopMultiplyAdd(a1, b, c10);
            c20 = coopMultiplyAdd(a2, b, c20);
            c30 = coopMultiplyAdd(a3, b, c30);
            b = frag_b(bo, kk, wc + 16u);
            c01 = coopMultiplyAdd(a0, b, c01);
            c11 = coopMultiplyAdd(a1, b, c11);
            c21 = coopMultiplyAdd(a2, b, c21);
            c31 = coopMultiplyAdd(a3, b, c31);
            b = frag_b(bo, kk, wc + 32u);
            c02 = coopMultiplyAdd(a0, b, c02);
            c12 = coopMultiplyAdd(a1, b, c12);
            c22 = coopMultiplyAdd(a2, b, c22);
            c32 = coopMultiplyAdd(a3, b, c32);
            b = frag_b(bo, kk, wc + 48u);
            c03 = coopMultiplyAdd(a0, b, c03);
            c13 = coopMultiplyAdd(a1, b, c13);
            c23 = coopMultiplyAdd(a2, b, c23);
            c33 = coopMultiplyAdd(a3, b, c33);
        }
        if (DOUBLE == 0u) {
            // Every subgroup is done reading the slab before it is overwritten.
            workgroupBarrier();
        }
        if (more) {
            // With two buffers, the other one was last read in iteration s - 1, which every
            // subgroup finished before the barrier that ended it.
            let nxt = (1u - cur) * DOUBLE;
            for (var i = 0u; i < A_WORDS; i++) {
                put_a(nxt * A_SLAB + a_word(t + i * THREADS, row0, 0u, 0u).y, ra[i]);
            }
            for (var i = 0u; i < B_WORDS; i++) {
                put_b(nxt * B_SLAB + b_word(t + i * THREADS, col0, 0u, 0u).y, rb[i]);
            }
        }
        workgroupBarrier();
    }

    let c_base = p.c_off + wg.z * p.c_bs;
    var alpha = p.alpha;
    if ((p.flags & SCALED) != 0u) {
        alpha *= sa[1] * sb[1];
    }
    let plain = alpha == 1.0 && (p.flags & (BIAS | ACCUMULATE)) == 0u;
    let r0 = row0 + wr;
    let q0 = col0 + wc;
    emit(c00, sg, lane, c_base, r0, q0, alpha, plain);
    emit(c01, sg, lane, c_base, r0, q0 + 16u, alpha, plain);
    emit(c02, sg, lane, c_base, r0, q0 + 32u, alpha, plain);
    emit(c03, sg, lane, c_base, r0, q0 + 48u, alpha, plain);
    emit(c10, sg, lane, c_base, r0 + 16u, q0, alpha, plain);
    emit(c11, sg, lane, c_base, r0 + 16u, q0 + 16u, alpha, plain);
    emit(c12, sg, lane, c_base, r0 + 16u, q0 + 32u, alpha, plain);
    emit(c13, sg, lane, c_base, r0 + 16u, q0 + 48u, alpha, plain);
    emit(c20, sg, lane, c_base, r0 + 32u, q0, alpha, plain);
    emit(c21, sg, lane, c_base, r0 + 32u, q0 + 16u, alpha, plain);
    emit(c22, sg, lane, c_base, r0 + 32u, q0 + 32u, alpha, plain);
    emit(c23, sg, lane, c_base, r0 + 32u, q0 + 48u, alpha, plain);
    emit(c30, sg, lane, c_base, r0 + 48u, q0, alpha, plain);
    emit(c31, sg, lane, c_base, r0 + 48u, q0 + 16u, alpha, plain);
    emit(c32, sg, lane, c_base, r0 + 48u, q0 + 32u, alpha, plain);
    emit(c33, sg, lane, c_base, r0 + 48u, q0 + 48u, alpha, plain);
}
