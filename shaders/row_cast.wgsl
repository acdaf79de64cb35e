// The per-row scaled f32 -> f16 cast of a decode step's matmul input (matmul_rows.wgsl's A
// operand), shared by quantize_rows.wgsl (the input read from a tensor) and
// matmul_rows_reduce_cast.wgsl (the input being the row its reduction just wrote), so both
// write the same bits for the same values.
//
// Row r gets its own power-of-two scale s_r from its max |x| (f16_bits.wgsl's scale_log2: the
// largest value lands in [2^14, 2^15)); out[r] = round_f16(x[r] * s_r) packed two per word, and
// inv[r] = 1 / s_r, which matmul_rows.wgsl multiplies back in its epilogue (exact: powers of
// two). With `normed`, the cast value is rmsnorm(x) * w, computed exactly as rmsnorm.wgsl's
// forward computes it (row_norm.wgsl's statistic, the same products). DEQUANT writes the f32
// value round_f16(x s) / s instead (the same rounding for the f32 kernels). Without DEQUANT, k
// must be even.
//
// Compiled after f16_bits.wgsl and row_norm.wgsl. The including file declares the bindings
// `out` (array<u32>, read_write), `inv` (array<f32>, read_write) and `norm_w` (array<f32>), the
// override `DEQUANT`, and `fn cast_input(i: u32) -> f32`, element i of its flat input. The
// functions with barriers are called by the whole workgroup of CAST_WG invocations (a power
// of two of at least 64; the max over the row is exact in any order, so the cast does not
// depend on it).

override CAST_WG: u32 = 256u;

var<workgroup> cast_partial: array<u32, CAST_WG>;

// Element j of the row starting at `base`, as cast: the input itself, or w_j * (x_j * rstd).
fn cast_value(base: u32, j: u32, rstd: f32, normed: bool) -> f32 {
    if (normed) {
        return norm_w[j] * (cast_input(base + j) * rstd);
    }
    return cast_input(base + j);
}

// Zeros for padding row r (r >= rows) of a k-wide operand; false when r is a real row.
fn pad_row(r: u32, rows: u32, k: u32, lid: u32) -> bool {
    if (r < rows) {
        return false;
    }
    let words = select(k / 2u, k, DEQUANT);
    for (var w = lid; w < words; w += CAST_WG) {
        out[r * words + w] = 0u;
    }
    if (lid == 0u) {
        inv[r] = 0.0;
    }
    return true;
}

// rmsnorm.wgsl's 1 / rms of the k inputs from `base`: 64 lanes over d = lane, lane + 64, ...
fn row_rstd(base: u32, k: u32, eps: f32, lid: u32) -> f32 {
    var ss = 0.0;
    if (lid < 64u) {
        for (var d = lid; d < k; d += 64u) {
            let v = cast_input(base + d);
            ss += v * v;
        }
    }
    return rstd_of(sum64(lid, ss), k, eps);
}

// Max |value| over row r (as bits, which order like the values), then the cast.
fn cast_row(r: u32, base: u32, k: u32, rstd: f32, normed: bool, lid: u32) {
    var m = 0u;
    for (var j = lid; j < k; j += CAST_WG) {
        m = max(m, bitcast<u32>(cast_value(base, j, rstd, normed)) & 0x7fffffffu);
    }
    cast_partial[lid] = m;
    workgroupBarrier();
    for (var s = CAST_WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            cast_partial[lid] = max(cast_partial[lid], cast_partial[lid + s]);
        }
        workgroupBarrier();
    }
    let e = scale_log2(cast_partial[0]);
    let s = ldexp(1.0, e);
    let back = ldexp(1.0, -e);
    if (lid == 0u) {
        inv[r] = back;
    }
    let words = select(k / 2u, k, DEQUANT);
    for (var w = lid; w < words; w += CAST_WG) {
        if (DEQUANT) {
            let h = f32_bits_to_f16(bitcast<u32>(cast_value(base, w, rstd, normed) * s));
            out[r * words + w] = bitcast<u32>(bitcast<f32>(f16_bits_to_f32(h)) * back);
        } else {
            let lo = f32_bits_to_f16(bitcast<u32>(cast_value(base, 2u * w, rstd, normed) * s));
            let hi = f32_bits_to_f16(bitcast<u32>(cast_value(base, 2u * w + 1u, rstd, normed) * s));
            out[r * words + w] = lo | (hi << 16u);
        }
    }
}
