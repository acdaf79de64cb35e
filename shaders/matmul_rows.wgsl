// Tensor-core matmul for decode-sized M (one row per sequence: a few to a few hundred rows):
//   C[r, j] = (sum_k A[r, k] B[j, k]) * inv_a[r] * inv_b (+ bias[j]) (+ C[r, j])
// A: f16 [m_pad, K], each row scaled by its own power of two (quantize_rows.wgsl, inv_a = 1/s_r;
//    m_pad = M rounded up to 16, the padding rows zero). B: an f16 weight [N, K] with its
//    per-tensor scale words [max |w| bits, 1/s_w] (cast_scaled.wgsl). f32 accumulation.
//
// Why its own kernel: at 64 rows the weights are the traffic (each element is used by every row
// once) and the 64-row output blocks are few, so the tiled kernels either leave most SMs idle
// or split K over workgroups and need a reduction dispatch. Here a workgroup owns all of one
// 64-row block for 16 * CS columns and its four subgroups split the work as CS column strips x
// KS = 4 / CS slices of K; the slices' partial sums meet in workgroup memory and the epilogue
// (scales, bias, accumulate) runs there too, so one dispatch does the whole product. Fragments
// are loaded straight from storage (each weight fragment by one subgroup, once).
//
// Launch (matmul_rows.rs): N >= 16, K % 32 == 0, k_slice a multiple of 32, grid
// (ceil(N / (16 CS)), ceil(M / 64)). Tiles past m_pad load the last whole tile instead (clamped:
// valid memory, results discarded at the store); a column strip reaching past N is moved back
// to end at N (N need not be a multiple of 16), and the epilogue reads each column from where
// its strip actually started.

enable f16;
enable wgpu_cooperative_matrix;

struct Params {
    m: u32, n: u32, k: u32, m_pad: u32,
    // C's row stride and the column of C where this dispatch's B window starts.
    c_rs: u32, c_col0: u32, bias_off: u32, flags: u32,
    k_slice: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f16>;
@group(0) @binding(2) var<storage, read> b: array<f16>;
@group(0) @binding(3) var<storage, read> inv_a: array<f32>;
@group(0) @binding(4) var<storage, read> sb: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> c: array<f32>;

const BIAS: u32 = 1u;
const ACCUMULATE: u32 = 2u;

// Column strips per workgroup (1, 2 or 4); the other factor of the 4 subgroups slices K.
override CS: u32 = 1u;

// Each subgroup's 64 x 16 partial block, row-major.
var<workgroup> part: array<f32, 4096>;

// Fragment of A at rows r..r+15, k..k+15 (row-major storage).
fn frag_a(r: u32, k: u32) -> coop_mat16x16<f16, A> {
    let i = r * p.k + k;
    let stride = p.k;
    return coopLoadT<coop_mat16x16<f16, A>>(&a[i], stride);
}

// Fragment of B^T at k..k+15, columns j..j+15 (B stored [N, K]: column-major in (k, j)).
fn frag_b(k: u32, j: u32) -> coop_mat16x16<f16, B> {
    let i = j * p.k + k;
    let stride = p.k;
    return coopLoad<coop_mat16x16<f16, B>>(&b[i], stride);
}

@compute @workgroup_size(128, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg: u32,
) {
    let width = 16u * CS;
    let strip = sg % CS;
    let slice = sg / CS;
    let col0 = wg.x * width;
    let row0 = wg.y * 64u;
    // Clamped tile origins (see the header).
    let j = min(col0 + strip * 16u, p.n - 16u);
    let r0 = min(row0, p.m_pad - 16u);
    let r1 = min(row0 + 16u, p.m_pad - 16u);
    let r2 = min(row0 + 32u, p.m_pad - 16u);
    let r3 = min(row0 + 48u, p.m_pad - 16u);
    let k_lo = slice * p.k_slice;
    let k_hi = min(p.k, k_lo + p.k_slice);

    var c0 = coop_mat16x16<f32, C>();
    var c1 = coop_mat16x16<f32, C>();
    var c2 = coop_mat16x16<f32, C>();
    var c3 = coop_mat16x16<f32, C>();
    // Two 16-deep steps per iteration: ten independent loads in flight before the products.
    for (var k = k_lo; k < k_hi; k += 32u) {
        let b0 = frag_b(k, j);
        let b1 = frag_b(k + 16u, j);
        let a0 = frag_a(r0, k);
        let a1 = frag_a(r1, k);
        let a2 = frag_a(r2, k);
        let a3 = frag_a(r3, k);
        let e0 = frag_a(r0, k + 16u);
        let e1 = frag_a(r1, k + 16u);
        let e2 = frag_a(r2, k + 16u);
        let e3 = frag_a(r3, k + 16u);
        c0 = coopMultiplyAdd(a0, b0, c0);
        c1 = coopMultiplyAdd(a1, b0, c1);
        c2 = coopMultiplyAdd(a2, b0, c2);
        c3 = coopMultiplyAdd(a3, b0, c3);
        c0 = coopMultiplyAdd(e0, b1, c0);
        c1 = coopMultiplyAdd(e1, b1, c1);
        c2 = coopMultiplyAdd(e2, b1, c2);
        c3 = coopMultiplyAdd(e3, b1, c3);
    }
    // Offsets and strides bound with `let`: naga 30 panics on inline ones (DESIGN.md).
    let base = sg * 1024u;
    let stride = 16u;
    let at0 = base;
    let at1 = base + 256u;
    let at2 = base + 512u;
    let at3 = base + 768u;
    coopStoreT(c0, &part[at0], stride);
    coopStoreT(c1, &part[at1], stride);
    coopStoreT(c2, &part[at2], stride);
    coopStoreT(c3, &part[at3], stride);
    workgroupBarrier();

    // Epilogue over the workgroup's 64 x width block: sum the K slices, undo the scales.
    let slices = 4u / CS;
    let inv_b = sb[1];
    for (var e = lid; e < 64u * width; e += 128u) {
        let r = e / width;
        let cc = e % width;
        let row = row0 + r;
        let col = col0 + cc;
        if (row < p.m && col < p.n) {
            let strip_of = cc / 16u;
            let start = min(col0 + strip_of * 16u, p.n - 16u);
            let at = strip_of * 1024u + r * 16u + (col - start);
            var v = 0.0;
            for (var s = 0u; s < slices; s += 1u) {
                v += part[s * CS * 1024u + at];
            }
            v *= inv_a[row] * inv_b;
            if ((p.flags & BIAS) != 0u) {
                v += bias[p.bias_off + col];
            }
            let idx = row * p.c_rs + p.c_col0 + col;
            if ((p.flags & ACCUMULATE) != 0u) {
                v += c[idx];
            }
            c[idx] = v;
        }
    }
}
