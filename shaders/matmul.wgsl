// Portable batched matmul: C[b] = alpha * A[b] @ B[b] (+ bias) (+ C[b] when accumulating).
//
// Operands are addressed through strides, so one kernel covers transposed operands, batched and
// broadcast (batch stride 0) weights, and column windows of a larger C (the launch code chunks
// huge weights such as a 150k-row LM head this way).
//   A(m, k) = a[a_off + b*a_bs + m*a_rs + k*a_cs]
//   B(k, n) = b[b_off + b*b_bs + k*b_rs + n*b_cs]
//   C(m, n) = c[c_off + b*c_bs + m*c_rs + n]
// Each invocation owns a 4x4 block of C in registers; no shared memory, which is what pays on
// lavapipe (DESIGN.md). The tiled fast path for discrete GPUs lives in matmul_tiled.wgsl.

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_off: u32, a_bs: u32, a_rs: u32, a_cs: u32,
    b_off: u32, b_bs: u32, b_rs: u32, b_cs: u32,
    c_off: u32, c_bs: u32, c_rs: u32, flags: u32, // flags: 1 = add bias[n], 2 = accumulate into C
    bias_off: u32, alpha: f32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> bm: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TILE: u32 = 4u;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * TILE;
    let col0 = gid.x * TILE;
    let bi = gid.z;
    if (row0 >= p.m || col0 >= p.n || bi >= p.batch) {
        return;
    }
    let a_base = p.a_off + bi * p.a_bs;
    let b_base = p.b_off + bi * p.b_bs;
    var acc: array<vec4<f32>, 4>;
    // Clamp out-of-range rows/cols to a valid index; their results are never stored.
    var ar: array<u32, 4>;
    var bc: array<u32, 4>;
    for (var i = 0u; i < TILE; i++) {
        ar[i] = a_base + min(row0 + i, p.m - 1u) * p.a_rs;
        bc[i] = b_base + min(col0 + i, p.n - 1u) * p.b_cs;
    }
    for (var kk = 0u; kk < p.k; kk++) {
        let ak = kk * p.a_cs;
        let bk = kk * p.b_rs;
        let bv = vec4<f32>(bm[bc[0] + bk], bm[bc[1] + bk], bm[bc[2] + bk], bm[bc[3] + bk]);
        acc[0] += a[ar[0] + ak] * bv;
        acc[1] += a[ar[1] + ak] * bv;
        acc[2] += a[ar[2] + ak] * bv;
        acc[3] += a[ar[3] + ak] * bv;
    }
    let c_base = p.c_off + bi * p.c_bs;
    for (var i = 0u; i < TILE; i++) {
        let r = row0 + i;
        if (r >= p.m) {
            break;
        }
        for (var j = 0u; j < TILE; j++) {
            let col = col0 + j;
            if (col >= p.n) {
                break;
            }
            var v = p.alpha * acc[i][j];
            if ((p.flags & 1u) != 0u) {
                v += bias[p.bias_off + col];
            }
            let idx = c_base + r * p.c_rs + col;
            if ((p.flags & 2u) != 0u) {
                v += c[idx];
            }
            c[idx] = v;
        }
    }
}
