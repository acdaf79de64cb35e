// The ordered sum of matmul_rows.wgsl's K splits, shared by its two second passes
// (matmul_rows_reduce.wgsl, matmul_rows_reduce_cast.wgsl) so they write the same bits:
//   split_sum(r, j) = (sum_z part[z](r, j)) * inv_a[r] * inv_b
// with inv_a the row scales of A (quantize_rows.wgsl) and inv_b = sb[1], the weight's scale word
// (cast_scaled.wgsl); both powers of two, so undoing them is exact. part is [splits, m_pad, n].
// The including file declares `p` (with m_pad, n and splits), `part`, `inv_a` and `sb`.

fn split_sum(r: u32, j: u32) -> f32 {
    let plane = p.m_pad * p.n;
    var sum = 0.0;
    for (var z = 0u; z < p.splits; z += 1u) {
        sum += part[z * plane + r * p.n + j];
    }
    return sum * (inv_a[r] * sb[1]);
}

// swiglu.wgsl's expression.
fn silu_times(g: f32, u: f32) -> f32 {
    return g * (1.0 / (1.0 + exp(-g))) * u;
}
