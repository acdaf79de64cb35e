// The row statistic every kernel that applies an RMSNorm computes the same way, so their outputs
// agree bit for bit (rmsnorm.wgsl, quantize_rows.wgsl's `norm`, qk_norm_rope.wgsl): invocation
// l < 64 sums the squares of elements l, l + 64, ... in ascending order, `sum64` adds the 64
// partial sums in a fixed halving tree, and `rstd_of` turns the total into 1 / rms.

var<workgroup> row_partial: array<f32, 64>;

// Sum of `v` over invocations 0..63 (others' `v` is ignored) in a fixed tree order
// (deterministic). It has barriers: every invocation of the workgroup calls it.
fn sum64(lid: u32, v: f32) -> f32 {
    if (lid < 64u) {
        row_partial[lid] = v;
    }
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (lid < s) {
            row_partial[lid] += row_partial[lid + s];
        }
        workgroupBarrier();
    }
    let total = row_partial[0];
    workgroupBarrier();
    return total;
}

fn rstd_of(sum_sq: f32, dim: u32, eps: f32) -> f32 {
    return 1.0 / sqrt(sum_sq / f32(dim) + eps);
}
