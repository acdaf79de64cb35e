// Interior fast path of the tiled f32 matmul for 64x64 blocks (matmul_tiled_interior.wgsl holds
// the 128x128 one): C[b] = alpha * A[b] @ B[b] (+ bias) (+ C[b] when accumulating), same Params
// block and operand addressing, split K as in matmul_tiled.wgsl.
//
// Why: decode multiplies 64 rows (one per sequence) by every weight matrix; in 128x128 blocks
// half of each block's rows were empty and the general (bounds-checked) kernel ran, 52 us for a
// 64 x 1,024 x 1,024 product on an H100 (bench/NOTES.md). Here 256 invocations own a 64x64
// block, 4x4 outputs each (rows ty*4+{0..3}, columns tx*4+{0..3}); K advances in 16-deep slabs
// stored k-major in shared memory, so one k step is two 16-byte shared reads for 16 FMAs; the
// next slab is fetched into registers while the current one is multiplied, and two slab buffers
// alternate (one barrier a slab).
//
// Launched only when M and N are multiples of 64, K (and every split-K slice: multiples of 32)
// a multiple of 16, and both operands take 16-byte loads (VEC_A and VEC_B), so the module is
// compiled without wgpu's runtime checks. Why every access is in bounds:
// - Workgroup memory: t < 256 is vec4 q of a slab of 64 x 16 floats (256 vec4); a slab buffer
//   starts at 0 or SLAB4 = 256, and put_* writes at most off + 4 * 3 * ROW4 + 15 < off + 256
//   (k < 16 rows of ROW4 = 16 vec4); the multiply reads off + kk * 16 + ty (or tx) < off + 256.
//   Arrays hold 512.
// - Storage: the grid is (N / 64, M / 64, batch * splits): rows < M, columns < N, and the slab
//   loop covers [k_lo, k_lo + k_len), a whole number of slabs inside [0, K) (the launch code:
//   (splits - 1) * k_split < K, k_split a multiple of 32); bi = z / splits < batch. With VEC_A
//   and VEC_B each 4-run starts at a multiple of 4 and stays in its row. C is bound
//   [batch * splits, M, N] when split (c_bs = M * N), else whole; bias indices < N + bias_off.
// - Loops: k_len / 16 slabs, the others constant counts.

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


const BK: u32 = 16u;
const ROW4: u32 = 16u;        // vec4 per shared-memory row of 64 floats
const SLAB4: u32 = BK * ROW4; // 256 vec4 per slab buffer
const KQ: u32 = BK / 4u;      // vec4 per slab row of a k-contiguous operand

// Two slab buffers, k-major: as_[buf*SLAB4 + k*ROW4 + m/4] holds A(m..m+3, k).
var<workgroup> as_: array<vec4<f32>, 512>;
var<workgroup> bs_: array<vec4<f32>, 512>;

// Vec4 q of the slab at k0 of the A block starting at row0: (k0 + q/16, row0 + 4*(q%16)) when A
// is stored [K, M], (row0 + q/KQ, k0 + 4*(q%KQ)) when stored [M, K].
fn a_vec(q: u32, row0: u32, k0: u32, base: u32) -> vec4<f32> {
    if ((p.flags & TRANS_A) != 0u) {
        return a4[(base + (k0 + q / 16u) * p.a_cs + row0 + 4u * (q % 16u)) >> 2u];
    }
    return a4[(base + (row0 + q / KQ) * p.a_rs + k0 + 4u * (q % KQ)) >> 2u];
}

fn b_vec(q: u32, col0: u32, k0: u32, base: u32) -> vec4<f32> {
    if ((p.flags & TRANS_B) != 0u) {
        return b4[(base + (col0 + q / KQ) * p.b_cs + k0 + 4u * (q % KQ)) >> 2u];
    }
    return b4[(base + (k0 + q / 16u) * p.b_rs + col0 + 4u * (q % 16u)) >> 2u];
}

// Writes vec4 q of a slab into the buffer at `off`, transposing k-contiguous runs into four
// k rows.
fn put_a(q: u32, off: u32, v: vec4<f32>) {
    if ((p.flags & TRANS_A) != 0u) {
        as_[off + q] = v;  // (q/16)*ROW4 + q%16 == q
        return;
    }
    let m = q / KQ;
    let base = off + 4u * (q % KQ) * ROW4 + m / 4u;
    let lane = m % 4u;
    as_[base][lane] = v.x;
    as_[base + ROW4][lane] = v.y;
    as_[base + 2u * ROW4][lane] = v.z;
    as_[base + 3u * ROW4][lane] = v.w;
}

fn put_b(q: u32, off: u32, v: vec4<f32>) {
    if ((p.flags & TRANS_B) == 0u) {
        bs_[off + q] = v;
        return;
    }
    let n = q / KQ;
    let base = off + 4u * (q % KQ) * ROW4 + n / 4u;
    let lane = n % 4u;
    bs_[base][lane] = v.x;
    bs_[base + ROW4][lane] = v.y;
    bs_[base + 2u * ROW4][lane] = v.z;
    bs_[base + 3u * ROW4][lane] = v.w;
}

// Stores outputs (row, col..col+3) with alpha, bias and accumulation.
fn store4(c_base: u32, row: u32, col: u32, v4: vec4<f32>) {
    var v = p.alpha * v4;
    if ((p.flags & BIAS) != 0u) {
        let o = p.bias_off + col;
        v += vec4<f32>(bias[o], bias[o + 1u], bias[o + 2u], bias[o + 3u]);
    }
    let idx = c_base + row * p.c_rs + col;
    if ((p.flags & ACCUMULATE) != 0u) {
        v += vec4<f32>(c[idx], c[idx + 1u], c[idx + 2u], c[idx + 3u]);
    }
    c[idx] = v.x;
    c[idx + 1u] = v.y;
    c[idx + 2u] = v.z;
    c[idx + 3u] = v.w;
}

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wg: vec3<u32>,
) {
    let col0 = wg.x * 64u;
    let row0 = wg.y * 64u;
    let bi = wg.z / p.splits;
    let k_lo = (wg.z % p.splits) * p.k_split;
    let k_len = min(p.k - k_lo, p.k_split);
    // A warp covers 4 ty x 8 tx, so a k step's shared reads touch 4 + 8 distinct vec4.
    let w = t / 32u;
    let l = t % 32u;
    let tx = (w & 1u) * 8u + (l & 7u);
    let ty = (w >> 1u) * 4u + (l >> 3u);
    let a_base = p.a_off + bi * p.a_bs;
    let b_base = p.b_off + bi * p.b_bs;

    var acc: array<vec4<f32>, 4>;
    let slabs = k_len / BK;
    put_a(t, 0u, a_vec(t, row0, k_lo, a_base));
    put_b(t, 0u, b_vec(t, col0, k_lo, b_base));
    workgroupBarrier();
    var sa: vec4<f32>;
    var sb: vec4<f32>;
    for (var s = 0u; s < slabs; s++) {
        let cur = (s & 1u) * SLAB4;
        let more = s + 1u < slabs;
        if (more) {
            let k0 = k_lo + (s + 1u) * BK;
            sa = a_vec(t, row0, k0, a_base);
            sb = b_vec(t, col0, k0, b_base);
        }
        for (var kk = 0u; kk < BK; kk++) {
            let r = cur + kk * ROW4;
            let a = as_[r + ty];
            let b = bs_[r + tx];
            acc[0] = fma(vec4<f32>(a.x), b, acc[0]);
            acc[1] = fma(vec4<f32>(a.y), b, acc[1]);
            acc[2] = fma(vec4<f32>(a.z), b, acc[2]);
            acc[3] = fma(vec4<f32>(a.w), b, acc[3]);
        }
        if (more) {
            // The other buffer was last read in iteration s-1, finished before its barrier.
            let nxt = SLAB4 - cur;
            put_a(t, nxt, sa);
            put_b(t, nxt, sb);
        }
        workgroupBarrier();
    }

    let c_base = p.c_off + wg.z * p.c_bs;
    let r0 = row0 + ty * 4u;
    let c0 = col0 + tx * 4u;
    store4(c_base, r0, c0, acc[0]);
    store4(c_base, r0 + 1u, c0, acc[1]);
    store4(c_base, r0 + 2u, c0, acc[2]);
    store4(c_base, r0 + 3u, c0, acc[3]);
}
