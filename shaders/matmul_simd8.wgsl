// Matmul for CPU Vulkan drivers that run a subgroup of 8 invocations as one 8-wide SIMD vector
// (Mesa's lavapipe): C[b] = alpha * A[b] @ B[b] (+ bias) (+ C[b] when accumulating), with
// matmul.wgsl's Params block and operand addressing (NN, NT, TN, TT, batch, broadcast B, column
// windows, K windows):
//   A(m, k) = a[a_off + b*a_bs + m*a_rs + k*a_cs]
//   B(k, n) = b[b_off + b*b_bs + k*b_rs + n*b_cs]
//   C(m, n) = c[c_off + b*c_bs + m*c_rs + n]
//
// Why this shape: llvmpipe (Mesa 25.0) compiles a storage load whose address is not a constant
// into a loop over the 8 lanes with a bounds test per component, about six instructions per
// float, while an FMA over 8 lanes is two (a multiply and an add). Loads bound a matmul there, so
// this kernel loads every operand element once per subgroup and reuses it as often as it can:
// - A workgroup is one subgroup of 8 lanes and owns a 32 x 32 block of C: lane l owns the
//   columns 4l..4l+3 (a vec4) of all 32 rows, in 32 vec4 accumulators.
// - Per 4-deep k slab, lane l loads the 4 x 4 block of A at rows 4l..4l+3 (four vec4 loads) and
//   subgroupBroadcast hands each of its rows to all lanes (an extract and a splat there).
// - Per slab, each lane loads its 4 x 4 block of B (four vec4 loads).
// A slab is 8 vec4 loads per lane for 128 vec4 FMAs; the portable kernel's 4 x 4 outputs per
// invocation pay 32 scalar loads per 64 scalar FMAs. The rows' FMAs are written one row at a
// time (each accumulator's four updates together), which spills least: broadcasting whole 4 x 4
// blocks first measured 15% slower.
//
// Launch conditions (matmul.rs checks them; the proof below rests on them):
// - the adapter's subgroups are exactly 8 invocations (the broadcasts cover the 32 rows);
// - every 4-run that is read as a vec4 starts on a multiple of 4 inside one row: A's offset,
//   batch stride and row stride along its contiguous axis (K, or M when TA), B's likewise (N, or
//   K when TB) are multiples of 4; so M is a multiple of 4 when TA, N when not TB, and K whenever
//   A is not TA or B is TB (only TN can leave a partial last slab);
// - the bindings hold every element the strides address for m < M, n < N, k < K.
// Override constants TA (A stored [K, M]) and TB (B stored [N, K]) fix the layout: one pipeline
// per layout, and the layout tests fold away.
//
// Why every access is in bounds (the module is compiled without wgpu's runtime checks, which
// measured 15% faster for TN and up to 8% for the other layouts): rows are clamped to M - 1 (or the 4-run to M - 4 when TA), columns to
// N - 1 (or N - 4 when not TB). When TA, k is clamped to K - 1 for A, and for B too unless TB;
// values past K are zeroed, so they add nothing (only TN can have a partial last slab). In the
// other cases K is a multiple of 4 and every slab lies inside K. Clamped rows and columns are
// computed and never stored: C and bias are read and written only for row < M and column < N.
// The slab loop runs ceil(K / 4) times.

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_off: u32, a_bs: u32, a_rs: u32, a_cs: u32,
    b_off: u32, b_bs: u32, b_rs: u32, b_cs: u32,
    c_off: u32, c_bs: u32, c_rs: u32, flags: u32,
    bias_off: u32, alpha: f32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const BIAS: u32 = 1u;
const ACCUMULATE: u32 = 2u;

// A stored [K, M] (contiguous along m) / B stored [N, K] (contiguous along k).
override TA: bool = false;
override TB: bool = false;

// acc + sum over kk of a[kk] * slab[kk]: one row of this lane's outputs over one slab.
fn row_mac(acc: vec4<f32>, a: vec4<f32>, slab: mat4x4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(a.w), slab[3], fma(vec4<f32>(a.z), slab[2],
           fma(vec4<f32>(a.y), slab[1], fma(vec4<f32>(a.x), slab[0], acc))));
}

// The 4-run of A (of B) at element `at` + k * a_cs (b_rs), k clamped to `last_k` = K - 1 and
// the value zeroed past it. `last_k` is computed once, outside the slab loop: reading p.k in the
// loop measured 10% slower for TN. (Every value is an 8-lane vector in llvmpipe, uniform or not;
// the other layouts measured 10% slower with their loop-invariant uniforms hoisted into
// registers, so they read them in the loop.)
fn a_run(at: u32, k: u32, last_k: u32) -> vec4<f32> {
    let v = a4[(at + min(k, last_k) * p.a_cs) >> 2u];
    return select(vec4<f32>(0.0), v, k <= last_k);
}

fn b_run(at: u32, k: u32, last_k: u32) -> vec4<f32> {
    let v = b4[(at + min(k, last_k) * p.b_rs) >> 2u];
    return select(vec4<f32>(0.0), v, k <= last_k);
}

fn store_row(row: u32, col0: u32, c_base: u32, bias4: vec4<f32>, acc: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    let v = p.alpha * acc + bias4;
    let at = c_base + row * p.c_rs + col0;
    let accumulate = (p.flags & ACCUMULATE) != 0u;
    for (var j = 0u; j < 4u; j++) {
        if (col0 + j >= p.n) {
            return;
        }
        var out = v[j];
        if (accumulate) {
            out += c[at + j];
        }
        c[at + j] = out;
    }
}

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let row0 = wg.y * 32u;
    let col0 = (wg.x * 8u + lane) * 4u;
    let bi = wg.z;
    let a_base = p.a_off + bi * p.a_bs;
    let b_base = p.b_off + bi * p.b_bs;
    // Element index of this lane's A block: the 4-run of rows (TA), else the start of each row.
    let my_row = row0 + 4u * lane;
    var a_at: vec4<u32>;
    if (TA) {
        a_at = vec4<u32>(a_base + min(my_row, p.m - 4u));
    } else {
        let r = min(vec4<u32>(my_row) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.m - 1u));
        a_at = vec4<u32>(a_base) + r * p.a_rs;
    }
    // Element index of this lane's B block: the 4-run of columns, or (TB) each column's start.
    var b_at: vec4<u32>;
    if (TB) {
        let cols = min(vec4<u32>(col0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.n - 1u));
        b_at = vec4<u32>(b_base) + cols * p.b_cs;
    } else {
        b_at = vec4<u32>(b_base + min(col0, p.n - 4u));
    }
    var c0 = vec4<f32>(0.0); var c1 = vec4<f32>(0.0); var c2 = vec4<f32>(0.0); var c3 = vec4<f32>(0.0);
    var c4 = vec4<f32>(0.0); var c5 = vec4<f32>(0.0); var c6 = vec4<f32>(0.0); var c7 = vec4<f32>(0.0);
    var c8 = vec4<f32>(0.0); var c9 = vec4<f32>(0.0); var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0);
    var c12 = vec4<f32>(0.0); var c13 = vec4<f32>(0.0); var c14 = vec4<f32>(0.0); var c15 = vec4<f32>(0.0);
    var c16 = vec4<f32>(0.0); var c17 = vec4<f32>(0.0); var c18 = vec4<f32>(0.0); var c19 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0); var c21 = vec4<f32>(0.0); var c22 = vec4<f32>(0.0); var c23 = vec4<f32>(0.0);
    var c24 = vec4<f32>(0.0); var c25 = vec4<f32>(0.0); var c26 = vec4<f32>(0.0); var c27 = vec4<f32>(0.0);
    var c28 = vec4<f32>(0.0); var c29 = vec4<f32>(0.0); var c30 = vec4<f32>(0.0); var c31 = vec4<f32>(0.0);
    let last_k = p.k - 1u;
    for (var k0 = 0u; k0 < p.k; k0 += 4u) {
        // x: this lane's 4 x 4 block of A as rows (x[i] = row 4 * lane + i over the slab).
        var x: mat4x4<f32>;
        if (TA) {
            // Each 4-run is one k over the 4 rows.
            let at = a_at[0];
            x = transpose(mat4x4<f32>(a_run(at, k0, last_k), a_run(at, k0 + 1u, last_k),
                                      a_run(at, k0 + 2u, last_k), a_run(at, k0 + 3u, last_k)));
        } else {
            x = mat4x4<f32>(a4[(a_at[0] + k0) >> 2u], a4[(a_at[1] + k0) >> 2u],
                            a4[(a_at[2] + k0) >> 2u], a4[(a_at[3] + k0) >> 2u]);
        }
        // slab[kk]: B row k0 + kk over this lane's 4 columns.
        var slab: mat4x4<f32>;
        if (TB) {
            // Each 4-run is one column over the slab's 4 k.
            slab = transpose(mat4x4<f32>(b4[(b_at[0] + k0) >> 2u], b4[(b_at[1] + k0) >> 2u],
                                         b4[(b_at[2] + k0) >> 2u], b4[(b_at[3] + k0) >> 2u]));
        } else if (TA) {
            // A partial last slab only happens here (TN): clamp and zero past K.
            let at = b_at[0];
            slab = mat4x4<f32>(b_run(at, k0, last_k), b_run(at, k0 + 1u, last_k),
                               b_run(at, k0 + 2u, last_k), b_run(at, k0 + 3u, last_k));
        } else {
            let s = (b_at[0] + k0 * p.b_rs) >> 2u;
            let rs = p.b_rs >> 2u;
            slab = mat4x4<f32>(b4[s], b4[s + rs], b4[s + 2u * rs], b4[s + 3u * rs]);
        }
        c0 = row_mac(c0, subgroupBroadcast(x[0], 0u), slab);
        c1 = row_mac(c1, subgroupBroadcast(x[1], 0u), slab);
        c2 = row_mac(c2, subgroupBroadcast(x[2], 0u), slab);
        c3 = row_mac(c3, subgroupBroadcast(x[3], 0u), slab);
        c4 = row_mac(c4, subgroupBroadcast(x[0], 1u), slab);
        c5 = row_mac(c5, subgroupBroadcast(x[1], 1u), slab);
        c6 = row_mac(c6, subgroupBroadcast(x[2], 1u), slab);
        c7 = row_mac(c7, subgroupBroadcast(x[3], 1u), slab);
        c8 = row_mac(c8, subgroupBroadcast(x[0], 2u), slab);
        c9 = row_mac(c9, subgroupBroadcast(x[1], 2u), slab);
        c10 = row_mac(c10, subgroupBroadcast(x[2], 2u), slab);
        c11 = row_mac(c11, subgroupBroadcast(x[3], 2u), slab);
        c12 = row_mac(c12, subgroupBroadcast(x[0], 3u), slab);
        c13 = row_mac(c13, subgroupBroadcast(x[1], 3u), slab);
        c14 = row_mac(c14, subgroupBroadcast(x[2], 3u), slab);
        c15 = row_mac(c15, subgroupBroadcast(x[3], 3u), slab);
        c16 = row_mac(c16, subgroupBroadcast(x[0], 4u), slab);
        c17 = row_mac(c17, subgroupBroadcast(x[1], 4u), slab);
        c18 = row_mac(c18, subgroupBroadcast(x[2], 4u), slab);
        c19 = row_mac(c19, subgroupBroadcast(x[3], 4u), slab);
        c20 = row_mac(c20, subgroupBroadcast(x[0], 5u), slab);
        c21 = row_mac(c21, subgroupBroadcast(x[1], 5u), slab);
        c22 = row_mac(c22, subgroupBroadcast(x[2], 5u), slab);
        c23 = row_mac(c23, subgroupBroadcast(x[3], 5u), slab);
        c24 = row_mac(c24, subgroupBroadcast(x[0], 6u), slab);
        c25 = row_mac(c25, subgroupBroadcast(x[1], 6u), slab);
        c26 = row_mac(c26, subgroupBroadcast(x[2], 6u), slab);
        c27 = row_mac(c27, subgroupBroadcast(x[3], 6u), slab);
        c28 = row_mac(c28, subgroupBroadcast(x[0], 7u), slab);
        c29 = row_mac(c29, subgroupBroadcast(x[1], 7u), slab);
        c30 = row_mac(c30, subgroupBroadcast(x[2], 7u), slab);
        c31 = row_mac(c31, subgroupBroadcast(x[3], 7u), slab);
    }
    if (col0 >= p.n) {
        return;
    }
    let c_base = p.c_off + bi * p.c_bs;
    var bias4 = vec4<f32>(0.0);
    if ((p.flags & BIAS) != 0u) {
        let last = p.n - 1u;
        let o = p.bias_off;
        bias4 = vec4<f32>(bias[o + min(col0, last)], bias[o + min(col0 + 1u, last)],
                          bias[o + min(col0 + 2u, last)], bias[o + min(col0 + 3u, last)]);
    }
    // A loop over the rows, not 32 inlined stores: llvmpipe turns every store into a branchy loop
    // over the lanes, and unrolled they took LLVM 5.9 s to compile per layout (0.5 s as a loop,
    // for about 5% of the time of a K = 128 product).
    let acc = array<vec4<f32>, 32>(
        c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15,
        c16, c17, c18, c19, c20, c21, c22, c23, c24, c25, c26, c27, c28, c29, c30, c31);
    for (var r = 0u; r < 32u; r++) {
        store_row(row0 + r, col0, c_base, bias4, acc[r]);
    }
}
