// Tensor-core matmul for decode-sized M (one row per sequence: a few to a few hundred rows),
// first of two passes:
//   part[z](r, j) = sum over k in split z of A[r, k] B[j, k]
// A: f16 [m_pad, K], each row scaled by its own power of two (quantize_rows.wgsl; m_pad = M
//    rounded up to 16, the padding rows zero). B: an f16 weight [N, K]. f32 accumulation. The
// second pass (matmul_rows_reduce.wgsl) sums the splits and undoes the scales.
//
// Why its own kernel: at 64 rows every weight element is used once per row and there are few
// 64-row output blocks, so the time is latency: loads in flight per SM. A workgroup owns one
// 64 x 32 block of one K split and stages rounds of 64 of K through workgroup memory with
// 16-byte loads (three per invocation), loading the next round into registers while the eight
// subgroups (one 16 x 16 tile each) multiply the current one. Splitting K over the grid's z
// gives a few hundred workgroups of a few rounds each. (A first version with fragments loaded
// straight from storage and K split inside the workgroup took 25-35 us per 64-row product on
// an H100, slower than the f32 kernel it replaced: bench/NOTES.md.)
//
// Launch (matmul_rows.rs): N >= 16, K % 32 == 0, k_split a multiple of 64, grid
// (ceil(N / 32), ceil(m_pad / 64), splits). Tiles past m_pad or N are moved back to end there:
// they recompute (and store identically) rows or columns a neighbouring tile owns, so every
// load stays inside its matrix and no tile needs a bounds check.

enable f16;
enable wgpu_cooperative_matrix;

struct Params {
    m_pad: u32, n: u32, k: u32, k_split: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// 16-byte words of 8 halves (mat2x4<f16>: naga 30 mistypes bitcasts from u32 words to f16
// vectors, as matmul_coop_tiled.wgsl notes).
@group(0) @binding(1) var<storage, read> a8: array<mat2x4<f16>>;
@group(0) @binding(2) var<storage, read> b8: array<mat2x4<f16>>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;

const KR: u32 = 64u;
// Padded staging row length in halves (keeps the fragment loads off one bank).
const KP: u32 = KR + 8u;
const ROWS: u32 = 64u;
const COLS: u32 = 32u;

// Staged as vec4<f16> (two 8-byte stores a 16-byte word instead of eight 2-byte ones); the
// fragment loads address them in vec4 units (element offset / 4, stride KP / 4).
var<workgroup> as_: array<vec4<f16>, ROWS * KP / 4u>;
var<workgroup> bs_: array<vec4<f16>, COLS * KP / 4u>;

// One round's three words per invocation: A rows t / 8 and 32 + t / 8, B row t / 8.
struct Round {
    a0: mat2x4<f16>,
    a1: mat2x4<f16>,
    b: mat2x4<f16>,
}

fn load_round(t: u32, row0: u32, col0: u32, k0: u32, k_hi: u32) -> Round {
    let r = t / 8u;
    let k = k0 + (t % 8u) * 8u;
    var w: Round;
    // A partial last round reads zeros past the split (k_hi and k are multiples of 8).
    if (k < k_hi) {
        w.a0 = a8[(min(row0 + r, p.m_pad - 1u) * p.k + k) / 8u];
        w.a1 = a8[(min(row0 + 32u + r, p.m_pad - 1u) * p.k + k) / 8u];
        w.b = b8[(min(col0 + r, p.n - 1u) * p.k + k) / 8u];
    }
    return w;
}

// `i` in halves (a multiple of 8).
fn put_a(i: u32, w: mat2x4<f16>) {
    as_[i / 4u] = w[0];
    as_[i / 4u + 1u] = w[1];
}

fn put_b(i: u32, w: mat2x4<f16>) {
    bs_[i / 4u] = w[0];
    bs_[i / 4u + 1u] = w[1];
}

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    @builtin(subgroup_id) sg: u32,
) {
    // Blocks and tiles moved back to end at m_pad / N (see the header).
    let row0 = min(wg.y * ROWS, p.m_pad - min(p.m_pad, ROWS));
    let col0 = min(wg.x * COLS, p.n - min(p.n, COLS));
    let rt = min(row0 + (sg % 4u) * 16u, p.m_pad - 16u) - row0;
    let ct = min(col0 + (sg / 4u) * 16u, p.n - 16u) - col0;
    let k_lo = wg.z * p.k_split;
    let k_hi = min(p.k, k_lo + p.k_split);
    let sr = t / 8u;
    let sk = (t % 8u) * 8u;

    var acc = coop_mat16x16<f32, C>();
    var next = load_round(t, row0, col0, k_lo, k_hi);
    for (var k0 = k_lo; k0 < k_hi; k0 += KR) {
        workgroupBarrier();
        put_a(sr * KP + sk, next.a0);
        put_a((32u + sr) * KP + sk, next.a1);
        put_b(sr * KP + sk, next.b);
        workgroupBarrier();
        if (k0 + KR < k_hi) {
            next = load_round(t, row0, col0, k0 + KR, k_hi);
        }
        for (var s = 0u; s < KR; s += 16u) {
            let ia = (rt * KP + s) / 4u;
            let ib = (ct * KP + s) / 4u;
            let stride = KP / 4u;
            let fa = coopLoadT<coop_mat16x16<f16, A>>(&as_[ia], stride);
            let fb = coopLoad<coop_mat16x16<f16, B>>(&bs_[ib], stride);
            acc = coopMultiplyAdd(fa, fb, acc);
        }
    }
    let at = (wg.z * p.m_pad + row0 + rt) * p.n + col0 + ct;
    let stride = p.n;
    coopStoreT(acc, &part[at], stride);
}
