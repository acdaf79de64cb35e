// Per-row scaled f32 -> f16 cast of a decode step's matmul input (matmul_rows.wgsl's A operand).
//
// Row r gets its own power-of-two scale s_r from its max |x| (f16_bits.wgsl's scale_log2: the
// largest value lands in [2^14, 2^15)); out[r] = round_f16(x[r] * s_r) packed two per word, and
// inv[r] = 1 / s_r, which matmul_rows.wgsl multiplies back in its epilogue (exact: powers of two).
// A row's scale follows only its own values, so one sequence's large activations do not cost
// another's precision, and the whole cast is one dispatch (one workgroup per row) where the
// per-tensor cast (cast_scaled.wgsl) needs a fill, an absmax and a quantize pass.
//
// `norm` casts rmsnorm(x) * w instead, computed exactly as rmsnorm.wgsl's forward computes it
// (the same 64-lane sum of squares in the same tree order, the same products), so the fused
// kernel writes bit for bit what rmsnorm followed by `main` would: one dispatch for both.
//
// Rows rows..rows_out-1 are padding (matmul_rows reads whole 16-row tiles): zeros, inv 0.
// DEQUANT writes the f32 value round_f16(x s) / s instead (the same rounding through f32
// kernels, for adapters without tensor cores). Without DEQUANT, k must be even.

struct Params {
    rows: u32,
    rows_out: u32,
    k: u32,
    eps: f32, // norm only
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<storage, read_write> inv: array<f32>;
@group(0) @binding(4) var<storage, read> norm_w: array<f32>;

override DEQUANT: bool = false;

const WG: u32 = 256u;

var<workgroup> partial: array<u32, WG>;

// Value j of row r as cast: x itself, or rmsnorm's output w_j * (x_j * rstd).
fn value(row: u32, j: u32, rstd: f32, normed: bool) -> f32 {
    if (normed) {
        return norm_w[j] * (x[row + j] * rstd);
    }
    return x[row + j];
}

// Zeros for a padding row; false when `r` is a real row.
fn pad_row(r: u32, lid: u32) -> bool {
    if (r < p.rows) {
        return false;
    }
    let words = select(p.k / 2u, p.k, DEQUANT);
    for (var w = lid; w < words; w += WG) {
        out[r * words + w] = 0u;
    }
    if (lid == 0u) {
        inv[r] = 0.0;
    }
    return true;
}

// Max |value| over the row (as bits, which order like the values), then the cast.
fn cast_row(r: u32, lid: u32, rstd: f32, normed: bool) {
    let row = r * p.k;
    var m = 0u;
    for (var j = lid; j < p.k; j += WG) {
        m = max(m, bitcast<u32>(value(row, j, rstd, normed)) & 0x7fffffffu);
    }
    partial[lid] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] = max(partial[lid], partial[lid + s]);
        }
        workgroupBarrier();
    }
    let e = scale_log2(partial[0]);
    let s = ldexp(1.0, e);
    let back = ldexp(1.0, -e);
    if (lid == 0u) {
        inv[r] = back;
    }
    let words = select(p.k / 2u, p.k, DEQUANT);
    for (var w = lid; w < words; w += WG) {
        if (DEQUANT) {
            let h = f32_bits_to_f16(bitcast<u32>(value(row, w, rstd, normed) * s));
            out[r * words + w] = bitcast<u32>(bitcast<f32>(f16_bits_to_f32(h)) * back);
        } else {
            let lo = f32_bits_to_f16(bitcast<u32>(value(row, 2u * w, rstd, normed) * s));
            let hi = f32_bits_to_f16(bitcast<u32>(value(row, 2u * w + 1u, rstd, normed) * s));
            out[r * words + w] = lo | (hi << 16u);
        }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = wg.x + wg.y * nwg.x;
    if (r >= p.rows_out || pad_row(r, lid)) {
        return;
    }
    cast_row(r, lid, 1.0, false);
}

@compute @workgroup_size(256)
fn norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = wg.x + wg.y * nwg.x;
    if (r >= p.rows_out || pad_row(r, lid)) {
        return;
    }
    let row = r * p.k;
    // rmsnorm.wgsl's statistic (row_norm.wgsl): 64 lanes over d = lane, lane + 64, ...
    var ss = 0.0;
    if (lid < 64u) {
        for (var d = lid; d < p.k; d += 64u) {
            let v = x[row + d];
            ss += v * v;
        }
    }
    let rstd = rstd_of(sum64(lid, ss), p.k, p.eps);
    cast_row(r, lid, rstd, true);
}
